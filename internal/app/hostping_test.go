package app_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/blobcopy/blobcopy/internal/app"
	"github.com/blobcopy/blobcopy/internal/funchost"
)

// TestHostPingsAreAnsweredQuietly: besides the start-up readiness check, the host sends
// GET / to the worker whenever it reports the worker's status (HttpWorkerChannel.cs
// GetWorkerStatusAsync -> DefaultHttpWorkerService.PingAsync, called from
// HostPerformanceManager.ProcessThresholdsExceeded on every health ping of the scale
// controller, and by WorkerConcurrencyManager). The handler answers it, hosted and
// standalone, 200 with no body and no log line (it used to answer the API's 404 and log
// "request failed ... status=404" at Info, one trace per ping per instance); the
// standalone key check does not apply to it.
func TestHostPingsAreAnsweredQuietly(t *testing.T) {
	for name, mode := range map[string]map[string]string{
		"hosted":     {"FUNCTIONS_CUSTOMHANDLER_PORT": "17997"},
		"standalone": {"BLOBCOPY_FUNCTION_KEYS": "k1", "BLOBCOPY_LISTEN_ADDRESS": "127.0.0.1:17996"},
	} {
		var logs strings.Builder
		var mu sync.Mutex
		w := writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return logs.Write(p) })
		settings := map[string]string{
			"FUNCTIONS_WORKER_RUNTIME": "custom",
			"AzureWebJobsStorage":      "UseDevelopmentStorage=true",
			"COPY_STATUS_SCHEDULE":     "*/30 * * * * *",
		}
		for k, v := range mode {
			settings[k] = v
		}
		a, err := app.New(repoRoot(t), funchost.NewSettings(settings), app.Options{Logger: slog.New(slog.NewJSONHandler(w, nil))})
		if err != nil {
			t.Fatalf("%s: app.New: %v", name, err)
		}
		mu.Lock()
		logs.Reset()
		mu.Unlock()
		for _, method := range []string{http.MethodGet, http.MethodGet, http.MethodHead} {
			rec := httptest.NewRecorder()
			a.Handler().ServeHTTP(rec, httptest.NewRequest(method, "/", nil))
			if rec.Code != http.StatusOK || rec.Body.Len() != 0 {
				t.Errorf("%s: %s / = %d %q, want 200 and no body", name, method, rec.Code, rec.Body)
			}
		}
		mu.Lock()
		if n := strings.Count(logs.String(), "\n"); n > 0 {
			t.Errorf("%s: 3 host pings (GET, HEAD /) wrote %d log lines, e.g. %s", name, n, strings.SplitN(logs.String(), "\n", 2)[0])
		}
		mu.Unlock()
		// Only the ping is special: another method at / is still the API's 404.
		rec := httptest.NewRecorder()
		a.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", nil))
		if rec.Code != http.StatusNotFound {
			t.Errorf("%s: POST / = %d, want 404", name, rec.Code)
		}
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
