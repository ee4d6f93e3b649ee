package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/blobcopy/blobcopy/internal/azstorage"
	"github.com/blobcopy/blobcopy/internal/config"
	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/funchost"
	"github.com/blobcopy/blobcopy/internal/redact"
)

// The app's defaults (internal/app DefaultQueue, DefaultRecords; a test keeps them equal).
const (
	defaultQueue   = "copyjobs"
	defaultRecords = "copyjobs"
)

// poisonHold is how long list-poison and requeue-poison hide the entries they read
// (azstorage.Queue.HoldPoison says why they dequeue rather than peek). They are given
// back as soon as the command is done; only a command that dies leaves them hidden,
// and then for at most this long.
const poisonHold = 2 * time.Minute

// storageOptions configure the storage clients: none in production (azcore's defaults,
// DefaultAzureCredential or managed identity for identity-based settings); tests point
// them at Azurite's HTTPS and OAuth.
var storageOptions azstorage.Options

// operator is the app's own storage, reached directly as the app reaches it: the
// tracking queue with its poison twin, and the job records.
type operator struct {
	queue     *azstorage.Queue
	records   recordStore
	account   string
	endpoint  string // the queue service, for messages
	queueName string
}

// recordStore is what requeue-poison needs of the job records (azstorage.Records).
type recordStore interface {
	Get(ctx context.Context, id string) (*copyjob.Job, error)
	Update(ctx context.Context, job *copyjob.Job) error
}

// openStorage resolves the app's storage settings the way the handler does: the real
// environment over the Values of <appDir>/local.settings.json (funchost.LoadSettings),
// AzureWebJobsStorage as a connection string or its identity-based __accountName /
// __queueServiceUri / __blobServiceUri (+ __credential, __clientId) form, and
// COPY_QUEUE_NAME / COPY_RECORDS_CONTAINER.
func openStorage(appDir string, environ []string) (*operator, error) {
	settings, err := funchost.LoadSettings(filepath.Join(appDir, "local.settings.json"), environ)
	if err != nil {
		return nil, err
	}
	own, err := config.ResolveStorage(settings, "AzureWebJobsStorage")
	if err != nil {
		return nil, err
	}
	if own.QueueEndpoint == "" {
		return nil, fmt.Errorf("AzureWebJobsStorage: the queue service of account %s cannot be told from the settings; set AzureWebJobsStorage__queueServiceUri", own.Name)
	}
	acct, err := azstorage.NewAccount("", own, storageOptions)
	if err != nil {
		return nil, fmt.Errorf("AzureWebJobsStorage: %w", err)
	}
	queueName := settings.Get("COPY_QUEUE_NAME", defaultQueue)
	mainQ, err := azstorage.NewQueueClient(own, queueName, storageOptions)
	if err != nil {
		return nil, fmt.Errorf("COPY_QUEUE_NAME: %w", err)
	}
	poisonQ, err := azstorage.NewQueueClient(own, queueName+"-poison", storageOptions)
	if err != nil {
		return nil, fmt.Errorf("COPY_QUEUE_NAME: %w", err)
	}
	return &operator{
		queue:     azstorage.NewQueue(mainQ, poisonQ),
		records:   azstorage.NewRecords(acct, settings.Get("COPY_RECORDS_CONTAINER", defaultRecords)),
		account:   own.Name,
		endpoint:  own.QueueEndpoint,
		queueName: queueName,
	}, nil
}

// hold reads every poison entry, oldest first; a missing poison queue is named.
func (op *operator) hold(ctx context.Context) ([]azstorage.PoisonMessage, error) {
	held, err := op.queue.HoldPoison(ctx, poisonHold)
	if errors.Is(err, copyjob.ErrNotFound) {
		return nil, fmt.Errorf("account %s has no queue %s-poison: has the app run with these settings (AzureWebJobsStorage, COPY_QUEUE_NAME)?", op.account, op.queueName)
	}
	if err != nil {
		return nil, fmt.Errorf("%w (the settings name account %s, queue service %s)", err, op.account, op.endpoint)
	}
	sort.SliceStable(held, func(i, j int) bool { return poisonedAt(held[i]).Before(poisonedAt(held[j])) })
	return held, nil
}

// poisonedAt is when the app poisoned the message, or when the entry was queued.
func poisonedAt(m azstorage.PoisonMessage) time.Time {
	if e, err := m.Entry(); err == nil && !e.At.IsZero() {
		return e.At
	}
	return m.InsertedAt
}

// jobIDOf reads the job id from a tracking message's text; "" when it names none.
func jobIDOf(text string) string {
	var t struct {
		JobID string `json:"jobId"`
	}
	if json.Unmarshal([]byte(text), &t) != nil {
		return ""
	}
	return t.JobID
}

