package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/eventgrid"
	"github.com/blobcopy/blobcopy/internal/redact"
	"github.com/blobcopy/blobcopy/internal/rules"
)

// DefaultEventConcurrency is how many events of one delivery are handled at once when
// EventOptions.Concurrency is zero.
const DefaultEventConcurrency = 16

// DefaultDeliveryBudget is how long a delivery may take to start its events' copies
// when EventOptions.Budget is zero: below Event Grid's 30 s delivery timeout, with room
// for the events already running and the answer.
const DefaultDeliveryBudget = 20 * time.Second

// EventOptions configure the handling of Event Grid deliveries.
type EventOptions struct {
	// Concurrency bounds the events of one delivery handled at once (a 1 MiB delivery
	// holds about a thousand events and must be answered within Event Grid's 30 s).
	Concurrency int
	// CopyStates reads the copy state of a blob in a configured account, so a rule that
	// accepts events raised by Copy Blob starts its copy only once that copy succeeded.
	// Nil refuses such events.
	CopyStates CopyStateReader
	// Budget bounds the time a delivery spends starting events: an event not begun
	// by then is answered failed (503, Event Grid redelivers and the events already
	// started are duplicates), so the answer beats Event Grid's 30 s timeout.
	Budget time.Duration
}

// CopyStateReader reads the state of the last copy into a blob (the storage adapter's
// CopyState).
type CopyStateReader interface {
	CopyState(ctx context.Context, ref copyjob.BlobRef) (copyjob.CopyState, error)
}

// Outcomes of one event of a delivery.
const (
	OutcomeStarted   = "started"   // a copy was started
	OutcomeDuplicate = "duplicate" // the copy for this blob version was started before
	OutcomeIgnored   = "ignored"   // deliberately not a copy (event type, api, mismatched url)
	OutcomeNoRule    = "noRule"    // no rule covers the blob
	OutcomeRefused   = "refused"   // the copy was refused for good; a retry would not help
	OutcomeDeferred  = "deferred"  // not yet: the copy that raised the event is still pending
	OutcomeFailed    = "failed"    // a transient failure: Event Grid should redeliver
	// OutcomeWaiting: the destination has a copy pending (an earlier version's); the
	// event's job starts once it has ended, followed by the status tick (no redelivery
	// needed).
	OutcomeWaiting = "waiting"
)

// EventResult reports what happened to one event of a delivery.
type EventResult struct {
	ID      string `json:"id"`
	Type    string `json:"type"`
	Outcome string `json:"outcome"`
	Rule    string `json:"rule,omitempty"`
	JobID   string `json:"jobId,omitempty"`
	Reason  string `json:"reason,omitempty"`
}

// retry reports whether the event needs a redelivery.
func (r EventResult) retry() bool { return r.Outcome == OutcomeFailed || r.Outcome == OutcomeDeferred }

// DeliveryResult is the body answered to a delivery: one result per event, in the
// delivery's order.
type DeliveryResult struct {
	Results []EventResult `json:"results"`
}

// eventHandler turns Event Grid / CloudEvents deliveries into copies.
type eventHandler struct {
	copies *copyjob.Service
	policy *Policy
	rules  []rules.Rule
	opts   EventOptions
	resp   responder
}

func newEventHandler(copies *copyjob.Service, policy *Policy, rs []rules.Rule, opts EventOptions, resp responder) *eventHandler {
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultEventConcurrency
	}
	if opts.Budget <= 0 {
		opts.Budget = DefaultDeliveryBudget
	}
	return &eventHandler{copies: copies, policy: policy, rules: rs, opts: opts, resp: resp}
}

// serveOptions answers the CloudEvents webhook abuse-protection handshake.
func (h *eventHandler) serveOptions(w http.ResponseWriter, r *http.Request) {
	origin, ok := eventgrid.AbuseProtectionResponse(r.Header)
	w.Header().Set("Allow", "GET, POST, OPTIONS")
	if ok {
		w.Header().Set(eventgrid.HeaderAllowedOrigin, origin)
		w.Header().Set(eventgrid.HeaderAllowedRate, "*")
	}
	w.Header().Set("Content-Length", "0") // said, for answerFirst's flush
	w.WriteHeader(http.StatusOK)
}

