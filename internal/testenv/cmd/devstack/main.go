// Command devstack is what `make run` runs: Azurite (two accounts), the copy simulator
// serving the slowdemo account, the demo blobs, and the handler, all on loopback, and
// nothing left behind when it stops.
//
// One Go process supervises everything, so that stopping is reliable whatever signal
// arrives and wherever: SIGINT or SIGTERM to it (or to `make run`, which it watches)
// stops the handler, the simulator and Azurite and frees every port within seconds; any
// part exiting stops the rest; a port already taken (an orphan of an earlier run, or
// another program) stops the start with a message naming the port and, when it can,
// the process, and is never reused silently.
//
// It is a development tool under internal/testenv, next to the simulator it serves: it
// never ships (.funcignore), and cmd/ keeps the binaries that do (handler, blobcopy).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// config is everything the stack is started with; flags default to the README's ports.
type config struct {
	azurite, handler  string
	dataDir           string
	blobPort          int
	queuePort         int
	tablePort         int
	handlerPort       int
	simPort           int
	callbackPort      int
	debug             bool
	pending           time.Duration
	watchPID          int
	stopGrace         time.Duration
	skipBigDemoObject bool
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	cfg, err := parseFlags(args)
	if err != nil {
		fmt.Fprintln(os.Stderr, "devstack:", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if cfg.watchPID > 0 {
		go watchParent(ctx, cfg.watchPID, func(why string) { cancel(errors.New(why)) })
	}

	st := &stack{cfg: cfg, base: log, log: log.With("component", "devstack")}
	defer st.stop()
	if err := st.start(ctx); err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(os.Stderr, "devstack: stopped while starting:", stopReason(ctx))
			return 1
		}
		fmt.Fprintln(os.Stderr, "devstack:", err)
		return 1
	}
	st.banner(os.Stderr)

	select {
	case <-ctx.Done():
		fmt.Fprintf(os.Stderr, "devstack: stopping (%s)\n", stopReason(ctx))
		st.stop()
		fmt.Fprintln(os.Stderr, "devstack: stopped; every port is free")
		return 0
	case ex := <-st.exited:
		fmt.Fprintf(os.Stderr, "devstack: %s exited (%v); stopping the rest\n", ex.name, ex.err)
		st.stop()
		return 1
	}
}

func stopReason(ctx context.Context) string {
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause.Error()
	}
	return "signal received"
}

func parseFlags(args []string) (config, error) {
	fs := flag.NewFlagSet("devstack", flag.ContinueOnError)
	var c config
	fs.StringVar(&c.azurite, "azurite", ".tools/node_modules/.bin/azurite", "the azurite executable")
	fs.StringVar(&c.handler, "handler", "bin/handler", "the handler executable (built for this machine)")
	fs.StringVar(&c.dataDir, "data", ".azurite", "Azurite's data folder (also holds azurite.log)")
	fs.IntVar(&c.blobPort, "blob-port", 10000, "Azurite blob port")
	fs.IntVar(&c.queuePort, "queue-port", 10001, "Azurite queue port")
	fs.IntVar(&c.tablePort, "table-port", 10002, "Azurite table port")
	fs.IntVar(&c.handlerPort, "handler-port", 7071, "the handler's port")
	fs.IntVar(&c.simPort, "slowdemo-port", 10005, "the copy simulator's port (account slowdemo)")
	fs.IntVar(&c.callbackPort, "callback-port", 10006, "a local receiver of completion callbacks (it prints them)")
	fs.BoolVar(&c.debug, "debug", false, "write Azurite's debug log to <data>/debug.log (it holds every SAS in full)")
	fs.DurationVar(&c.pending, "slowdemo-pending", 20*time.Second, "how long a copy into slowdemo stays pending")
	fs.IntVar(&c.watchPID, "watch-pid", 0, "stop when this process (make) exits or is interrupted")
	fs.DurationVar(&c.stopGrace, "stop-grace", 5*time.Second, "how long each process may take to stop before it is killed")
	fs.BoolVar(&c.skipBigDemoObject, "small-demo", false, "skip the 16 MiB demo blob")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	ports := map[int]string{}
	for _, p := range []struct {
		name string
		port int
	}{{"blob-port", c.blobPort}, {"queue-port", c.queuePort}, {"table-port", c.tablePort}, {"handler-port", c.handlerPort}, {"slowdemo-port", c.simPort}, {"callback-port", c.callbackPort}} {
		if p.port < 1 || p.port > 65535 {
			return c, fmt.Errorf("-%s %d is not a port number (1-65535)", p.name, p.port)
		}
		if other, dup := ports[p.port]; dup {
			return c, fmt.Errorf("-%s and -%s are both %d", other, p.name, p.port)
		}
		ports[p.port] = p.name
	}
	return c, nil
}
