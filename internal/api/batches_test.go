package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/blobcopy/blobcopy/internal/api"
	batchsvc "github.com/blobcopy/blobcopy/internal/batch"
	"github.com/blobcopy/blobcopy/internal/batch/batchtest"
	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/copyjob/copyjobtest"
)

// newBatchFixture is a server with batches on the fakes, the client principal trusted.
func newBatchFixture(t *testing.T) (*fixture, *batchsvc.Service) {
	t.Helper()
	env := copyjobtest.NewEnv()
	f, batches := newBatchServer(t, env, batchtest.NewStore(env.Records), quiet, api.Auth{Keys: []string{key}, TrustClientPrincipal: true})
	for i := range 3 {
		env.Blobs.Put(copyjob.BlobRef{Container: "src", Blob: fmt.Sprintf("in/s%d.bin", i)}, 10, nil)
	}
	return f, batches
}

// newBatchServer serves the copy and batch APIs over env's fakes, the batches kept in
// store, the app's own account configured, everything logged to log.
func newBatchServer(t *testing.T, env *copyjobtest.Env, store batchsvc.Store, log *slog.Logger, auth api.Auth) (*fixture, *batchsvc.Service) {
	t.Helper()
	copies := env.Service(copyjob.Config{})
	batches := batchsvc.NewService(batchsvc.Deps{Copies: copies, Records: env.Records, Blobs: env.Blobs,
		Store: store, Storage: batchtest.NewStorage(env.Blobs)}, batchsvc.Config{Now: env.Clock.Now}, log)
	s := api.NewServer(copies, api.Options{
		Policy:  api.Policy{Accounts: []api.Account{appAccount}, InternalContainers: []string{"copyjobs"}},
		Auth:    auth,
		Logger:  log,
		Batches: batches,
	})
	mux := http.NewServeMux()
	s.Routes(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &fixture{env: env, srv: srv}, batches
}

func (f *fixture) startBatchAs(t *testing.T, p, prefix string) api.BatchView {
	t.Helper()
	body := fmt.Sprintf(`{"source":"https://%s/src/in/","destination":{"container":"dst","prefix":%q}}`, copyjobtest.DefaultHost, prefix)
	r := f.do(t, "POST", "/api/batches", []byte(body), as(p))
	if r.status != http.StatusAccepted {
		t.Fatalf("POST /api/batches as %q: %d %s", p, r.status, r.body)
	}
	var v api.BatchView
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestBatchesAreScopedToTheirOwner: another owner's batch answers as a missing one (GET,
// abort), lists show the caller's own, Copies.ReadAll reads every batch but aborts only
// its own, Copies.Admin aborts any; the children carry the batch's owner.
func TestBatchesAreScopedToTheirOwner(t *testing.T) {
	f, batches := newBatchFixture(t)
	mine := f.startBatchAs(t, alice, "a/")
	f.startBatchAs(t, bob, "b/")
	if _, err := batches.Tick(context.Background()); err != nil { // the children start
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, method, path, caller string
		want                       int
	}{
		{"owner reads", "GET", "/api/batches/" + mine.ID, alice, http.StatusOK},
		{"another owner reads", "GET", "/api/batches/" + mine.ID, bob, http.StatusNotFound},
		{"key caller reads", "GET", "/api/batches/" + mine.ID, "", http.StatusNotFound},
		{"reader reads", "GET", "/api/batches/" + mine.ID, reader, http.StatusOK},
		{"another owner aborts", "POST", "/api/batches/" + mine.ID + "/abort", bob, http.StatusNotFound},
		{"reader aborts", "POST", "/api/batches/" + mine.ID + "/abort", reader, http.StatusForbidden},
		{"admin aborts", "POST", "/api/batches/" + mine.ID + "/abort", admin, http.StatusAccepted},
	} {
		r := f.do(t, tc.method, tc.path, nil, as(tc.caller))
		if r.status != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.name, r.status, r.body, tc.want)
		}
	}
	missing := f.do(t, "GET", "/api/batches/no-such-batch", nil, as(bob))
	other := f.do(t, "GET", "/api/batches/"+mine.ID, nil, as(bob))
	var a, b api.ErrorResponse
	_ = json.Unmarshal(missing.body, &a)
	_ = json.Unmarshal(other.body, &b)
	if a.Error.Code != b.Error.Code || a.Error.Target != b.Error.Target {
		t.Errorf("another owner's batch answers %s, a missing one %s", other.body, missing.body)
	}
	list := func(p string) int {
		r := f.do(t, "GET", "/api/batches", nil, as(p))
		var l api.BatchListView
		if err := json.Unmarshal(r.body, &l); err != nil || r.status != http.StatusOK {
			t.Fatalf("list as %q: %d %s", p, r.status, r.body)
		}
		return len(l.Value)
	}
	if list(alice) != 1 || list(bob) != 1 || list("") != 0 || list(reader) != 2 {
		t.Errorf("lists: alice %d, bob %d, key %d, reader %d", list(alice), list(bob), list(""), list(reader))
	}
	owners := map[string]map[string]bool{} // batch -> owners of its children
	for _, j := range f.env.Records.Jobs() {
		if owners[j.Batch] == nil {
			owners[j.Batch] = map[string]bool{}
		}
		owners[j.Batch][j.Owner] = true
	}
	if len(owners) != 2 || len(owners[mine.ID]) != 1 || owners[mine.ID][""] {
		t.Errorf("children's owners by batch: %v", owners)
	}
	r := f.do(t, "GET", "/api/copies?batch="+mine.ID, nil, as(bob))
	var l api.ListView
	if err := json.Unmarshal(r.body, &l); err != nil || len(l.Value) != 0 {
		t.Errorf("another owner lists the batch's children: %s", r.body)
	}
	r = f.do(t, "GET", "/api/copies?batch="+mine.ID, nil, as(alice))
	if err := json.Unmarshal(r.body, &l); err != nil || len(l.Value) != 3 {
		t.Errorf("the owner lists the batch's children: %s", r.body)
	}
	r = f.do(t, "GET", "/api/copies?batch=bad_id!", nil, as(alice))
	if r.status != http.StatusBadRequest {
		t.Errorf("?batch=bad_id!: %d %s", r.status, r.body)
	}
}

