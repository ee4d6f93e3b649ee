package api

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/blobcopy/blobcopy/internal/batch"
	"github.com/blobcopy/blobcopy/internal/config"
	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/redact"
)

// BatchRequest is the body of POST /api/batches: every blob under a container URL (and
// an optional prefix path) copied under the destination prefix with its relative name.
type BatchRequest struct {
	Source          string                 `json:"source"`
	Destination     *BatchDestinationInput `json:"destination,omitempty"`
	Filter          *BatchFilterInput      `json:"filter,omitempty"`
	Metadata        map[string]string      `json:"metadata,omitempty"`
	Tags            map[string]string      `json:"tags,omitempty"`
	Tier            string                 `json:"tier,omitempty"`
	Overwrite       *bool                  `json:"overwrite,omitempty"`
	LeaseSource     bool                   `json:"leaseSource,omitempty"`
	SASLifetime     string                 `json:"sasLifetime,omitempty"`
	CallbackURL     string                 `json:"callbackUrl,omitempty"`
	CreateContainer *bool                  `json:"createContainer,omitempty"`
	// ChildCallbackURL is each child's own completion callback, beside the batch's one.
	ChildCallbackURL string `json:"childCallbackUrl,omitempty"`
}

// BatchDestinationInput names the destination container and prefix.
type BatchDestinationInput struct {
	Account   string `json:"account,omitempty"`
	Container string `json:"container"`
	Prefix    string `json:"prefix,omitempty"`
}

// BatchFilterInput selects source blobs.
type BatchFilterInput struct {
	Suffix        string     `json:"suffix,omitempty"`
	ModifiedSince *time.Time `json:"modifiedSince,omitempty"`
}

// BatchView is a batch as the API shows it.
type BatchView struct {
	ID             string                 `json:"id"`
	Source         string                 `json:"source"`
	Destination    BatchDestinationInput  `json:"destination"`
	Filter         *BatchFilterInput      `json:"filter,omitempty"`
	Options        OptionsView            `json:"options"`
	Status         batch.Status           `json:"status"`
	Phase          batch.Phase            `json:"phase"`
	Matched        int                    `json:"matched"`
	Started        int                    `json:"started"`
	Refused        int                    `json:"refused,omitempty"`
	Counts         map[copyjob.Status]int `json:"counts"`
	Progress       ProgressView           `json:"progress"`
	Percent        float64                `json:"percent"`
	Failures       []BatchFailureView     `json:"failures,omitempty"`
	AbortRequested bool                   `json:"abortRequested,omitempty"`
	Error          *ErrorDetail           `json:"error,omitempty"`
	Callback       *CallbackView          `json:"callback,omitempty"`
	// ChildCallbackURL with every query value redacted.
	ChildCallbackURL string     `json:"childCallbackUrl,omitempty"`
	CreatedAt        time.Time  `json:"createdAt"`
	UpdatedAt        time.Time  `json:"updatedAt"`
	CompletedAt      *time.Time `json:"completedAt,omitempty"`
	// Links: the batch itself, its abort, its children (GET /api/copies?batch=<id>).
	StatusQueryGetURI string `json:"statusQueryGetUri"`
	AbortPostURI      string `json:"abortPostUri,omitempty"`
	ChildrenGetURI    string `json:"childrenGetUri"`
	Owner             string `json:"owner,omitempty"`
}

// BatchFailureView is one child that did not copy.
type BatchFailureView struct {
	Blob              string         `json:"blob"`
	JobID             string         `json:"jobId"`
	Status            copyjob.Status `json:"status"`
	StatusDescription string         `json:"statusDescription,omitempty"`
}

// BatchListView is a page of batches.
type BatchListView struct {
	Value    []BatchView `json:"value"`
	NextLink string      `json:"nextLink,omitempty"`
}

