package app_test

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
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
	id := h.jobWithASecretInItsRecord(t)
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
		// The Functions host keeps the function keys and its locks in the same account.
		for _, c := range []string{app.DefaultRecords, "azure-webjobs-secrets", "azure-webjobs-hosts"} {
			if !cfg.Internal(copyjob.BlobRef{Account: alias, Container: c}) {
				t.Errorf("container %s through alias %q is not internal: %+v", c, alias, cfg.InternalContainers)
			}
		}
	}
	if cfg.Internal(copyjob.BlobRef{Container: "data"}) {
		t.Error("a user container is internal")
	}
}

// Review 8: the check above binds the blob the app maps a URL to, so every spelling
// that storage reads as the app's own account must be mapped, or refused. A host
// storage reads the account from (another name for the endpoint, a first label that
// is the account's name) and a path with dot or empty segments were "external" or a
// container named "." and Copy Blob, authorized by the destination's Shared Key,
// read the records through them.
func TestRecordsContainerIsNeverASourceThroughAnotherSpellingOfItsURL(t *testing.T) {
	h := newHarness(t, map[string]string{"COPY_ALLOW_HTTP_SOURCES": "true"}) // the spellings are off loopback
	id := h.jobWithASecretInItsRecord(t)
	endpoint, err := url.Parse(h.az.BlobEndpoint("devstoreaccount1"))
	if err != nil {
		t.Fatal(err)
	}
	rest := "/" + app.DefaultRecords + "/jobs/" + id + ".json"
	port := endpoint.Port()
	spellings := map[string]string{
		"localhost for the loopback address":             "http://localhost:" + port + "/devstoreaccount1" + rest,
		"a host whose first label is the account's name": "http://devstoreaccount1.example.com:" + port + rest,
		"a dot segment before the container":             "http://127.0.0.1:" + port + "/devstoreaccount1/." + rest,
		"a dot-dot segment before the container":         "http://127.0.0.1:" + port + "/devstoreaccount1/x/.." + rest,
		"an escaped dot segment":                         "http://127.0.0.1:" + port + "/devstoreaccount1/%2E" + rest,
		"an empty segment before the container":          "http://127.0.0.1:" + port + "/devstoreaccount1/" + rest,
		// Storage reads a host as the WHATWG URL standard does (IDNA mapping, IPv4
		// numbers in any base): every such spelling is the account's.
		"a fullwidth letter in the host":           "http://\uff44evstoreaccount1.example.com:" + port + rest,
		"an ideographic full stop in the host":     "http://devstoreaccount1\u3002example.com:" + port + rest,
		"a capital letter with a soft hyphen":      "http://Dev\u00adstoreaccount1.example.com:" + port + rest,
		"the loopback address in hexadecimal":      "http://0x7f.0.0.1:" + port + "/devstoreaccount1" + rest,
		"the loopback address in short form":       "http://127.1:" + port + "/devstoreaccount1" + rest,
		"the loopback address with a trailing dot": "http://127.0.0.1.:" + port + "/devstoreaccount1" + rest,
		"an escaped dot in the host":               "http://devstoreaccount1%2Eexample.com:" + port + rest,
		"an escaped fullwidth letter in the host":  "http://%EF%BD%84evstoreaccount1.example.com:" + port + rest,
	}
	n := 0
	for name, source := range spellings {
		for _, account := range []string{"", "acct2"} {
			n++
			t.Run(name+" into "+account, func(t *testing.T) {
				r := h.do(http.MethodPost, "/api/copies", map[string]any{"source": source,
					"destination": map[string]any{"account": account, "container": "loot", "blob": fmt.Sprintf("stolen-%d.json", n)}}, nil)
				if r.status != http.StatusForbidden && r.status != http.StatusBadRequest {
					t.Errorf("answered %d %s, want 400 or 403", r.status, r.body)
				}
			})
		}
	}
	h.app.Copies.Wait()
	nothingIn(t, h, "loot")
}

