package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
)

// output writes what a command shows: the API's JSON with --json, a readable summary
// otherwise. Progress goes to stderr, so stdout stays parseable.
type output struct {
	stdout, stderr io.Writer
	json           bool
}

// failure prints an API refusal (its JSON body with --json) and returns exit status 1.
func (o *output) failure(err error) error {
	if ae, ok := err.(*apiError); ok && o.json && len(ae.Body) > 0 {
		o.raw(ae.Body)
		return exitError{1, ae.Error()}
	}
	return err
}

// raw prints an answer as the API sent it (compact JSON), one document per line.
func (o *output) raw(b []byte) {
	_, _ = o.stdout.Write(append(bytes.TrimSpace(b), '\n'))
}

// started shows a start's answer: 202 (pending, poll it) or 200 (finished at once);
// brief shows only the headline and the id (a watch follows).
func (o *output) started(a answer, j *job, brief bool) {
	if o.json {
		o.raw(a.body)
		return
	}
	switch {
	case a.header.Get("Idempotent-Replayed") == "true":
		fmt.Fprintf(o.stdout, "%d %s: the job an earlier request with this idempotency key started\n", a.status, http.StatusText(a.status))
	case a.status == http.StatusAccepted:
		fmt.Fprintf(o.stdout, "202 Accepted: copy running, Location %s, Retry-After %ss\n", a.header.Get("Location"), a.header.Get("Retry-After"))
	default:
		fmt.Fprintf(o.stdout, "%d %s: the copy finished at once\n", a.status, http.StatusText(a.status))
	}
	if brief {
		fmt.Fprintf(o.stdout, "id  %s\n", j.ID)
		return
	}
	o.summary(j)
	if !j.terminal() {
		fmt.Fprintf(o.stdout, "watch it: blobcopy watch %s\n", j.ID)
	}
}

// showJob shows the job an answer carries (status, abort), or the request's failure.
func (o *output) showJob(a answer, err error) error {
	if err != nil {
		return o.failure(err)
	}
	j, err := a.job()
	if err != nil {
		return err
	}
	o.jobAnswer(a, j)
	return nil
}

// jobAnswer shows a job (status, abort, the end of a watch).
func (o *output) jobAnswer(a answer, j *job) {
	if o.json {
		o.raw(a.body)
		return
	}
	o.summary(j)
}

func (o *output) summary(j *job) {
	w := tabwriter.NewWriter(o.stdout, 0, 4, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(w, "%s\t%s\n", k, v)
		}
	}
	row("id", j.ID)
	row("status", j.Status)
	row("progress", progressText(j))
	row("description", j.StatusDescription)
	row("source", j.Source.URL)
	row("destination", j.Destination.URL)
	row("copy id", j.CopyID)
	row("snapshot", j.DestinationSnapshot)
	row("created", stamp(&j.CreatedAt))
	row("completed", stamp(j.CompletedAt))
	_ = w.Flush()
}

func progressText(j *job) string {
	p := j.Progress
	if p.BytesTotal == 0 && p.BytesCopied == 0 {
		return ""
	}
	return fmt.Sprintf("%s of %s (%.1f%%)", bytesText(p.BytesCopied), bytesText(p.BytesTotal), j.Percent)
}

func stamp(t *time.Time) string {
	if t == nil || t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func bytesText(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// list prints jobs as a table (or a JSON array with --json).
func (o *output) list(jobs []json.RawMessage) error {
	if o.json {
		b, err := json.Marshal(jobs)
		if err != nil {
			return err
		}
		o.raw(b)
		return nil
	}
	w := tabwriter.NewWriter(o.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tSTATUS\tPROGRESS\tDESTINATION\tCREATED")
	for _, raw := range jobs {
		var j job
		if err := json.Unmarshal(raw, &j); err != nil {
			return fmt.Errorf("a listed job is not a job: %w", err)
		}
		pct := ""
		if j.Progress.BytesTotal > 0 || j.Status == "success" {
			pct = fmt.Sprintf("%.0f%%", j.Percent)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", j.ID, j.Status, pct, j.Destination.URL, stamp(&j.CreatedAt))
	}
	if len(jobs) == 0 {
		fmt.Fprintln(w, "(no copies)")
	}
	return w.Flush()
}

// bar is the live progress of a watched copy: bytes, percent, rate and ETA, drawn by
// schollz/progressbar on stderr. With --json nothing is drawn.
type bar struct {
	pb    *progressbar.ProgressBar
	w     io.Writer
	max   int64
	shown bool
}

func (o *output) newBar() *bar {
	if o.json {
		return &bar{}
	}
	return &bar{w: o.stderr}
}

func (b *bar) update(j *job) {
	if b.w == nil {
		return
	}
	total, copied := j.Progress.BytesTotal, j.Progress.BytesCopied
	if b.pb == nil {
		b.max = total
		if total <= 0 {
			b.max = -1 // size not known yet: a spinner
		}
		b.pb = progressbar.NewOptions64(b.max,
			progressbar.OptionSetWriter(b.w),
			progressbar.OptionSetDescription(describe(j)),
			progressbar.OptionShowBytes(true),
			progressbar.OptionUseIECUnits(true),
			progressbar.OptionShowTotalBytes(true),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetElapsedTime(true),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionSpinnerType(14),
			progressbar.OptionSetRenderBlankState(true),
		)
		b.shown = true
	}
	if total > 0 && total != b.max {
		b.max = total
		b.pb.ChangeMax64(total)
	}
	_ = b.pb.Set64(copied)
}

func (b *bar) finish(j *job) {
	if b.pb == nil {
		return
	}
	if j.Status == "success" && b.max > 0 {
		_ = b.pb.Set64(b.max)
	}
	b.pb.Describe(describe(j))
	_ = b.pb.Exit()
}

func (b *bar) close() {
	if b.shown {
		fmt.Fprintln(b.w)
		b.shown = false
	}
}

func describe(j *job) string {
	d := j.Destination
	name := d.Container + "/" + d.Blob
	if d.Account != "" {
		name = d.Account + ":" + name
	}
	if j.Status == "" {
		return name
	}
	return strings.ToUpper(j.Status[:1]) + j.Status[1:] + " " + name
}
