package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
)

// batchCommands are the subcommands of `blobcopy batch`, over /api/batches.
var batchCommands = map[string]func(*flags){
	"start":  defineBatchStart,
	"status": defineBatchStatus,
	"watch":  defineBatchWatch,
	"abort":  defineBatchAbort,
	"list":   defineBatchList,
}

// batchView is the part of a batch answer the CLI shows; --json prints the answer unchanged.
type batchView struct {
	ID          string `json:"id"`
	Source      string `json:"source"`
	Destination struct {
		Account   string `json:"account"`
		Container string `json:"container"`
		Prefix    string `json:"prefix"`
	} `json:"destination"`
	Status   string         `json:"status"`
	Phase    string         `json:"phase"`
	Matched  int            `json:"matched"`
	Started  int            `json:"started"`
	Refused  int            `json:"refused"`
	Counts   map[string]int `json:"counts"`
	Progress struct {
		BytesCopied int64 `json:"bytesCopied"`
		BytesTotal  int64 `json:"bytesTotal"`
	} `json:"progress"`
	Percent  float64 `json:"percent"`
	Failures []struct {
		Blob              string `json:"blob"`
		JobID             string `json:"jobId"`
		Status            string `json:"status"`
		StatusDescription string `json:"statusDescription"`
	} `json:"failures"`
	AbortRequested bool `json:"abortRequested"`
	Error          *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	ChildrenGetURI string     `json:"childrenGetUri"`
	CreatedAt      time.Time  `json:"createdAt"`
	CompletedAt    *time.Time `json:"completedAt"`
}

// terminal mirrors the service: enumerating and running are not final.
func (b *batchView) terminal() bool { return b.Status != "enumerating" && b.Status != "running" }

// finished counts the children whose copy ended, whatever its outcome.
func (b *batchView) finished() int {
	n := 0
	for status, count := range b.Counts {
		if status != "starting" && !strings.HasPrefix(status, "pending") {
			n += count
		}
	}
	return n
}

func (b *batchView) destinationText() string {
	d := b.Destination
	s := d.Container + "/" + d.Prefix
	if d.Account != "" {
		s = d.Account + ":" + s
	}
	return s
}

func (a answer) batch() (*batchView, error) {
	var b batchView
	if err := json.Unmarshal(a.body, &b); err != nil || b.ID == "" {
		return nil, fmt.Errorf("the answer is not a batch (%v): %.200s", err, a.body)
	}
	return &b, nil
}

func defineBatchStart(f *flags) {
	f.nargs, f.argsOf = 2, "SOURCE_CONTAINER_URL[/PREFIX] and [ACCOUNT:]CONTAINER[/PREFIX]"
	account := f.fs.String("account", "", "the destination account's alias (default: the app's account)")
	lease := f.fs.Bool("lease-source", false, "hold a lease on each source blob until its copy ends")
	tier := f.fs.String("tier", "", "access tier of the destinations: Hot, Cool, Cold or Archive")
	tags, metadata := pairs{}, pairs{}
	f.fs.Var(tags, "tag", "a tag k=v for every destination (repeatable)")
	f.fs.Var(metadata, "metadata", "metadata k=v for every destination (repeatable; default: each source's)")
	overwrite := f.fs.Bool("overwrite", true, "--overwrite=false fails the children whose destination exists")
	suffix := f.fs.String("suffix", "", "only blobs whose names end with this")
	modifiedSince := f.fs.String("modified-since", "", "only blobs modified at or after this time (RFC 3339)")
	sasLifetime := f.fs.String("sas-lifetime", "", "lifetime of each source SAS the service signs, e.g. 36h")
	callbackURL := f.fs.String("callback-url", "", "URL the service POSTs the batch's outcome to")
	idempotencyKey := f.fs.String("idempotency-key", "", "a retried start with the same key returns the first batch")
	wait := f.fs.Bool("wait", false, "then watch the batch with a progress bar until it ends")
	interval := f.fs.Duration("interval", time.Second, "with --wait: time between status reads")
	var since time.Time
	f.check = func() error {
		if *modifiedSince != "" {
			t, err := time.Parse(time.RFC3339, *modifiedSince)
			if err != nil {
				return usageError{fmt.Sprintf("--modified-since %q is not an RFC 3339 time such as 2026-11-01T00:00:00Z", *modifiedSince)}
			}
			since = t
		}
		return nil
	}
	f.action = func(ctx context.Context, c *client, o *output) error {
		dst, err := batchDestination(f.args[1], *account)
		if err != nil {
			return usageError{err.Error()}
		}
		req := map[string]any{"source": f.args[0], "destination": dst}
		set := map[string]bool{}
		f.fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
		filter := map[string]any{}
		if *suffix != "" {
			filter["suffix"] = *suffix
		}
		if !since.IsZero() {
			filter["modifiedSince"] = since
		}
		if len(filter) > 0 {
			req["filter"] = filter
		}
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
		if *sasLifetime != "" {
			req["sasLifetime"] = *sasLifetime
		}
		if *callbackURL != "" {
			req["callbackUrl"] = *callbackURL
		}
		var h map[string]string
		if *idempotencyKey != "" {
			h = map[string]string{"Idempotency-Key": *idempotencyKey}
		}
		a, err := c.do(ctx, http.MethodPost, "/api/batches", req, h)
		if err != nil {
			return o.failure(err)
		}
		b, err := a.batch()
		if err != nil {
			return err
		}
		if !*wait || b.terminal() {
			o.batchStarted(a, b, false)
			if *wait {
				return batchOutcome(b)
			}
			return nil
		}
		if !o.json {
			o.batchStarted(a, b, true)
		}
		return watchBatch(ctx, c, o, b.ID, *interval)
	}
}

