// Package api serves the HTTP functions: copyfn (start copies, read their status,
// Event Grid and webhook deliveries) and abortfn. The same handlers serve requests the
// Functions host forwards and requests in standalone mode.
package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/blobcopy/blobcopy/internal/copyjob"
)

// Policy says which copies the service accepts (see the README's security model).
type Policy struct {
	// AllowedDestinations are "account/container" patterns (path.Match syntax, account
	// is the configured alias, "default" for the app's account); empty allows all.
	AllowedDestinations []string
	// AllowedSourceHosts are host names, "*.suffix" patterns allowed; empty allows all.
	AllowedSourceHosts []string
	// AllowHTTPSources permits plain-http sources on any host (development only);
	// loopback sources are always allowed over http.
	AllowHTTPSources bool
	// InternalContainers are the app's own containers: never a destination.
	InternalContainers []string
}

// Auth is the standalone-mode key check. Under the Functions host the host checks keys
// before forwarding, so Keys is empty and Disabled true.
type Auth struct {
	Keys     []string
	Disabled bool
}

// Server holds the HTTP layer's dependencies.
type Server struct {
	copies *copyjob.Service
	policy Policy
	auth   Auth
	prefix string // "/api"
	log    *slog.Logger
	// retryAfter is suggested to pollers of pending jobs.
	retryAfter time.Duration
	events     *EventHandler
}

// Options configure a Server.
type Options struct {
	RoutePrefix string // "api" by default
	Policy      Policy
	Auth        Auth
	Events      *EventHandler
	Logger      *slog.Logger
}

// NewServer returns the HTTP layer over a copy service.
func NewServer(copies *copyjob.Service, opts Options) *Server {
	prefix := "/" + strings.Trim(opts.RoutePrefix, "/")
	if opts.RoutePrefix == "" {
		prefix = "/api"
	}
	if prefix == "/" {
		prefix = ""
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	s := &Server{
		copies: copies, policy: opts.Policy, auth: opts.Auth, prefix: prefix, log: log,
		retryAfter: copies.Config().FirstPoll, events: opts.Events,
	}
	if s.events != nil {
		s.events.attach(s)
	}
	return s
}

// route is one ServeMux registration: method ("" for every other method) and a path
// below the route prefix.
type route struct {
	method, path string
	handler      http.Handler
}

// routeTable lists every route Routes registers; openapi_test.go checks openapi.json
// against it.
func (s *Server) routeTable() []route {
	return []route{
		{"POST", "/copies", s.guard(s.handlePost)},
		{"OPTIONS", "/copies", http.HandlerFunc(s.handleOptions)}, // CloudEvents handshake: no key
		{"GET", "/copies", s.guard(s.handleList)},
		{"GET", "/copies/{id}", s.guard(s.handleGet)},
		{"POST", "/copies/{id}/abort", s.guard(s.handleAbort)},
		{"GET", "/openapi.json", http.HandlerFunc(s.handleOpenAPI)}, // the API description: no key
		{"", "/copies", s.methodNotAllowed("GET, POST, OPTIONS")},
		{"", "/copies/{id}", s.methodNotAllowed("GET")},
		{"", "/copies/{id}/abort", s.methodNotAllowed("POST")},
		{"", "/openapi.json", s.methodNotAllowed("GET")},
	}
}

// Routes registers the HTTP functions on mux.
func (s *Server) Routes(mux *http.ServeMux) {
	for _, rt := range s.routeTable() {
		pattern := s.prefix + rt.path
		if rt.method != "" {
			pattern = rt.method + " " + pattern
		}
		mux.Handle(pattern, s.logged(rt.handler))
	}
}

// statusRecorder remembers the status a handler answered.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// logged writes one access line per request with its duration. Only the path is
// logged: the query may carry a function key (?code=).
func (s *Server) logged(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(rec, r)
		s.log.LogAttrs(r.Context(), slog.LevelInfo, "request", slog.String("operation", "http"),
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Int("status", rec.status),
			slog.Duration("duration", time.Since(start)))
	})
}

func (s *Server) methodNotAllowed(allow string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		s.writeError(w, r, &requestError{status: http.StatusMethodNotAllowed,
			detail: ErrorDetail{Code: CodeMethodNotAllowed, Message: r.Method + " is not allowed here; use " + allow}})
	})
}

// guard checks the function key in standalone mode (x-functions-key or ?code=), in
// constant time against every configured key.
func (s *Server) guard(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.auth.Disabled && !s.keyOK(r) {
			s.writeError(w, r, &requestError{status: http.StatusUnauthorized,
				detail: ErrorDetail{Code: CodeUnauthorized, Message: "a function key is required (x-functions-key header or code query parameter)"}})
			return
		}
		h(w, r)
	})
}

// RequireKey applies the same key check to another handler (the standalone handler's
// /statusfn invocation path, which the host alone calls when hosted).
func (s *Server) RequireKey(h http.Handler) http.Handler { return s.guard(h.ServeHTTP) }