func (s responder) batchView(c Caller, b *batch.Batch) BatchView {
	// As a copy's source (views.go newJobView): a record written before user info was
	// refused may hold a password.
	v := BatchView{ID: b.ID, Source: redact.URL(b.SourceURL), Options: optionsView(b.Options), Status: b.Status, Phase: b.Phase,
		Destination: BatchDestinationInput{Account: b.Destination.Account, Container: b.Destination.Container, Prefix: b.Destination.Prefix},
		Matched:     b.Matched, Started: b.Started, Refused: b.Refused, Counts: map[copyjob.Status]int{},
		Progress: ProgressView{BytesCopied: b.BytesCopied, BytesTotal: b.BytesTotal}, AbortRequested: b.AbortRequested,
		CreatedAt: b.CreatedAt, UpdatedAt: b.UpdatedAt, CompletedAt: b.CompletedAt,
		StatusQueryGetURI: s.prefix + "/batches/" + b.ID, ChildrenGetURI: s.prefix + "/copies?batch=" + b.ID}
	for k, n := range b.Counts {
		v.Counts[k] = n
	}
	if b.BytesTotal > 0 {
		v.Percent = float64(b.BytesCopied) * 100 / float64(b.BytesTotal)
	}
	if b.Filter.Suffix != "" || b.Filter.ModifiedSince != nil {
		v.Filter = &BatchFilterInput{Suffix: b.Filter.Suffix, ModifiedSince: b.Filter.ModifiedSince}
	}
	for _, f := range b.Failures {
		v.Failures = append(v.Failures, BatchFailureView{Blob: f.Blob, JobID: f.JobID, Status: f.Status, StatusDescription: redact.Text(f.Description)})
	}
	if b.Refusal != nil {
		v.Error = &ErrorDetail{Code: string(b.Refusal.Code), Message: b.Refusal.Message}
	}
	if cb := b.Callback; cb != nil {
		v.Callback = &CallbackView{URL: redactCallback(cb.URL), DeliveryID: cb.DeliveryID, Attempts: cb.Attempts,
			DeliveredAt: cb.DeliveredAt, LastError: redact.Text(cb.LastError), GaveUp: cb.GaveUp}
	}
	if b.ChildCallbackURL != "" {
		v.ChildCallbackURL = redactCallback(b.ChildCallbackURL)
	}
	if !b.Status.Terminal() {
		v.AbortPostURI = s.prefix + "/batches/" + b.ID + "/abort"
	}
	if c.Admin {
		v.Owner = b.Owner
	}
	return v
}

func (s *Server) handleBatchPost(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r)
	if err != nil {
		s.resp.writeError(w, r, err)
		return
	}
	if err := requireJSON(r); err != nil {
		s.resp.writeError(w, r, err)
		return
	}
	var req BatchRequest
	if err := decodeStrict(body, &req); err != nil {
		s.resp.writeError(w, r, err)
		return
	}
	submit, err := s.buildSubmit(&req)
	if err != nil {
		s.resp.writeError(w, r, err)
		return
	}
	caller := callerFrom(r.Context())
	submit.Owner = caller.Owner
	key, err := idempotencyKey(r)
	if err != nil {
		s.resp.writeError(w, r, err)
		return
	}
	if key != "" {
		kind, value := Caller{Owner: submit.Owner}.jobIDKey(key)
		submit.ID = JobIDFor("batch-"+kind, value)
	}
	b, created, err := s.batches.Submit(r.Context(), submit)
	if err == nil && !created && b.Owner != submit.Owner {
		err = &copyjob.Error{Code: copyjob.CodeIdempotencyMismatch, Target: "Idempotency-Key", Message: "the idempotency key names another request; use a new key"}
	}
	if err != nil {
		s.resp.writeError(w, r, err)
		return
	}
	if !created {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	s.writeBatch(w, caller, b, true)
}

func (s *Server) writeBatch(w http.ResponseWriter, c Caller, b *batch.Batch, isStart bool) {
	w.Header().Set("Location", s.resp.prefix+"/batches/"+b.ID)
	status := http.StatusOK
	if isStart && !b.Status.Terminal() {
		status = http.StatusAccepted
	}
	if !b.Status.Terminal() {
		w.Header().Set("Retry-After", strconv.Itoa(int(max(s.resp.retryAfter, time.Second)/time.Second)))
	}
	writeJSON(w, status, s.resp.batchView(c, b))
}

// buildSubmit validates a batch request against the naming rules and the policy.
func (s *Server) buildSubmit(req *BatchRequest) (batch.SubmitRequest, error) {
	bad := func(target, msg string) error { return badRequest(string(copyjob.CodeInvalidRequest), target, msg) }
	if req.Source == "" {
		return batch.SubmitRequest{}, bad("source", "source is required: a container URL, optionally with a prefix path")
	}
	if req.Destination == nil {
		return batch.SubmitRequest{}, bad("destination", "destination {container, prefix} is required")
	}
	d := req.Destination
	if err := ValidateContainerName(d.Container, "destination.container"); err != nil {
		return batch.SubmitRequest{}, err
	}
	if d.Prefix != "" {
		// A prefix may end with "/" (a folder); the names it begins must be valid.
		if err := ValidateBlobName(d.Prefix+"x", "destination.prefix"); err != nil {
			return batch.SubmitRequest{}, err
		}
		// A child's name is the prefix and its source's name past the source prefix,
		// which may begin with "/": "x/.." then begins "x/../".
		if config.HasDotSegment(d.Prefix) {
			return batch.SubmitRequest{}, badRequest(CodeInvalidBlobName, "destination.prefix", `the prefix must not have a "." or ".." segment`)
		}
	}
	if err := s.policy.CheckSource(req.Source); err != nil {
		return batch.SubmitRequest{}, err
	}
	if u, err := url.Parse(req.Source); err == nil && u.User != nil {
		return batch.SubmitRequest{}, bad("source", batch.UserInfoRefused)
	}
	if err := s.policy.CheckDestination(DestinationInput{Account: d.Account, Container: d.Container}); err != nil {
		return batch.SubmitRequest{}, err
	}
	for _, cb := range []struct{ url, target string }{{req.CallbackURL, "callbackUrl"}, {req.ChildCallbackURL, "childCallbackUrl"}} {
		if cb.url == "" {
			continue
		}
		if err := s.policy.CheckCallback(cb.url); err != nil {
			var re *requestError
			if errors.As(err, &re) {
				re.detail.Target = cb.target
			}
			return batch.SubmitRequest{}, err
		}
	}
	cr := CopyRequest{Metadata: req.Metadata, Tags: req.Tags, Tier: req.Tier, Overwrite: req.Overwrite, LeaseSource: req.LeaseSource,
		SASLifetime: req.SASLifetime, CreateContainer: req.CreateContainer}
	opts, err := cr.toOptions()
	if err != nil {
		return batch.SubmitRequest{}, err
	}
	account := d.Account
	if account == "default" {
		account = ""
	}
	out := batch.SubmitRequest{RequestHash: batchRequestHash(req), Source: normalizeSource(req.Source),
		Destination: batch.Location{Account: account, Container: d.Container, Prefix: d.Prefix}, Options: opts, CallbackURL: req.CallbackURL,
		ChildCallbackURL: req.ChildCallbackURL}
	if req.Filter != nil {
		out.Filter = batch.Filter{Suffix: req.Filter.Suffix, ModifiedSince: req.Filter.ModifiedSince}
	}
	return out, nil
}

