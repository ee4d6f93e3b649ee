package api

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
)

func TestPathsAndNotFound(t *testing.T) {
	s := &Server{resp: responder{prefix: "/api", log: slog.New(slog.DiscardHandler)}}
	paths := s.Paths()
	for _, want := range []string{"/api/copies", "/api/copies/{id}", "/api/copies/{id}/abort", "/api/copies/{id}/retry", "/api/openapi.json",
		"/api/batches", "/api/batches/{id}", "/api/batches/{id}/abort"} {
		if !slices.Contains(paths, want) {
			t.Errorf("Paths() = %q, missing %s", paths, want)
		}
	}
	if len(paths) != 8 {
		t.Errorf("Paths() = %q, want each path once", paths)
	}
	rec := httptest.NewRecorder()
	s.NotFound().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/nope", nil))
	var body ErrorResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || rec.Code != http.StatusNotFound ||
		body.Error.Code != CodeNotFound || rec.Header().Get("x-ms-error-code") != CodeNotFound {
		t.Errorf("got %d %s (%v)", rec.Code, rec.Body, err)
	}
}