func (s *Server) keyOK(r *http.Request) bool {
	given := r.Header.Get("x-functions-key")
	if given == "" {
		given = r.URL.Query().Get("code")
	}
	if given == "" {
		return false
	}
	ok := 0
	for _, k := range s.auth.Keys {
		ok |= subtle.ConstantTimeCompare([]byte(given), []byte(k))
	}
	return ok == 1
}

// handlePost starts a copy from a JSON request, or hands an Event Grid / CloudEvents
// delivery to the event handler.
func (s *Server) handlePost(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if s.events != nil && s.events.IsDelivery(r.Header, body) {
		s.events.Serve(w, r, body)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.Contains(strings.ToLower(ct), "json") {
		s.writeError(w, r, &requestError{status: http.StatusUnsupportedMediaType,
			detail: ErrorDetail{Code: CodeUnsupportedMedia, Message: "send application/json"}})
		return
	}
	var req CopyRequest
	if err := decodeStrict(body, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	start, err := s.startRequest(&req, "api")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	key := r.Header.Get("Idempotency-Key")
	if key == "" {
		key = r.Header.Get("Repeatability-Request-ID")
	}
	if key != "" {
		if len(key) > 256 {
			s.writeError(w, r, badRequest(string(copyjob.CodeInvalidRequest), "Idempotency-Key", "the idempotency key is longer than 256 characters"))
			return
		}
		start.JobID = JobIDFor("idempotency-key", key)
	}
	start.RequestHash = requestHash(&req)
	job, created, err := s.copies.Start(r.Context(), start)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if !created {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	s.writeJob(w, job, true)
}

// startRequest validates a copy request against the naming rules and the policy.
func (s *Server) startRequest(req *CopyRequest, origin string) (copyjob.StartRequest, error) {
	if req.Source == "" {
		return copyjob.StartRequest{}, badRequest(string(copyjob.CodeInvalidRequest), "source", "source is required: a blob or http(s) URL")
	}
	if req.Rule != "" {
		// Webhook form: the named rule supplies the destination and its options.
		if req.Destination != nil {
			return copyjob.StartRequest{}, badRequest(string(copyjob.CodeInvalidRequest), "rule", "name either a rule or a destination, not both")
		}
		var rule Rule
		ok := false
		if s.events != nil {
			rule, ok = s.events.rule(req.Rule)
		}
		if !ok {
			return copyjob.StartRequest{}, badRequest(string(copyjob.CodeInvalidRequest), "rule", fmt.Sprintf("no copy rule named %q", req.Rule))
		}
		u, err := url.Parse(req.Source)
		if err != nil {
			return copyjob.StartRequest{}, badRequest(string(copyjob.CodeInvalidRequest), "source", "source must be an absolute http(s) URL")
		}
		byRule := s.events.ruleRequest(rule, req.Source, "", path.Base(u.Path))
		req.Destination = byRule.Destination
		req.LeaseSource = req.LeaseSource || byRule.LeaseSource
		if req.Tier == "" {
			req.Tier = byRule.Tier
		}
		if req.CallbackURL == "" {
			req.CallbackURL = byRule.CallbackURL
		}
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
	if err := s.checkSource(req.Source); err != nil {
		return copyjob.StartRequest{}, err
	}
	if err := s.checkDestination(*req.Destination); err != nil {
		return copyjob.StartRequest{}, err
	}
	if req.CallbackURL != "" {
		if u, err := url.Parse(req.CallbackURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return copyjob.StartRequest{}, badRequest(string(copyjob.CodeInvalidRequest), "callbackUrl", "callbackUrl must be an http(s) URL")
		}
		if s.events == nil || !s.events.CallbackAllowed(req.CallbackURL) {
			return copyjob.StartRequest{}, &requestError{status: http.StatusForbidden, detail: ErrorDetail{
				Code: "CallbackNotAllowed", Target: "callbackUrl", Message: "the callback host is not in the allowlist setting COPY_CALLBACK_ALLOWED_HOSTS"}}
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
		Source:      req.Source,
		Destination: copyjob.BlobRef{Account: account, Container: req.Destination.Container, Blob: req.Destination.Blob},
		Options:     opts,
		CallbackURL: req.CallbackURL,
	}, nil
}

func (s *Server) checkSource(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return badRequest(string(copyjob.CodeInvalidRequest), "source", "source must be an absolute http(s) URL")
	}
	host := u.Hostname()
	if u.Scheme == "http" && !s.policy.AllowHTTPSources && !isLoopback(host) {
		return &requestError{status: http.StatusForbidden, detail: ErrorDetail{Code: string(copyjob.CodeSourceNotAllowed), Target: "source",
			Message: "sources must use https (plain http is allowed for loopback development only)"}}
	}
	if len(s.policy.AllowedSourceHosts) > 0 && !hostAllowed(host, s.policy.AllowedSourceHosts) {
		return &requestError{status: http.StatusForbidden, detail: ErrorDetail{Code: string(copyjob.CodeSourceNotAllowed), Target: "source",
			Message: "the source host " + host + " is not in the allowlist setting COPY_ALLOWED_SOURCE_HOSTS"}}
	}
	return nil
}

func (s *Server) checkDestination(d DestinationInput) error {
	account := d.Account
	if account == "" {
		account = "default"
	}
	for _, c := range s.policy.InternalContainers {
		if account == "default" && d.Container == c {
			return &requestError{status: http.StatusForbidden, detail: ErrorDetail{Code: string(copyjob.CodeDestinationNotAllowed), Target: "destination.container",
				Message: "container " + c + " holds the app's own records and cannot be a destination"}}
		}
	}
	if len(s.policy.AllowedDestinations) == 0 {
		return nil
	}
	for _, pat := range s.policy.AllowedDestinations {
		if ok, _ := path.Match(pat, account+"/"+d.Container); ok {
			return nil
		}
	}
	return &requestError{status: http.StatusForbidden, detail: ErrorDetail{Code: string(copyjob.CodeDestinationNotAllowed), Target: "destination",
		Message: account + "/" + d.Container + " is not in the allowlist setting COPY_ALLOWED_DESTINATIONS"}}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func hostAllowed(host string, allowed []string) bool {
	host = strings.ToLower(host)
	for _, a := range allowed {
		a = strings.ToLower(strings.TrimSpace(a))
		if a == host || (strings.HasPrefix(a, "*.") && strings.HasSuffix(host, a[1:])) {
			return true
		}
	}
	return false
}

// jobIDSpace namespaces deterministic job ids (UUIDv5 over an idempotency key or an
// event id), so a retried request or a redelivered event maps onto the same record.
var jobIDSpace = uuid.MustParse("5b7c3c53-3f4b-4f4c-9d2e-6f0e3c1a9b11")

// JobIDFor derives a job id from a kind of key and the key.
func JobIDFor(kind, key string) string {
	return uuid.NewSHA1(jobIDSpace, []byte(kind+"\x00"+key)).String()
}

func requestHash(req *CopyRequest) string {
	b, _ := json.Marshal(req) // canonical: struct order, sorted map keys
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// writeJob answers with a job: 202 + Location + Retry-After while it runs (for a
// start), 200 with the final state otherwise.
func (s *Server) writeJob(w http.ResponseWriter, job *copyjob.Job, isStart bool) {
	status := http.StatusOK
	if !job.Status.Terminal() {
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int(s.retryAfter/time.Second))))
		if isStart {
			status = http.StatusAccepted
		}
	}
	w.Header().Set("Location", s.prefix+"/copies/"+job.ID)
	writeJSON(w, status, s.view(job))
}

var jobIDPattern = func(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

func (s *Server) jobID(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if !jobIDPattern(id) {
		return "", badRequest(string(copyjob.CodeInvalidRequest), "id", "a job id is 1-64 letters, digits or hyphens")
	}
	return id, nil
}

func (s *Server) handleGet(w http.ResponseWriter, r *http.Request) {
	id, err := s.jobID(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	job, err := s.copies.Get(r.Context(), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJob(w, job, false)
}

func (s *Server) handleList(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	opts := copyjob.ListOptions{Status: copyjob.Status(q.Get("status")), Marker: q.Get("marker")}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			s.writeError(w, r, badRequest(string(copyjob.CodeInvalidRequest), "limit", "limit must be an integer from 1 to 1000"))
			return
		}
		opts.Limit = n
	}
	page, err := s.copies.List(r.Context(), opts)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := ListView{Value: make([]JobView, 0, len(page.Jobs))}
	for _, j := range page.Jobs {
		out.Value = append(out.Value, s.view(j))
	}
	if page.NextMarker != "" {
		next := url.Values{"marker": {page.NextMarker}}
		if opts.Status != "" {
			next.Set("status", string(opts.Status))
		}
		if opts.Limit != 0 {
			next.Set("limit", strconv.Itoa(opts.Limit))
		}
		out.NextLink = s.prefix + "/copies?" + next.Encode()
	}
	writeJSON(w, http.StatusOK, out)
}

// AbortRequest is the optional body of POST /api/copies/{id}/abort.
type AbortRequest struct {
	Restore bool `json:"restore,omitempty"`
}

func (s *Server) handleAbort(w http.ResponseWriter, r *http.Request) {
	id, err := s.jobID(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	body, err := readBody(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var req AbortRequest
	if len(strings.TrimSpace(string(body))) > 0 {
		if err := decodeStrict(body, &req); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	if v := r.URL.Query().Get("restore"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			s.writeError(w, r, badRequest(string(copyjob.CodeInvalidRequest), "restore", "restore must be true or false"))
			return
		}
		req.Restore = req.Restore || b
	}
	job, err := s.copies.Abort(r.Context(), id, copyjob.AbortOptions{Restore: req.Restore})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJob(w, job, false)
}

func (s *Server) handleOptions(w http.ResponseWriter, r *http.Request) {
	if s.events != nil {
		s.events.ServeOptions(w, r)
		return
	}
	w.Header().Set("Allow", "GET, POST, OPTIONS")
	w.WriteHeader(http.StatusOK)
}
