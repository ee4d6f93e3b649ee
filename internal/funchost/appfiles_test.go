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
			got, err := LoadHost(dir)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
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
