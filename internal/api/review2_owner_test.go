package api_test

// Regression tests from the second adversarial review (retry, owners, polls): each
// reproduced a broken promise before its fix.

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/blobcopy/blobcopy/internal/api"
	"github.com/blobcopy/blobcopy/internal/copyjob/copyjobtest"
)

// R2-A: bob's start refused because alice's copy is pending on the destination is
// recorded with alice's job id in its description and refusal; bob's GET of his own job
// and the replay of his request then name alice's job.
func TestReview2RefusalRecordNamesAnotherOwnersJob(t *testing.T) {
	f := newOwnersFixture(t, true)
	aliceJob := f.startAs(t, alice, 0)
	body := []byte(`{"source":"https://` + copyjobtest.DefaultHost + `/src/s1.bin","destination":{"container":"dst","blob":"d0.bin"},"overwrite":true}`)
	h := as(bob)
	h["Idempotency-Key"] = "bob-1"
	first := f.do(t, "POST", "/api/copies", body, h)
	if first.status != http.StatusConflict {
		t.Fatalf("first: %d %s", first.status, first.body)
	}
	if strings.Contains(string(first.body), aliceJob) {
		t.Fatalf("first answer already names alice's job: %s", first.body)
	}
	bobJob := api.JobIDFor("owner-idempotency-key", "oid:bbbbbbbb-0000-0000-0000-000000000002\x00bob-1")
	get := f.do(t, "GET", "/api/copies/"+bobJob, nil, as(bob))
	if strings.Contains(string(get.body), aliceJob) {
		t.Errorf("bob's GET of his own refused job names alice's job %s: %d %s", aliceJob, get.status, get.body)
	}
	replay := f.do(t, "POST", "/api/copies", body, h)
	if strings.Contains(string(replay.body), aliceJob) {
		t.Errorf("bob's replay names alice's job %s: %d %s", aliceJob, replay.status, replay.body)
	}
	list := f.do(t, "GET", "/api/copies", nil, as(bob))
	if strings.Contains(string(list.body), aliceJob) {
		t.Errorf("bob's list names alice's job %s", aliceJob)
	}
	var v api.JobView
	_ = json.Unmarshal(get.body, &v)
	t.Logf("bob's job status=%s desc=%q", v.Status, v.StatusDescription)
}