// serve handles one delivery. Event Grid retries any answer but 200-204, except 400,
// 401, 403 and 413, which it dead-letters or drops with the whole delivery. So: 400 only
// for a malformed delivery; an event refused for good is acknowledged with its outcome
// in the results (and logged); 503 only when something transient failed, so the retry
// is useful (job ids derive from the events: the retry starts only what was missing).
func (h *eventHandler) serve(w http.ResponseWriter, r *http.Request, body []byte) {
	d, err := eventgrid.ParseDelivery(r.Header, body)
	if err != nil {
		var de *eventgrid.DeliveryError
		target := ""
		if errors.As(err, &de) {
			target = de.Field
		}
		h.resp.writeError(w, r, badRequest("InvalidEventDelivery", target, err.Error()))
		return
	}
	if d.Validation != nil {
		h.resp.log.Info("Event Grid subscription validated", "schema", d.Schema)
		writeJSON(w, http.StatusOK, eventgrid.NewValidationResponse(*d.Validation))
		return
	}
	res := DeliveryResult{Results: h.handleAll(r.Context(), d.Events)}
	status := http.StatusOK
	for _, e := range res.Results {
		if e.retry() {
			status = http.StatusServiceUnavailable
			w.Header().Set("Retry-After", "10")
			break
		}
	}
	writeJSON(w, status, res)
}

// handleAll handles the events with bounded concurrency; results keep the events' order.
// Events not begun within the budget are answered failed, to be redelivered.
func (h *eventHandler) handleAll(ctx context.Context, events []eventgrid.Event) []EventResult {
	results := make([]EventResult, len(events))
	sem := make(chan struct{}, h.opts.Concurrency)
	deadline := time.Now().Add(h.opts.Budget)
	var wg sync.WaitGroup
	for i, e := range events {
		sem <- struct{}{}
		if time.Now().After(deadline) {
			<-sem
			results[i] = EventResult{ID: e.ID, Type: e.Type, Outcome: OutcomeFailed,
				Reason: "not begun within the delivery's time budget; Event Grid redelivers it"}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			results[i] = h.handleSafely(ctx, e)
		}()
	}
	wg.Wait()
	return results
}

// handleSafely turns a panic into a failed (retried) event rather than a dead process.
func (h *eventHandler) handleSafely(ctx context.Context, e eventgrid.Event) (out EventResult) {
	defer func() {
		if p := recover(); p != nil {
			out = EventResult{ID: e.ID, Type: e.Type, Outcome: OutcomeFailed, Reason: "internal error"}
			h.resp.log.Error("event handling panicked", "eventId", e.ID, "panic", fmt.Sprint(p))
		}
	}()
	out = h.handleEvent(ctx, e)
	h.resp.log.Info("event handled", "eventId", e.ID, "eventType", e.Type, "outcome", out.Outcome,
		"rule", out.Rule, "jobId", out.JobID, "reason", out.Reason)
	return out
}

// blobEvent is what a BlobCreated or BlobRenamed event names: the blob (from the topic
// and subject) and the URL the event data gives for it.
type blobEvent struct {
	account, container, blob string // decoded names
	dataURL                  string
	// versionKey tells one version of the blob from another: the ETag, or the
	// sequencer of a rename.
	versionKey string
	commit     eventgrid.Commit
}

func (h *eventHandler) handleEvent(ctx context.Context, e eventgrid.Event) EventResult {
	out := EventResult{ID: e.ID, Type: e.Type}
	be, skip := readBlobEvent(e)
	if skip != "" {
		return ignored(out, skip)
	}
	source, err := h.bindSource(be)
	if err != nil {
		return ignored(out, err.Error())
	}
	rule, ok := rules.Match(h.rules, be.account, be.container, be.blob)
	if !ok {
		out.Outcome, out.Reason = OutcomeNoRule, "no copy rule matches "+be.account+"/"+be.container+"/"+be.blob
		return out
	}
	out.Rule = rule.Name
	if be.commit == eventgrid.CopyStarted {
		if res, proceed := h.copyFinished(ctx, rule, be, out); !proceed {
			return res
		}
	}
	return h.start(ctx, e, rule, be, source, out)
}

