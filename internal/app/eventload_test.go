package app_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/blobcopy/blobcopy/internal/api"
)

// TestThousandEventDelivery measures a delivery of 1,000 BlobCreated events (about Event
// Grid's 1 MiB batch), each starting a copy on Azurite, and logs the figure (the target
// on the 2-core CI machine is 8 s; `make bench` figure 6 reports it). The test fails only
// when the answer misses Event Grid's 30 s timeout or a redelivery does not finish the job.
func TestThousandEventDelivery(t *testing.T) {
	if testing.Short() {
		t.Skip("loads Azurite with 1,000 uploads and copies")
	}
	const n = 1000
	rules := `[{"name":"load","sourceAccount":"devstoreaccount1","sourceContainer":"load","destination":{"container":"loadcopy"}}]`
	settings := map[string]string{"COPY_RULES": rules}
	if c := os.Getenv("EVENT_LOAD_CONCURRENCY"); c != "" {
		settings["COPY_EVENT_CONCURRENCY"] = c // to compare settings by hand
	}
	h := newHarness(t, settings)
	events := make([]string, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	h.upload("devstoreaccount1", "load", "warm-up", []byte("x"))
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			name := fmt.Sprintf("blob-%04d.txt", i)
			u := h.upload("devstoreaccount1", "load", name, []byte("event load"))
			events[i] = fmt.Sprintf(`{"topic":"/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/devstoreaccount1",
"subject":"/blobServices/default/containers/load/blobs/%s","eventType":"Microsoft.Storage.BlobCreated","eventTime":"2026-11-30T10:00:00Z",
"id":"evt-%04d","data":{"api":"PutBlob","requestId":"r","eTag":"0x8DD%07d","contentType":"text/plain","contentLength":10,"blobType":"BlockBlob","url":%q,"sequencer":"01"},
"dataVersion":"","metadataVersion":"1"}`, name, i, i, u)
		}()
	}
	wg.Wait()
	body := "[" + strings.Join(events, ",") + "]"
	t.Logf("delivery body: %d bytes, %d events", len(body), n)

	start := time.Now()
	r := h.do(http.MethodPost, "/api/copies", body, map[string]string{"aeg-event-type": "Notification"})
	elapsed := time.Since(start)
	t.Logf("1,000-event delivery answered %d in %v (%v per event)", r.status, elapsed.Round(time.Millisecond), (elapsed / n).Round(time.Microsecond))
	if elapsed > 30*time.Second {
		t.Errorf("a 1,000-event delivery took %v: Event Grid gives up after 30 s", elapsed)
	}
	// A stalled Azurite can push events past the delivery's budget: they are answered
	// failed (503) and Event Grid redelivers; the redelivery starts only those.
	for attempt := 1; r.status == http.StatusServiceUnavailable && attempt <= 5; attempt++ {
		t.Logf("redelivery %d after a 503", attempt)
		r = h.do(http.MethodPost, "/api/copies", body, map[string]string{"aeg-event-type": "Notification"})
	}
	if r.status != http.StatusOK {
		t.Fatalf("delivery: %d %.500s", r.status, r.body)
	}
	var res api.DeliveryResult
	if err := json.Unmarshal(r.body, &res); err != nil || len(res.Results) != n {
		t.Fatalf("results: %v (%d)", err, len(res.Results))
	}
	for i, e := range res.Results {
		if e.ID != fmt.Sprintf("evt-%04d", i) || (e.Outcome != api.OutcomeStarted && e.Outcome != api.OutcomeDuplicate) {
			t.Fatalf("result %d: %+v", i, e)
		}
	}
}
