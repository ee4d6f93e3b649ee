//go:build unix && !linux

package main

import (
	"context"
	"fmt"
	"syscall"
	"time"
)

func setParentDeathSignal(*syscall.SysProcAttr) {}

// watchParent calls stop when pid (make) exits. Unlike on Linux, a SIGINT sent to make
// alone is not seen here: make then waits for devstack; signal devstack instead.
func watchParent(ctx context.Context, pid int, stop func(why string)) {
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
	}
}