// readBlobEvent reads a BlobCreated or BlobRenamed event; skip says why any other event,
// or one announcing no committed content, starts nothing.
func readBlobEvent(e eventgrid.Event) (be blobEvent, skip string) {
	switch e.Type {
	case eventgrid.TypeBlobCreated:
		bc, err := eventgrid.ParseBlobCreated(e)
		if err != nil {
			return be, err.Error()
		}
		be = blobEvent{account: bc.Account, container: bc.Container, blob: subjectBlobName(bc.Container, bc.Blob, bc.Data.URL),
			dataURL: bc.Data.URL, versionKey: "etag:" + bc.Data.ETag, commit: eventgrid.CommitOf(bc.Data.API)}
		if bc.Data.ETag == "" {
			be.versionKey = "event:" + e.ID
		}
		switch be.commit {
		case eventgrid.Opened:
			return be, "api " + bc.Data.API + " announces an empty file; its data follows in a FlushWithClose or SftpCommit event"
		case eventgrid.CommitUnknown:
			return be, "api " + bc.Data.API + " does not say the blob is committed"
		}
		if strings.EqualFold(bc.Data.API, "PutBlob") && (strings.EqualFold(bc.Data.BlobType, "PageBlob") || strings.EqualFold(bc.Data.BlobType, "AppendBlob")) {
			// Put Blob creates a page or append blob empty; its content comes from Put Page
			// or Append Block, which raise no event: a copy now would copy an empty blob.
			return be, "a " + bc.Data.BlobType + " created by PutBlob holds no content yet (Put Page and Append Block, which write it, raise no event)"
		}
		return be, ""
	case eventgrid.TypeBlobRenamed:
		br, err := eventgrid.ParseBlobRenamed(e)
		if err != nil {
			return be, err.Error()
		}
		be = blobEvent{account: br.Account, container: br.Container, blob: subjectBlobName(br.Container, br.Blob, br.Data.DestinationURL),
			dataURL: br.Data.DestinationURL, versionKey: "rename:" + br.Data.Sequencer, commit: eventgrid.Committed}
		if br.Data.Sequencer == "" {
			be.versionKey = "event:" + e.ID
		}
		return be, ""
	}
	return be, "not a BlobCreated or BlobRenamed event"
}

// subjectBlobName reads the blob name of an event's subject. The subject spells the name
// as it is, while data.url percent-encodes it: a blob named "50%25off.txt" has that
// subject and a data.url ending "50%2525off.txt", and decoding the subject again named
// another blob ("50%off.txt"), so the event was ignored and that blob never copied. A
// subject that is itself percent-encoded is still read decoded when data.url does not
// name it as written. Either way bindSource then requires data.url to name the blob.
func subjectBlobName(container, blob, dataURL string) string {
	decoded := eventgrid.DecodedName(blob)
	if decoded == blob {
		return blob
	}
	if u, err := eventgrid.BlobEndpointURL(dataURL); err == nil && strings.HasSuffix(u.Path, "/"+container+"/"+blob) {
		return blob
	}
	return decoded
}

// bindSource derives the source from the topic's account and the subject's container
// and blob, on that account's blob endpoint, and accepts the event only when data.url
// names the same blob (after dfs->blob translation and percent-decoding): the copy
// never reads a URL the event merely claims.
func (h *eventHandler) bindSource(be blobEvent) (*url.URL, error) {
	source, err := h.policy.BlobURL(be.account, be.container, be.blob)
	if err != nil {
		return nil, err
	}
	data, err := eventgrid.BlobEndpointURL(be.dataURL)
	if err != nil {
		return nil, fmt.Errorf("data url is not a blob URL")
	}
	if !sameBlob(source, data) {
		return nil, fmt.Errorf("data url %s does not name the subject's blob %s", redact.StripQuery(data.String()), source)
	}
	return source, nil
}

