package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/eventgrid"
	"github.com/blobcopy/blobcopy/internal/redact"
)

// Rule maps BlobCreated events (or webhook calls naming it) to copies. Rules come from
// the COPY_RULES setting, a JSON array.
type Rule struct {
	Name string `json:"name"`
	// SourceAccount is the storage account name in the event's topic; empty matches any.
	SourceAccount   string `json:"sourceAccount,omitempty"`
	SourceContainer string `json:"sourceContainer"`
	SourcePrefix    string `json:"sourcePrefix,omitempty"`
	Destination     struct {
		Account   string `json:"account,omitempty"`
		Container string `json:"container"`
		Prefix    string `json:"prefix,omitempty"`
	} `json:"destination"`
	LeaseSource bool   `json:"leaseSource,omitempty"`
	Tier        string `json:"tier,omitempty"`
	CallbackURL string `json:"callbackUrl,omitempty"`
	// AcceptCopyEvents lets BlobCreated events raised by Copy Blob (api "CopyBlob")
	// start copies. Off by default: such an event fires when a copy starts, on an empty
	// blob (pitfalls #7), and is how copy loops begin.
	AcceptCopyEvents bool `json:"acceptCopyEvents,omitempty"`
}

// ParseRules parses and checks the COPY_RULES setting.
func ParseRules(raw string) ([]Rule, error) {
	if strings.TrimSpace(raw) == "" {
		return nil, nil
	}
	var rules []Rule
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rules); err != nil {
		return nil, fmt.Errorf("COPY_RULES: %w", err)
	}
	seen := map[string]bool{}
	for i, r := range rules {
		switch {
		case r.Name == "":
			return nil, fmt.Errorf("COPY_RULES[%d]: name is required", i)
		case seen[r.Name]:
			return nil, fmt.Errorf("COPY_RULES[%d]: duplicate name %q", i, r.Name)
		case ValidateContainerName(r.SourceContainer, "") != nil:
			return nil, fmt.Errorf("COPY_RULES[%d] (%s): sourceContainer %q is not a valid container name", i, r.Name, r.SourceContainer)
		case ValidateContainerName(r.Destination.Container, "") != nil:
			return nil, fmt.Errorf("COPY_RULES[%d] (%s): destination.container %q is not a valid container name", i, r.Name, r.Destination.Container)
		case r.Destination.Container == r.SourceContainer && r.Destination.Account == r.SourceAccount &&
			strings.HasPrefix(r.Destination.Prefix, r.SourcePrefix):
			return nil, fmt.Errorf("COPY_RULES[%d] (%s): the destination lies inside the source area: every copy would trigger the rule again", i, r.Name)
		}
		seen[r.Name] = true
	}
	return rules, nil
}

// EventHandler turns Event Grid / CloudEvents deliveries into copies.
type EventHandler struct {
	server          *Server
	rules           []Rule
	callbackAllowed []string
	log             *slog.Logger
}

// NewEventHandler attaches event handling to a server (it reuses its validation).
func NewEventHandler(rules []Rule, callbackAllowedHosts []string, log *slog.Logger) *EventHandler {
	if log == nil {
		log = slog.Default()
	}
	return &EventHandler{rules: rules, callbackAllowed: callbackAllowedHosts, log: log}
}

func (h *EventHandler) attach(s *Server) { h.server = s }

// IsDelivery tells an event delivery from a plain copy request.
func (h *EventHandler) IsDelivery(hdr http.Header, body []byte) bool {
	return eventgrid.IsDelivery(hdr, body)
}

// CallbackAllowed reports whether a callback URL's host is in the allowlist.
func (h *EventHandler) CallbackAllowed(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || len(h.callbackAllowed) == 0 {
		return false
	}
	return hostAllowed(u.Hostname(), h.callbackAllowed)
}

// ServeOptions answers the CloudEvents webhook abuse-protection handshake.
func (h *EventHandler) ServeOptions(w http.ResponseWriter, r *http.Request) {
	origin, ok := eventgrid.AbuseProtectionResponse(r.Header)
	w.Header().Set("Allow", "GET, POST, OPTIONS")
	if ok {
		w.Header().Set(eventgrid.HeaderAllowedOrigin, origin)
		w.Header().Set(eventgrid.HeaderAllowedRate, "*")
	}
	w.WriteHeader(http.StatusOK)
}

// EventResult reports what happened to one event of a delivery.
type EventResult struct {
	ID      string `json:"id"`
	Type    string `json:"type"`
	Outcome string `json:"outcome"` // started, duplicate, ignored, noRule, failed
	Rule    string `json:"rule,omitempty"`
	JobID   string `json:"jobId,omitempty"`
	Reason  string `json:"reason,omitempty"`
}

// DeliveryResult is the body answered to a delivery.
type DeliveryResult struct {
	Results []EventResult `json:"results"`
}

// Serve handles one delivery. Event Grid retries any answer but 200-204 and treats 400
// and 413 as final, so: 200 once every event is started or deliberately ignored, 400
// for a malformed delivery, 503 when storage failed for some event (the retry is safe:
// job ids are derived from the event, so started copies are not started again).
func (h *EventHandler) Serve(w http.ResponseWriter, r *http.Request, body []byte) {
	s := h.server
	d, err := eventgrid.ParseDelivery(r.Header, body)
	if err != nil {
		var de *eventgrid.DeliveryError
		target := ""
		if errors.As(err, &de) {
			target = de.Field
		}
		s.writeError(w, r, badRequest("InvalidEventDelivery", target, err.Error()))
		return
	}
	if d.Validation != nil {
		h.log.Info("Event Grid subscription validated", "schema", d.Schema)
		writeJSON(w, http.StatusOK, eventgrid.ValidationResponse{ValidationResponse: d.Validation.ValidationCode})
		return
	}
	res := DeliveryResult{Results: make([]EventResult, 0, len(d.Events))}
	retry := false
	for _, e := range d.Events {
		out := h.handleEvent(r, e)
		if out.Outcome == "failed" {
			retry = true
		}
		res.Results = append(res.Results, out)
	}
	status := http.StatusOK
	if retry {
		status = http.StatusServiceUnavailable
		w.Header().Set("Retry-After", "10")
	}
	writeJSON(w, status, res)
}

