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
