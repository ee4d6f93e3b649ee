package app_test

import (
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/funchost"

	"github.com/blobcopy/blobcopy/internal/app"
)

// The app's records container is never a copy's source: a record holds what answers
// redact (a callback URL's token) and other owners' jobs, and the app would sign the
// SAS that reads it. Refused like a destination there (403), for a single copy and
// for a batch.
func TestRecordsContainerIsNeverASourceThroughAnyPath(t *testing.T) {
	h := newHarness(t, nil)
	first := h.startCopy(map[string]any{
		"source":      h.upload("devstoreaccount1", "src", "a.txt", []byte("hello")),
		"destination": map[string]any{"container": "dst", "blob": "a.txt"},
		"callbackUrl": "http://127.0.0.1:9/hook?code=CALLBACKSECRET",
	})
	if first.status != http.StatusOK && first.status != http.StatusAccepted {
		t.Fatalf("first start: %d %s", first.status, first.body)
	}
	id := first.job(t).ID
	record := h.az.BlobEndpoint("devstoreaccount1") + "/" + app.DefaultRecords + "/jobs/" + id + ".json"
	for _, tt := range []struct {
		name string
		path string
		body map[string]any
	}{
		{"a record as a copy's source", "/api/copies", map[string]any{"source": record,
			"destination": map[string]any{"account": "acct2", "container": "loot", "blob": "stolen.json"}}},
		{"a record as a copy's source, upper-case container", "/api/copies", map[string]any{
			"source":      strings.Replace(record, "/"+app.DefaultRecords+"/", "/"+strings.ToUpper(app.DefaultRecords)+"/", 1),
			"destination": map[string]any{"account": "acct2", "container": "loot", "blob": "stolen2.json"}}},
		{"the records container as a batch's source", "/api/batches", map[string]any{
			"source":      h.az.BlobEndpoint("devstoreaccount1") + "/" + app.DefaultRecords + "/",
			"destination": map[string]any{"account": "acct2", "container": "steal"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := h.do(http.MethodPost, tt.path, tt.body, nil)
			if r.status != http.StatusForbidden || r.errorResponse(t).Error.Code != "SourceNotAllowed" {
				t.Fatalf("answered %d %s, want 403 SourceNotAllowed", r.status, r.body)
			}
		})
	}
	h.app.Copies.Wait()
	for _, c := range []string{"loot", "steal"} {
		pager := h.blobClient("acct2").NewListBlobsFlatPager(c, nil)
		for pager.More() {
			page, err := pager.NextPage(t.Context())
			if err != nil {
				break // the container was never created: nothing was copied
			}
			for _, b := range page.Segment.BlobItems {
				t.Errorf("a record was copied out: acct2/%s/%s", c, *b.Name)
			}
		}
	}
}

// A second alias of the app's own storage account reaches its records too: the app
// protects them through it.
func TestRecordsAreInternalThroughEveryAliasOfTheOwnAccount(t *testing.T) {
	a, err := app.New(repoRoot(t), funchost.NewSettings(map[string]string{
		"FUNCTIONS_WORKER_RUNTIME": "custom",
		"AzureWebJobsStorage":      stubConnectionString(),
		"COPY_ACCOUNT_SAME":        stubConnectionString(),
		"BLOBCOPY_AUTH_DISABLED":   "true",
		"BLOBCOPY_LISTEN_ADDRESS":  "127.0.0.1:0",
		"COPY_STATUS_SCHEDULE":     "0 0 0 1 1 *",
	}), app.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	cfg := a.Copies.Config()
	for _, alias := range []string{"", "same"} {
		if !cfg.Internal(copyjob.BlobRef{Account: alias, Container: app.DefaultRecords}) {
			t.Errorf("the records container through alias %q is not internal: %+v", alias, cfg.InternalContainers)
		}
	}
	if cfg.Internal(copyjob.BlobRef{Container: "data"}) {
		t.Error("a user container is internal")
	}
}
