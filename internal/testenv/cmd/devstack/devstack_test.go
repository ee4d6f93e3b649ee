package main

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/blobcopy/blobcopy/internal/testenv/syncbuf"
)

// These tests run the built devstack and handler as `make run` does, then stop them the
// ways a developer does, and check that every port is free again within seconds.

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

func binaries(t *testing.T) (devstack, handler string) {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "devstack-test-")
		if buildErr != nil {
			return
		}
		for pkg, name := range map[string]string{".": "devstack", "../../../../cmd/handler": "handler"} {
			if out, err := exec.Command("go", "build", "-o", filepath.Join(binDir, name), pkg).CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, "devstack"), filepath.Join(binDir, "handler")
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../../../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// freePorts returns n distinct free loopback ports.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return ports
}

// args are devstack's flags for ports (blob, queue, table, handler, slowdemo, callbacks) and a
// throw-away data folder.
func args(t *testing.T, ports []int) []string {
	devstack, handler := binaries(t)
	_ = devstack
	return []string{
		"-azurite", filepath.Join(repoRoot(t), ".tools", "node_modules", ".bin", "azurite"),
		"-handler", handler, "-data", t.TempDir(), "-small-demo",
		"-blob-port", strconv.Itoa(ports[0]), "-queue-port", strconv.Itoa(ports[1]), "-table-port", strconv.Itoa(ports[2]),
		"-handler-port", strconv.Itoa(ports[3]), "-slowdemo-port", strconv.Itoa(ports[4]), "-callback-port", strconv.Itoa(ports[5]),
	}
}

func waitFor(t *testing.T, out *syncbuf.Buffer, text string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !strings.Contains(out.String(), text) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q within %s; output:\n%s", text, within, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func assertPortsFree(t *testing.T, ports []int) {
	t.Helper()
	for _, p := range ports {
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			t.Errorf("port %d still in use: %v", p, err)
			continue
		}
		ln.Close()
	}
}

func waitExit(t *testing.T, cmd *exec.Cmd, within time.Duration) (time.Duration, error) {
	t.Helper()
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return time.Since(start), err
	case <-time.After(within):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		t.Fatalf("still running %s after the signal", within)
		return 0, nil
	}
}

// TestSignalStopsEverything: SIGINT or SIGTERM to devstack (what the run script execs)
// stops the handler, the simulator and Azurite, freeing every port within seconds; the
// stack worked in between (the handler answers, slowdemo copies go pending).
func TestSignalStopsEverything(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			devstack, _ := binaries(t)
			ports := freePorts(t, 6)
			out := &syncbuf.Buffer{}
			cmd := exec.Command(devstack, args(t, ports)...)
			cmd.Dir = repoRoot(t)
			cmd.Stdout, cmd.Stderr = out, out
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			waitFor(t, out, "blobcopy is running", 90*time.Second)

			api := fmt.Sprintf("http://127.0.0.1:%d/api/copies", ports[3])
			body := fmt.Sprintf(`{"source":"http://127.0.0.1:%d/devstoreaccount1/source/hello.txt","destination":{"account":"slowdemo","container":"backup","blob":"hello.txt"}}`, ports[0])
			resp, err := http.Post(api, "application/json", strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				t.Errorf("copy into slowdemo answered %d, want 202 (pending)", resp.StatusCode)
			}

			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			took, err := waitExit(t, cmd, 20*time.Second)
			if err != nil {
				t.Errorf("devstack exited with %v after %s, want 0\n%s", err, sig, out.String())
			}
			if took > 10*time.Second {
				t.Errorf("stopping took %s", took)
			}
			assertPortsFree(t, ports)
			if !strings.Contains(out.String(), "every port is free") {
				t.Errorf("output lacks the stop report:\n%s", out.String())
			}
		})
	}
}

// TestPortInUseIsNeverReused: a port already taken (an orphan of an earlier run) stops
// the start with a message naming the port; nothing is started, so the other ports stay
// free.
func TestPortInUseIsNeverReused(t *testing.T) {
	devstack, _ := binaries(t)
	ports := freePorts(t, 6)
	orphan, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0])))
	if err != nil {
		t.Fatal(err)
	}
	defer orphan.Close()
	var out bytes.Buffer
	cmd := exec.Command(devstack, args(t, ports)...)
	cmd.Dir = repoRoot(t)
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("exit = %v, want status 1\n%s", err, out.String())
	}
	msg := out.String()
	for _, want := range []string{strconv.Itoa(ports[0]), "Azurite blob", "already in use, nothing started", "BLOB_PORT"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}
	assertPortsFree(t, ports[1:])
}