func defineListPoison(f *flags) {
	f.nargs, f.argsOf = 0, "no arguments"
	f.storage = func(ctx context.Context, op *operator, o *output) error {
		held, err := op.hold(ctx)
		if err != nil {
			return err
		}
		// Given back before printing: nothing is hidden longer than the read.
		if err := op.queue.ReleaseAllPoison(ctx, held); err != nil {
			fmt.Fprintln(o.stderr, "blobcopy:", redact.Text(err.Error()))
		}
		return o.poisonList(held, op)
	}
}

// poisonView is one entry as list-poison --json prints it: the queue message's id and
// dequeue count, and the stored entry unchanged ({"message","reason","at"}), or its
// text when it is not JSON. Secrets are scrubbed (entries hold none by design).
type poisonView struct {
	MessageID    string          `json:"messageId"`
	DequeueCount int64           `json:"dequeueCount"`
	InsertedAt   time.Time       `json:"insertedAt"`
	Entry        json.RawMessage `json:"entry,omitempty"`
	Text         string          `json:"text,omitempty"`
}

func (o *output) poisonList(held []azstorage.PoisonMessage, op *operator) error {
	if o.json {
		views := make([]poisonView, 0, len(held))
		for _, m := range held {
			v := poisonView{MessageID: m.ID, DequeueCount: m.DequeueCount, InsertedAt: m.InsertedAt}
			if entry, err := redactJSON(m.Text); err == nil {
				v.Entry = entry
			} else {
				v.Text = redact.Text(m.Text)
			}
			views = append(views, v)
		}
		b, err := json.Marshal(views)
		if err != nil {
			return err
		}
		o.raw(b)
		return nil
	}
	w := tabwriter.NewWriter(o.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "MESSAGE ID\tJOB ID\tPOISONED\tDEQUEUES\tREASON")
	for _, m := range held {
		jobID, reason := "-", "(not a poison entry the app wrote)"
		if e, err := m.Entry(); err == nil {
			reason = e.Reason
			if id := jobIDOf(e.Message); id != "" {
				jobID = id
			}
		}
		at := poisonedAt(m)
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\n", m.ID, redact.Text(jobID), stamp(&at), m.DequeueCount, redact.Text(oneLine(reason)))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(o.stdout, "%d entr%s in queue %s-poison of account %s\n", len(held), plural(len(held), "y", "ies"), op.queueName, op.account)
	return nil
}

// redactJSON scrubs every string of a JSON document (the entry's escaped form, such as
// \u0026 for &, would hide a SAS from redact.Text) and encodes it again, numbers kept as
// written and keys in order of name.
func redactJSON(text string) (json.RawMessage, error) {
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("text after the JSON document")
	}
	var scrub func(any) any
	scrub = func(v any) any {
		switch v := v.(type) {
		case string:
			return redact.Text(v)
		case []any:
			for i := range v {
				v[i] = scrub(v[i])
			}
		case map[string]any:
			for k := range v {
				v[k] = scrub(v[k])
			}
		}
		return v
	}
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(scrub(v)); err != nil {
		return nil, err
	}
	return json.RawMessage(strings.TrimSpace(b.String())), nil
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func defineRequeuePoison(f *flags) {
	f.nargs, f.argsOf = -1, "message ids or --all"
	all := f.fs.Bool("all", false, "requeue every poison entry")
	dryRun := f.fs.Bool("dry-run", false, "say what would be requeued; change nothing")
	f.check = func() error {
		switch {
		case *all && len(f.args) > 0:
			return usageError{"requeue-poison takes message ids or --all, not both"}
		case !*all && len(f.args) == 0:
			return usageError{"requeue-poison needs message ids (see blobcopy list-poison) or --all"}
		}
		return nil
	}
	f.storage = func(ctx context.Context, op *operator, o *output) error {
		held, err := op.hold(ctx)
		if err != nil {
			return err
		}
		var chosen, others []azstorage.PoisonMessage
		for _, m := range held {
			if *all || slices.Contains(f.args, m.ID) {
				chosen = append(chosen, m)
			} else {
				others = append(others, m)
			}
		}
		if err := op.queue.ReleaseAllPoison(ctx, others); err != nil {
			fmt.Fprintln(o.stderr, "blobcopy:", redact.Text(err.Error()))
		}
		var results []requeueResult
		for _, id := range f.args {
			if !slices.ContainsFunc(chosen, func(m azstorage.PoisonMessage) bool { return m.ID == id }) {
				results = append(results, requeueResult{MessageID: id, Action: "notFound",
					Error: "no such poison entry (requeued already, or held by another reader for up to " + poisonHold.String() + ")"})
			}
		}
		if p, ok := op.records.(interface{ ProbeIndex(context.Context) error }); ok && !*dryRun && len(chosen) > 0 {
			// Write records the way the app does: with the blob index tag only where the
			// account takes it (an account with a hierarchical namespace refuses it).
			if err := p.ProbeIndex(ctx); err != nil {
				fmt.Fprintln(o.stderr, "blobcopy:", redact.Text(err.Error()))
			}
		}
		for _, m := range chosen {
			results = append(results, op.requeue(ctx, m, *dryRun))
		}
		return o.requeueResults(results, *dryRun)
	}
}

// requeueResult is what happened to one entry (requeue-poison --json prints them).
type requeueResult struct {
	MessageID    string `json:"messageId"`
	JobID        string `json:"jobId,omitempty"`
	Action       string `json:"action"` // requeued, wouldRequeue, skipped, notFound, failed
	NewMessageID string `json:"newMessageId,omitempty"`
	Record       string `json:"record,omitempty"` // what became of the record's poisonReason
	Error        string `json:"error,omitempty"`
}

// requeue puts one held entry's tracking message back on the main queue with its
// failure counters reset, clears the poisonReason it left on the job record, and only
// then deletes the entry. The order keeps the message safe: a crash (or a failure)
// after the enqueue and before the delete leaves the entry in the poison queue and a
// copy of the message on the main queue. Requeued again, that is two tracking messages
// for one job, which the tick tolerates (every record write is a compare-and-swap, and
// the visit of a finished job deletes its message); deleting first would lose the
// message for good if the enqueue then failed. An entry not requeued is given back.
func (op *operator) requeue(ctx context.Context, m azstorage.PoisonMessage, dryRun bool) requeueResult {
	r := requeueResult{MessageID: m.ID}
	giveBack := func() {
		if err := op.queue.ReleaseAllPoison(ctx, []azstorage.PoisonMessage{m}); err != nil && r.Error == "" {
			r.Error = err.Error()
		}
	}
	entry, err := m.Entry()
	if err != nil {
		r.Action, r.Error = "skipped", "not a poison entry the app wrote"
		giveBack()
		return r
	}
	text, err := resetFailureCounters(entry.Message)
	if err != nil {
		r.Action, r.Error = "skipped", err.Error()+"; on the main queue it would only be poisoned again"
		giveBack()
		return r
	}
	r.JobID = jobIDOf(text)
	if dryRun {
		r.Action, r.Record = "wouldRequeue", op.recordWouldBe(ctx, r.JobID, entry.Reason)
		giveBack()
		return r
	}
	msg, err := op.queue.Enqueue(ctx, text, 0)
	if err != nil {
		r.Action, r.Error = "failed", err.Error()
		giveBack()
		return r
	}
	r.NewMessageID = msg.ID
	r.Record, err = clearPoisonReason(ctx, op.records, r.JobID, entry.Reason)
	if err != nil {
		// The message is back on the queue; the entry stays so that the record can be
		// cleared by running the command again (its message then runs twice: tolerated).
		r.Action, r.Error = "failed", "requeued, but the record's poisonReason was not cleared: "+err.Error()
		giveBack()
		return r
	}
	if err := op.queue.DeletePoison(ctx, m); err != nil {
		r.Action, r.Error = "failed", "requeued, but the poison entry was not deleted (another reader holds it?): "+err.Error()
		return r
	}
	r.Action = "requeued"
	return r
}

// recordWouldBe says what a requeue would do to the record, reading only.
func (op *operator) recordWouldBe(ctx context.Context, jobID, reason string) string {
	job, err := op.records.Get(ctx, jobID)
	switch {
	case errors.Is(err, copyjob.ErrNotFound):
		return recordGone
	case err != nil:
		return "unreadable: " + err.Error()
	case job.PoisonReason == "":
		return recordClean
	case job.PoisonReason != reason:
		return recordLaterReason
	case job.Status == copyjob.StatusStarting && job.StartFailures > 0:
		return "poisonReason would be cleared, transient start failures reset"
	}
	return "poisonReason would be cleared"
}

// What clearPoisonReason did to the job record.
const (
	recordCleared      = "poisonReason cleared"
	recordClearedStart = "poisonReason cleared, transient start failures reset"
	recordGone         = "no job record"
	recordClean        = "no poisonReason"
	recordLaterReason  = "poisonReason kept: a later poisoning wrote it"
)

// clearPoisonReason removes the poisonReason this entry left on the job record, with a
// compare-and-swap write (a concurrent writer makes it read again and decide again). A
// record that is gone is fine: the tick handles a message without a record. A record
// whose poisonReason differs was poisoned again since (a second tracking message of
// the same job, whose entry is still in the poison queue): its reason is kept.
// The record is decoded and written back as this build's copyjob.Job: a CLI older than
// the deployed app would drop the fields it does not know, hence docs/operations.md asks
// for the CLI of the deployed commit.
func clearPoisonReason(ctx context.Context, records recordStore, jobID, reason string) (string, error) {
	for range 10 {
		job, err := records.Get(ctx, jobID)
		switch {
		case errors.Is(err, copyjob.ErrNotFound):
			return recordGone, nil
		case err != nil:
			return "", err
		case job.PoisonReason == "":
			return recordClean, nil
		case job.PoisonReason != reason:
			return recordLaterReason, nil
		}
		job.PoisonReason = ""
		done := recordCleared
		if job.Status == copyjob.StatusStarting && job.StartFailures > 0 {
			// A start poisoned after 3 x COPY_MAX_FAILURES transient failures would be
			// poisoned again at its first visit: its count in the record is reset like the
			// ticket's, so that the tick attempts the start again.
			job.StartFailures = 0
			done = recordClearedStart
		}
		err = records.Update(ctx, job)
		switch {
		case err == nil:
			return done, nil
		case errors.Is(err, copyjob.ErrConflict), errors.Is(err, copyjob.ErrNotFound):
			continue // written or deleted since the read: read again
		default:
			return "", err
		}
	}
	return "", fmt.Errorf("job %s: the record kept changing under 10 compare-and-swap writes", jobID)
}

func (o *output) requeueResults(results []requeueResult, dryRun bool) error {
	failed := 0
	for i := range results {
		results[i].Error, results[i].Record = redact.Text(results[i].Error), redact.Text(results[i].Record)
		if results[i].Action != "requeued" && results[i].Action != "wouldRequeue" {
			failed++
		}
	}
	if o.json {
		b, err := json.Marshal(results)
		if err != nil {
			return err
		}
		o.raw(b)
	} else {
		for _, r := range results {
			job := ""
			if r.JobID != "" {
				job = " (job " + r.JobID + ")"
			}
			switch r.Action {
			case "requeued":
				fmt.Fprintf(o.stdout, "requeued %s%s as message %s; record: %s\n", r.MessageID, job, r.NewMessageID, r.Record)
			case "wouldRequeue":
				fmt.Fprintf(o.stdout, "would requeue %s%s with its failure counters reset; record: %s\n", r.MessageID, job, r.Record)
			default:
				fmt.Fprintf(o.stdout, "%s %s%s: %s\n", r.Action, r.MessageID, job, r.Error)
			}
		}
		if len(results) == 0 {
			fmt.Fprintln(o.stdout, "(no poison entries)")
		}
		if dryRun {
			fmt.Fprintln(o.stdout, "dry run: no message enqueued, no record written, no entry deleted")
		}
	}
	if failed > 0 {
		return exitError{1, fmt.Sprintf("%d of %d entries not requeued", failed, len(results))}
	}
	return nil
}

// resetFailureCounters returns a tracking message's text with its top-level "failures"
// and "outages" counts (copyjob's ticket: failed visits in a row, which poison the
// message at COPY_MAX_FAILURES, and storage outages in a row, which drive the backoff)
// set to 0, and every other byte as it was: the rest of the ticket (destination, copy
// id, lease, polls) is what lets the tick pick the job up where it stands. Counts
// already 0 or absent are left as they are. Text that is not a JSON object naming a
// jobId is refused: the tick would only poison it again.
func resetFailureCounters(text string) (string, error) {
	dec := json.NewDecoder(strings.NewReader(text))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return "", errors.New("not a tracking message (not a JSON object)")
	}
	type span struct{ start, end int }
	var spans []span
	jobID := ""
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return "", fmt.Errorf("not a tracking message: %w", err)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return "", fmt.Errorf("not a tracking message: %w", err)
		}
		end := int(dec.InputOffset())
		switch key {
		case "failures", "outages", "seen", "stalls": // "seen": the dequeue count starts again
			var n float64
			if err := json.Unmarshal(raw, &n); err != nil {
				return "", fmt.Errorf("not a tracking message: %s is %s, not a number", key, raw)
			}
			if string(raw) != "0" {
				spans = append(spans, span{end - len(raw), end})
			}
		case "jobId":
			_ = json.Unmarshal(raw, &jobID)
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return "", fmt.Errorf("not a tracking message: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return "", errors.New("not a tracking message (text after the JSON object)")
	}
	if jobID == "" {
		return "", errors.New("not a tracking message (jobId missing)")
	}
	out := text
	for i := len(spans) - 1; i >= 0; i-- {
		out = out[:spans[i].start] + "0" + out[spans[i].end:]
	}
	return out, nil
}
