package app_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/blobcopy/blobcopy/internal/api"
	"github.com/blobcopy/blobcopy/internal/copyjob"
)

// TestEventGridBlobCreatedCopiesForReal: a BlobCreated event (Event Grid schema, as the
// docs show it) for a real Azurite blob starts the rule's copy; redelivery starts nothing.
func TestEventGridBlobCreatedCopiesForReal(t *testing.T) {
	rules := `[{"name":"uploads","sourceAccount":"devstoreaccount1","sourceContainer":"uploads","destination":{"account":"acct2","container":"mirror","prefix":"from-uploads/"},"tier":"Cool"}]`
	h := newHarness(t, map[string]string{"COPY_RULES": rules})
	src := h.upload("devstoreaccount1", "uploads", "2026/report.csv", []byte("a,b\n1,2\n"))
	etag := *h.props("devstoreaccount1", "uploads", "2026/report.csv").ETag
	event := fmt.Sprintf(`[{"topic":"/subscriptions/0000/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/devstoreaccount1",
 "subject":"/blobServices/default/containers/uploads/blobs/2026/report.csv","eventType":"Microsoft.Storage.BlobCreated",
 "eventTime":"2026-11-25T10:00:00Z","id":"evt-1","dataVersion":"","metadataVersion":"1",
 "data":{"api":"PutBlob","requestId":"r","eTag":%q,"contentType":"text/csv","contentLength":8,"blobType":"BlockBlob","url":%q,"sequencer":"01"}}]`, string(etag), src)
	hdr := map[string]string{"aeg-event-type": "Notification"}
	for i, want := range []string{"started", "duplicate"} {
		r := h.do(http.MethodPost, "/api/copies", event, hdr)
		if r.status != 200 {
			t.Fatalf("delivery %d: %d %s", i, r.status, r.body)
		}
		var res api.DeliveryResult
		if err := json.Unmarshal(r.body, &res); err != nil || len(res.Results) != 1 || res.Results[0].Outcome != want {
			t.Fatalf("delivery %d: %s", i, r.body)
		}
		job := h.getJob(res.Results[0].JobID)
		if job.Status != copyjob.StatusSuccess || job.Destination.Account != "acct2" || job.Destination.Blob != "from-uploads/2026/report.csv" || job.Options.Tier != "Cool" {
			t.Errorf("job = %+v", job)
		}
	}
	if got := h.download("acct2", "mirror", "from-uploads/2026/report.csv"); got != "a,b\n1,2\n" {
		t.Errorf("mirror holds %q", got)
	}
}

// TestCopyBlobEventWaitsForItsCopy: a BlobCreated raised by Copy Blob fires when that copy
// starts; a rule that accepts such events copies the blob only once the copy succeeded
// (read through the storage adapter): deferred with 503 while pending, started after.
func TestCopyBlobEventWaitsForItsCopy(t *testing.T) {
	rules := `[{"name":"copies","sourceAccount":"simacct","sourceContainer":"incoming","destination":{"account":"sim","container":"mirror"},"acceptCopyEvents":true}]`
	h := newHarness(t, map[string]string{"COPY_RULES": rules})
	h.sim.PutBlob(simAccount, "src", "orig.bin", []byte("copied by someone"), nil)
	first := h.startPending(map[string]any{"source": h.sim.AccountEndpoint(simAccount) + "/src/orig.bin",
		"destination": map[string]any{"account": "sim", "container": "incoming", "blob": "copied.bin"}})
	event := fmt.Sprintf(`[{"topic":"/subscriptions/0000/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/%s",
 "subject":"/blobServices/default/containers/incoming/blobs/copied.bin","eventType":"Microsoft.Storage.BlobCreated",
 "eventTime":"2026-11-25T10:00:00Z","id":"copy-evt","dataVersion":"","metadataVersion":"1",
 "data":{"api":"CopyBlob","requestId":"r","eTag":"0x8DD0000000000AA","contentType":"application/octet-stream","contentLength":0,"blobType":"BlockBlob","url":%q,"sequencer":"01"}}]`,
		simAccount, h.sim.AccountEndpoint(simAccount)+"/incoming/copied.bin")
	hdr := map[string]string{"aeg-event-type": "Notification"}
	outcome := func() (int, string) {
		r := h.do(http.MethodPost, "/api/copies", event, hdr)
		var res api.DeliveryResult
		if err := json.Unmarshal(r.body, &res); err != nil || len(res.Results) != 1 {
			t.Fatalf("delivery: %d %s", r.status, r.body)
		}
		return r.status, res.Results[0].Outcome
	}
	if status, got := outcome(); status != http.StatusServiceUnavailable || got != api.OutcomeDeferred {
		t.Fatalf("while the copy %s is pending: %d %s", first.ID, status, got)
	}
	if err := h.sim.Complete(simAccount, "incoming", "copied.bin"); err != nil {
		t.Fatal(err)
	}
	if status, got := outcome(); status != http.StatusOK || got != api.OutcomeStarted {
		t.Fatalf("after the copy succeeded: %d %s", status, got)
	}
	if _, ok := h.sim.Copy(simAccount, "mirror", "copied.bin"); !ok {
		t.Error("no copy into the mirror")
	}
}
