package app

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/blobcopy/blobcopy/internal/funchost"
)

func TestStorageGateHoldsBackOnlyStorageRequests(t *testing.T) {
	var g storageGate
	served := 0
	h := g.middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { served++ }))
	tests := []struct {
		method, path string
		waits        bool
	}{
		{"POST", "/api/copies", true},
		{"GET", "/api/copies/x", true},
		{"POST", "/api/copies/x/abort", true},
		{"POST", "/statusfn", true},
		{"OPTIONS", "/api/copies", false},
		{"GET", "/api/openapi.json", false},
	}
	for _, tt := range tests {
		served = 0
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, nil))
		if tt.waits != (rec.Code == http.StatusServiceUnavailable) || tt.waits == (served == 1) {
			t.Errorf("%s %s before storage: %d, served %d", tt.method, tt.path, rec.Code, served)
		}
		if tt.waits && (rec.Header().Get("Retry-After") != "5" || rec.Header().Get("x-ms-error-code") != "StorageUnavailable") {
			t.Errorf("%s %s: headers %v", tt.method, tt.path, rec.Header())
		}
	}
	g.ready.Store(true)
	served = 0
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/api/copies", nil))
	if served != 1 {
		t.Errorf("after setup the request was not served: %d", rec.Code)
	}
}

func TestRunTickOnceRefusesASecondTick(t *testing.T) {
	a := &App{Log: slog.New(slog.DiscardHandler)}
	a.ticking.Lock() // a tick is running
	err := a.runTickOnce(context.Background(), funchost.TimerInfo{}, funchost.NewInvocationLog(a.Log))
	if !errors.Is(err, funchost.ErrAlreadyRunning) {
		t.Fatalf("err = %v, want ErrAlreadyRunning", err)
	}
}
