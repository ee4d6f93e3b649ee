package funchost

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoadHost(t *testing.T) {
	tests := []struct {
		name     string
		hostJSON string // "" means no file
		want     HostConfig
		wantErr  string
	}{
		{
			name: "full",
			hostJSON: `{"version":"2.0","extensionBundle":{"id":"Microsoft.Azure.Functions.ExtensionBundle","version":"[4.*, 5.0.0)"},
				"customHandler":{"description":{"defaultExecutablePath":"handler","workingDirectory":"","arguments":[]},"enableForwardingHttpRequest":true},
				"extensions":{"http":{"routePrefix":"v1"}},"functionTimeout":"00:10:00"}`,
			want: HostConfig{Version: "2.0", DefaultExecutablePath: "handler", EnableForwardingHTTPRequest: true, RoutePrefix: "v1", FunctionTimeout: 10 * time.Minute},
		},
		{
			name:     "proxying",
			hostJSON: `{"version":"2.0","customHandler":{"description":{"defaultExecutablePath":"handler"},"enableProxyingHttpRequest":true}}`,
			want:     HostConfig{Version: "2.0", DefaultExecutablePath: "handler", EnableProxyingHTTPRequest: true, RoutePrefix: "api"},
		},
		{
			name:     "defaults",
			hostJSON: `{"version":"2.0"}`,
			want:     HostConfig{Version: "2.0", RoutePrefix: "api"},
		},
		{
			name:     "empty route prefix and unlimited timeout",
			hostJSON: `{"version":"2.0","extensions":{"http":{"routePrefix":""}},"functionTimeout":"-1"}`,
			want:     HostConfig{Version: "2.0", RoutePrefix: ""},
		},
		{
			name:     "timeout with days and fraction",
			hostJSON: `{"functionTimeout":"1.02:03:04.5"}`,
			want:     HostConfig{RoutePrefix: "api", FunctionTimeout: 26*time.Hour + 3*time.Minute + 4500*time.Millisecond},
		},
		{name: "bad timeout", hostJSON: `{"functionTimeout":"ten minutes"}`, wantErr: "functionTimeout"},
		{name: "malformed", hostJSON: `{"version":`, wantErr: "host.json"},
		{name: "missing", wantErr: "host.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.hostJSON != "" {
				writeFile(t, filepath.Join(dir, "host.json"), tt.hostJSON)
			}
			got, err := LoadHost(dir, NewSettings(nil))
			checkHost(t, got, err, tt.want, tt.wantErr)
		})
	}
}