// copyFinished lets a BlobCreated raised by Copy Blob through only when the rule opts
// in and the copy that raised it (it fires when that copy starts) has succeeded.
func (h *eventHandler) copyFinished(ctx context.Context, rule rules.Rule, be blobEvent, out EventResult) (EventResult, bool) {
	if !rule.AcceptCopyEvents {
		return ignored(out, "raised by Copy Blob (rule does not accept copy events)"), false
	}
	acct, ok := h.policy.account(be.account)
	if !ok || h.opts.CopyStates == nil {
		out.Outcome, out.Reason = OutcomeRefused, "raised by Copy Blob in account "+be.account+", whose copy state the app cannot read (not configured)"
		return out, false
	}
	state, err := h.opts.CopyStates.CopyState(ctx, copyjob.BlobRef{Account: acct.Alias, Container: be.container, Blob: be.blob})
	switch {
	case errors.Is(err, copyjob.ErrNotFound):
		return ignored(out, "the blob raised by Copy Blob no longer exists"), false
	case err != nil && copyjob.Retryable(err):
		out.Outcome, out.Reason = OutcomeFailed, redact.Text(err.Error())
		return out, false
	case err != nil:
		out.Outcome, out.Reason = OutcomeRefused, redact.Text(err.Error())
		return out, false
	case state.Status == copyjob.StatusPending:
		out.Outcome, out.Reason = OutcomeDeferred, "the copy that raised the event is still pending"
		return out, false
	case state.Status != "" && state.Status != copyjob.StatusSuccess:
		return ignored(out, "the copy that raised the event ended "+string(state.Status)), false
	}
	return out, true
}

func (h *eventHandler) start(ctx context.Context, e eventgrid.Event, rule rules.Rule, be blobEvent, source *url.URL, out EventResult) EventResult {
	overwrite := true
	req := &CopyRequest{
		Source:      source.String(),
		Destination: &DestinationInput{Account: rule.Destination.Account, Container: rule.Destination.Container, Blob: rule.DestinationBlob(be.blob)},
		Tier:        rule.Tier,
		LeaseSource: rule.LeaseSource,
		Overwrite:   &overwrite,
		CallbackURL: rule.CallbackURL,
	}
	start, err := buildStart(h.policy, req, "eventgrid")
	if err != nil {
		out.Outcome, out.Reason = OutcomeRefused, redact.Text(err.Error())
		return out
	}
	// One copy per source version and destination, however often the event arrives.
	start.JobID = JobIDFor("blobcreated", be.versionKey+"\x00"+source.String()+"\x00"+
		start.Destination.Account+"/"+start.Destination.Container+"/"+start.Destination.Blob)
	start.EventID = e.ID
	job, created, err := h.copies.Start(ctx, start)
	switch {
	case err == nil && created:
		out.Outcome, out.JobID = OutcomeStarted, job.ID
	case err == nil:
		out.Outcome, out.JobID = OutcomeDuplicate, job.ID
	case copyjob.CodeOf(err) == copyjob.CodeWaitingForDestination:
		out.Outcome, out.Reason = OutcomeWaiting, redact.Text(err.Error())
		if de := (*copyjob.Error)(nil); errors.As(err, &de) && de.Job != nil {
			out.JobID = de.Job.ID // the event's own job (no owner: not hidden)
		}
	case copyjob.Retryable(err):
		out.Outcome, out.Reason = OutcomeFailed, redact.Text(err.Error())
	default:
		// Refused for good (destination exists, source unreadable...): the job records
		// it; a redelivery would not help, and a 4xx would make Event Grid drop the
		// whole delivery.
		out.Outcome, out.Reason = OutcomeRefused, redact.Text(err.Error())
		var de *copyjob.Error
		switch {
		case !errors.As(err, &de) || de.Job == nil:
		case de.Job.ID == start.JobID:
			out.JobID = de.Job.ID // the event's own job, which records the refusal
		default:
			// The error names another job (the owner of the copy pending on the
			// destination): the result names the event's own, which records the
			// refusal. An owned job stays hidden from Event Grid (caller.go).
			out.JobID = start.JobID
			if de.Job.Owner != "" {
				out.Reason = hideJob(ErrorDetail{Message: out.Reason}, de.Job.ID).Message
			}
		}
	}
	return out
}

func ignored(out EventResult, reason string) EventResult {
	out.Outcome, out.Reason = OutcomeIgnored, redact.Text(reason)
	return out
}
