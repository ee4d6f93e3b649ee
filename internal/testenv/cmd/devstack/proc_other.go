//go:build unix && !linux

package main

import "syscall"

func setParentDeathSignal(*syscall.SysProcAttr) {}

func caught(pid int) (uint64, bool) { return caughtByPS(pid) }
