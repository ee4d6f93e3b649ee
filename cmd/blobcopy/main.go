// Command blobcopy is the command-line client of the blobcopy API: start a copy, read
// its status, watch it with a live progress bar, abort it, list copies; and, for
// operators, list and requeue poisoned tracking messages.
//
//	blobcopy start SOURCE [ACCOUNT:]CONTAINER/BLOB [--lease-source] [--tier T] [--tag k=v]...
//	               [--metadata k=v]... [--overwrite=false] [--snapshot-destination]
//	               [--idempotency-key K] [--wait]
//	blobcopy status ID
//	blobcopy watch ID
//	blobcopy abort ID [--restore]
//	blobcopy list [--status S] [--batch ID] [--limit N]
//	blobcopy batch start SOURCE_CONTAINER_URL[/PREFIX] [ACCOUNT:]CONTAINER[/PREFIX] [--account A]
//	               [--tier T] [--tag k=v]... [--metadata k=v]... [--overwrite=false]
//	               [--lease-source] [--suffix S] [--modified-since T] [--wait]
//	blobcopy batch (status | watch | abort) ID
//	blobcopy batch list [--status S] [--limit N]
//	blobcopy list-poison
//	blobcopy requeue-poison (MESSAGE_ID... | --all) [--dry-run]
//
// The API commands take --url (default $BLOBCOPY_URL, else http://127.0.0.1:7071) and
// --json (print the API's answers unchanged, for scripts). The function key, when the
// handler needs one, comes from $BLOBCOPY_KEY only, so it never shows in a process list.
//
// list-poison and requeue-poison are operator commands: they work on the app's own
// storage directly (no HTTP route exposes the poison queue), configured like the app
// (AzureWebJobsStorage or its identity-based settings, COPY_QUEUE_NAME,
// COPY_RECORDS_CONTAINER), from the environment over --app-dir's local.settings.json.
//
// Exit status: 0 on success; 1 when the API refuses, when a watched copy ends other
// than success (failed, aborted, ...), when a watched or waited batch ends other than
// success, or when requeue-poison leaves an entry it was
// asked for; 2 for a usage error.
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

	"github.com/blobcopy/blobcopy/internal/redact"
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
  list [--status S] [--batch ID] [--limit N]   list copies (--batch: a batch's children)

batch commands (every blob under a container or prefix, POST /api/batches):
  batch start SOURCE_CONTAINER_URL[/PREFIX] [ACCOUNT:]CONTAINER[/PREFIX]
        [--account A] [--tier T] [--tag k=v]... [--metadata k=v]... [--overwrite=false]
        [--lease-source] [--suffix S] [--modified-since 2026-11-01T00:00:00Z]
        [--sas-lifetime 36h] [--callback-url URL] [--idempotency-key KEY] [--wait]
  batch status ID           show a batch: status, children counts, bytes, failures, error
  batch watch ID            progress bar (children, then bytes) until the batch ends;
                            exit 0 only on success
  batch abort ID            abort a running batch (pending children are aborted)
  batch list [--status S] [--limit N]   list batches, page after page

operator commands (the app's storage directly, no --url; [--app-dir DIR] [--json]):
  list-poison               show every poison queue entry: message id, job id, when, reason
  requeue-poison MESSAGE_ID... | --all [--dry-run]
                            after fixing the cause: put each message back on the tracking
                            queue (failure counts reset), clear the job's poisonReason,
                            then delete the entry; --dry-run only says what it would do

environment:
  BLOBCOPY_URL   the API's base URL (default ` + defaultURL + `)
  BLOBCOPY_KEY   a function key, sent as x-functions-key (not needed by make run)
  AzureWebJobsStorage (a connection string, or UseDevelopmentStorage=true), or
  AzureWebJobsStorage__accountName / __queueServiceUri / __blobServiceUri with
  __credential / __clientId (signed-in Azure CLI or managed identity), COPY_QUEUE_NAME,
  COPY_RECORDS_CONTAINER: the app's storage, for the operator commands; unset ones are
  read from the Values of DIR/local.settings.json (--app-dir, default .)
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
}

// getenv reads a variable from environ (os.Environ's form; a later entry wins).
func getenv(environ []string, name string) string {
	value := ""
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && k == name {
			value = v
		}
	}
	return value
}

// usageError is a mistake on the command line: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// exitError carries a chosen exit status with its message.
type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string { return e.msg }

func run(ctx context.Context, args []string, environ []string, stdout, stderr io.Writer) int {
	err := dispatch(ctx, args, environ, stdout, stderr)
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
		// Storage errors may quote a request URL; a SAS-based connection string puts its
		// signature there.
		fmt.Fprintln(stderr, "blobcopy:", redact.Text(err.Error()))
		return 1
	}
}

func dispatch(ctx context.Context, args []string, environ []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{"no command"}
	}
	cmd, rest := args[0], args[1:]
	if cmd == "help" || cmd == "-h" || cmd == "--help" {
		fmt.Fprint(stdout, usage)
		return nil
	}
	if cmd == "batch" {
		return dispatchBatch(ctx, rest, environ, stdout, stderr)
	}
	f := newFlags(cmd)
	f.fs.BoolVar(&f.json, "json", false, "print JSON for scripts")
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
	case "list-poison":
		defineListPoison(f)
	case "requeue-poison":
		defineRequeuePoison(f)
	default:
		return usageError{fmt.Sprintf("unknown command %q", cmd)}
	}
	o := &output{stdout: stdout, stderr: stderr}
	if f.storage != nil {
		return runOperator(ctx, f, rest, environ, o)
	}
	return runAPI(ctx, f, rest, environ, o)
}

// dispatchBatch runs `blobcopy batch SUBCOMMAND`, a command of the HTTP API.
func dispatchBatch(ctx context.Context, args []string, environ []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{"batch needs a subcommand: start, status, watch, abort or list"}
	}
	define, ok := batchCommands[args[0]]
	if !ok {
		return usageError{fmt.Sprintf("unknown batch subcommand %q (start, status, watch, abort, list)", args[0])}
	}
	f := newFlags("batch " + args[0])
	f.fs.BoolVar(&f.json, "json", false, "print JSON for scripts")
	define(f)
	return runAPI(ctx, f, args[1:], environ, &output{stdout: stdout, stderr: stderr})
}

// runAPI runs a command of the HTTP API.
func runAPI(ctx context.Context, f *flags, args, environ []string, o *output) error {
	base := getenv(environ, "BLOBCOPY_URL")
	if base == "" {
		base = defaultURL
	}
	f.fs.StringVar(&f.url, "url", base, "the API's base URL")
	if err := f.parse(args); err != nil {
		return err
	}
	o.json = f.json
	c := &client{base: strings.TrimRight(f.url, "/"), key: getenv(environ, "BLOBCOPY_KEY"), http: &http.Client{Timeout: 60 * time.Second}}
	return f.action(ctx, c, o)
}

// runOperator runs an operator command on the app's storage.
func runOperator(ctx context.Context, f *flags, args, environ []string, o *output) error {
	f.fs.StringVar(&f.appDir, "app-dir", ".", "the function app folder whose local.settings.json supplies unset settings")
	if err := f.parse(args); err != nil {
		return err
	}
	o.json = f.json
	op, err := openStorage(f.appDir, environ)
	if err != nil {
		return err
	}
	return f.storage(ctx, op, o)
}
