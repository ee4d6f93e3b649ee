package api_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/blobcopy/blobcopy/internal/api"
	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/copyjob/copyjobtest"
	"github.com/blobcopy/blobcopy/internal/rules"
)

const key = "test-function-key"

var quiet = slog.New(slog.DiscardHandler)

type fixture struct {
	env *copyjobtest.Env
	srv *httptest.Server
}

// The fake's accounts as the policy knows them: the app's own, and the account of
// Azure's documentation samples ("my-storage-account", alias "docs").
var (
	appAccount  = api.Account{Alias: "", Name: "app", BlobEndpoint: "https://" + copyjobtest.DefaultHost}
	docsAccount = api.Account{Alias: "docs", Name: "my-storage-account", BlobEndpoint: "https://" + docsHost}
)

const docsHost = "my-storage-account.blob.core.windows.net"

func newFixture(t testing.TB, policy api.Policy, rs []rules.Rule) *fixture {
	t.Helper()
	env := copyjobtest.NewEnv()
	env.Notifier = copyjobtest.NewNotifier()
	env.Blobs.AddAccount("docs", docsHost)
	svc := env.Service(copyjob.Config{})
	if policy.CallbackHosts == nil {
		policy.CallbackHosts = []string{"hooks.example.com"}
	}
	if policy.Accounts == nil {
		policy.Accounts = []api.Account{appAccount, docsAccount}
	}
	s := api.NewServer(svc, api.Options{
		Policy: policy,
		Auth:   api.Auth{Keys: []string{"other-key", key}},
		Rules:  rs,
		Events: api.EventOptions{CopyStates: env.Blobs},
		Logger: quiet,
	})
	mux := http.NewServeMux()
	s.Routes(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &fixture{env: env, srv: srv}
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

func (f *fixture) do(t testing.TB, method, path string, body []byte, header map[string]string) reply {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("x-functions-key", key)
	for k, v := range header {
		if v == "" {
			req.Header.Del(k)
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header, b}
}

// azureError decodes and checks the Azure error shape and the x-ms-error-code header.
func (r reply) azureError(t testing.TB) api.ErrorResponse {
	t.Helper()
	var e api.ErrorResponse
	dec := json.NewDecoder(bytes.NewReader(r.body))
	if err := dec.Decode(&e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
		t.Fatalf("not an Azure error body (%v): %s", err, r.body)
	}
	if r.header.Get("x-ms-error-code") != e.Error.Code {
		t.Errorf("x-ms-error-code %q != body code %q", r.header.Get("x-ms-error-code"), e.Error.Code)
	}
	return e
}

const src = "https://" + copyjobtest.DefaultHost + "/src/a.txt"

func copyBody(extra string) []byte {
	return []byte(`{"source":"` + src + `","destination":{"container":"dst","blob":"a.txt"}` + extra + `}`)
}

func TestBadInput(t *testing.T) {
	f := newFixture(t, api.Policy{InternalContainers: []string{"copyjobs"}}, nil)
	long := strings.Repeat("a", 1025)
	tests := []struct {
		name   string
		body   []byte
		header map[string]string
		status int
		code   string
		target string
	}{
		{"malformed JSON", []byte(`{"source":`), nil, 400, api.CodeInvalidJSON, ""},
		{"not JSON at all", []byte(`source=x`), nil, 400, api.CodeInvalidJSON, ""},
		{"empty body", nil, nil, 400, api.CodeInvalidJSON, ""},
		{"array", []byte(`[1,2]`), map[string]string{"Content-Type": "application/json"}, 400, "InvalidEventDelivery", ""},
		{"unknown field", copyBody(`,"colour":"red"`), nil, 400, api.CodeUnknownField, "colour"},
		{"wrong type", []byte(`{"source":42,"destination":{"container":"dst","blob":"a"}}`), nil, 400, api.CodeInvalidJSON, "source"},
		{"wrong nested type", []byte(`{"source":"` + src + `","destination":{"container":"dst","blob":["a"]}}`), nil, 400, api.CodeInvalidJSON, "destination.blob"},
		{"trailing data", append(copyBody(""), []byte(`{}`)...), nil, 400, api.CodeInvalidJSON, ""},
		{"missing source", []byte(`{"destination":{"container":"dst","blob":"a"}}`), nil, 400, "InvalidRequest", "source"},
		{"missing destination", []byte(`{"source":"` + src + `"}`), nil, 400, "InvalidRequest", "destination"},
		{"ftp source", []byte(`{"source":"ftp://h/a","destination":{"container":"dst","blob":"a"}}`), nil, 400, "InvalidRequest", "source"},
		{"relative source", []byte(`{"source":"/src/a","destination":{"container":"dst","blob":"a"}}`), nil, 400, "InvalidRequest", "source"},
		{"javascript source", []byte(`{"source":"javascript:alert(1)","destination":{"container":"dst","blob":"a"}}`), nil, 400, "InvalidRequest", "source"},
		{"container upper case", []byte(`{"source":"` + src + `","destination":{"container":"Dst","blob":"a"}}`), nil, 400, api.CodeInvalidContainerName, "destination.container"},
		{"container too short", []byte(`{"source":"` + src + `","destination":{"container":"ab","blob":"a"}}`), nil, 400, api.CodeInvalidContainerName, "destination.container"},
		{"container double hyphen", []byte(`{"source":"` + src + `","destination":{"container":"a--b","blob":"a"}}`), nil, 400, api.CodeInvalidContainerName, "destination.container"},
		{"blob empty", []byte(`{"source":"` + src + `","destination":{"container":"dst","blob":""}}`), nil, 400, api.CodeInvalidBlobName, "destination.blob"},
		{"blob too long", []byte(`{"source":"` + src + `","destination":{"container":"dst","blob":"` + long + `"}}`), nil, 400, api.CodeInvalidBlobName, "destination.blob"},
		{"blob ends with dot", []byte(`{"source":"` + src + `","destination":{"container":"dst","blob":"a."}}`), nil, 400, api.CodeInvalidBlobName, "destination.blob"},
		{"blob control char", []byte(`{"source":"` + src + `","destination":{"container":"dst","blob":"a\u0001b"}}`), nil, 400, api.CodeInvalidBlobName, "destination.blob"},
		{"bad tier", copyBody(`,"tier":"Lukewarm"`), nil, 400, "InvalidTier", "tier"},
		{"bad metadata name", copyBody(`,"metadata":{"1abc":"x"}`), nil, 400, "InvalidMetadata", "metadata.1abc"},
		{"too many tags", copyBody(`,"tags":{"a":"1","b":"1","c":"1","d":"1","e":"1","f":"1","g":"1","h":"1","i":"1","j":"1","k":"1"}`), nil, 400, "InvalidTags", "tags"},
		{"absurd SAS lifetime", copyBody(`,"sasLifetime":"9000h"`), nil, 400, "InvalidRequest", "sasLifetime"},
		{"unparsable SAS lifetime", copyBody(`,"sasLifetime":"soon"`), nil, 400, "InvalidRequest", "sasLifetime"},
		{"lease on an external source", []byte(`{"source":"https://example.com/f","destination":{"container":"dst","blob":"a"},"leaseSource":true}`), nil, 400, "InvalidRequest", "leaseSource"},
		{"unknown account", []byte(`{"source":"` + src + `","destination":{"account":"nope","container":"dst","blob":"a"}}`), nil, 400, "InvalidRequest", "destination.account"},
		{"callback not allowed", copyBody(`,"callbackUrl":"https://evil.example.net/x"`), nil, 403, "CallbackNotAllowed", "callbackUrl"},
		{"http source off loopback", []byte(`{"source":"http://example.com/f","destination":{"container":"dst","blob":"a"}}`), nil, 403, "SourceNotAllowed", "source"},
		{"internal container", []byte(`{"source":"` + src + `","destination":{"container":"copyjobs","blob":"a"}}`), nil, 403, "DestinationNotAllowed", "destination.container"},
		{"xml content type", copyBody(""), map[string]string{"Content-Type": "application/xml"}, 415, api.CodeUnsupportedMedia, ""},
		{"oversized body", append([]byte(`{"source":"`+src+`","metadata":{"a":"`), bytes.Repeat([]byte("x"), api.MaxBodyBytes)...), nil, 413, api.CodeRequestTooLarge, ""},
		{"idempotency key too long", copyBody(""), map[string]string{"Idempotency-Key": strings.Repeat("k", 300)}, 400, "InvalidRequest", "Idempotency-Key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := f.do(t, http.MethodPost, "/api/copies", tt.body, tt.header)
			if r.status != tt.status {
				t.Fatalf("status = %d, want %d: %s", r.status, tt.status, r.body)
			}
			e := r.azureError(t)
			if e.Error.Code != tt.code || (tt.target != "" && e.Error.Target != tt.target) {
				t.Errorf("error = %+v, want code %s target %q", e.Error, tt.code, tt.target)
			}
		})
	}
	if n := len(f.env.Blobs.StartCopyCalls()); n != 0 {
		t.Errorf("bad input started %d copies", n)
	}
}

func TestStandaloneKeyCheck(t *testing.T) {
	f := newFixture(t, api.Policy{}, nil)
	tests := []struct {
		name   string
		path   string
		header map[string]string
		status int
	}{
		{"no key", "/api/copies/x", map[string]string{"x-functions-key": ""}, 401},
		{"wrong key", "/api/copies/x", map[string]string{"x-functions-key": "nope"}, 401},
		{"prefix of the key", "/api/copies/x", map[string]string{"x-functions-key": key[:4]}, 401},
		{"header key", "/api/copies/x", nil, 404},
		{"second configured key", "/api/copies/x", map[string]string{"x-functions-key": "other-key"}, 404},
		{"code query", "/api/copies/x?code=" + key, map[string]string{"x-functions-key": ""}, 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := f.do(t, http.MethodGet, tt.path, nil, tt.header)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			if tt.status == 401 && r.azureError(t).Error.Code != api.CodeUnauthorized {
				t.Errorf("code = %s", r.body)
			}
		})
	}
}

func TestAllowlists(t *testing.T) {
	f := newFixture(t, api.Policy{
		AllowedDestinations: []string{"default/backup-*", "other/archive"},
		AllowedSourceHosts:  []string{"*.blob.core.windows.net"},
	}, nil)
	f.env.Blobs.Put(copyjob.BlobRef{Container: "src", Blob: "a.txt"}, 10, nil)
	tests := []struct {
		name, body string
		status     int
		code       string
	}{
		{"allowed", `{"source":"` + src + `","destination":{"container":"backup-2026","blob":"a"}}`, 202, ""},
		{"allowed other account", `{"source":"` + src + `","destination":{"account":"other","container":"archive","blob":"a"}}`, 202, ""},
		{"destination not allowed", `{"source":"` + src + `","destination":{"container":"public","blob":"a"}}`, 403, "DestinationNotAllowed"},
		{"source host not allowed", `{"source":"https://evil.example.com/a","destination":{"container":"backup-1","blob":"a"}}`, 403, "SourceNotAllowed"},
		{"suffix trick", `{"source":"https://blob.core.windows.net.evil.com/a","destination":{"container":"backup-1","blob":"a"}}`, 403, "SourceNotAllowed"},
		// Read as storage reads the host: an allowed host spelled in fullwidth letters
		// is allowed (and copied from its ASCII name), a spelling no stack reads is not.
		{"allowed host in fullwidth letters", `{"source":"` + strings.Replace(src, "https://a", "https://\uff41", 1) + `","destination":{"container":"backup-3","blob":"a"}}`, 202, ""},
		{"fullwidth full stop before the suffix", `{"source":"https://blob\uff0ecore\uff0ewindows\uff0enet\uff0eevil.com/a","destination":{"container":"backup-1","blob":"a"}}`, 403, "SourceNotAllowed"},
		{"a backslash in the path", `{"source":"https://app.blob.core.windows.net/src\\a.txt","destination":{"container":"backup-1","blob":"a"}}`, 400, "InvalidRequest"},
		{"a host no stack reads", `{"source":"https://a\u200db.blob.core.windows.net/a","destination":{"container":"backup-1","blob":"a"}}`, 400, "InvalidRequest"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := f.do(t, http.MethodPost, "/api/copies", []byte(tt.body), nil)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			if tt.code != "" && r.azureError(t).Error.Code != tt.code {
				t.Errorf("body %s", r.body)
			}
		})
	}
}

