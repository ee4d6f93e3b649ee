package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/blobcopy/blobcopy/internal/api"
	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/copyjob/copyjobtest"
	"github.com/blobcopy/blobcopy/internal/rules"
)

// blobCreated is one Event Grid schema BlobCreated event, shaped like Azure's sample.
func blobCreated(id, account, subjectContainer, subjectBlob, api, dataURL, etag string) string {
	return fmt.Sprintf(`{"topic":"/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/%s",
"subject":"/blobServices/default/containers/%s/blobs/%s","eventType":"Microsoft.Storage.BlobCreated","eventTime":"2026-01-01T00:00:00Z",
"id":%q,"data":{"api":%q,"requestId":"r","eTag":%q,"contentType":"text/plain","contentLength":1,"blobType":"BlockBlob","url":%q,"sequencer":"01"},
"dataVersion":"","metadataVersion":"1"}`, account, subjectContainer, subjectBlob, id, api, etag, dataURL)
}

func batch(events ...string) []byte { return []byte("[" + strings.Join(events, ",") + "]") }

// TestEventSourceIsBound: the copy reads the blob the topic and subject name, on the
// account's configured endpoint; an event whose data.url names anything else (another
// account's private blob, the instance metadata endpoint) is acknowledged and ignored.
func TestEventSourceIsBound(t *testing.T) {
	f := newFixture(t, api.Policy{}, []rules.Rule{rule("uploads", "uploads", "mirror", "", false)})
	f.env.Blobs.Put(copyjob.BlobRef{Container: "uploads", Blob: "in/a b.txt"}, 5, nil)
	f.env.Blobs.Put(docsBlob("private", "payroll.csv"), 5, nil)
	app := "https://" + copyjobtest.DefaultHost
	r := f.do(t, http.MethodPost, "/api/copies", batch(
		blobCreated("other-account", "app", "uploads", "in/a b.txt", "PutBlob", "https://"+docsHost+"/private/payroll.csv", "e1"),
		blobCreated("metadata", "app", "uploads", "in/a b.txt", "PutBlob", "https://169.254.169.254/metadata/instance", "e2"),
		blobCreated("other-blob", "app", "uploads", "in/a b.txt", "PutBlob", app+"/uploads/in/other.txt", "e3"),
		blobCreated("encoded", "app", "uploads", "in/a%20b.txt", "PutBlob", app+"/uploads/in/a%20b.txt", "e4"),
	), eventGridHeaders)
	if r.status != 200 {
		t.Fatalf("delivery: %d %s", r.status, r.body)
	}
	res := deliveryResult(t, r)
	for _, id := range []string{"other-account", "metadata", "other-blob"} {
		if res[id].Outcome != api.OutcomeIgnored || !strings.Contains(res[id].Reason, "does not name the subject's blob") {
			t.Errorf("%s: %+v", id, res[id])
		}
	}
	if res["encoded"].Outcome != api.OutcomeStarted {
		t.Errorf("percent-encoded subject and url naming the same blob: %+v", res["encoded"])
	}
	calls := f.env.Blobs.StartCopyCalls()
	if len(calls) != 1 || calls[0].Dst.Blob != "in/a b.txt" || strings.Contains(calls[0].ReadURL, "payroll") {
		t.Fatalf("copies = %+v", calls)
	}
	// Azure's own BlobCreated sample names container test-container in its subject and
	// testcontainer in its url: taken as it is, it is ignored.
	f2 := newFixture(t, api.Policy{}, []rules.Rule{rule("docs", "test-container", "archive", "", false)})
	r = f2.do(t, http.MethodPost, "/api/copies", readFixture(t, "eventgrid-blob-created.json"), eventGridHeaders)
	if got := deliveryResult(t, r)["831e1650-001e-001b-66ab-eeb76e069631"]; r.status != 200 || got.Outcome != api.OutcomeIgnored {
		t.Errorf("verbatim docs sample: %d %+v", r.status, got)
	}
}