// TestLoadHostAppliesAppSettingOverrides: the host reads host.json through .NET
// configuration, where an app setting AzureFunctionsJobHost__<path> overrides the value
// at <path> (ConfigurationSectionNames.JobHost; HttpWorkerOptionsSetup reads
// customHandler from that section, ScriptJobHostOptionsSetup functionTimeout; Microsoft's
// host.json reference, "Override host.json values"). Keys are case-insensitive, "__" and
// ':' both separate sections, and every value HostConfig holds but Version follows them.
func TestLoadHostAppliesAppSettingOverrides(t *testing.T) {
	const hostJSON = `{"version":"2.0","functionTimeout":"00:10:00","extensions":{"http":{"routePrefix":"api"}},
		"customHandler":{"description":{"defaultExecutablePath":"handler"},"enableProxyingHttpRequest":true}}`
	fromFile := HostConfig{Version: "2.0", DefaultExecutablePath: "handler", EnableProxyingHTTPRequest: true, RoutePrefix: "api", FunctionTimeout: 10 * time.Minute}
	with := func(change func(*HostConfig)) HostConfig {
		c := fromFile
		change(&c)
		return c
	}
	tests := []struct {
		name     string
		settings map[string]string
		want     HostConfig
		wantErr  string
	}{
		{name: "none", want: fromFile},
		{name: "unrelated settings", settings: map[string]string{"AzureFunctionsJobHostX": "1", "AzureWebJobsStorage": "x", "functionTimeout": "00:01:00"}, want: fromFile},
		{name: "functionTimeout", settings: map[string]string{"AzureFunctionsJobHost__functionTimeout": "00:05:00"},
			want: with(func(c *HostConfig) { c.FunctionTimeout = 5 * time.Minute })},
		{name: "functionTimeout, any case, ':' separator", settings: map[string]string{"azurefunctionsjobhost:FUNCTIONTIMEOUT": "01:00:00"},
			want: with(func(c *HostConfig) { c.FunctionTimeout = time.Hour })},
		{name: "functionTimeout -1 is no limit", settings: map[string]string{"AzureFunctionsJobHost__functionTimeout": "-1"},
			want: with(func(c *HostConfig) { c.FunctionTimeout = 0 })},
		{name: "routePrefix", settings: map[string]string{"AzureFunctionsJobHost__extensions__http__routePrefix": "v1"},
			want: with(func(c *HostConfig) { c.RoutePrefix = "v1" })},
		{name: "routePrefix empty is no prefix", settings: map[string]string{"AzureFunctionsJobHost__extensions__http__routePrefix": ""},
			want: with(func(c *HostConfig) { c.RoutePrefix = "" })},
		{name: "routePrefix, mixed separators", settings: map[string]string{"AZUREFUNCTIONSJOBHOST:Extensions__HTTP:RoutePrefix": "/v2/"},
			want: with(func(c *HostConfig) { c.RoutePrefix = "v2" })},
		{name: "proxying off, forwarding on", settings: map[string]string{
			"AzureFunctionsJobHost__customHandler__enableProxyingHttpRequest":   "False",
			"AzureFunctionsJobHost__customHandler__enableForwardingHttpRequest": "TRUE"},
			want: with(func(c *HostConfig) { c.EnableProxyingHTTPRequest, c.EnableForwardingHTTPRequest = false, true })},
		{name: "executable", settings: map[string]string{"AzureFunctionsJobHost__customHandler__description__defaultExecutablePath": "bin/handler"},
			want: with(func(c *HostConfig) { c.DefaultExecutablePath = "bin/handler" })},
		{name: "two spellings, same value", settings: map[string]string{"AzureFunctionsJobHost__functionTimeout": "00:05:00", "AzureFunctionsJobHost:functionTimeout": "00:05:00"},
			want: with(func(c *HostConfig) { c.FunctionTimeout = 5 * time.Minute })},
		{name: "two spellings, different values", settings: map[string]string{"AzureFunctionsJobHost__functionTimeout": "00:05:00", "AzureFunctionsJobHost:functionTimeout": "00:06:00"},
			wantErr: "both override host.json's functiontimeout"},
		{name: "bad timeout names the setting", settings: map[string]string{"AzureFunctionsJobHost__functionTimeout": "five"},
			wantErr: "app setting AzureFunctionsJobHost__functionTimeout"},
		{name: "bad flag names the setting", settings: map[string]string{"AzureFunctionsJobHost__customHandler__enableProxyingHttpRequest": "yes"},
			wantErr: "AzureFunctionsJobHost__customHandler__enableProxyingHttpRequest"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, "host.json"), hostJSON)
			got, err := LoadHost(dir, NewSettings(tt.settings))
			checkHost(t, got, err, tt.want, tt.wantErr)
		})
	}
}

// checkHost holds LoadHost's answer to want, or to an error mentioning wantErr.
func checkHost(t *testing.T, got HostConfig, err error, want HostConfig, wantErr string) {
	t.Helper()
	if wantErr != "" {
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("err = %v, want one mentioning %q", err, wantErr)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestLoadFunction(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "copystatus", "function.json"),
		`{"bindings":[{"type":"timerTrigger","direction":"in","name":"timer","schedule":"%COPY_STATUS_SCHEDULE%","runOnStartup":true,"useMonitor":false}]}`)
	writeFile(t, filepath.Join(dir, "copyfn", "function.json"),
		`{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","authLevel":"function","methods":["post"],"route":"copies"},{"type":"http","direction":"out","name":"res"}]}`)
	writeFile(t, filepath.Join(dir, "broken", "function.json"), `{"bindings":[`)

	timer, err := LoadFunction(dir, "copystatus")
	if err != nil {
		t.Fatal(err)
	}
	b, ok := timer.TimerBinding()
	if !ok {
		t.Fatal("TimerBinding not found")
	}
	if b.Name != "timer" || b.Direction != "in" || b.Schedule != "%COPY_STATUS_SCHEDULE%" || !b.RunOnStartup || b.UseMonitor == nil || *b.UseMonitor {
		t.Errorf("timer binding = %+v", b)
	}
	if timer.Name != "copystatus" {
		t.Errorf("Name = %q", timer.Name)
	}

	httpFn, err := LoadFunction(dir, "copyfn")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := httpFn.TimerBinding(); ok {
		t.Error("HTTP function reports a timer binding")
	}
	trigger := httpFn.Bindings[0]
	if len(httpFn.Bindings) != 2 || trigger.AuthLevel != "function" || trigger.Route != "copies" || len(trigger.Methods) != 1 || trigger.Methods[0] != "post" {
		t.Errorf("bindings = %+v", httpFn.Bindings)
	}

	for _, name := range []string{"broken", "missing", "../copyfn", ""} {
		if _, err := LoadFunction(dir, name); err == nil {
			t.Errorf("LoadFunction(%q) succeeded, want error", name)
		}
	}
	if _, err := LoadFunction(dir, "broken"); err == nil || !strings.Contains(err.Error(), filepath.Join("broken", "function.json")) {
		t.Errorf("error %v does not name the file", err)
	}
}
