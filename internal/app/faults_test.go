package app_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2"

	"github.com/blobcopy/blobcopy/internal/app"
	"github.com/blobcopy/blobcopy/internal/azstorage"
	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/testenv/copysim"
)

// TestThrottlingIsRetriedWithBackoff: storage answering 503 ServerBusy (or 500) is
// retried by azcore's retry policy; the copy starts once and the caller sees success.
func TestThrottlingIsRetriedWithBackoff(t *testing.T) {
	h := newHarness(t, nil)
	h.sim.PutBlob(simAccount, "src", "t.bin", []byte("throttled"), nil)
	h.sim.CreateContainer(simAccount, "dst")
	for _, tc := range []struct {
		op     string
		status int
		code   string
	}{{copysim.OpCopyBlob, 503, "ServerBusy"}, {copysim.OpLeaseBlob, 500, "InternalError"}} {
		h.sim.ResetCounts()
		h.sim.FailNext(tc.op, copysim.Fault{Status: tc.status, Code: tc.code, Times: 2})
		job := h.startPending(map[string]any{"source": h.sim.AccountEndpoint(simAccount) + "/src/t.bin",
			"destination": map[string]any{"account": "sim", "container": "dst", "blob": "t-" + tc.code + ".bin"}, "leaseSource": tc.op == copysim.OpLeaseBlob})
		if n := h.sim.RequestCount(tc.op); n != 3 {
			t.Errorf("%s: %d requests, want 2 failures + 1 success", tc.op, n)
		}
		if job.CopyID == "" {
			t.Errorf("%s: no copy id", tc.op)
		}
		if tc.op == copysim.OpLeaseBlob {
			// Finish it so the lease is released for the next case.
			if err := h.sim.Complete(simAccount, "dst", "t-"+tc.code+".bin"); err != nil {
				t.Fatal(err)
			}
			h.getJob(job.ID)
		}
	}
	// Throttled while polling: the tick fails this visit, keeps the message, and the next
	// visit succeeds.
	job := h.startPending(map[string]any{"source": h.sim.AccountEndpoint(simAccount) + "/src/t.bin",
		"destination": map[string]any{"account": "sim", "container": "dst", "blob": "polled.bin"}})
	h.sim.FailNext(copysim.OpGetBlobProperties, copysim.Fault{Status: 503, Code: "ServerBusy", Times: 8})
	time.Sleep(1100 * time.Millisecond)
	h.invokeTimer()
	if err := h.sim.Complete(simAccount, "dst", "polled.bin"); err != nil {
		t.Fatal(err)
	}
	h.tickUntil("throttled poll recovered", func() bool { return h.record(job.ID).Status == copyjob.StatusSuccess })
}

// TestInvalidQueueMessagesArePoisoned: text that is not a tracking message goes to the
// poison queue with the reason, on real Azurite queues.
func TestInvalidQueueMessagesArePoisoned(t *testing.T) {
	h := newHarness(t, nil)
	for _, text := range []string{"not json", `{"jobId":""}`, `[1,2,3]`} {
		if _, err := h.queueClient(app.DefaultQueue).EnqueueMessage(context.Background(), text, nil); err != nil {
			t.Fatal(err)
		}
	}
	h.tickUntil("messages poisoned", func() bool { return h.queueLength(app.DefaultQueue) == 0 })
	entries := h.poisonEntries()
	if len(entries) != 3 {
		t.Fatalf("poison queue = %+v", entries)
	}
	for _, e := range entries {
		if !strings.Contains(e.Reason, "not a tracking message") {
			t.Errorf("reason = %q", e.Reason)
		}
	}
}

func (h *harness) poisonEntries() []azstorage.PoisonEntry {
	h.t.Helper()
	resp, err := h.queueClient(app.DefaultQueue+"-poison").PeekMessages(context.Background(), &azqueue.PeekMessagesOptions{NumberOfMessages: to.Ptr(int32(32))})
	if err != nil {
		h.t.Fatal(err)
	}
	var out []azstorage.PoisonEntry
	for _, m := range resp.Messages {
		var e azstorage.PoisonEntry
		if err := json.Unmarshal([]byte(*m.MessageText), &e); err != nil {
			h.t.Fatalf("poison entry %q: %v", *m.MessageText, err)
		}
		out = append(out, e)
	}
	return out
}

