package api

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/eventgrid"
	"github.com/blobcopy/blobcopy/internal/rules"
)

// handlePost starts a copy from a JSON request (a destination, or a rule in the webhook
// form), or hands an Event Grid / CloudEvents delivery to the event handler.
func (s *Server) handlePost(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r)
	if err != nil {
		s.resp.writeError(w, r, err)
		return
	}
	if eventgrid.IsDelivery(r.Header, body) {
		s.events.serve(w, r, body)
		return
	}
	if err := requireJSON(r); err != nil {
		s.resp.writeError(w, r, err)
		return
	}
	var req CopyRequest
	if err := decodeStrict(body, &req); err != nil {
		s.resp.writeError(w, r, err)
		return
	}
	hash := requestHash(&req) // of the body as sent, before a rule fills it in
	origin := "api"
	if req.Rule != "" {
		origin = "webhook"
		if err := s.applyRule(&req); err != nil {
			s.resp.writeError(w, r, err)
			return
		}
	}
	start, err := buildStart(&s.policy, &req, origin)
	if err != nil {
		s.resp.writeError(w, r, err)
		return
	}
	caller := callerFrom(r.Context())
	if origin == "api" {
		start.Owner = caller.Owner // webhook-form jobs, like Event Grid's, have no owner
	}
	idCaller := Caller{Owner: start.Owner}
	key, err := idempotencyKey(r)
	if err != nil {
		s.resp.writeError(w, r, err)
		return
	}
	if key != "" {
		start.JobID = JobIDFor(idCaller.jobIDKey(key))
	}
	start.RequestHash = hash
	job, created, err := s.copies.Start(r.Context(), start)
	if err != nil {
		s.resp.writeError(w, r, err)
		return
	}
	if !created && job.Owner != start.Owner {
		// Ids are derived per owner, so this takes a hash collision; never replay
		// another caller's job.
		s.resp.writeError(w, r, &copyjob.Error{Code: copyjob.CodeIdempotencyMismatch, Target: "Idempotency-Key",
			Message: "the idempotency key names another request; use a new key"})
		return
	}
	if !created {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	s.resp.writeJobFor(w, caller, job, true)
}

// applyRule fills in the webhook form {"rule","source"}: the source must lie in the
// rule's source area, and the rule supplies the destination and its options.
func (s *Server) applyRule(req *CopyRequest) error {
	if req.Destination != nil {
		return badRequest(string(copyjob.CodeInvalidRequest), "rule", "name either a rule or a destination, not both")
	}
	rule, ok := rules.ByName(s.rules, req.Rule)
	if !ok {
		return badRequest(string(copyjob.CodeInvalidRequest), "rule", fmt.Sprintf("no copy rule named %q", req.Rule))
	}
	if req.Source == "" {
		return badRequest(string(copyjob.CodeInvalidRequest), "source", "source is required: a blob URL in the rule's source area")
	}
	source, blob, err := s.policy.BindWebhookSource(rule, req.Source)
	if err != nil {
		return err
	}
	req.Source = source
	req.Destination = &DestinationInput{Account: rule.Destination.Account, Container: rule.Destination.Container, Blob: rule.DestinationBlob(blob)}
	req.LeaseSource = req.LeaseSource || rule.LeaseSource
	if req.Tier == "" {
		req.Tier = rule.Tier
	}
	if req.CallbackURL == "" {
		req.CallbackURL = rule.CallbackURL
	}
	return nil
}

// buildStart validates a copy request against the naming rules and the policy and turns
// it into the domain's start request.
func buildStart(p *Policy, req *CopyRequest, origin string) (copyjob.StartRequest, error) {
	if req.Source == "" {
		return copyjob.StartRequest{}, badRequest(string(copyjob.CodeInvalidRequest), "source", "source is required: a blob or http(s) URL")
	}
	if req.Destination == nil {
		return copyjob.StartRequest{}, badRequest(string(copyjob.CodeInvalidRequest), "destination", "destination {container, blob} is required")
	}
	if err := ValidateContainerName(req.Destination.Container, "destination.container"); err != nil {
		return copyjob.StartRequest{}, err
	}
	if err := ValidateBlobName(req.Destination.Blob, "destination.blob"); err != nil {
		return copyjob.StartRequest{}, err
	}
	if err := p.CheckSource(req.Source); err != nil {
		return copyjob.StartRequest{}, err
	}
	source := normalizeSource(req.Source)
	if err := p.CheckDestination(*req.Destination); err != nil {
		return copyjob.StartRequest{}, err
	}
	if req.CallbackURL != "" {
		if err := p.CheckCallback(req.CallbackURL); err != nil {
			return copyjob.StartRequest{}, err
		}
	}
	opts, err := req.toOptions()
	if err != nil {
		return copyjob.StartRequest{}, err
	}
	account := req.Destination.Account
	if account == "default" {
		account = ""
	}
	return copyjob.StartRequest{
		Origin:      origin,
		Source:      source,
		Destination: copyjob.BlobRef{Account: account, Container: req.Destination.Container, Blob: req.Destination.Blob},
		Options:     opts,
		CallbackURL: req.CallbackURL,
	}, nil
}

// normalizeSource percent-encodes a source URL's path ("dir/été 1.txt" becomes
// "dir/%C3%A9t%C3%A9%201.txt"): Copy Blob's x-ms-copy-source must be a valid URL, and a
// raw one made storage answer a misleading 403. An encoded path is kept as sent; the
// query (a caller's SAS) is never touched.
func normalizeSource(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw // CheckSource refused it already
	}
	return u.String()
}