// TestDataLakeAndSFTPEvents: CreateFile and SftpCreate (an empty file announced) start
// nothing; FlushWithClose with a dfs URL, SftpCommit and a rename into the rule's area
// copy from the blob endpoint; Copy Blob events copy only when the rule opts in, and only
// once that copy succeeded.
func TestDataLakeAndSFTPEvents(t *testing.T) {
	rs := []rules.Rule{rule("fs", "my-file-system", "archive", "", false), rule("sftp", "testcontainer", "archive", "sftp/", true)}
	f := newFixture(t, api.Policy{}, rs)
	f.env.Blobs.Put(docsBlob("my-file-system", "new-file.txt"), 524288, nil)
	f.env.Blobs.Put(docsBlob("my-file-system", "my-renamed-file.txt"), 10, nil)
	f.env.Blobs.Put(docsBlob("testcontainer", "new-file.txt"), 10, nil)
	f.env.Blobs.Put(docsBlob("testcontainer", "my-renamed-file.txt"), 10, nil)
	tests := []struct {
		fixture, outcome, dstBlob string
	}{
		{"eventgrid-blob-created-dls.json", api.OutcomeIgnored, ""},
		{"composed/eventgrid-blob-created-sftp-create.json", api.OutcomeIgnored, ""},
		{"composed/eventgrid-blob-created-dls-flush.json", api.OutcomeStarted, "new-file.txt"},
		{"eventgrid-blob-created-sftp.json", api.OutcomeStarted, "sftp/new-file.txt"},
		{"eventgrid-blob-renamed-dls.json", api.OutcomeStarted, "my-renamed-file.txt"},
		{"eventgrid-blob-renamed-sftp.json", api.OutcomeStarted, "sftp/my-renamed-file.txt"},
	}
	for i, tt := range tests {
		// Each sample has the same event id; make them distinct deliveries.
		body := strings.ReplaceAll(string(readFixture(t, tt.fixture)), "831e1650-001e-001b-66ab-eeb76e069631", fmt.Sprintf("evt-%d", i))
		r := f.do(t, http.MethodPost, "/api/copies", []byte(body), eventGridHeaders)
		got := deliveryResult(t, r)[fmt.Sprintf("evt-%d", i)]
		if r.status != 200 || got.Outcome != tt.outcome {
			t.Errorf("%s: %d %+v, want %s", tt.fixture, r.status, got, tt.outcome)
			continue
		}
		if tt.dstBlob == "" {
			continue
		}
		calls := f.env.Blobs.StartCopyCalls()
		last := calls[len(calls)-1]
		if last.Dst.Blob != tt.dstBlob || strings.Contains(last.ReadURL, ".dfs.") {
			t.Errorf("%s: copy %+v", tt.fixture, last)
		}
	}
	if n := len(f.env.Blobs.StartCopyCalls()); n != 4 {
		t.Errorf("copies = %d, want 4", n)
	}

	// A Copy Blob event fires when that copy starts: deferred (503, Event Grid retries)
	// while it is pending, copied once it succeeded.
	copyEvent := blobCreated("copy-evt", "my-storage-account", "testcontainer", "copied.txt", "CopyBlob",
		"https://"+docsHost+"/testcontainer/copied.txt", "e9")
	f.env.Blobs.ForeignCopy(docsBlob("testcontainer", "copied.txt"), "https://elsewhere/x")
	r := f.do(t, http.MethodPost, "/api/copies", batch(copyEvent), eventGridHeaders)
	if got := deliveryResult(t, r)["copy-evt"]; r.status != http.StatusServiceUnavailable || got.Outcome != api.OutcomeDeferred {
		t.Fatalf("pending copy: %d %+v", r.status, got)
	}
	if err := f.env.Blobs.CompleteCopy(docsBlob("testcontainer", "copied.txt")); err != nil {
		t.Fatal(err)
	}
	r = f.do(t, http.MethodPost, "/api/copies", batch(copyEvent), eventGridHeaders)
	if got := deliveryResult(t, r)["copy-evt"]; r.status != 200 || got.Outcome != api.OutcomeStarted {
		t.Fatalf("finished copy: %d %+v", r.status, got)
	}
}

