package app_test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/blobcopy/blobcopy/internal/app"
	"github.com/blobcopy/blobcopy/internal/funchost"
)

// appDirWithHostJSON copies the repository's app files (function folders) into a temp dir
// with the given host.json.
func appDirWithHostJSON(t *testing.T, hostJSON string) string {
	t.Helper()
	root := repoRoot(t)
	dir := t.TempDir()
	for _, fn := range []string{"copyfn", "abortfn", "retryfn", "batchfn", "batchabortfn", "openapifn", "statusfn"} {
		b, err := os.ReadFile(filepath.Join(root, fn, "function.json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(dir, fn), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, fn, "function.json"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "host.json"), []byte(hostJSON), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestEmptyRoutePrefixServesRoutesAtTheRoot: host.json "extensions.http.routePrefix": ""
// is the documented way to drop the /api prefix. The host then routes the openapifn
// function (route "openapi.json") at /openapi.json and, proxying
// (enableProxyingHttpRequest), forwards the request to the handler at that same path
// (DefaultHttpWorkerService.cs ProxyInvocationRequest: "The path and query string are
// added by the YARP proxy ... using info from the HttpContext"). The handler serves its
// routes there and nowhere else (it used to read "" as "unset" and serve /api/...,
// answering every forwarded request 404); api's TestRoutePrefixReachesEveryPathAndLink
// holds Location, links and nextLink to the same prefix.
func TestEmptyRoutePrefixServesRoutesAtTheRoot(t *testing.T) {
	dir := appDirWithHostJSON(t, `{"version":"2.0","extensions":{"http":{"routePrefix":""}},
"customHandler":{"description":{"defaultExecutablePath":"handler"},"enableProxyingHttpRequest":true},"functionTimeout":"00:10:00"}`)
	a, err := app.New(dir, funchost.NewSettings(map[string]string{
		"FUNCTIONS_WORKER_RUNTIME":     "custom",
		"AzureWebJobsStorage":          "UseDevelopmentStorage=true",
		"COPY_STATUS_SCHEDULE":         "*/30 * * * * *",
		"FUNCTIONS_CUSTOMHANDLER_PORT": "17999", // hosted: the host checks keys
	}), app.Options{})
	if err != nil {
		t.Fatalf("app.New: %v", err)
	}
	if a.Host.RoutePrefix != "" {
		t.Fatalf("LoadHost read routePrefix %q, want \"\"", a.Host.RoutePrefix)
	}
	// The API description needs no storage, so the storage gate does not interfere.
	w := httptest.NewRecorder()
	a.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/openapi.json", nil))
	if w.Code != http.StatusOK {
		w2 := httptest.NewRecorder()
		a.Handler().ServeHTTP(w2, httptest.NewRequest(http.MethodGet, "/api/openapi.json", nil))
		t.Errorf("routePrefix \"\": GET /openapi.json (the path the host forwards) = %d %s; GET /api/openapi.json (a path the host never routes) = %d",
			w.Code, strings.TrimSpace(w.Body.String()), w2.Code)
	}
	w = httptest.NewRecorder()
	a.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/api/openapi.json", nil))
	if w.Code != http.StatusNotFound {
		t.Errorf("routePrefix \"\": GET /api/openapi.json = %d, want 404 (no route there)", w.Code)
	}
	// A storage-bound route: the gate answers 503 for a path the handler serves, the
	// router 404 for one it does not.
	w = httptest.NewRecorder()
	a.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/copies", nil))
	if w.Code == http.StatusNotFound {
		t.Errorf("routePrefix \"\": GET /copies = 404 %s (want it served, 503 until storage is ready)", strings.TrimSpace(w.Body.String()))
	}
}
