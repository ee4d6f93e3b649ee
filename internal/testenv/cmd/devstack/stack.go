package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/blobcopy/blobcopy/internal/testenv/copysim"
)

// Azurite's well-known development key; acct2 uses it too, so local.settings.json holds
// no other secret.
const devKey = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

// Accounts of the local stack.
const (
	devAccount      = "devstoreaccount1"
	secondAccount   = "acct2"
	slowdemoAccount = "slowdemo"
)

const startTimeout = 60 * time.Second

// stack is the running set of processes; stop undoes start, whatever part of it ran.
type stack struct {
	cfg  config
	base *slog.Logger // for the simulator and the callback receiver
	log  *slog.Logger // devstack's own lines

	azurite *proc
	sim     *copysim.Server
	auto    *copysim.AutoProgress
	handler *proc
	sink    *http.Server

	exited   chan exit
	stopOnce sync.Once
}

type exit struct {
	name string
	err  error
}

// proc is one child process, in its own process group so that stopping reaches every
// descendant and a terminal's Ctrl-C reaches only devstack, which stops things in order.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func (s *stack) spawn(name string, cmd *exec.Cmd) (*proc, error) {
	setProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
		select {
		case s.exited <- exit{name: name, err: p.err}:
		default:
		}
	}()
	return p, nil
}

// terminate sends SIGTERM to p's process group, waits up to grace, then kills it.
func (p *proc) terminate(grace time.Duration) {
	if p == nil {
		return
	}
	signalGroup(p.cmd, false)
	select {
	case <-p.done:
	case <-time.After(grace):
		signalGroup(p.cmd, true)
		<-p.done
	}
	// Descendants that outlived their parent would keep ports.
	signalGroup(p.cmd, true)
}

func (s *stack) start(ctx context.Context) error {
	s.exited = make(chan exit, 4)
	cfg := s.cfg
	if _, err := os.Stat(cfg.handler); err != nil {
		return fmt.Errorf("the handler binary %s is missing: build it with `make run` (or go build -o %s ./cmd/handler)", cfg.handler, cfg.handler)
	}
	if _, err := os.Stat(cfg.azurite); err != nil {
		return fmt.Errorf("azurite is not installed at %s: `make run` installs it with npm (make azurite)", cfg.azurite)
	}
	simListener, sinkListener, err := checkPorts(cfg)
	if err != nil {
		return err
	}
	s.sink = callbackSink(sinkListener, s.base.With("component", "callbacks"))
	if err := s.startAzurite(ctx); err != nil {
		simListener.Close()
		return err
	}
	s.auto = &copysim.AutoProgress{Duration: cfg.pending, Logger: s.base.With("component", "slowdemo")}
	// SyncInternalCopies: a copy within slowdemo (abort --restore copying a snapshot back)
	// ends at once, as Azure usually does within an account; copies from Azurite are slow.
	s.sim, err = copysim.NewOnListener(copysim.Options{FetchSource: true, SyncInternalCopies: true, OnCopyStart: s.auto.OnCopyStart}, simListener)
	if err != nil {
		return err
	}
	s.auto.Attach(s.sim)
	s.sim.CreateContainer(slowdemoAccount, "backup")

	seedCtx, cancel := context.WithTimeout(ctx, startTimeout)
	err = seedDemo(seedCtx, s.blobEndpoint, !cfg.skipBigDemoObject)
	cancel()
	if err != nil {
		return fmt.Errorf("demo blobs: %w", err)
	}
	return s.startHandler(ctx)
}

func (s *stack) blobEndpoint(account string) string {
	return fmt.Sprintf("http://127.0.0.1:%d/%s", s.cfg.blobPort, account)
}

func (s *stack) connectionString(account string) string {
	endpoint := func(port int) string { return fmt.Sprintf("http://127.0.0.1:%d/%s", port, account) }
	return "DefaultEndpointsProtocol=http;AccountName=" + account + ";AccountKey=" + devKey +
		";BlobEndpoint=" + endpoint(s.cfg.blobPort) + ";QueueEndpoint=" + endpoint(s.cfg.queuePort) +
		";TableEndpoint=" + endpoint(s.cfg.tablePort) + ";"
}

func (s *stack) startAzurite(ctx context.Context) error {
	cfg := s.cfg
	if err := os.MkdirAll(cfg.dataDir, 0o755); err != nil {
		return err
	}
	debugLog := filepath.Join(cfg.dataDir, "debug.log")
	args := []string{"--silent", "--skipApiVersionCheck", "--loose", "--disableTelemetry",
		"--location", cfg.dataDir,
		"--blobHost", "127.0.0.1", "--blobPort", strconv.Itoa(cfg.blobPort),
		"--queueHost", "127.0.0.1", "--queuePort", strconv.Itoa(cfg.queuePort),
		"--tableHost", "127.0.0.1", "--tablePort", strconv.Itoa(cfg.tablePort)}
	if cfg.debug {
		// A fresh log each run: Azurite appends, and the log holds every SAS in full.
		if err := os.WriteFile(debugLog, nil, 0o600); err != nil {
			return err
		}
		args = append(args, "--debug", debugLog)
		s.log.Warn("Azurite debug log on: it holds every request, SAS tokens in full; delete it when done", "path", debugLog)
	} else if err := os.Remove(debugLog); err == nil {
		s.log.Info("removed the debug log of an earlier DEBUG=1 run (it held SAS tokens)", "path", debugLog)
	}
	logPath := filepath.Join(cfg.dataDir, "azurite.log")
	out, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer out.Close() // the child keeps its own descriptor
	cmd := exec.Command(cfg.azurite, args...)
	cmd.Env = append(os.Environ(), "AZURITE_ACCOUNTS="+devAccount+":"+devKey+";"+secondAccount+":"+devKey)
	cmd.Stdout, cmd.Stderr = out, out
	if s.azurite, err = s.spawn("azurite", cmd); err != nil {
		return err
	}
	for _, port := range []int{cfg.blobPort, cfg.queuePort, cfg.tablePort} {
		if err := waitListening(ctx, port, s.azurite); err != nil {
			return fmt.Errorf("azurite: %w\n%s", err, tail(logPath, 2000))
		}
	}
	s.log.Info("Azurite started", "pid", s.azurite.cmd.Process.Pid, "data", cfg.dataDir, "log", logPath)
	return nil
}

