package funchost

import (
	"maps"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadSettingsPrecedence(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "local.settings.json")
	writeFile(t, path, `{"IsEncrypted":false,"Values":{
		"FUNCTIONS_WORKER_RUNTIME":"custom",
		"AzureWebJobsStorage":"UseDevelopmentStorage=true",
		"COPY_STATUS_SCHEDULE":"*/30 * * * * *",
		"MaxCopies": 5,
		"Verbose": true},
		"Host":{"LocalHttpPort":7071}}`)

	s, err := LoadSettings(path, []string{"COPY_STATUS_SCHEDULE=0 */5 * * * *", "azurewebjobsstorage=DefaultEndpointsProtocol=https", "=C:=C:\\", "NOEQUALS"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, want string
		wantOK     bool
	}{
		{"FUNCTIONS_WORKER_RUNTIME", "custom", true},
		{"functions_worker_runtime", "custom", true},
		{"COPY_STATUS_SCHEDULE", "0 */5 * * * *", true},                 // env wins
		{"AzureWebJobsStorage", "DefaultEndpointsProtocol=https", true}, // env wins, whatever its case
		{"MaxCopies", "5", true},
		{"Verbose", "true", true},
		{"MISSING", "", false},
	}
	for _, tt := range tests {
		got, ok := s.Lookup(tt.name)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("Lookup(%q) = %q, %v; want %q, %v", tt.name, got, ok, tt.want, tt.wantOK)
		}
	}
	if got := s.Get("MISSING", "dflt"); got != "dflt" {
		t.Errorf("Get default = %q", got)
	}
	if got := s.Get("maxcopies", "1"); got != "5" {
		t.Errorf("Get = %q", got)
	}
}

func TestLoadSettingsFiles(t *testing.T) {
	tests := []struct {
		name    string
		content string // "" means no file
		wantErr string
	}{
		{name: "missing file is fine"},
		{name: "no Values", content: `{"IsEncrypted":false}`},
		{name: "malformed", content: `{"Values":{`, wantErr: "local.settings.json"},
		{name: "encrypted", content: `{"IsEncrypted":true,"Values":{}}`, wantErr: "IsEncrypted"},
		{name: "object value", content: `{"Values":{"Nested":{"a":1}}}`, wantErr: "Values.Nested"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "local.settings.json")
			if tt.content != "" {
				writeFile(t, path, tt.content)
			}
			_, err := LoadSettings(path, nil)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one mentioning %q", err, tt.wantErr)
			}
		})
	}
}

func TestSettingsResolve(t *testing.T) {
	s := NewSettings(map[string]string{"COPY_STATUS_SCHEDULE": "*/30 * * * * *", "Queue": "copies", "Empty": ""})
	tests := []struct {
		in, want, wantErr string
	}{
		{in: "%COPY_STATUS_SCHEDULE%", want: "*/30 * * * * *"},
		{in: "%copy_status_schedule%", want: "*/30 * * * * *"},
		{in: "jobs-%Queue%-%Queue%", want: "jobs-copies-copies"},
		{in: "plain", want: "plain"},
		{in: "100%%", want: "100%"},
		{in: "50% off", want: "50% off"},
		{in: "x%Empty%y", want: "xy"},
		{in: "%NOPE%", wantErr: "NOPE"},
		{in: "a %Queue% %NOPE% b", wantErr: "NOPE"},
	}
	for _, tt := range tests {
		got, err := s.Resolve(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Resolve(%q) err = %v, want one naming %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Resolve(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestSettingsWithPrefix(t *testing.T) {
	s, err := LoadSettings("", []string{
		"AzureWebJobsStorage=ignored",
		"AzureWebJobsStorage__accountName=acct",
		"azurewebjobsstorage__CREDENTIAL=managedidentity",
		"Other__accountName=x",
	})
	if err != nil {
		t.Fatal(err)
	}
	got := s.WithPrefix("AzureWebJobsStorage__")
	want := map[string]string{
		"AzureWebJobsStorage__accountName": "acct",
		"azurewebjobsstorage__CREDENTIAL":  "managedidentity",
	}
	if !maps.Equal(got, want) {
		t.Errorf("WithPrefix = %v, want %v", got, want)
	}
}

// Settings must satisfy config.Lookup (checked structurally to keep the
// packages independent).
var _ interface{ Lookup(string) (string, bool) } = Settings{}
