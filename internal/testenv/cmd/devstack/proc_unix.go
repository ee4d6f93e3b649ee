//go:build unix

package main

import (
	"os/exec"
	"syscall"
)

// setProcAttr puts the child in its own process group (see proc); on Linux the child
// also gets SIGTERM if devstack dies without stopping it (SIGKILL, a crash).
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	setParentDeathSignal(cmd.SysProcAttr)
}

func signalGroup(cmd *exec.Cmd, kill bool) {
	if cmd.Process == nil {
		return
	}
	sig := syscall.SIGTERM
	if kill {
		sig = syscall.SIGKILL
	}
	_ = syscall.Kill(-cmd.Process.Pid, sig)
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }
