package app_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/blobcopy/blobcopy/internal/app"
	"github.com/blobcopy/blobcopy/internal/funchost"
)

// TestAppSettingsOverrideHostJSON: the Functions host reads host.json
// through .NET configuration, where an app setting AzureFunctionsJobHost__<path>
// overrides the host.json value at <path> (ConfigurationSectionNames.JobHost =
// "AzureFunctionsJobHost"; HttpWorkerOptionsSetup.cs reads
// _configuration.GetSection(ConfigurationSectionNames.JobHost); ScriptJobHostOptionsSetup
// ConfigureFunctionTimeout; Microsoft's host.json reference, "Override host.json
// values"). The handler applies the same settings over host.json (funchost.LoadHost;
// the cases are in funchost's TestLoadHostAppliesAppSettingOverrides): with
// AzureFunctionsJobHost__functionTimeout=00:05:00 the tick budgets itself under 5
// minutes, not 80% of host.json's 10, and with
// AzureFunctionsJobHost__extensions__http__routePrefix=v1 the handler serves /v1/...,
// where the host forwards.
func TestAppSettingsOverrideHostJSON(t *testing.T) {
	a, err := app.New(repoRoot(t), funchost.NewSettings(map[string]string{
		"FUNCTIONS_WORKER_RUNTIME":                             "custom",
		"AzureWebJobsStorage":                                  "UseDevelopmentStorage=true",
		"COPY_STATUS_SCHEDULE":                                 "*/30 * * * * *",
		"FUNCTIONS_CUSTOMHANDLER_PORT":                         "17998",
		"AzureFunctionsJobHost__functionTimeout":               "00:05:00",
		"AzureFunctionsJobHost__extensions__http__routePrefix": "v1",
	}), app.Options{})
	if err != nil {
		t.Fatalf("app.New: %v", err)
	}
	if budget := a.Copies.Config().TickBudget; budget >= 5*time.Minute {
		t.Errorf("functionTimeout is 5m (AzureFunctionsJobHost__functionTimeout) but the status tick's budget is %s (host.json's %s read alone): the host cancels the tick first",
			budget, a.Host.FunctionTimeout)
	}
	w := httptest.NewRecorder()
	a.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/v1/openapi.json", nil))
	if w.Code != http.StatusOK {
		t.Errorf("routePrefix is v1 (AzureFunctionsJobHost__extensions__http__routePrefix) but GET /v1/openapi.json = %d %s", w.Code, strings.TrimSpace(w.Body.String()))
	}
	// An empty override drops the prefix, as an empty routePrefix in host.json does.
	b, err := app.New(repoRoot(t), funchost.NewSettings(map[string]string{
		"FUNCTIONS_WORKER_RUNTIME":                          "custom",
		"AzureWebJobsStorage":                               "UseDevelopmentStorage=true",
		"COPY_STATUS_SCHEDULE":                              "*/30 * * * * *",
		"FUNCTIONS_CUSTOMHANDLER_PORT":                      "17998",
		"AzureFunctionsJobHost:Extensions:Http:RoutePrefix": "",
	}), app.Options{})
	if err != nil {
		t.Fatalf("app.New: %v", err)
	}
	w = httptest.NewRecorder()
	b.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/openapi.json", nil))
	if w.Code != http.StatusOK {
		t.Errorf("routePrefix overridden with \"\" but GET /openapi.json = %d %s", w.Code, strings.TrimSpace(w.Body.String()))
	}
}
