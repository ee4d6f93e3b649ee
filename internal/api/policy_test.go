package api_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/blobcopy/blobcopy/internal/api"
	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/rules"
)

func TestCallbackHostAllowed(t *testing.T) {
	allowed := []string{"hooks.example.com", "alt.example.com:8443", "*.logic.azure.com", "127.0.0.1", "[::1]:9000"}
	tests := []struct {
		raw  string
		want bool
	}{
		{"https://hooks.example.com/x", true},
		{"https://hooks.example.com:443/x", true},
		{"https://hooks.example.com:8443/x", false}, // a port must be named
		{"https://alt.example.com:8443/x", true},
		{"https://alt.example.com/x", false},
		{"https://prod-01.westeurope.logic.azure.com/workflows/x", true},
		{"https://evil.com/x", false},
		{"http://127.0.0.1:5555/x", true}, // loopback: any port
		{"http://[::1]:9000/x", true},
		{"http://[::1]:9001/x", false},
	}
	for _, tt := range tests {
		u, _ := url.Parse(tt.raw)
		if got := api.CallbackHostAllowed(u, allowed); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.raw, got, tt.want)
		}
	}
}

// TestCallbackPolicy: https only off loopback, allowlisted host and port, no userinfo.
func TestCallbackPolicy(t *testing.T) {
	f := newFixture(t, api.Policy{CallbackHosts: []string{"hooks.example.com", "127.0.0.1"}}, nil)
	f.env.Blobs.Put(copyjob.BlobRef{Container: "src", Blob: "a.txt"}, 1, nil)
	tests := []struct {
		callback string
		status   int
	}{
		{"http://hooks.example.com/done", http.StatusForbidden},
		{"https://hooks.example.com:8443/done", http.StatusForbidden},
		{"https://other.example.com/done", http.StatusForbidden},
		{"https://user:pw@hooks.example.com/done", http.StatusBadRequest},
		{"ftp://hooks.example.com/done", http.StatusBadRequest},
		{"https://hooks.example.com/done?sig=abc", http.StatusAccepted},
		{"http://127.0.0.1:9999/done", http.StatusAccepted},
	}
	for i, tt := range tests {
		body := []byte(`{"source":"` + src + `","destination":{"container":"dst","blob":"cb` + string(rune('a'+i)) + `.txt"},"callbackUrl":"` + tt.callback + `"}`)
		if r := f.do(t, http.MethodPost, "/api/copies", body, nil); r.status != tt.status {
			t.Errorf("%s: %d %s, want %d", tt.callback, r.status, r.body, tt.status)
		}
	}
}

// TestAnswersShowNoInternalFields: answers are the API's own types: no request hash,
// lease id, poison reason or start attempts, and the callback URL's query redacted,
// while the record keeps what the app needs.
func TestAnswersShowNoInternalFields(t *testing.T) {
	f := newFixture(t, api.Policy{}, nil)
	f.env.Blobs.Put(copyjob.BlobRef{Container: "src", Blob: "a.txt"}, 1, nil)
	callback := "https://hooks.example.com/done?sig=LOGICAPPSIG&code=FUNCKEY&api-version=1"
	r := f.do(t, http.MethodPost, "/api/copies", copyBody(`,"leaseSource":true,"callbackUrl":"`+callback+`"`), map[string]string{"Idempotency-Key": "k1"})
	if r.status != http.StatusAccepted {
		t.Fatalf("start: %d %s", r.status, r.body)
	}
	var v api.JobView
	decodeJSON(t, r.body, &v)
	get := f.do(t, http.MethodGet, "/api/copies/"+v.ID, nil, nil)
	list := f.do(t, http.MethodGet, "/api/copies", nil, nil)
	for name, body := range map[string][]byte{"start": r.body, "get": get.body, "list": list.body} {
		s := string(body)
		for _, leak := range []string{"requestHash", "poisonReason", `"attempts"`, `"id":"` + f.env.Records.Job(v.ID).Lease.ID, "LOGICAPPSIG", "FUNCKEY"} {
			if strings.Contains(s, leak) {
				t.Errorf("%s answer shows %s: %s", name, leak, s)
			}
		}
	}
	if v.Callback == nil || v.Callback.URL != "https://hooks.example.com/REDACTED?api-version=REDACTED&code=REDACTED&sig=REDACTED" {
		t.Errorf("callback view %+v", v.Callback)
	}
	if v.Lease == nil || v.Lease.State == "" {
		t.Errorf("lease view %+v", v.Lease)
	}
	rec := f.env.Records.Job(v.ID)
	if rec.Callback.URL != callback || rec.RequestHash == "" || rec.Lease.ID == "" {
		t.Errorf("record lost what the app needs: %+v", rec)
	}
}

func TestCheckRules(t *testing.T) {
	p := api.Policy{CallbackHosts: []string{"hooks.example.com"}, AllowedDestinations: []string{"default/mirror"}, InternalContainers: []string{"copyjobs"}}
	ok := rule("ok", "in", "mirror", "", false)
	ok.CallbackURL = "https://hooks.example.com/x?sig=1"
	if err := p.CheckRules([]rules.Rule{ok}); err != nil {
		t.Errorf("valid rule: %v", err)
	}
	badCallback := ok
	badCallback.CallbackURL = "http://hooks.example.com/x"
	badDestination := rule("bad", "in", "copyjobs", "", false)
	for _, r := range []rules.Rule{badCallback, badDestination} {
		if err := p.CheckRules([]rules.Rule{r}); err == nil || !strings.Contains(err.Error(), "COPY_RULES") {
			t.Errorf("%+v: err = %v", r, err)
		}
	}
}
