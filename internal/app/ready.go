package app

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/funchost"
	"github.com/blobcopy/blobcopy/internal/redact"
)

// storageRetryAfter is the Retry-After of a request refused while the app's
// storage is being set up: setup usually takes well under a second.
const storageRetryAfter = 5 * time.Second

// storageGate holds back requests that need the app's storage (its queue
// and records container) until they exist, so the handler can listen before
// it calls storage: the host's readiness window (30 s) is not spent waiting
// for Azure, and storage that hangs cannot make the host kill the handler.
type storageGate struct {
	ready atomic.Bool
}

// needsStorage tells which requests wait for storage: every function call
// except the CloudEvents OPTIONS handshake and the API description.
func needsStorage(r *http.Request) bool {
	if r.Method == http.MethodOptions {
		return false
	}
	return !strings.HasSuffix(strings.ToLower(strings.TrimSuffix(r.URL.Path, "/")), "/openapi.json")
}

// middleware answers 503 + Retry-After with Azure's error JSON while
// storage is not ready; a retry succeeds once setup has.
func (g *storageGate) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !g.ready.Load() && needsStorage(r) {
			w.Header().Set("Retry-After", strconv.Itoa(int(storageRetryAfter/time.Second)))
			funchost.WriteError(w, http.StatusServiceUnavailable, string(copyjob.CodeStorageUnavailable),
				"the app's storage is being set up; retry after the Retry-After interval")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// StorageReady reports whether the app's queue and container are known to
// exist, so requests needing them are served.
func (a *App) StorageReady() bool { return a.gate.ready.Load() }

// ensureStorageInBackground runs EnsureStorage until it succeeds or ctx
// ends, backing off from one second to half a minute between attempts.
// Each failure is logged (redacted) at Error, so the host shows it.
func (a *App) ensureStorageInBackground(ctx context.Context, attemptTimeout time.Duration) {
	wait := time.Second
	for attempt := 1; ; attempt++ {
		start := time.Now()
		attemptCtx, cancel := context.WithTimeout(ctx, attemptTimeout)
		err := a.EnsureStorage(attemptCtx)
		cancel()
		if err == nil {
			a.Log.Info("app storage ready", "operation", "ensureStorage", "attempt", attempt, "duration", time.Since(start).String())
			return
		}
		if ctx.Err() != nil {
			return
		}
		a.Log.LogAttrs(ctx, slog.LevelError, "cannot set up the app's queue and container yet; requests needing them answer 503 until this succeeds",
			slog.String("operation", "ensureStorage"), slog.Int("attempt", attempt), slog.String("err", redact.Text(err.Error())),
			slog.String("retryIn", wait.String()))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 30*time.Second)
	}
}