func (h *EventHandler) handleEvent(r *http.Request, e eventgrid.Event) EventResult {
	out := EventResult{ID: e.ID, Type: e.Type}
	log := h.log.With("eventId", e.ID, "eventType", e.Type, "subject", e.Subject)
	if e.Type != eventgrid.TypeBlobCreated {
		out.Outcome, out.Reason = "ignored", "not a BlobCreated event"
		log.Info("event ignored", "reason", out.Reason)
		return out
	}
	bc, err := eventgrid.ParseBlobCreated(e)
	if err != nil {
		// A well-formed delivery with a useless event: acknowledge, never retry forever.
		out.Outcome, out.Reason = "ignored", err.Error()
		log.Warn("event ignored", "reason", out.Reason)
		return out
	}
	rule, ok := h.match(bc)
	if !ok {
		out.Outcome, out.Reason = "noRule", "no copy rule matches "+bc.Account+"/"+bc.Container+"/"+bc.Blob
		log.Info("event matched no rule", "account", bc.Account, "container", bc.Container, "blob", bc.Blob)
		return out
	}
	out.Rule = rule.Name
	if strings.EqualFold(bc.Data.API, "CopyBlob") && !rule.AcceptCopyEvents {
		out.Outcome, out.Reason = "ignored", "raised by Copy Blob (rule does not accept copy events)"
		log.Info("event ignored", "reason", out.Reason, "rule", rule.Name)
		return out
	}
	req := h.ruleRequest(rule, bc.Data.URL, bc.Container, bc.Blob)
	start, err := h.server.startRequest(req, "eventgrid")
	if err != nil {
		out.Outcome, out.Reason = "ignored", err.Error()
		log.Warn("event cannot become a copy", "rule", rule.Name, "err", err)
		return out
	}
	// One copy per source version and destination, however often the event arrives.
	key := bc.Data.ETag
	if key == "" {
		key = "event:" + e.ID
	}
	start.JobID = JobIDFor("blobcreated", key+"\x00"+redact.StripQuery(bc.Data.URL)+"\x00"+start.Destination.Account+"/"+start.Destination.Container+"/"+start.Destination.Blob)
	start.EventID = e.ID
	job, created, err := h.server.copies.Start(r.Context(), start)
	return h.result(out, job, created, err, log)
}

func (h *EventHandler) result(out EventResult, job *copyjob.Job, created bool, err error, log *slog.Logger) EventResult {
	switch {
	case err == nil && created:
		out.Outcome, out.JobID = "started", job.ID
	case err == nil:
		out.Outcome, out.JobID = "duplicate", job.ID
	case statusFor(copyjob.CodeOf(err)) >= 500 || copyjob.CodeOf(err) == "":
		out.Outcome, out.Reason = "failed", redact.Text(err.Error())
	default:
		// The copy was refused for good (exists, source unreadable...): the job
		// records it; retrying the event would not help.
		out.Outcome, out.Reason = "ignored", redact.Text(err.Error())
		var de *copyjob.Error
		if errors.As(err, &de) && de.Job != nil {
			out.JobID = de.Job.ID
		}
	}
	log.Info("event handled", "outcome", out.Outcome, "jobId", out.JobID, "rule", out.Rule, "reason", out.Reason)
	return out
}

func (h *EventHandler) match(bc eventgrid.BlobCreated) (Rule, bool) {
	for _, r := range h.rules {
		if r.SourceAccount != "" && !strings.EqualFold(r.SourceAccount, bc.Account) {
			continue
		}
		if r.SourceContainer != bc.Container || !strings.HasPrefix(bc.Blob, r.SourcePrefix) {
			continue
		}
		// Never copy a blob that lies in the rule's own destination area.
		if r.Destination.Container == bc.Container && strings.HasPrefix(bc.Blob, r.Destination.Prefix) &&
			(r.Destination.Account == "" || strings.EqualFold(r.Destination.Account, bc.Account)) && r.Destination.Prefix != "" {
			continue
		}
		return r, true
	}
	return Rule{}, false
}

// rule finds a rule by name (webhook form).
func (h *EventHandler) rule(name string) (Rule, bool) {
	for _, r := range h.rules {
		if r.Name == name {
			return r, true
		}
	}
	return Rule{}, false
}

// ruleRequest builds the copy request a rule makes for a source blob: the blob keeps
// its name below the source prefix, under the destination prefix.
func (h *EventHandler) ruleRequest(r Rule, sourceURL, container, blobName string) *CopyRequest {
	rel := strings.TrimPrefix(blobName, r.SourcePrefix)
	if container != r.SourceContainer {
		rel = path.Base(blobName)
	}
	ow := true
	return &CopyRequest{
		Source:      sourceURL,
		Destination: &DestinationInput{Account: r.Destination.Account, Container: r.Destination.Container, Blob: r.Destination.Prefix + rel},
		Tier:        r.Tier,
		LeaseSource: r.LeaseSource,
		Overwrite:   &ow,
		CallbackURL: r.CallbackURL,
	}
}
