package app_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"

	"github.com/blobcopy/blobcopy/internal/api"
	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/testenv/copysim"
)

func (h *harness) record(id string) *copyjob.Job {
	h.t.Helper()
	j, err := h.app.Records.Get(context.Background(), id)
	if err != nil {
		h.t.Fatalf("record %s: %v", id, err)
	}
	return j
}

// startPending starts a copy into the simulator, whose copies stay pending, and checks
// the async request-reply answer.
func (h *harness) startPending(req map[string]any) copyjobView {
	h.t.Helper()
	return h.startPendingWith(req, nil)
}

// startPendingWith is startPending with request headers (an Idempotency-Key makes the
// start create its record first, as the lock a retry stops at).
func (h *harness) startPendingWith(req map[string]any, header map[string]string) copyjobView {
	h.t.Helper()
	r := h.do(http.MethodPost, "/api/copies", req, header)
	if r.status != http.StatusAccepted {
		h.t.Fatalf("start: %d %s", r.status, r.body)
	}
	j := r.job(h.t)
	if r.header.Get("Location") != "/api/copies/"+j.ID || r.header.Get("Retry-After") == "" {
		h.t.Errorf("202 without Location/Retry-After: %v", r.header)
	}
	if j.Status != copyjob.StatusPending || j.CopyID == "" || j.AbortPostURI == "" {
		h.t.Fatalf("job = %+v", j)
	}
	// The lease id stays in the job record: answers show only its state.
	return copyjobView{ID: j.ID, CopyID: j.CopyID, LeaseID: leaseID(h.record(j.ID))}
}

type copyjobView struct{ ID, CopyID, LeaseID string }

func leaseID(j *copyjob.Job) string {
	if j.Lease == nil {
		return ""
	}
	return j.Lease.ID
}

// TestPendingCopyLifecycle drives pending -> progress -> terminal for each way a copy
// ends, through the HTTP API and host timer invocations, and checks the source lease
// is held exactly until the end and the tracking message is gone afterwards.
func TestPendingCopyLifecycle(t *testing.T) {
	h := newHarness(t, nil)
	data := []byte(strings.Repeat("x", 100))
	tests := []struct {
		name       string
		end        func(t *testing.T, blobName string, job copyjobView)
		wantStatus copyjob.Status
		wantDesc   string
	}{
		{"success", func(t *testing.T, b string, _ copyjobView) {
			if err := h.sim.Complete(simAccount, "dst", b); err != nil {
				t.Fatal(err)
			}
		}, copyjob.StatusSuccess, ""},
		{"failed", func(t *testing.T, b string, _ copyjobView) {
			if err := h.sim.Fail(simAccount, "dst", b, `500 InternalError "Copy failed."`); err != nil {
				t.Fatal(err)
			}
		}, copyjob.StatusFailed, "Copy failed."},
		{"aborted through abortfn", func(t *testing.T, _ string, job copyjobView) {
			r := h.do(http.MethodPost, "/api/copies/"+job.ID+"/abort", nil, nil)
			if r.status != http.StatusOK || r.job(t).Status != copyjob.StatusAborted {
				t.Fatalf("abort: %d %s", r.status, r.body)
			}
			// Abort ends the job at once: the lease is already released.
			if l := h.sim.Lease(simAccount, "src", "lifecycle.bin"); l.State == "leased" {
				t.Errorf("source still leased right after the abort: %+v", l)
			}
			again := h.do(http.MethodPost, "/api/copies/"+job.ID+"/abort", nil, nil)
			if again.status != http.StatusConflict || again.errorResponse(t).Error.Code != string(copyjob.CodeCopyNotPending) || again.errorResponse(t).Job == nil {
				t.Errorf("second abort: %d %s", again.status, again.body)
			}
		}, copyjob.StatusAborted, "aborted by request"},
		{"destination deleted", func(t *testing.T, b string, _ copyjobView) {
			h.simBlob(b).Delete(context.Background(), nil)
		}, copyjob.StatusDestinationMissing, "deleted"},
		{"destination overwritten", func(t *testing.T, b string, _ copyjobView) {
			// Another client aborts the pending copy and starts its own: the only way
			// Azure lets a pending destination change hands.
			if _, err := h.sim.RestartCopy(simAccount, "dst", b); err != nil {
				t.Fatal(err)
			}
		}, copyjob.StatusCopyIDMismatch, "this job's copy"},
	}
	h.sim.PutBlob(simAccount, "src", "lifecycle.bin", data, nil)
	src := h.sim.AccountEndpoint(simAccount) + "/src/lifecycle.bin"
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			blobName := "lifecycle-" + string(rune('a'+i)) + ".bin"
			job := h.startPending(map[string]any{"source": src, "destination": map[string]any{"account": "sim", "container": "dst", "blob": blobName}, "leaseSource": true})
			if l := h.sim.Lease(simAccount, "src", "lifecycle.bin"); l.State != "leased" || l.ID != job.LeaseID || l.Duration != "infinite" {
				t.Fatalf("source lease = %+v, want leased by %s (infinite)", l, job.LeaseID)
			}
			if err := h.sim.SetProgress(simAccount, "dst", blobName, 40); err != nil {
				t.Fatal(err)
			}
			// The tick polls (and writes nothing: issue 13); the status read shows the
			// progress live.
			h.invokeTimer()
			if j := h.getJob(job.ID); j.Status != copyjob.StatusPending || j.Progress != (api.ProgressView{BytesCopied: 40, BytesTotal: 100}) || j.Percent != 40 {
				t.Fatalf("pending job = %s %+v %v%%", j.Status, j.Progress, j.Percent)
			}
			if n := h.queueLength("copyjobs"); n != 1 {
				t.Fatalf("tracking messages while pending = %d, want 1", n)
			}
			tt.end(t, blobName, job)
			h.tickUntil("tracking message gone", func() bool { return h.queueLength("copyjobs") == 0 })
			rec := h.record(job.ID)
			if rec.Status != tt.wantStatus || !strings.Contains(rec.StatusDescription, tt.wantDesc) || rec.CompletedAt == nil {
				t.Errorf("record = %s %q completed %v, want %s %q", rec.Status, rec.StatusDescription, rec.CompletedAt, tt.wantStatus, tt.wantDesc)
			}
			if rec.Lease == nil || rec.Lease.State != copyjob.LeaseReleased {
				t.Errorf("lease = %+v, want released", rec.Lease)
			}
			if l := h.sim.Lease(simAccount, "src", "lifecycle.bin"); l.State == "leased" {
				t.Errorf("source still leased after %s: %+v", tt.wantStatus, l)
			}
		})
	}
}