// TestMakeInterruptedAloneStopsEverything: `kill -INT <make>` (or -TERM) reaches make
// alone; make, by design, does not pass SIGINT on to its recipe, and waits for it.
// devstack watches make (-watch-pid) and stops, so make exits and every port is free.
func TestMakeInterruptedAloneStopsEverything(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed")
	}
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("needs /proc (Linux) to see make catch SIGINT")
	}
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			devstack, _ := binaries(t)
			ports := freePorts(t, 6)
			dir := t.TempDir()
			recipe := devstack + " -watch-pid $$PPID"
			for _, a := range args(t, ports) {
				recipe += " '" + a + "'"
			}
			if err := os.WriteFile(filepath.Join(dir, "Makefile"), []byte("run:\n\tcd "+repoRoot(t)+" && exec "+recipe+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			out := &syncbuf.Buffer{}
			cmd := exec.Command("make", "-s", "-C", dir, "run")
			cmd.Stdout, cmd.Stderr = out, out
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			waitFor(t, out, "blobcopy is running", 90*time.Second)
			if ignored(t, cmd.Process.Pid, sig) {
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
				_, _ = waitExit(t, cmd, 20*time.Second)
				t.Skipf("make was started with %s ignored (by the shell running the tests)", sig)
			}
			if err := cmd.Process.Signal(sig); err != nil { // make alone, not its group
				t.Fatal(err)
			}
			if took, _ := waitExit(t, cmd, 20*time.Second); took > 10*time.Second {
				t.Errorf("make took %s to end", took)
			}
			assertPortsFree(t, ports)
			// SIGINT is seen through make; SIGTERM make passes on itself.
			if !strings.Contains(out.String(), "devstack: stopping (") {
				t.Errorf("devstack did not report why it stopped:\n%s", out.String())
			}
		})
	}
}

func ignored(t *testing.T, pid int, sig syscall.Signal) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "SigIgn:"); ok {
			mask, _ := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return mask&(1<<(uint(sig)-1)) != 0
		}
	}
	return false
}

func TestParseFlags(t *testing.T) {
	if _, err := parseFlags([]string{"-blob-port", "7071"}); err == nil || !strings.Contains(err.Error(), "both 7071") {
		t.Errorf("duplicate ports: %v", err)
	}
	if _, err := parseFlags([]string{"-handler-port", "70000"}); err == nil {
		t.Error("port 70000 accepted")
	}
	if _, err := parseFlags([]string{"extra"}); err == nil {
		t.Error("positional argument accepted")
	}
	c, err := parseFlags(nil)
	if err != nil || c.blobPort != 10000 || c.handlerPort != 7071 || c.simPort != 10005 || c.pending != 20*time.Second || c.debug {
		t.Errorf("defaults = %+v, %v", c, err)
	}
}

// TestCaughtSignals: the caught-signals mask read from /proc (Linux) and from ps (the
// way other systems read it) agree, and show a handler devstack's watch relies on.
func TestCaughtSignals(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err == nil && ignored(t, os.Getpid(), syscall.SIGINT) {
		t.Skip("SIGINT is ignored here (tests run in the background), so sh cannot trap it")
	}
	cmd := exec.Command("sh", "-c", "trap 'exit 0' INT; sleep 30 & wait")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	time.Sleep(200 * time.Millisecond)
	byPS, ok := caughtByPS(cmd.Process.Pid)
	if !ok {
		t.Skip("ps does not report sigcatch here")
	}
	if byPS&(1<<(uint(syscall.SIGINT)-1)) == 0 {
		t.Errorf("ps shows mask %x without SIGINT, which sh traps", byPS)
	}
	if byProc, ok := caught(cmd.Process.Pid); !ok || byProc != byPS {
		t.Errorf("caught = %x, %v; ps says %x", byProc, ok, byPS)
	}
}