// TestRecordDeletedBehindTheAppsBack: the tick follows the copy through its message,
// keeps the source lease while the copy runs, releases it when the copy ends, and then
// poisons the message with what happened.
func TestRecordDeletedBehindTheAppsBack(t *testing.T) {
	h := newHarness(t, map[string]string{"COPY_START_GRACE": "1s"})
	h.sim.PutBlob(simAccount, "src", "orphan.bin", []byte("orphan"), nil)
	// Keyed: the record is created first, and the message never carries the job (a
	// record deleted while the message carries it is written again from it:
	// copyjob's TestRecordDeletedBeforeTheFirstVisit).
	job := h.startPendingWith(map[string]any{"source": h.sim.AccountEndpoint(simAccount) + "/src/orphan.bin",
		"destination": map[string]any{"account": "sim", "container": "dst", "blob": "orphan.bin"}, "leaseSource": true},
		map[string]string{"Idempotency-Key": "orphan"})
	if _, err := h.blobClient("devstoreaccount1").DeleteBlob(context.Background(), app.DefaultRecords, "jobs/"+job.ID+".json", nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // past COPY_START_GRACE
	h.invokeTimer()
	if l := h.sim.Lease(simAccount, "src", "orphan.bin"); l.State != "leased" {
		t.Fatalf("lease released while the copy runs: %+v", l)
	}
	if err := h.sim.Complete(simAccount, "dst", "orphan.bin"); err != nil {
		t.Fatal(err)
	}
	h.tickUntil("message poisoned", func() bool { return h.queueLength(app.DefaultQueue) == 0 })
	entries := h.poisonEntries()
	if len(entries) != 1 || !strings.Contains(entries[0].Reason, "job record was deleted while copy") || !strings.Contains(entries[0].Message, job.ID) {
		t.Fatalf("poison queue = %+v", entries)
	}
	if l := h.sim.Lease(simAccount, "src", "orphan.bin"); l.State == "leased" {
		t.Errorf("lease left held by nobody: %+v", l)
	}
	if r := h.do(http.MethodGet, "/api/copies/"+job.ID, nil, nil); r.status != 404 {
		t.Errorf("status of the deleted job: %d", r.status)
	}
}

// TestStorageOutageDuringTicks: Azurite goes away; the timer invocation fails cleanly
// (non-2xx, so the host records a failed run) without a panic or a lost job; once
// storage is back, ticks resume. Azurite runs in memory here, so a restart empties it:
// the app recreates its queue and container, as it does at start-up.
func TestStorageOutageDuringTicks(t *testing.T) {
	h := newHarness(t, nil)
	h.az.Stop()
	r := h.do(http.MethodPost, "/statusfn", `{"Data":{"timer":{"Schedule":{"AdjustForDST":true},"ScheduleStatus":null,"IsPastDue":true}},"Metadata":{"sys":{"MethodName":"statusfn","UtcNow":"2026-11-25T10:00:30Z","RandGuid":"0f8fad5b-d9cb-469f-a165-70867728950f"}}}`, nil)
	if r.status != http.StatusInternalServerError {
		t.Fatalf("tick with storage down: %d %s", r.status, r.body)
	}
	var out struct{ Logs []string }
	decodeJSON(t, r.body, &out)
	if len(out.Logs) == 0 || !strings.Contains(strings.Join(out.Logs, "\n"), "status tick failed") {
		t.Errorf("invocation logs = %q", out.Logs)
	}
	if r := h.startCopy(map[string]any{"source": "https://example.com/a", "destination": map[string]any{"container": "dst", "blob": "a"}}); r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
		t.Errorf("start with storage down: %d %s", r.status, r.body)
	}
	h.az.Restart(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.app.EnsureStorage(ctx); err != nil {
		t.Fatal(err)
	}
	h.invokeTimer()
	src := h.upload("devstoreaccount1", "src", "after.txt", []byte("back"))
	if r := h.startCopy(map[string]any{"source": src, "destination": map[string]any{"container": "dst", "blob": "after.txt"}}); r.status != http.StatusOK {
		t.Errorf("start after restart: %d %s", r.status, r.body)
	}
}

// TestStartWithoutItsMessageIsSweptOnAzurite: a keyed start whose tracking message cannot be
// enqueued leaves its record "starting" and untracked; once COPY_START_GRACE has passed,
// the tick's sweep finds it through the records' blob index (one Find Blobs by Tags
// request, no listing of the records), gives it a message, and the copy it started is
// adopted and followed to its end.
func TestStartWithoutItsMessageIsSweptOnAzurite(t *testing.T) {
	watch := &storageWatch{failPutMessage: true}
	h := newHarnessWith(t, map[string]string{"COPY_START_GRACE": "3s"}, watch)
	h.sim.PutBlob(simAccount, "src", "unqueued.bin", []byte("no message"), nil)
	h.sim.CreateContainer(simAccount, "dst")
	// Keyed: the record is created first (a start without a key enqueues before Copy
	// Blob, and fails before anything when it cannot).
	job := h.startPendingWith(map[string]any{"source": h.sim.AccountEndpoint(simAccount) + "/src/unqueued.bin",
		"destination": map[string]any{"account": "sim", "container": "dst", "blob": "unqueued.bin"}},
		map[string]string{"Idempotency-Key": "unqueued"})
	if rec := h.record(job.ID); rec.Status != copyjob.StatusStarting || rec.Tracked {
		t.Fatalf("record after a start without its message: %s, tracked %v", rec.Status, rec.Tracked)
	}
	watch.set(false)
	h.invokeTimer() // the first sweep claims the backstop and lists every starting record; the start is younger than the grace
	watch.reset()
	h.tickUntil("the untracked start swept up", func() bool { return h.record(job.ID).Status == copyjob.StatusPending })
	if rec := h.record(job.ID); rec.CopyID != job.CopyID || !rec.Tracked {
		t.Errorf("after the sweep: copy %s (started %s), tracked %v: want the started copy adopted", rec.CopyID, job.CopyID, rec.Tracked)
	}
	if err := h.sim.Complete(simAccount, "dst", "unqueued.bin"); err != nil {
		t.Fatal(err)
	}
	h.tickUntil("the swept copy ends", func() bool { return h.record(job.ID).Status == copyjob.StatusSuccess })
	if n := h.sim.RequestCount(copysim.OpCopyBlob); n != 1 {
		t.Errorf("%d Copy Blob requests, want the one the start made", n)
	}
	// The one listing allowed after the backstop's is the takeover's: adopting
	// the copy checks that no other job records it (a listing filtered on the copy id). A
	// sweep that listed the records would add one per sweep.
	finds, lists := watch.counts()
	if finds == 0 || lists > 1 {
		t.Errorf("the sweeps made %d Find Blobs by Tags and %d record listings: want the index used, no listing but the takeover's", finds, lists)
	}
}

// storageWatch fails the app's Put Message to its tracking queue while told to, and
// counts the requests that search the records: Find Blobs by Tags, and List Blobs of
// the records.
type storageWatch struct {
	mu             sync.Mutex
	failPutMessage bool
	finds, lists   int
}

func (w *storageWatch) set(fail bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.failPutMessage = fail
}

func (w *storageWatch) reset() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.finds, w.lists = 0, 0
}

func (w *storageWatch) counts() (finds, lists int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.finds, w.lists
}

func (w *storageWatch) Do(req *policy.Request) (*http.Response, error) {
	r := req.Raw()
	q := r.URL.Query()
	w.mu.Lock()
	switch {
	case q.Get("comp") == "blobs" && q.Get("where") != "":
		w.finds++
	case q.Get("comp") == "list" && strings.HasPrefix(q.Get("prefix"), "jobs/"):
		w.lists++
	}
	fail := w.failPutMessage && r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/"+app.DefaultQueue+"/messages")
	w.mu.Unlock()
	if !fail {
		return req.Next()
	}
	h := http.Header{}
	h.Set("x-ms-error-code", "ServerBusy")
	return &http.Response{StatusCode: http.StatusServiceUnavailable, Status: "503 Server Busy", Header: h,
		Body: io.NopCloser(strings.NewReader("")), Request: r}, nil
}
