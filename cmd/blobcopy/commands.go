package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"time"
)

func defineStart(f *flags) {
	f.nargs, f.argsOf = 2, "SOURCE and [ACCOUNT:]CONTAINER/BLOB"
	lease := f.fs.Bool("lease-source", false, "hold a lease on the source until the copy ends")
	tier := f.fs.String("tier", "", "access tier of the destination: Hot, Cool, Cold or Archive")
	tags, metadata := pairs{}, pairs{}
	f.fs.Var(tags, "tag", "a tag k=v for the destination (repeatable; Copy Blob does not copy tags)")
	f.fs.Var(metadata, "metadata", "metadata k=v for the destination (repeatable; default: the source's)")
	overwrite := f.fs.Bool("overwrite", true, "--overwrite=false refuses an existing destination (409)")
	snapshot := f.fs.Bool("snapshot-destination", false, "snapshot an existing destination first (abort --restore puts it back)")
	requiresSync := f.fs.Bool("requires-sync", false, "Copy Blob From URL: synchronous, block blobs up to 256 MiB")
	sasLifetime := f.fs.String("sas-lifetime", "", "lifetime of the source SAS the service signs, e.g. 36h")
	callbackURL := f.fs.String("callback-url", "", "URL the service POSTs the outcome to")
	idempotencyKey := f.fs.String("idempotency-key", "", "a retried start with the same key returns the first job")
	wait := f.fs.Bool("wait", false, "then watch the copy with a progress bar until it ends")
	interval := f.fs.Duration("interval", time.Second, "with --wait: time between status reads")
	f.action = func(ctx context.Context, c *client, o *output) error {
		dst, err := destination(f.args[1])
		if err != nil {
			return usageError{err.Error()}
		}
		req := map[string]any{"source": f.args[0], "destination": dst}
		set := map[string]bool{}
		f.fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
		if *lease {
			req["leaseSource"] = true
		}
		if *tier != "" {
			req["tier"] = *tier
		}
		if len(tags) > 0 {
			req["tags"] = map[string]string(tags)
		}
		if len(metadata) > 0 {
			req["metadata"] = map[string]string(metadata)
		}
		if set["overwrite"] {
			req["overwrite"] = *overwrite
		}
		if *snapshot {
			req["snapshotDestination"] = true
		}
		if *requiresSync {
			req["requiresSync"] = true
		}
		if *sasLifetime != "" {
			req["sasLifetime"] = *sasLifetime
		}
		if *callbackURL != "" {
			req["callbackUrl"] = *callbackURL
		}
		a, err := c.start(ctx, req, *idempotencyKey)
		if err != nil {
			return o.failure(err)
		}
		j, err := a.job()
		if err != nil {
			return err
		}
		if !*wait {
			o.started(a, j, false)
			return nil
		}
		if j.terminal() {
			o.jobAnswer(a, j)
			return outcome(j)
		}
		if !o.json {
			o.started(a, j, true)
		}
		return watch(ctx, c, o, j.ID, *interval)
	}
}

func defineStatus(f *flags) {
	f.nargs, f.argsOf = 1, "a job ID"
	f.action = func(ctx context.Context, c *client, o *output) error {
		return o.showJob(c.get(ctx, f.args[0]))
	}
}

func defineWatch(f *flags) {
	f.nargs, f.argsOf = 1, "a job ID"
	interval := f.fs.Duration("interval", time.Second, "time between status reads")
	f.action = func(ctx context.Context, c *client, o *output) error {
		return watch(ctx, c, o, f.args[0], *interval)
	}
}

func defineAbort(f *flags) {
	f.nargs, f.argsOf = 1, "a job ID"
	restore := f.fs.Bool("restore", false, "copy back the destination snapshot taken at start (snapshotDestination)")
	f.action = func(ctx context.Context, c *client, o *output) error {
		return o.showJob(c.abort(ctx, f.args[0], *restore))
	}
}

func defineList(f *flags) {
	f.nargs, f.argsOf = 0, "no arguments"
	status := f.fs.String("status", "", "only jobs in this status (pending, success, failed, aborted, ...)")
	limit := f.fs.Int("limit", 0, "at most this many jobs (0: all)")
	batchID := f.fs.String("batch", "", "only the children of this batch")
	f.action = func(ctx context.Context, c *client, o *output) error {
		if *limit < 0 {
			return usageError{"--limit must not be negative"}
		}
		jobs, err := c.list(ctx, *status, *batchID, *limit)
		if err != nil {
			return o.failure(err)
		}
		return o.list(jobs)
	}
}

// watch polls a job and draws its progress until it ends; only success exits 0.
// Brief outages (a restarting handler, a 503) are waited out.
func watch(ctx context.Context, c *client, o *output, id string, interval time.Duration) error {
	if interval <= 0 {
		interval = time.Second
	}
	bar := o.newBar()
	defer bar.close()
	failures := 0
	for {
		a, err := c.get(ctx, id)
		switch {
		case err == nil:
			failures = 0
			j, err := a.job()
			if err != nil {
				return err
			}
			if !j.terminal() || bar.pb != nil { // no bar for a copy that had already ended
				bar.update(j)
			}
			if j.terminal() {
				bar.finish(j)
				bar.close()
				o.jobAnswer(a, j)
				return outcome(j)
			}
		case transient(err) && failures < 10 && ctx.Err() == nil:
			failures++
		default:
			if ctx.Err() != nil {
				return exitError{130, fmt.Sprintf("stopped watching; the copy goes on (blobcopy status %s)", id)}
			}
			return o.failure(err)
		}
		select {
		case <-ctx.Done():
			return exitError{130, fmt.Sprintf("stopped watching; the copy goes on (blobcopy status %s)", id)}
		case <-time.After(interval):
		}
	}
}

// transient reports whether a later read may succeed: 503 or a network error.
func transient(err error) bool {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.Status == 503
	}
	var ne net.Error
	return errors.As(err, &ne)
}

// outcome is the exit status of a finished copy: 0 only for success.
func outcome(j *job) error {
	if j.Status == "success" {
		return nil
	}
	msg := fmt.Sprintf("copy %s ended %s", j.ID, j.Status)
	if j.StatusDescription != "" {
		msg += ": " + j.StatusDescription
	}
	return exitError{1, msg}
}