// TestPermanentRefusalIsAcknowledged (issue 10, "the event route keeps Event Grid's
// rules"): Event Grid does not retry 400, 401, 403 or 413 and drops or dead-letters the
// whole delivery, so an event refused for good is answered 200 with its outcome; only a
// transient failure makes the delivery 503.
func TestPermanentRefusalIsAcknowledged(t *testing.T) {
	f := newFixture(t, api.Policy{AllowedDestinations: []string{"default/mirror"}}, []rules.Rule{
		rule("ok", "uploads", "mirror", "", false), rule("denied", "other", "forbidden", "", false)})
	app := "https://" + copyjobtest.DefaultHost
	f.env.Blobs.Put(copyjob.BlobRef{Container: "other", Blob: "x.txt"}, 5, nil)
	r := f.do(t, http.MethodPost, "/api/copies", batch(
		blobCreated("missing-source", "app", "uploads", "gone.txt", "PutBlob", app+"/uploads/gone.txt", "e1"),
		blobCreated("policy", "app", "other", "x.txt", "PutBlob", app+"/other/x.txt", "e2"),
	), eventGridHeaders)
	res := deliveryResult(t, r)
	if r.status != 200 || res["missing-source"].Outcome != api.OutcomeRefused || res["policy"].Outcome != api.OutcomeRefused {
		t.Fatalf("permanent refusals: %d %s", r.status, r.body)
	}
	if !strings.Contains(res["policy"].Reason, "DestinationNotAllowed") {
		t.Errorf("policy refusal reason %q", res["policy"].Reason)
	}
}

// TestDeliveryResultsKeepEventOrder: events are handled concurrently, results come
// back in the delivery's order.
func TestDeliveryResultsKeepEventOrder(t *testing.T) {
	f := newFixture(t, api.Policy{}, []rules.Rule{rule("uploads", "uploads", "mirror", "", false)})
	app := "https://" + copyjobtest.DefaultHost
	var events []string
	for i := range 300 {
		name := fmt.Sprintf("b%03d.txt", i)
		if i%3 != 0 { // every third blob is missing: refused
			f.env.Blobs.Put(copyjob.BlobRef{Container: "uploads", Blob: name}, 1, nil)
		}
		events = append(events, blobCreated(fmt.Sprintf("evt-%03d", i), "app", "uploads", name, "PutBlob", app+"/uploads/"+name, fmt.Sprintf("e%d", i)))
	}
	r := f.do(t, http.MethodPost, "/api/copies", batch(events...), eventGridHeaders)
	var d api.DeliveryResult
	decodeJSON(t, r.body, &d)
	if r.status != 200 || len(d.Results) != 300 {
		t.Fatalf("%d, %d results", r.status, len(d.Results))
	}
	for i, res := range d.Results {
		want := api.OutcomeStarted
		if i%3 == 0 {
			want = api.OutcomeRefused
		}
		if res.ID != fmt.Sprintf("evt-%03d", i) || res.Outcome != want {
			t.Fatalf("result %d = %+v, want %s", i, res, want)
		}
	}
}

func decodeJSON(t testing.TB, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode: %v: %s", err, b)
	}
}

// TestDeliveryBudget: events not begun within the delivery's budget are answered failed
// (503) so Event Grid redelivers them, instead of the answer missing Event Grid's 30 s.
func TestDeliveryBudget(t *testing.T) {
	env := copyjobtest.NewEnv()
	srv := api.NewServer(env.Service(copyjob.Config{}), api.Options{
		Policy: api.Policy{Accounts: []api.Account{appAccount}},
		Rules:  []rules.Rule{rule("uploads", "uploads", "mirror", "", false)},
		Events: api.EventOptions{Budget: time.Nanosecond},
		Auth:   api.Auth{Disabled: true},
		Logger: quiet,
	})
	mux := http.NewServeMux()
	srv.Routes(mux)
	app := "https://" + copyjobtest.DefaultHost
	env.Blobs.Put(copyjob.BlobRef{Container: "uploads", Blob: "a.txt"}, 1, nil)
	body := batch(blobCreated("late", "app", "uploads", "a.txt", "PutBlob", app+"/uploads/a.txt", "e1"))
	req := httptest.NewRequest(http.MethodPost, "/api/copies", bytes.NewReader(body))
	req.Header.Set("aeg-event-type", "Notification")
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), `"outcome":"failed"`) {
		t.Fatalf("over budget: %d %s", rec.Code, rec.Body)
	}
	if n := len(env.Blobs.StartCopyCalls()); n != 0 {
		t.Errorf("copies started = %d", n)
	}
}
