package app_test

import (
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/blobcopy/blobcopy/internal/app"
	"github.com/blobcopy/blobcopy/internal/funchost"
)

// TestHostJSONForwardsOnHostsOldAndNew: host.json sets enableProxyingHttpRequest and
// enableForwardingHttpRequest. A current host proxies, since
// DefaultHttpWorkerService.InvokeAsync asks EnableProxyingHttpRequest first and the other
// setting then only turns off redirect-following on its own HttpClient (CreateHttpClient:
// AllowAutoRedirect = !EnableForwardingHttpRequest), used for the timer invocation and
// the pings, which the handler never answers with a redirect. A host predating
// proxying ignores the unknown setting (HttpWorkerOptionsSetup binds the section) and,
// with enableForwardingHttpRequest, forwards HTTP requests at their path
// (ProcessHttpInAndOutInvocationRequest) instead of POSTing invocation payloads to
// /copyfn, which the handler does not serve. The start-up check accepts either setting
// and complains, hosted only, when neither is set.
func TestHostJSONForwardsOnHostsOldAndNew(t *testing.T) {
	repo, err := funchost.LoadHost(repoRoot(t), funchost.NewSettings(nil))
	if err != nil {
		t.Fatal(err)
	}
	if !repo.EnableProxyingHTTPRequest || !repo.EnableForwardingHTTPRequest {
		t.Errorf("the repository's host.json: proxying %v, forwarding %v; want both true", repo.EnableProxyingHTTPRequest, repo.EnableForwardingHTTPRequest)
	}

	const complaint = "sets neither customHandler.enableProxyingHttpRequest nor enableForwardingHttpRequest"
	for _, tt := range []struct {
		name, flags string
		hosted      bool
		complains   bool
	}{
		{"both (this repository)", `,"enableProxyingHttpRequest":true,"enableForwardingHttpRequest":true`, true, false},
		{"proxying only", `,"enableProxyingHttpRequest":true`, true, false},
		{"forwarding only", `,"enableForwardingHttpRequest":true`, true, false},
		{"neither", ``, true, true},
		{"neither, standalone", ``, false, false},
	} {
		dir := appDirWithHostJSON(t, `{"version":"2.0","customHandler":{"description":{"defaultExecutablePath":"handler"}`+tt.flags+`}}`)
		settings := map[string]string{
			"FUNCTIONS_WORKER_RUNTIME": "custom",
			"AzureWebJobsStorage":      "UseDevelopmentStorage=true",
			"COPY_STATUS_SCHEDULE":     "*/30 * * * * *",
			"BLOBCOPY_AUTH_DISABLED":   "true",
		}
		if tt.hosted {
			settings["FUNCTIONS_CUSTOMHANDLER_PORT"] = "17995"
		}
		var logs strings.Builder
		var mu sync.Mutex
		w := writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return logs.Write(p) })
		if _, err := app.New(dir, funchost.NewSettings(settings), app.Options{Logger: slog.New(slog.NewJSONHandler(w, nil))}); err != nil {
			t.Fatalf("%s: app.New: %v", tt.name, err)
		}
		mu.Lock()
		got := strings.Contains(logs.String(), complaint)
		mu.Unlock()
		if got != tt.complains {
			t.Errorf("%s: start-up complains %v, want %v; logs:\n%s", tt.name, got, tt.complains, logs.String())
		}
	}
}