func (h *harness) simBlob(name string) *blob.Client {
	h.t.Helper()
	cred, err := azblob.NewSharedKeyCredential(simAccount, copysim.AccountKey)
	if err != nil {
		h.t.Fatal(err)
	}
	c, err := blob.NewClientWithSharedKeyCredential(h.sim.AccountEndpoint(simAccount)+"/dst/"+name, cred, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	return c
}

// TestSASExpiryFailsTheCopy: a SAS that expires before the copy ends fails it; the
// failure is recorded with storage's description and the lease is released.
func TestSASExpiryFailsTheCopy(t *testing.T) {
	h := newHarness(t, nil)
	src := h.upload("acct2", "src", "slow.bin", []byte(strings.Repeat("s", 64)))
	job := h.startPending(map[string]any{"source": src, "destination": map[string]any{"account": "sim", "container": "dst", "blob": "slow.bin"}, "leaseSource": true, "sasLifetime": "1h"})
	rec := h.record(job.ID)
	if rec.Source.SASKind != "accountKey" || rec.Source.SASExpiresAt == nil {
		t.Fatalf("source = %+v", rec.Source)
	}
	cs, _ := h.sim.Copy(simAccount, "dst", "slow.bin")
	if cs.SourceExpiry.IsZero() || cs.SourceExpiry.Sub(*rec.Source.SASExpiresAt).Abs() > time.Second {
		t.Errorf("SAS expiry seen by storage %v, recorded %v", cs.SourceExpiry, rec.Source.SASExpiresAt)
	}
	h.clock.Advance(2 * time.Hour) // the copy is slower than the SAS lasts
	if err := h.sim.Complete(simAccount, "dst", "slow.bin"); err != nil {
		t.Fatal(err)
	}
	h.tickUntil("failure recorded", func() bool { return h.record(job.ID).Status.Terminal() })
	rec = h.record(job.ID)
	if rec.Status != copyjob.StatusFailed || !strings.Contains(rec.StatusDescription, "403") {
		t.Errorf("record = %s %q, want failed with the 403 description", rec.Status, rec.StatusDescription)
	}
	if p := h.props("acct2", "src", "slow.bin"); string(*p.LeaseState) != "available" {
		t.Errorf("source lease state %s after failure", *p.LeaseState)
	}
}

// TestAbortRestoresDestinationSnapshot: with snapshotDestination the previous content
// is snapshotted first and an abort with restore copies it back.
func TestAbortRestoresDestinationSnapshot(t *testing.T) {
	h := newHarness(t, nil)
	h.sim.PutBlob(simAccount, "dst", "report.csv", []byte("old report"), nil)
	h.sim.PutBlob(simAccount, "src", "report.csv", []byte("new report"), nil)
	job := h.startPending(map[string]any{"source": h.sim.AccountEndpoint(simAccount) + "/src/report.csv",
		"destination": map[string]any{"account": "sim", "container": "dst", "blob": "report.csv"}, "snapshotDestination": true})
	rec := h.record(job.ID)
	if rec.DestinationSnapshot == "" {
		t.Fatal("no snapshot recorded")
	}
	r := h.do(http.MethodPost, "/api/copies/"+job.ID+"/abort", map[string]any{"restore": true}, nil)
	if r.status != http.StatusOK {
		t.Fatalf("abort: %d %s", r.status, r.body)
	}
	j := r.job(t)
	if j.Status != copyjob.StatusAborted || j.RestoredFrom != rec.DestinationSnapshot {
		t.Fatalf("job = %s restoredFrom %q", j.Status, j.RestoredFrom)
	}
	cs, ok := h.sim.Copy(simAccount, "dst", "report.csv")
	if !ok || !strings.Contains(cs.Source, "snapshot=") {
		t.Fatalf("no restore copy from the snapshot: %+v", cs)
	}
	if cs.Status == copysim.StatusPending {
		if err := h.sim.Complete(simAccount, "dst", "report.csv"); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := h.sim.BlobData(simAccount, "dst", "report.csv"); string(got) != "old report" {
		t.Errorf("destination after restore = %q", got)
	}
}

func TestStatusAndListAPI(t *testing.T) {
	h := newHarness(t, nil)
	h.sim.PutBlob(simAccount, "src", "a.bin", []byte("aaaa"), nil)
	src := h.sim.AccountEndpoint(simAccount) + "/src/a.bin"
	var ids []string
	for _, b := range []string{"l1.bin", "l2.bin", "l3.bin"} {
		ids = append(ids, h.startPending(map[string]any{"source": src, "destination": map[string]any{"account": "sim", "container": "dst", "blob": b}}).ID)
	}
	if err := h.sim.Complete(simAccount, "dst", "l1.bin"); err != nil {
		t.Fatal(err)
	}
	// A status read sees the end at once; the record (and so the list) follows at the
	// next tick: reads never write.
	if j := h.getJob(ids[0]); j.Status != copyjob.StatusSuccess {
		t.Fatalf("status read of a finished copy = %s", j.Status)
	}
	h.tickUntil("the finished copy recorded", func() bool {
		r := h.do(http.MethodGet, "/api/copies?status=success", nil, nil)
		return strings.Contains(string(r.body), ids[0])
	})
	seen := map[string]bool{}
	path := "/api/copies?status=pending&limit=1"
	for pages := 0; path != "" && pages < 10; pages++ {
		r := h.do(http.MethodGet, path, nil, nil)
		if r.status != http.StatusOK {
			t.Fatalf("list: %d %s", r.status, r.body)
		}
		var page struct {
			Value []struct {
				ID     string         `json:"id"`
				Status copyjob.Status `json:"status"`
			} `json:"value"`
			NextLink string `json:"nextLink"`
		}
		decodeJSON(t, r.body, &page)
		for _, v := range page.Value {
			if v.Status != copyjob.StatusPending {
				t.Errorf("listed %s with status %s", v.ID, v.Status)
			}
			seen[v.ID] = true
		}
		path = page.NextLink
	}
	if len(seen) != 2 || !seen[ids[1]] || !seen[ids[2]] {
		t.Errorf("pending jobs listed = %v, want %v", seen, ids[1:])
	}
	for _, tc := range []struct {
		path   string
		status int
		code   string
	}{
		{"/api/copies/does-not-exist", 404, string(copyjob.CodeJobNotFound)},
		{"/api/copies/bad%20id", 400, string(copyjob.CodeInvalidRequest)},
		{"/api/copies?status=bogus", 400, string(copyjob.CodeInvalidRequest)},
		{"/api/copies?limit=0", 400, string(copyjob.CodeInvalidRequest)},
	} {
		r := h.do(http.MethodGet, tc.path, nil, nil)
		if r.status != tc.status || r.errorResponse(t).Error.Code != tc.code {
			t.Errorf("GET %s = %d %s, want %d %s", tc.path, r.status, r.body, tc.status, tc.code)
		}
	}
	if r := h.do(http.MethodPost, "/api/copies/does-not-exist/abort", nil, nil); r.status != 404 {
		t.Errorf("abort unknown = %d", r.status)
	}
}