func (s *stack) startHandler(ctx context.Context) error {
	cfg := s.cfg
	cmd := exec.Command(cfg.handler)
	cmd.Env = append(os.Environ(),
		"AzureWebJobsStorage="+s.connectionString(devAccount),
		"COPY_ACCOUNT_ACCT2="+s.connectionString(secondAccount),
		"COPY_ACCOUNT_SLOWDEMO="+s.sim.ConnectionString(slowdemoAccount),
		"BLOBCOPY_LISTEN_ADDRESS="+net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.handlerPort)),
	)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	var err error
	if s.handler, err = s.spawn("handler", cmd); err != nil {
		return err
	}
	if err := waitListening(ctx, cfg.handlerPort, s.handler); err != nil {
		return fmt.Errorf("handler: %w (its log is above)", err)
	}
	return nil
}

// stop ends everything start began, the handler first (it uses the others).
func (s *stack) stop() {
	s.stopOnce.Do(func() {
		s.handler.terminate(s.cfg.stopGrace + 5*time.Second) // in-flight requests may finish
		if s.auto != nil {
			s.auto.Close()
		}
		if s.sim != nil {
			s.sim.Close()
		}
		if s.sink != nil {
			_ = s.sink.Close()
		}
		s.azurite.terminate(s.cfg.stopGrace)
	})
}

func (s *stack) banner(w io.Writer) {
	c := s.cfg
	api := fmt.Sprintf("http://127.0.0.1:%d", c.handlerPort)
	fmt.Fprintf(w, `
blobcopy is running; Ctrl-C (or SIGTERM) stops everything.
  handler   %s/api/copies (no key locally; %s/api/openapi.json)
  Azurite   %s and %s (data in %s/, log %s/azurite.log)
  slowdemo  %s (copy simulator: copies stay pending %s, then succeed)
  demo      %s in containers source (and backup) of %s and %s
  callbacks %s/... (a receiver that prints each callback here)
`, api, api, s.blobEndpoint(devAccount), s.blobEndpoint(secondAccount), c.dataDir, c.dataDir,
		s.sim.AccountEndpoint(slowdemoAccount), c.pending, demoBlobs(!c.skipBigDemoObject), devAccount, secondAccount,
		callbackURL(c.callbackPort))
	if c.handlerPort != 7071 {
		fmt.Fprintf(w, "  CLI       export BLOBCOPY_URL=%s\n", api)
	}
	fmt.Fprintln(w)
}

// waitListening waits until 127.0.0.1:port accepts connections, p exits, or ctx ends.
func waitListening(ctx context.Context, port int, p *proc) error {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(startTimeout)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("exited before listening on %s: %v", addr, p.err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not listening on %s after %s", addr, startTimeout)
		}
	}
}

// checkPorts fails when any port is taken, naming it and its holder. It keeps the ports
// devstack serves itself (simulator, callback receiver), so nobody takes them meanwhile.
func checkPorts(cfg config) (sim, sink net.Listener, err error) {
	var taken []string
	var kept []net.Listener
	for _, p := range []struct {
		what string
		port int
		flag string
		keep *net.Listener
	}{
		{"Azurite blob", cfg.blobPort, "BLOB_PORT", nil}, {"Azurite queue", cfg.queuePort, "QUEUE_PORT", nil},
		{"Azurite table", cfg.tablePort, "TABLE_PORT", nil}, {"the handler", cfg.handlerPort, "HANDLER_PORT", nil},
		{"slowdemo simulator", cfg.simPort, "SLOWDEMO_PORT", &sim}, {"callback receiver", cfg.callbackPort, "CALLBACK_PORT", &sink},
	} {
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p.port)))
		if err != nil {
			taken = append(taken, fmt.Sprintf("  %d (%s, make run %s=...): %s", p.port, p.what, p.flag, holder(p.port)))
			continue
		}
		if p.keep == nil {
			ln.Close()
			continue
		}
		*p.keep = ln
		kept = append(kept, ln)
	}
	if len(taken) > 0 {
		for _, ln := range kept {
			ln.Close()
		}
		return nil, nil, fmt.Errorf("ports already in use, nothing started:\n%s\n"+
			"an Azurite or handler left from an earlier run? Stop that process, or choose free ports as shown in the README (Ports)",
			strings.Join(taken, "\n"))
	}
	return sim, sink, nil
}

// holder names the process listening on port when lsof can tell.
func holder(port int) string {
	out, err := exec.Command("lsof", "-nP", "-t", "-iTCP:"+strconv.Itoa(port), "-sTCP:LISTEN").Output()
	pid := strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
	if err != nil || pid == "" {
		return fmt.Sprintf("held by another process (lsof -nP -iTCP:%d -sTCP:LISTEN names it)", port)
	}
	cmdline, _ := exec.Command("ps", "-o", "args=", "-p", pid).Output()
	return fmt.Sprintf("held by pid %s (%s)", pid, truncate(strings.TrimSpace(string(cmdline)), 100))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// tail returns the last n bytes of a file, for start-up errors.
func tail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > n {
		_, _ = f.Seek(-n, io.SeekEnd)
	}
	b, _ := io.ReadAll(f)
	return string(b)
}
