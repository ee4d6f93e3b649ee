// Command blobcopy is the command-line client of the blobcopy API: start a copy, read
// its status, watch it with a live progress bar, abort it, list copies.
//
//	blobcopy start SOURCE [ACCOUNT:]CONTAINER/BLOB [--lease-source] [--tier T] [--tag k=v]...
//	               [--metadata k=v]... [--overwrite=false] [--snapshot-destination]
//	               [--idempotency-key K] [--wait]
//	blobcopy status ID
//	blobcopy watch ID
//	blobcopy abort ID [--restore]
//	blobcopy list [--status S] [--limit N]
//
// Every command takes --url (default $BLOBCOPY_URL, else http://127.0.0.1:7071) and
// --json (print the API's answers unchanged, for scripts). The function key, when the
// handler needs one, comes from $BLOBCOPY_KEY only, so it never shows in a process list.
//
// Exit status: 0 on success; 1 when the API refuses, or when a watched copy ends other
// than success (failed, aborted, ...); 2 for a usage error.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

const defaultURL = "http://127.0.0.1:7071"

const usage = `usage: blobcopy COMMAND [ARGS] [--url URL] [--json]

commands:
  start SOURCE [ACCOUNT:]CONTAINER/BLOB   start a copy (ACCOUNT: an alias such as acct2 or slowdemo)
        [--lease-source] [--tier Hot|Cool|Cold|Archive] [--tag k=v]... [--metadata k=v]...
        [--overwrite=false] [--snapshot-destination] [--requires-sync] [--sas-lifetime 36h]
        [--callback-url URL] [--idempotency-key KEY] [--wait]
  status ID                 show a copy (live progress while pending)
  watch ID                  progress bar until the copy ends; exit 0 only on success
  abort ID [--restore]      abort a pending copy (--restore: put back the snapshot taken at start)
  list [--status S] [--limit N]   list copies, page after page

environment:
  BLOBCOPY_URL   the API's base URL (default ` + defaultURL + `)
  BLOBCOPY_KEY   a function key, sent as x-functions-key (not needed by make run)
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// env is the part of the environment the CLI reads (os.Getenv in production).
type env func(string) string

// usageError is a mistake on the command line: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// exitError carries a chosen exit status with its message.
type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string { return e.msg }

func run(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) int {
	err := dispatch(ctx, args, getenv, stdout, stderr)
	var ue usageError
	var ee exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "blobcopy: %s\n\n%s", ue.msg, usage)
		return 2
	case errors.As(err, &ee):
		if ee.msg != "" {
			fmt.Fprintln(stderr, "blobcopy:", ee.msg)
		}
		return ee.code
	default:
		fmt.Fprintln(stderr, "blobcopy:", err)
		return 1
	}
}

func dispatch(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{"no command"}
	}
	cmd, rest := args[0], args[1:]
	if cmd == "help" || cmd == "-h" || cmd == "--help" {
		fmt.Fprint(stdout, usage)
		return nil
	}
	f := newFlags(cmd)
	base := getenv("BLOBCOPY_URL")
	if base == "" {
		base = defaultURL
	}
	f.fs.StringVar(&f.url, "url", base, "the API's base URL")
	f.fs.BoolVar(&f.json, "json", false, "print the API's JSON answers")
	o := &output{stdout: stdout, stderr: stderr}
	run := func() error {
		if err := f.parse(rest); err != nil {
			return err
		}
		o.json = f.json
		c := &client{base: strings.TrimRight(f.url, "/"), key: getenv("BLOBCOPY_KEY"), http: &http.Client{Timeout: 60 * time.Second}}
		return f.action(ctx, c, o)
	}
	switch cmd {
	case "start":
		defineStart(f)
	case "status":
		defineStatus(f)
	case "watch":
		defineWatch(f)
	case "abort":
		defineAbort(f)
	case "list":
		defineList(f)
	default:
		return usageError{fmt.Sprintf("unknown command %q", cmd)}
	}
	return run()
}
