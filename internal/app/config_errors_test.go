package app_test

import (
	"strings"
	"testing"

	"github.com/blobcopy/blobcopy/internal/app"
	"github.com/blobcopy/blobcopy/internal/funchost"
)

// TestSecuritySettingsAreCheckedAtStartUp: a malformed signing secret, event concurrency
// or a rule whose callback the policy refuses stops start-up naming the setting.
func TestSecuritySettingsAreCheckedAtStartUp(t *testing.T) {
	base := map[string]string{
		"FUNCTIONS_WORKER_RUNTIME": "custom", "AzureWebJobsStorage": "UseDevelopmentStorage=true",
		"COPY_STATUS_SCHEDULE": "*/30 * * * * *", "BLOBCOPY_AUTH_DISABLED": "true", "BLOBCOPY_LISTEN_ADDRESS": "127.0.0.1:0",
		"COPY_CALLBACK_ALLOWED_HOSTS": "hooks.example.com",
	}
	tests := []struct {
		name, setting, value, want string
	}{
		{"secret not base64", "COPY_CALLBACK_SECRET", "whsec_not base64!", "COPY_CALLBACK_SECRET"},
		{"secret too short", "COPY_CALLBACK_SECRET", "whsec_c2hvcnQ=", "COPY_CALLBACK_SECRET"},
		{"concurrency", "COPY_EVENT_CONCURRENCY", "0", "COPY_EVENT_CONCURRENCY"},
		// Azure Queue hides a message for at most 7 days: every tick's dequeue would fail.
		{"poll interval of a week", "COPY_MAX_POLL_INTERVAL", "168h", "COPY_MAX_POLL_INTERVAL"},
		{"callback delays not durations", "COPY_CALLBACK_RETRY_DELAYS", "5s,soon", "COPY_CALLBACK_RETRY_DELAYS"},
		{"a callback delay of a week", "COPY_CALLBACK_RETRY_DELAYS", "5s,168h", "COPY_CALLBACK_RETRY_DELAYS"},
		{"rule callback over http", "COPY_RULES", `[{"name":"r","sourceContainer":"in","destination":{"container":"out"},"callbackUrl":"http://hooks.example.com/x"}]`, "COPY_RULES"},
		{"rule callback elsewhere", "COPY_RULES", `[{"name":"r","sourceContainer":"in","destination":{"container":"out"},"callbackUrl":"https://evil.example.com/x"}]`, "COPY_RULES"},
	}
	for _, tt := range tests {
		values := map[string]string{tt.setting: tt.value}
		for k, v := range base {
			values[k] = v
		}
		_, err := app.New(repoRoot(t), funchost.NewSettings(values), app.Options{})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want one naming %s", tt.name, err, tt.want)
		}
	}
	values := map[string]string{"COPY_CALLBACK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "COPY_EVENT_CONCURRENCY": "32"}
	for k, v := range base {
		values[k] = v
	}
	if _, err := app.New(repoRoot(t), funchost.NewSettings(values), app.Options{}); err != nil {
		t.Errorf("valid settings: %v", err)
	}
}