// batchDestination parses [ACCOUNT:]CONTAINER[/PREFIX]; --account names the account too.
func batchDestination(s, account string) (map[string]string, error) {
	if i := strings.IndexAny(s, ":/"); i >= 0 && s[i] == ':' {
		if account != "" && account != s[:i] {
			return nil, fmt.Errorf("destination %q names account %q, --account %q", s, s[:i], account)
		}
		account, s = s[:i], s[i+1:]
		if account == "" {
			return nil, fmt.Errorf("destination has an empty account before ':'")
		}
	}
	container, prefix, _ := strings.Cut(s, "/")
	if container == "" {
		return nil, fmt.Errorf("destination %q is not [ACCOUNT:]CONTAINER[/PREFIX], e.g. mirror/uploads/ or slowdemo:backup", s)
	}
	d := map[string]string{"container": container}
	if prefix != "" {
		d["prefix"] = prefix
	}
	if account != "" {
		d["account"] = account
	}
	return d, nil
}

func defineBatchStatus(f *flags) {
	f.nargs, f.argsOf = 1, "a batch ID"
	f.action = func(ctx context.Context, c *client, o *output) error {
		return o.showBatch(c.do(ctx, http.MethodGet, "/api/batches/"+url.PathEscape(f.args[0]), nil, nil))
	}
}

func defineBatchWatch(f *flags) {
	f.nargs, f.argsOf = 1, "a batch ID"
	interval := f.fs.Duration("interval", time.Second, "time between status reads")
	f.action = func(ctx context.Context, c *client, o *output) error {
		return watchBatch(ctx, c, o, f.args[0], *interval)
	}
}

func defineBatchAbort(f *flags) {
	f.nargs, f.argsOf = 1, "a batch ID"
	f.action = func(ctx context.Context, c *client, o *output) error {
		return o.showBatch(c.do(ctx, http.MethodPost, "/api/batches/"+url.PathEscape(f.args[0])+"/abort", nil, nil))
	}
}

func defineBatchList(f *flags) {
	f.nargs, f.argsOf = 0, "no arguments"
	status := f.fs.String("status", "", "only batches in this status (enumerating, running, success, failed, aborted)")
	limit := f.fs.Int("limit", 0, "at most this many batches (0: all)")
	f.action = func(ctx context.Context, c *client, o *output) error {
		if *limit < 0 {
			return usageError{"--limit must not be negative"}
		}
		batches, err := c.listBatches(ctx, *status, *limit)
		if err != nil {
			return o.failure(err)
		}
		return o.batchList(batches)
	}
}

// listBatches follows nextLink until every page is read (or limit batches are). The API
// has no status filter for batches, so --status is applied here, page by page.
func (c *client) listBatches(ctx context.Context, status string, limit int) ([]json.RawMessage, error) {
	var keep func(json.RawMessage) bool
	if status != "" {
		keep = func(raw json.RawMessage) bool {
			var b struct{ Status string }
			return json.Unmarshal(raw, &b) == nil && b.Status == status
		}
	}
	return c.collect(ctx, "/api/batches", keep, limit)
}

