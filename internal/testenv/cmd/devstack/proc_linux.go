package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func setParentDeathSignal(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGTERM }

// watchParent calls stop when pid (make) exits, or when it stops catching SIGINT or
// SIGTERM. GNU make, sent SIGINT alone (not through the terminal, which signals the
// whole foreground group), resets its handler and then waits for its children without
// telling them: the cleared bit in /proc/<pid>/status SigCgt is the only trace. SIGTERM
// make forwards itself; watching it too costs nothing.
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

// caught reads the caught-signals mask of pid.
func caught(pid int) (uint64, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, found := strings.CutPrefix(line, "SigCgt:"); found {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return n, err == nil
		}
	}
	return 0, false
}
