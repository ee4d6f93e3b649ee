package funchost

import (
	"net/http"
	"strings"
)

// HostRoutes matches request paths the way the Functions host matches HTTP
// trigger routes (ASP.NET Core route templates built by
// WebScriptHostHttpRoutesManager.cs): literal segments case-insensitively,
// a trailing slash ignored. The host then forwards the path as the client
// wrote it, so the handler must match the same way. A path matching one of
// templates ("/api/copies/{id}/abort"; "{...}" matches any one non-empty
// segment) is rewritten to the template's spelling, with the parameter
// segments kept as sent, and handed to next, whose mux matches exactly. Any
// other path is answered by notFound (Azure error JSON from the API layer).
func HostRoutes(templates []string, notFound http.Handler) func(http.Handler) http.Handler {
	parsed := make([][]string, 0, len(templates))
	for _, t := range templates {
		parsed = append(parsed, segments(t))
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got := segments(r.URL.Path)
			for _, tmpl := range parsed {
				canonical, ok := matchRoute(tmpl, got)
				if !ok {
					continue
				}
				if canonical != r.URL.Path {
					r2 := r.Clone(r.Context())
					r2.URL.Path, r2.URL.RawPath = canonical, ""
					r = r2
				}
				next.ServeHTTP(w, r)
				return
			}
			notFound.ServeHTTP(w, r)
		})
	}
}

func segments(path string) []string {
	trimmed := strings.Trim(path, "/")
	if trimmed == "" {
		return nil
	}
	return strings.Split(trimmed, "/")
}

// matchRoute reports whether the path segments got fit tmpl and returns the
// path spelled as the template spells its literals.
func matchRoute(tmpl, got []string) (string, bool) {
	if len(tmpl) != len(got) {
		return "", false
	}
	out := make([]string, len(got))
	for i, seg := range tmpl {
		switch {
		case strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}"):
			if got[i] == "" {
				return "", false
			}
			out[i] = got[i]
		case strings.EqualFold(seg, got[i]):
			out[i] = seg
		default:
			return "", false
		}
	}
	return "/" + strings.Join(out, "/"), true
}

// InvocationContext puts the host's invocation id of each request
// (X-Azure-Functions-InvocationId, which the host sets on forwarded and
// proxied HTTP requests too: DefaultHttpWorkerService.cs AddHeaders,
// AddProxyingHeaders) into the request's context, so lines logged with it
// carry the id (NewContextHandler).
func InvocationContext(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id := r.Header.Get(InvocationIDHeader); id != "" {
			r = r.WithContext(WithInvocationID(r.Context(), id))
		}
		next.ServeHTTP(w, r)
	})
}

// HostPings answers the Functions host's pings of the worker, GET / (and HEAD /), with
// 200 and no body, before next sees them and without a log line. The host sends one
// every 25 ms until the handler answers at start-up (DefaultHttpWorkerService.cs
// IsWorkerReady: any HTTP answer means ready) and one whenever it asks for the worker's
// status (HttpWorkerChannel.cs GetWorkerStatusAsync -> PingAsync, from the host's
// performance and concurrency monitors), reading only that an answer came. Answered by
// the API's 404, each one was logged as a failed request. Other methods at / reach next.
func HostPings(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			w.Header().Set("Cache-Control", "no-store")
			w.Header().Set("Content-Length", "0")
			w.WriteHeader(http.StatusOK)
			return
		}
		next.ServeHTTP(w, r)
	})
}
