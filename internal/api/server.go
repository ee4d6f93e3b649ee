// Package api serves the HTTP functions: copyfn (start copies, read their status,
// Event Grid and webhook deliveries) and abortfn. The same handlers serve requests the
// Functions host forwards and requests in standalone mode.
//
// Files: server.go (routes and the access log), auth.go (the standalone key check),
// principal.go (App Service Authentication's client principal), caller.go (who may see
// and abort which job),
// policy.go (what sources, destinations and callbacks are accepted), copies.go (the
// copy handlers), events.go (Event Grid deliveries), ids.go (job id derivation),
// views.go (the answers' types), errors.go (Azure's error shape).
package api

import (
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/blobcopy/blobcopy/internal/batch"
	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/rules"
)

// Server holds the HTTP layer's dependencies.
type Server struct {
	copies *copyjob.Service
	policy Policy
	auth   Auth
	rules  []rules.Rule
	resp   responder
	events *eventHandler

	batches *batch.Service // nil: /batches answers 503
}

// Options configure a Server.
type Options struct {
	// RoutePrefix is the host's route prefix (extensions.http.routePrefix) the routes are
	// served under, with or without slashes: "api", "v1/blobcopy". The zero value means the
	// host's default, "api"; NoRoutePrefix serves the routes at the root, as host.json's
	// "routePrefix": "" makes the host route them (HostRoutePrefix converts).
	RoutePrefix string
	Policy      Policy
	Auth        Auth
	// Rules are the COPY_RULES, used by Event Grid deliveries and the webhook form.
	Rules  []rules.Rule
	Events EventOptions
	Logger *slog.Logger
	// Batches serves /batches (nil answers 503 there: not set up).
	Batches *batch.Service
}

// NoRoutePrefix is the Options.RoutePrefix of routes served at the root (/copies).
const NoRoutePrefix = "/"

// HostRoutePrefix returns the Options.RoutePrefix for the host's route prefix as
// host.json spells it once read (funchost.HostConfig.RoutePrefix: "api" when unset): ""
// there is no prefix at all, which the zero value of Options.RoutePrefix does not mean.
func HostRoutePrefix(hostPrefix string) string {
	if strings.Trim(hostPrefix, "/") == "" {
		return NoRoutePrefix
	}
	return hostPrefix
}

// NewServer returns the HTTP layer over a copy service.
func NewServer(copies *copyjob.Service, opts Options) *Server {
	prefix := "/api"
	if opts.RoutePrefix != "" {
		// "/" (NoRoutePrefix) leaves "": the routes are /copies, /openapi.json, ...
		prefix = strings.TrimSuffix("/"+strings.Trim(opts.RoutePrefix, "/"), "/")
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	resp := responder{prefix: prefix, log: log, retryAfter: copies.Config().FirstPoll}
	s := &Server{copies: copies, batches: opts.Batches, policy: opts.Policy, auth: opts.Auth, rules: opts.Rules, resp: resp}
	s.events = newEventHandler(copies, &s.policy, opts.Rules, opts.Events, resp)
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
	key := func(h http.HandlerFunc) http.Handler { return s.auth.requireKey(s.resp, s.auth.identify(s.resp, h)) }
	return []route{
		{"POST", "/copies", key(s.handlePost)},
		{"OPTIONS", "/copies", http.HandlerFunc(s.events.serveOptions)}, // CloudEvents handshake: no key
		{"GET", "/copies", key(s.handleList)},
		{"GET", "/copies/{id}", key(s.handleGet)},
		{"POST", "/copies/{id}/abort", key(s.handleAbort)},
		{"POST", "/copies/{id}/retry", key(s.handleRetry)},
		{"POST", "/batches", key(s.withBatches(s.handleBatchPost))},
		{"GET", "/batches", key(s.withBatches(s.handleBatchList))},
		{"GET", "/batches/{id}", key(s.withBatches(s.handleBatchGet))},
		{"POST", "/batches/{id}/abort", key(s.withBatches(s.handleBatchAbort))},
		{"GET", "/openapi.json", http.HandlerFunc(s.handleOpenAPI)}, // the API description: no key
		{"", "/copies", s.methodNotAllowed("GET, POST, OPTIONS")},
		{"", "/copies/{id}", s.methodNotAllowed("GET")},
		{"", "/copies/{id}/abort", s.methodNotAllowed("POST")},
		{"", "/copies/{id}/retry", s.methodNotAllowed("POST")},
		{"", "/batches", s.methodNotAllowed("GET, POST")},
		{"", "/batches/{id}", s.methodNotAllowed("GET")},
		{"", "/batches/{id}/abort", s.methodNotAllowed("POST")},
		{"", "/openapi.json", s.methodNotAllowed("GET")},
	}
}

// Routes registers the HTTP functions on mux.
func (s *Server) Routes(mux *http.ServeMux) {
	for _, rt := range s.routeTable() {
		pattern := s.resp.prefix + rt.path
		if rt.method != "" {
			pattern = rt.method + " " + pattern
		}
		mux.Handle(pattern, accessLog(s.resp.log, answerFirst(rt.handler)))
	}
}

// RequireKey applies the standalone key check to another handler (the standalone
// handler's /statusfn invocation path, which the host alone calls when hosted).
func (s *Server) RequireKey(h http.Handler) http.Handler { return s.auth.requireKey(s.resp, h) }

// statusRecorder remembers the status a handler answered.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection's writer (answerFirst's
// Flush).
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// answerFirst sends a handler's answer as soon as the handler returns, before the work
// the call left behind its answer starts (copyjob.HoldBehindAnswer: a finished start's
// tracking message deletion) and before the access log line is written. Without it,
// net/http sends the answer only once every wrapper has returned, and the deletion's
// request competes with the answer for the CPU. Only an answer that says its length
// (writeJSON does) is flushed: it is then whole for the client, who need not wait for
// the handler's end. One that does not is left for net/http to finish (it adds the
// length), since a flush would make it chunked.
func answerFirst(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, release := copyjob.HoldBehindAnswer(r.Context())
		defer release() // also when the handler panics: held work must run
		h.ServeHTTP(w, r.WithContext(ctx))
		if w.Header().Get("Content-Length") != "" {
			_ = http.NewResponseController(w).Flush()
		}
	})
}

// accessLog writes one line per request with its duration. Only the path is logged:
// the query may carry a function key (?code=).
func accessLog(log *slog.Logger, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(rec, r)
		log.LogAttrs(r.Context(), slog.LevelInfo, "request", slog.String("operation", "http"),
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Int("status", rec.status),
			slog.Duration("duration", time.Since(start)))
	})
}

func (s *Server) methodNotAllowed(allow string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		s.resp.writeError(w, r, &requestError{status: http.StatusMethodNotAllowed,
			detail: ErrorDetail{Code: CodeMethodNotAllowed, Message: r.Method + " is not allowed here; use " + allow}})
	})
}