// batchRequestHash identifies a batch request body, so the same idempotency key with
// another body is refused.
func batchRequestHash(req *BatchRequest) string {
	b, _ := json.Marshal(req) // canonical: struct order, sorted map keys
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

func (s *Server) pathBatch(w http.ResponseWriter, r *http.Request) (string, Caller, bool) {
	id, err := pathJobID(r)
	if err != nil {
		s.resp.writeError(w, r, err)
		return "", Caller{}, false
	}
	return id, callerFrom(r.Context()), true
}

func batchNotFound(id string) error {
	return &copyjob.Error{Code: batch.CodeBatchNotFound, Target: "id", Message: "no batch with id " + id}
}

func (s *Server) handleBatchGet(w http.ResponseWriter, r *http.Request) {
	id, caller, ok := s.pathBatch(w, r)
	if !ok {
		return
	}
	b, err := s.batches.Get(r.Context(), id)
	if err == nil && !caller.ReadAll && b.Owner != caller.Owner {
		err = batchNotFound(id)
	}
	if copyjob.CodeOf(err) == batch.CodeBatchNotFound {
		err = batchNotFound(id)
	}
	if err != nil {
		s.resp.writeError(w, r, err)
		return
	}
	s.writeBatch(w, caller, b, false)
}

func (s *Server) handleBatchList(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	opts := batch.ListOptions{Marker: q.Get("marker")}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			s.resp.writeError(w, r, badRequest(string(copyjob.CodeInvalidRequest), "limit", "limit must be an integer from 1 to 1000"))
			return
		}
		opts.Limit = n
	}
	caller := callerFrom(r.Context())
	if !caller.ReadAll {
		opts.ByOwner, opts.Owner = true, caller.Owner
	}
	page, err := s.batches.List(r.Context(), opts)
	if err != nil {
		s.resp.writeError(w, r, err)
		return
	}
	out := BatchListView{Value: make([]BatchView, 0, len(page.Batches))}
	for _, b := range page.Batches {
		out.Value = append(out.Value, s.resp.batchView(caller, b))
	}
	if page.NextMarker != "" {
		next := url.Values{"marker": {page.NextMarker}}
		if opts.Limit != 0 {
			next.Set("limit", strconv.Itoa(opts.Limit))
		}
		out.NextLink = s.resp.prefix + "/batches?" + next.Encode()
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleBatchAbort(w http.ResponseWriter, r *http.Request) {
	id, caller, ok := s.pathBatch(w, r)
	if !ok {
		return
	}
	if _, err := readBody(r); err != nil {
		s.resp.writeError(w, r, err)
		return
	}
	b, err := s.batches.Abort(r.Context(), id, func(b *batch.Batch) error {
		if caller.Admin || b.Owner == caller.Owner {
			return nil
		}
		if caller.ReadAll {
			return &requestError{status: http.StatusForbidden, detail: ErrorDetail{Code: string(copyjob.CodeForbidden), Target: "id",
				Message: "the " + RoleReadAll + " role reads every batch but aborts only the caller's own; aborting another's needs " + RoleAdmin}}
		}
		return batchNotFound(id)
	})
	if copyjob.CodeOf(err) == batch.CodeBatchNotFound {
		err = batchNotFound(id)
	}
	if err != nil {
		s.resp.writeError(w, r, err)
		return
	}
	s.writeBatch(w, caller, b, true)
}

// withBatches answers 503 when the server has no batch service (it is wired by the app;
// tests of the copy routes alone leave it out).
func (s *Server) withBatches(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.batches == nil {
			s.resp.writeError(w, r, &copyjob.Error{Code: copyjob.CodeStorageUnavailable, Message: "batches are not set up on this server"})
			return
		}
		h(w, r)
	}
}
