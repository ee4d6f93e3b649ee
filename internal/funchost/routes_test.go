package funchost

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestHostRoutesMatchLikeTheHost mirrors the host's route matching
// (WebScriptHostHttpRoutesManager.cs: ASP.NET Core route templates, which
// compare literals case-insensitively and ignore a trailing slash).
func TestHostRoutesMatchLikeTheHost(t *testing.T) {
	templates := []string{"/api/copies", "/api/copies/{id}", "/api/copies/{id}/abort", "/statusfn"}
	var seen string
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen = r.URL.Path })
	notFound := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		WriteError(w, http.StatusNotFound, "ResourceNotFound", "no route")
	})
	h := HostRoutes(templates, notFound)(next)
	tests := []struct {
		path, want string // want "" means 404
	}{
		{"/api/copies", "/api/copies"},
		{"/API/Copies", "/api/copies"},
		{"/api/copies/", "/api/copies"},
		{"/Api/Copies/AbC-123", "/api/copies/AbC-123"}, // the id keeps its case
		{"/api/copies/x/ABORT/", "/api/copies/x/abort"},
		{"/StatusFn", "/statusfn"},
		{"/", ""},
		{"/api", ""},
		{"/api/copies/x/y", ""},
		{"/api//copies", ""},
		{"/api/copies//abort", ""},
		{"/other", ""},
	}
	for _, tt := range tests {
		seen = ""
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://x"+tt.path+"?code=k", nil))
		if tt.want == "" {
			if rec.Code != http.StatusNotFound || rec.Header().Get("x-ms-error-code") != "ResourceNotFound" || seen != "" {
				t.Errorf("%s: got %d %q, want the Azure 404", tt.path, rec.Code, seen)
			}
			continue
		}
		if seen != tt.want {
			t.Errorf("%s: next saw %q, want %q", tt.path, seen, tt.want)
		}
	}
}

func TestInvocationContextTagsRequestLogs(t *testing.T) {
	base, out, _ := streams(slog.LevelInfo)
	h := InvocationContext(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		base.InfoContext(r.Context(), "request", "path", r.URL.Path)
	}))
	req := httptest.NewRequest(http.MethodGet, "/api/copies/x", nil)
	req.Header.Set(InvocationIDHeader, "inv-42")
	h.ServeHTTP(httptest.NewRecorder(), req)
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/api/copies/y", nil))
	lines := splitLines(out.String())
	if len(lines) != 2 || !strings.Contains(lines[0], `"invocationId":"inv-42"`) || strings.Contains(lines[1], "invocationId") {
		t.Errorf("lines = %q", lines)
	}
}

// TestHostPingsAreAnsweredBeforeTheAPI mirrors DefaultHttpWorkerService.cs IsWorkerReady
// and PingAsync: GET http://127.0.0.1:<port>/ (HEAD too) answers 200 with no body and
// never reaches the next handler (the API, whose 404 logs a line); any other method or
// path does.
func TestHostPingsAreAnsweredBeforeTheAPI(t *testing.T) {
	var seen []string
	h := HostPings(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = append(seen, r.Method+" "+r.URL.Path)
		w.WriteHeader(http.StatusNotFound)
	}))
	for _, tt := range []struct {
		method, target string
		want           int
		reaches        bool
	}{
		{http.MethodGet, "/", http.StatusOK, false},
		{http.MethodHead, "/", http.StatusOK, false},
		{http.MethodGet, "/?probe=1", http.StatusOK, false},
		{http.MethodPost, "/", http.StatusNotFound, true},
		{http.MethodGet, "/api", http.StatusNotFound, true},
		{http.MethodGet, "//", http.StatusNotFound, true},
	} {
		seen = nil
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(tt.method, tt.target, nil))
		if rec.Code != tt.want || (len(seen) > 0) != tt.reaches || (tt.want == http.StatusOK && rec.Body.Len() != 0) {
			t.Errorf("%s %s: %d body %q, next saw %q", tt.method, tt.target, rec.Code, rec.Body, seen)
		}
	}
}
