package api_test

import (
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/blobcopy/blobcopy/internal/api"
	batchsvc "github.com/blobcopy/blobcopy/internal/batch"
	"github.com/blobcopy/blobcopy/internal/batch/batchtest"
	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/copyjob/copyjobtest"
	"github.com/blobcopy/blobcopy/internal/redact"
	"github.com/blobcopy/blobcopy/internal/testenv/syncbuf"
)

// TestBatchSourceWithUserInfoIsRefusedAndNeverShown: POST /api/batches with a source
// carrying user info (https://user:password@account.blob...) answers 400 InvalidRequest
// on source, in a single copy's words, without the password, and nothing is stored
// or logged with it; a batch recorded before that refusal (its source holding a
// password) is shown with the password replaced, as a copy's source is (redact.URL), by
// GET /api/batches/{id} and GET /api/batches. The logger is the handler's own chain
// (cmd/handler main.go: redact.NewHandler).
func TestBatchSourceWithUserInfoIsRefusedAndNeverShown(t *testing.T) {
	var logs syncbuf.Buffer
	log := slog.New(redact.NewHandler(slog.NewJSONHandler(&logs, nil)))
	env := copyjobtest.NewEnv()
	store := batchtest.NewStore(env.Records)
	f, _ := newBatchServer(t, env, store, log, api.Auth{Keys: []string{key}})

	body := fmt.Sprintf(`{"source":"https://svc:S3cretPassw0rd@%s/src/in/","destination":{"container":"dst","prefix":"p/"}}`, copyjobtest.DefaultHost)
	r := f.do(t, "POST", "/api/batches", []byte(body), nil)
	e := r.azureError(t)
	if r.status != http.StatusBadRequest || e.Error.Code != string(copyjob.CodeInvalidRequest) || e.Error.Target != "source" ||
		e.Error.Message != batchsvc.UserInfoRefused || strings.Contains(string(r.body), "S3cretPassw0rd") {
		t.Errorf("POST /api/batches with a password in the source: %d %s, want 400 InvalidRequest on source: %q", r.status, r.body, batchsvc.UserInfoRefused)
	}
	if store.Writes != 0 {
		t.Errorf("%d batch records written for a refused source", store.Writes)
	}

	// A batch recorded before user info was refused.
	ok := f.do(t, "POST", "/api/batches", fmt.Appendf(nil, `{"source":"https://%s/src/in/","destination":{"container":"dst","prefix":"p/"}}`, copyjobtest.DefaultHost), nil)
	if ok.status != http.StatusAccepted {
		t.Fatalf("POST /api/batches: %d %s", ok.status, ok.body)
	}
	var id string
	for _, b := range mustList(t, store) {
		id = b.ID
	}
	store.Modify(id, func(b *batchsvc.Batch) {
		b.SourceURL = "https://svc:S3cretPassw0rd@" + copyjobtest.DefaultHost + "/src/in/"
	})
	for _, path := range []string{"/api/batches/" + id, "/api/batches"} {
		g := f.do(t, "GET", path, nil, nil)
		if g.status != http.StatusOK || strings.Contains(string(g.body), "S3cretPassw0rd") || !strings.Contains(string(g.body), "svc:REDACTED@") {
			t.Errorf("GET %s: %d %s, want the source with its password replaced", path, g.status, g.body)
		}
	}
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "S3cretPassw0rd") {
			t.Errorf("a log line carries the password: %s", line)
		}
	}
}

func mustList(t *testing.T, store *batchtest.Store) []*batchsvc.Batch {
	t.Helper()
	page, err := store.List(t.Context(), batchsvc.ListOptions{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return page.Batches
}