func (s *Server) handleGet(w http.ResponseWriter, r *http.Request) {
	id, err := pathJobID(r)
	if err != nil {
		s.resp.writeError(w, r, err)
		return
	}
	caller := callerFrom(r.Context())
	job, err := s.copies.Get(r.Context(), id)
	if err == nil && !caller.canRead(job) {
		err = jobNotFound(id) // another owner's job answers as a missing one
	}
	if err != nil {
		s.resp.writeError(w, r, sameNotFound(id, err))
		return
	}
	s.resp.writeJobFor(w, caller, job, false)
}

func (s *Server) handleList(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	opts := copyjob.ListOptions{Status: copyjob.Status(q.Get("status")), Marker: q.Get("marker"), Origin: q.Get("origin"),
		Batch: q.Get("batch")}
	if opts.Batch != "" && !validJobID(opts.Batch) {
		s.resp.writeError(w, r, badRequest(string(copyjob.CodeInvalidRequest), "batch", "a batch id is 1-64 letters, digits or hyphens"))
		return
	}
	switch opts.Origin {
	case "", "api", "eventgrid", "webhook", "batch":
	default:
		s.resp.writeError(w, r, badRequest(string(copyjob.CodeInvalidRequest), "origin", "origin must be api, eventgrid, webhook or batch"))
		return
	}
	for _, bound := range []struct {
		name string
		to   *time.Time
	}{{"createdAfter", &opts.CreatedAfter}, {"createdBefore", &opts.CreatedBefore}} {
		if v := q.Get(bound.name); v != "" {
			at, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				s.resp.writeError(w, r, badRequest(string(copyjob.CodeInvalidRequest), bound.name, bound.name+" must be an RFC 3339 time such as 2026-11-30T12:00:00Z"))
				return
			}
			*bound.to = at
		}
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			s.resp.writeError(w, r, badRequest(string(copyjob.CodeInvalidRequest), "limit", "limit must be an integer from 1 to 1000"))
			return
		}
		opts.Limit = n
	}
	caller := callerFrom(r.Context())
	caller.listScope(&opts)
	page, err := s.copies.List(r.Context(), opts)
	if err != nil {
		s.resp.writeError(w, r, err)
		return
	}
	out := ListView{Value: make([]JobView, 0, len(page.Jobs))}
	for _, j := range page.Jobs {
		out.Value = append(out.Value, s.resp.viewFor(caller, j))
	}
	if page.NextMarker != "" {
		next := url.Values{"marker": {page.NextMarker}}
		for _, name := range []string{"status", "origin", "createdAfter", "createdBefore", "batch"} {
			if v := q.Get(name); v != "" {
				next.Set(name, v)
			}
		}
		if opts.Limit != 0 {
			next.Set("limit", strconv.Itoa(opts.Limit))
		}
		out.NextLink = s.resp.prefix + "/copies?" + next.Encode()
	}
	writeJSON(w, http.StatusOK, out)
}

// AbortRequest is the optional body of POST /api/copies/{id}/abort.
type AbortRequest struct {
	Restore bool `json:"restore,omitempty"`
}

func (s *Server) handleAbort(w http.ResponseWriter, r *http.Request) {
	id, err := pathJobID(r)
	if err != nil {
		s.resp.writeError(w, r, err)
		return
	}
	body, err := readBody(r)
	if err != nil {
		s.resp.writeError(w, r, err)
		return
	}
	var req AbortRequest
	if len(strings.TrimSpace(string(body))) > 0 {
		if err := decodeStrict(body, &req); err != nil {
			s.resp.writeError(w, r, err)
			return
		}
	}
	if v := r.URL.Query().Get("restore"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			s.resp.writeError(w, r, badRequest(string(copyjob.CodeInvalidRequest), "restore", "restore must be true or false"))
			return
		}
		req.Restore = req.Restore || b
	}
	caller := callerFrom(r.Context())
	job, err := s.copies.Abort(r.Context(), id, copyjob.AbortOptions{Restore: req.Restore, Allow: caller.allowAbort})
	if err != nil {
		s.resp.writeError(w, r, sameNotFound(id, err))
		return
	}
	s.resp.writeJobFor(w, caller, job, false)
}

// sameNotFound makes every JobNotFound answer for id the same, whether the record is
// missing or belongs to someone the caller may not see: the storage cause a missing
// record carries would otherwise tell the two apart.
func sameNotFound(id string, err error) error {
	if copyjob.CodeOf(err) == copyjob.CodeJobNotFound {
		return jobNotFound(id)
	}
	return err
}

// handleRetry starts a new attempt of a failed copy or a refused start (POST
// .../retry), answered like a start: 202 while it runs, 200 when it ended at once.
func (s *Server) handleRetry(w http.ResponseWriter, r *http.Request) {
	id, err := pathJobID(r)
	if err != nil {
		s.resp.writeError(w, r, err)
		return
	}
	if _, err := readBody(r); err != nil {
		s.resp.writeError(w, r, err)
		return
	}
	caller := callerFrom(r.Context())
	job, err := s.copies.Retry(r.Context(), id, copyjob.RetryOptions{Allow: caller.allowAbort})
	if copyjob.CodeOf(err) == copyjob.CodeWaitingForDestination && job != nil {
		// An event's job waits for the copy pending on its destination: accepted, it
		// starts once that copy has ended.
		err = nil
	}
	if err != nil {
		s.resp.writeError(w, r, sameNotFound(id, err))
		return
	}
	s.resp.writeJobFor(w, caller, job, true)
}