// TestBatchRequestValidation: bad bodies answer Azure's error naming the field.
func TestBatchRequestValidation(t *testing.T) {
	f, _ := newBatchFixture(t)
	src := "https://" + copyjobtest.DefaultHost + "/src/in/"
	for _, tc := range []struct {
		body, target string
		status       int
	}{
		{`{"destination":{"container":"dst"}}`, "source", http.StatusBadRequest},
		{`{"source":"` + src + `"}`, "destination", http.StatusBadRequest},
		{`{"source":"` + src + `","destination":{"container":"Bad_Name"}}`, "destination.container", http.StatusBadRequest},
		{`{"source":"` + src + `","destination":{"container":"dst"},"tier":"Lukewarm"}`, "tier", http.StatusBadRequest},
		{`{"source":"` + src + `","destination":{"container":"dst"},"requiresSync":true}`, "requiresSync", http.StatusBadRequest},
		{`{"source":"` + src + `","destination":{"container":"copyjobs"}}`, "destination.container", http.StatusForbidden},
		{`{"source":"` + src + `?sig=x","destination":{"container":"dst"}}`, "source", http.StatusBadRequest},
		{`{"source":"` + src + `","destination":{"container":"dst"},"filter":{"modifiedSince":"yesterday"}}`, "", http.StatusBadRequest},
	} {
		r := f.do(t, "POST", "/api/batches", []byte(tc.body), nil)
		var e api.ErrorResponse
		_ = json.Unmarshal(r.body, &e)
		if r.status != tc.status || (tc.target != "" && e.Error.Target != tc.target) {
			t.Errorf("%s: %d %s, want %d naming %q", tc.body, r.status, r.body, tc.status, tc.target)
		}
	}
}

// Review 10: a destination prefix with a "." or ".." segment is refused like such a
// blob name: each child is named by the prefix and its source's name past the source
// prefix ("x/.." and "/f.txt" made "x/../f.txt").
func TestBatchDestinationPrefixWithDotSegmentsIsRefused(t *testing.T) {
	f, _ := newBatchFixture(t)
	for _, prefix := range []string{"x/..", "a/.", "..", "./"} {
		body := fmt.Sprintf(`{"source":"https://%s/src/in","destination":{"container":"dst","prefix":%q}}`, copyjobtest.DefaultHost, prefix)
		r := f.do(t, "POST", "/api/batches", []byte(body), as(alice))
		if r.status != http.StatusBadRequest || r.azureError(t).Error.Code != api.CodeInvalidBlobName {
			t.Errorf("prefix %q: %d %s, want 400 %s", prefix, r.status, r.body, api.CodeInvalidBlobName)
		}
	}
}