func TestIdempotencyKey(t *testing.T) {
	f := newFixture(t, api.Policy{}, nil)
	f.env.Blobs.Put(copyjob.BlobRef{Container: "src", Blob: "a.txt"}, 10, nil)
	first := f.do(t, http.MethodPost, "/api/copies", copyBody(""), map[string]string{"Idempotency-Key": "order-42"})
	if first.status != 202 {
		t.Fatalf("first: %d %s", first.status, first.body)
	}
	for _, h := range []string{"Idempotency-Key", "Repeatability-Request-ID"} {
		again := f.do(t, http.MethodPost, "/api/copies", copyBody(""), map[string]string{h: "order-42"})
		if again.status != 202 || again.header.Get("Location") != first.header.Get("Location") || again.header.Get("Idempotent-Replayed") != "true" {
			t.Errorf("%s retry: %d %v %s", h, again.status, again.header, again.body)
		}
	}
	other := f.do(t, http.MethodPost, "/api/copies", copyBody(`,"tier":"Cool"`), map[string]string{"Idempotency-Key": "order-42"})
	if other.status != http.StatusUnprocessableEntity || other.azureError(t).Error.Code != string(copyjob.CodeIdempotencyMismatch) {
		t.Errorf("same key, other body: %d %s", other.status, other.body)
	}
	if n := len(f.env.Blobs.StartCopyCalls()); n != 1 {
		t.Errorf("copies started = %d, want 1", n)
	}
	if n := f.env.Queue.Len(); n != 1 {
		t.Errorf("tracking messages = %d, want 1", n)
	}
}

