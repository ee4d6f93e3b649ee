//go:build unix

package main

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// watchParent calls stop when pid (make) exits, or when it stops catching SIGINT or
// SIGTERM. GNU make, sent SIGINT alone (not through the terminal, which signals the
// whole foreground group), resets its handler and then waits for its children without
// telling them: the cleared bit in its caught-signals mask is the only trace. SIGTERM
// make passes on itself; watching it too costs nothing.
func watchParent(ctx context.Context, pid int, stop func(why string)) {
	initial, ok := caught(pid)
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !alive(pid) {
			stop(fmt.Sprintf("process %d (make) exited", pid))
			return
		}
		if !ok {
			continue
		}
		now, ok2 := caught(pid)
		if !ok2 {
			continue
		}
		for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
			bit := uint64(1) << (uint(sig) - 1)
			if initial&bit != 0 && now&bit == 0 {
				stop(fmt.Sprintf("process %d (make) received %s", pid, sig))
				return
			}
		}
	}
}

// caughtByPS reads the caught-signals mask of pid with ps (procps on Linux and the BSD
// ps of macOS both know the sigcatch keyword and print it in hex).
func caughtByPS(pid int) (uint64, bool) {
	out, err := exec.Command("ps", "-o", "sigcatch=", "-p", strconv.Itoa(pid)).Output()
	if err != nil {
		return 0, false
	}
	v := strings.TrimPrefix(strings.TrimSpace(string(out)), "0x")
	n, err := strconv.ParseUint(v, 16, 64)
	return n, err == nil
}