// watchBatch polls a batch and draws its progress until it ends; only success exits 0.
// Brief outages (a restarting handler, a 503) are waited out.
func watchBatch(ctx context.Context, c *client, o *output, id string, interval time.Duration) error {
	if interval <= 0 {
		interval = time.Second
	}
	bar := &batchBar{}
	if !o.json {
		bar.w = o.stderr
	}
	defer bar.close()
	stopped := exitError{130, fmt.Sprintf("stopped watching; the batch goes on (blobcopy batch status %s)", id)}
	failures := 0
	for {
		a, err := c.do(ctx, http.MethodGet, "/api/batches/"+url.PathEscape(id), nil, nil)
		switch {
		case err == nil:
			failures = 0
			b, err := a.batch()
			if err != nil {
				return err
			}
			if !b.terminal() || bar.pb != nil { // no bar for a batch that had already ended
				bar.update(b)
			}
			if b.terminal() {
				bar.finish(b)
				bar.close()
				o.batchAnswer(a, b)
				return batchOutcome(b)
			}
		case transient(err) && failures < 10 && ctx.Err() == nil:
			failures++
		default:
			if ctx.Err() != nil {
				return stopped
			}
			return o.failure(err)
		}
		select {
		case <-ctx.Done():
			return stopped
		case <-time.After(interval):
		}
	}
}

// batchOutcome is the exit status of a finished batch: 0 only for success.
func batchOutcome(b *batchView) error {
	switch {
	case b.Status == "success":
		return nil
	case b.Error != nil:
		return exitError{1, fmt.Sprintf("batch %s ended %s: %s: %s", b.ID, b.Status, b.Error.Code, b.Error.Message)}
	case b.Status == "failed":
		return exitError{1, fmt.Sprintf("batch %s ended failed: %d of %d children did not copy (blobcopy list --batch %s --status failed)",
			b.ID, b.Matched-b.Counts["success"], b.Matched, b.ID)}
	}
	return exitError{1, fmt.Sprintf("batch %s ended %s", b.ID, b.Status)}
}

// batchStarted shows a batch start's answer; brief shows only the headline and the id.
func (o *output) batchStarted(a answer, b *batchView, brief bool) {
	if o.json {
		o.raw(a.body)
		return
	}
	switch {
	case a.header.Get("Idempotent-Replayed") == "true":
		fmt.Fprintf(o.stdout, "%d %s: the batch an earlier request with this idempotency key started\n", a.status, http.StatusText(a.status))
	case a.status == http.StatusAccepted:
		fmt.Fprintf(o.stdout, "202 Accepted: batch running, Location %s, Retry-After %ss\n", a.header.Get("Location"), a.header.Get("Retry-After"))
	default:
		fmt.Fprintf(o.stdout, "%d %s\n", a.status, http.StatusText(a.status))
	}
	if brief {
		fmt.Fprintf(o.stdout, "id  %s\n", b.ID)
		return
	}
	o.batchSummary(b)
	if !b.terminal() {
		fmt.Fprintf(o.stdout, "watch it: blobcopy batch watch %s\n", b.ID)
	}
}

// showBatch shows the batch an answer carries (status, abort), or the request's failure.
func (o *output) showBatch(a answer, err error) error {
	if err != nil {
		return o.failure(err)
	}
	b, err := a.batch()
	if err != nil {
		return err
	}
	o.batchAnswer(a, b)
	return nil
}

// batchAnswer shows a batch (status, abort, the end of a watch).
func (o *output) batchAnswer(a answer, b *batchView) {
	if o.json {
		o.raw(a.body)
		return
	}
	o.batchSummary(b)
}

func (o *output) batchSummary(b *batchView) {
	w := tabwriter.NewWriter(o.stdout, 0, 4, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(w, "%s\t%s\n", k, v)
		}
	}
	row("id", b.ID)
	status := b.Status
	if b.AbortRequested && !b.terminal() {
		status += " (abort requested)"
	}
	row("status", status)
	row("phase", b.Phase)
	row("source", b.Source)
	row("destination", b.destinationText())
	row("children", fmt.Sprintf("%d matched, %d started, %d finished", b.Matched, b.Started, b.finished()))
	row("counts", countsText(b.Counts))
	if b.Progress.BytesTotal > 0 {
		row("progress", fmt.Sprintf("%s of %s (%.1f%%)", bytesText(b.Progress.BytesCopied), bytesText(b.Progress.BytesTotal), b.Percent))
	}
	if b.Error != nil {
		row("error", b.Error.Code+": "+b.Error.Message)
	}
	for _, f := range b.Failures {
		text := f.Blob + ": " + f.Status
		if f.StatusDescription != "" {
			text += ": " + f.StatusDescription
		}
		row("failure", text)
	}
	row("created", stamp(&b.CreatedAt))
	row("completed", stamp(b.CompletedAt))
	_ = w.Flush()
}