func TestPendingCopyConflictNamesTheOwner(t *testing.T) {
	f := newFixture(t, api.Policy{}, nil)
	f.env.Blobs.Put(copyjob.BlobRef{Container: "src", Blob: "a.txt"}, 10, nil)
	first := f.do(t, http.MethodPost, "/api/copies", copyBody(""), nil)
	if first.status != 202 {
		t.Fatalf("first: %d %s", first.status, first.body)
	}
	var owner api.JobView
	if err := json.Unmarshal(first.body, &owner); err != nil {
		t.Fatal(err)
	}
	second := f.do(t, http.MethodPost, "/api/copies", copyBody(""), nil)
	if second.status != http.StatusConflict {
		t.Fatalf("second: %d %s", second.status, second.body)
	}
	e := second.azureError(t)
	if e.Error.Code != string(copyjob.CodePendingCopyOperation) || e.Job == nil || e.Job.ID != owner.ID || e.Job.CopyID != owner.CopyID {
		t.Errorf("conflict = %s", second.body)
	}
}

func TestMethodsAndRoutes(t *testing.T) {
	f := newFixture(t, api.Policy{}, nil)
	tests := []struct {
		method, path string
		status       int
		allow        string
	}{
		{http.MethodDelete, "/api/copies", 405, "GET, POST, OPTIONS"},
		{http.MethodPut, "/api/copies/abc", 405, "GET"},
		{http.MethodGet, "/api/copies/abc/abort", 405, "POST"},
		{http.MethodPost, "/api/copies/abc/abort", 404, ""},
		{http.MethodPost, "/api/copies/a%20b/abort", 400, ""},
	}
	for _, tt := range tests {
		r := f.do(t, tt.method, tt.path, nil, nil)
		if r.status != tt.status || r.header.Get("Allow") != tt.allow {
			t.Errorf("%s %s = %d Allow %q: %s", tt.method, tt.path, r.status, r.header.Get("Allow"), r.body)
		}
		r.azureError(t)
	}
}

// readFixture reads a delivery from the eventgrid package's fixtures (samples from
// Azure's documentation).
func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "eventgrid", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var errStorageDown = errors.New("storage down")
