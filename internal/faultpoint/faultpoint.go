// Package faultpoint lets crash tests kill the process at a named step, to prove that a
// crash anywhere leaves nothing lost. The step is chosen with the environment variable
// BLOBCOPY_FAULTPOINT, read once; unset (always, in production) every Hit is a no-op.
package faultpoint

import (
	"fmt"
	"os"
	"sync"
)

// ExitCode is the status a process killed by a fault point exits with.
const ExitCode = 86

var armed = sync.OnceValue(func() string { return os.Getenv("BLOBCOPY_FAULTPOINT") })

// Hit ends the process abruptly, as a crash would (no deferred calls, no cleanup), when
// name is the armed fault point.
func Hit(name string) {
	if a := armed(); a != "" && a == name {
		fmt.Fprintf(os.Stderr, "faultpoint %s: crashing\n", name)
		os.Exit(ExitCode)
	}
}