// jobWithASecretInItsRecord starts a copy whose record holds a callback URL's token
// (answers redact it) and returns its id.
func (h *harness) jobWithASecretInItsRecord(t *testing.T) string {
	t.Helper()
	first := h.startCopy(map[string]any{
		"source":      h.upload("devstoreaccount1", "src", "a.txt", []byte("hello")),
		"destination": map[string]any{"container": "dst", "blob": "a.txt"},
		"callbackUrl": "http://127.0.0.1:9/hook?code=CALLBACKSECRET",
	})
	if first.status != http.StatusOK && first.status != http.StatusAccepted {
		t.Fatalf("first start: %d %s", first.status, first.body)
	}
	h.app.Copies.Wait() // its callback's first attempt, behind the answer, writes the record
	return first.job(t).ID
}

// A destination blob name with "." or ".." segments is refused (400): storage sends
// it escaped ("..%2F"), so it names no other container, but Azure's naming rules say
// no path segment ends with a dot, and its URL would read as another blob's.
func TestDestinationNameWithDotSegmentsIsRefused(t *testing.T) {
	h := newHarness(t, nil)
	id := h.jobWithASecretInItsRecord(t)
	before, err := h.blobClient("devstoreaccount1").DownloadStream(t.Context(), app.DefaultRecords, "jobs/"+id+".json", nil)
	if err != nil {
		t.Fatal(err)
	}
	before.Body.Close()
	src := h.upload("devstoreaccount1", "src", "b.txt", []byte("overwrite"))
	for _, name := range []string{"../" + app.DefaultRecords + "/jobs/" + id + ".json", "a/./b", "a/../../" + app.DefaultRecords + "/x"} {
		r := h.do(http.MethodPost, "/api/copies", map[string]any{"source": src,
			"destination": map[string]any{"container": "dst", "blob": name}}, nil)
		if r.status != http.StatusBadRequest {
			t.Errorf("destination %q: answered %d %s, want 400", name, r.status, r.body)
		}
	}
	h.app.Copies.Wait()
	after, err := h.blobClient("devstoreaccount1").DownloadStream(t.Context(), app.DefaultRecords, "jobs/"+id+".json", nil)
	if err != nil {
		t.Fatal(err)
	}
	after.Body.Close()
	if *after.ETag != *before.ETag {
		t.Error("the record was overwritten through the destination's name")
	}
}

// Review 10: a raw backslash in a source's path is a "/" to Azurite (the WHATWG URL
// standard) and a character to Go's parser: below the API (which writes every URL
// again), "acct\copyjobs\..." and ".../x/..\copyjobs/..." copied the records out, read
// as an outside URL and as container x. The copy service refuses them on every path.
func TestBackslashSpellingsOfTheRecordsAreRefusedBelowTheAPI(t *testing.T) {
	h := newHarness(t, nil)
	id := h.jobWithASecretInItsRecord(t)
	ep := h.az.BlobEndpoint("devstoreaccount1")
	for i, raw := range []string{
		ep + `\copyjobs\jobs\` + id + ".json",
		ep + `/x/..\copyjobs/jobs/` + id + ".json",
	} {
		_, _, err := h.app.Copies.Start(t.Context(), copyjob.StartRequest{Source: raw, Origin: "api",
			Destination: copyjob.BlobRef{Container: "loot", Blob: fmt.Sprintf("raw-%d.json", i)}, Options: copyjob.Options{Overwrite: true}})
		if copyjob.CodeOf(err) != copyjob.CodeInvalidRequest {
			t.Errorf("Start(%s) = %v, want %s", raw, err, copyjob.CodeInvalidRequest)
		}
	}
	h.app.Copies.Wait()
	nothingIn(t, h, "loot")
}

// nothingIn fails for every blob in container of both accounts.
func nothingIn(t *testing.T, h *harness, container string) {
	t.Helper()
	for _, account := range []string{"devstoreaccount1", "acct2"} {
		pager := h.blobClient(account).NewListBlobsFlatPager(container, nil)
		for pager.More() {
			page, err := pager.NextPage(t.Context())
			if err != nil {
				break // the container was never created: nothing was copied
			}
			for _, b := range page.Segment.BlobItems {
				t.Errorf("a record was copied out: %s/%s/%s", account, container, *b.Name)
			}
		}
	}
}