// countsText is "pending 2, success 3", sorted by status.
func countsText(counts map[string]int) string {
	keys := make([]string, 0, len(counts))
	for k, n := range counts {
		if n > 0 {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, counts[k])
	}
	return strings.Join(parts, ", ")
}

// batchList prints batches as a table (or a JSON array with --json).
func (o *output) batchList(batches []json.RawMessage) error {
	if o.json {
		if batches == nil {
			batches = []json.RawMessage{}
		}
		b, err := json.Marshal(batches)
		if err != nil {
			return err
		}
		o.raw(b)
		return nil
	}
	w := tabwriter.NewWriter(o.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tSTATUS\tCHILDREN\tPROGRESS\tSOURCE\tDESTINATION\tCREATED")
	for _, raw := range batches {
		var b batchView
		if err := json.Unmarshal(raw, &b); err != nil {
			return fmt.Errorf("a listed batch is not a batch: %w", err)
		}
		pct := ""
		if b.Progress.BytesTotal > 0 || b.Status == "success" {
			pct = fmt.Sprintf("%.0f%%", b.Percent)
		}
		fmt.Fprintf(w, "%s\t%s\t%d/%d\t%s\t%s\t%s\t%s\n", b.ID, b.Status, b.finished(), b.Matched, pct, b.Source, b.destinationText(), stamp(&b.CreatedAt))
	}
	if len(batches) == 0 {
		fmt.Fprintln(w, "(no batches)")
	}
	return w.Flush()
}

// batchBar is a watched batch's live progress on stderr: bytes once the children's
// sizes are known, children finished out of matched before that (a spinner while the
// source is still counted). With --json nothing is drawn.
type batchBar struct {
	pb    *progressbar.ProgressBar
	w     io.Writer
	bytes bool
	max   int64
	shown bool
}

func (b *batchBar) update(v *batchView) {
	if b.w == nil {
		return
	}
	bytes := v.Progress.BytesTotal > 0
	max, cur := int64(v.Matched), int64(v.finished())
	if bytes {
		max, cur = v.Progress.BytesTotal, v.Progress.BytesCopied
	}
	if max <= 0 {
		max = -1 // nothing counted yet: a spinner
	}
	if b.pb != nil && bytes != b.bytes {
		// From children to bytes: the units change, so the bar starts over.
		_ = b.pb.Exit()
		fmt.Fprintln(b.w)
		b.pb = nil
	}
	if b.pb == nil {
		b.bytes, b.max = bytes, max
		opts := []progressbar.Option{
			progressbar.OptionSetWriter(b.w),
			progressbar.OptionSetDescription(describeBatch(v)),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetElapsedTime(true),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(100 * time.Millisecond),
			progressbar.OptionSpinnerType(14),
			// The spinner turns at each status read: the library's own spinner ticker
			// is not stopped by Exit, and would keep drawing a bar this one replaced.
			progressbar.OptionSetSpinnerChangeInterval(0),
			progressbar.OptionSetRenderBlankState(true),
		}
		if bytes {
			opts = append(opts, progressbar.OptionShowBytes(true), progressbar.OptionUseIECUnits(true), progressbar.OptionShowTotalBytes(true))
		} else {
			opts = append(opts, progressbar.OptionSetItsString("children"))
		}
		b.pb = progressbar.NewOptions64(max, opts...)
		b.shown = true
	}
	if max != b.max {
		b.max = max
		b.pb.ChangeMax64(max)
	}
	b.pb.Describe(describeBatch(v))
	_ = b.pb.Set64(cur)
}

func (b *batchBar) finish(v *batchView) {
	if b.pb == nil {
		return
	}
	if v.Status == "success" && b.max > 0 {
		_ = b.pb.Set64(b.max)
	}
	b.pb.Describe(describeBatch(v))
	_ = b.pb.Exit()
}

func (b *batchBar) close() {
	if b.shown {
		fmt.Fprintln(b.w)
		b.shown = false
	}
}

func describeBatch(v *batchView) string {
	status := v.Status
	if status != "" {
		status = strings.ToUpper(status[:1]) + status[1:] + " "
	}
	return fmt.Sprintf("%sbatch -> %s (%d/%d children)", status, v.destinationText(), v.finished(), v.Matched)
}
