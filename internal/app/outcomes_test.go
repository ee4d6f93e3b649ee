package app_test

// Issue 10's cases end to end: the HTTP API and the timer on Azurite (records, queue) and
// the copy simulator (pending copies, injected faults before and after an operation).

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/testenv/copysim"
)

func simCopyReq(h *harness, src, dst string, extra map[string]any) map[string]any {
	req := map[string]any{"source": h.sim.AccountEndpoint(simAccount) + "/src/" + src,
		"destination": map[string]any{"account": "sim", "container": "dst", "blob": dst}}
	for k, v := range extra {
		req[k] = v
	}
	return req
}

// Case 1: Copy Blob answers 503 past the SDK's retries: 503 + Retry-After, the job stays
// "starting"; the client's retry with the same Idempotency-Key attempts the copy again.
func TestTransientStartFailureIsRetriedByTheClient(t *testing.T) {
	h := newHarness(t, nil)
	h.sim.PutBlob(simAccount, "src", "busy.bin", []byte("busy"), nil)
	h.sim.FailNext(copysim.OpCopyBlob, copysim.Fault{Status: 503, Code: "ServerBusy", RetryAfter: time.Second, Times: 10})
	req := simCopyReq(h, "busy.bin", "busy.bin", map[string]any{"leaseSource": true})
	key := map[string]string{"Idempotency-Key": "busy-1"}
	r := h.do(http.MethodPost, "/api/copies", req, key)
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" || r.errorResponse(t).Error.Code != string(copyjob.CodeStorageUnavailable) {
		t.Fatalf("first attempt: %d %v %s", r.status, r.header, r.body)
	}
	id := r.errorResponse(t).Job.ID
	if rec := h.record(id); rec.Status != copyjob.StatusStarting || rec.Refusal != nil {
		t.Fatalf("record after a transient failure: %s %+v", rec.Status, rec.Refusal)
	}
	h.sim.ClearFaults()
	r = h.do(http.MethodPost, "/api/copies", req, key)
	if r.status != http.StatusAccepted || r.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("retry: %d %v %s", r.status, r.header, r.body)
	}
	if j := r.job(t); j.ID != id || j.Status != copyjob.StatusPending {
		t.Fatalf("retry answered %+v", j)
	}
	if l := h.sim.Lease(simAccount, "src", "busy.bin"); l.State != "leased" {
		t.Fatalf("source lease %+v", l)
	}
}

// Case 3: a replay of a refused start answers the refusal again (status and body), not
// 200 with a failed job.
func TestRefusedStartReplaysItsRefusal(t *testing.T) {
	h := newHarness(t, nil)
	h.sim.PutBlob(simAccount, "src", "a.bin", []byte("a"), nil)
	h.sim.PutBlob(simAccount, "dst", "exists.bin", []byte("old"), nil)
	req := simCopyReq(h, "a.bin", "exists.bin", map[string]any{"overwrite": false})
	key := map[string]string{"Idempotency-Key": "refused-1"}
	first := h.do(http.MethodPost, "/api/copies", req, key)
	if first.status != http.StatusConflict || first.errorResponse(t).Error.Code != string(copyjob.CodeDestinationExists) {
		t.Fatalf("first: %d %s", first.status, first.body)
	}
	copies := h.sim.RequestCount(copysim.OpCopyBlob)
	again := h.do(http.MethodPost, "/api/copies", req, key)
	e1, e2 := first.errorResponse(t), again.errorResponse(t)
	if again.status != first.status || e2.Error.Code != e1.Error.Code || e2.Error.Message != e1.Error.Message || e2.Error.Target != e1.Error.Target {
		t.Fatalf("replay: %d %s, want %d %s", again.status, again.body, first.status, first.body)
	}
	if h.sim.RequestCount(copysim.OpCopyBlob) != copies {
		t.Fatal("the replay called Copy Blob")
	}
}

// Case 7: Copy Blob is carried out, its answer lost (500 OperationTimedOut); the SDK's
// retry meets the job's own copy (409 PendingCopyOperation). The job adopts it.
func TestLostCopyBlobAnswerIsAdopted(t *testing.T) {
	h := newHarness(t, nil)
	h.sim.PutBlob(simAccount, "src", "lost.bin", []byte("lost answer"), nil)
	h.sim.FailNext(copysim.OpCopyBlob, copysim.Fault{When: copysim.After, Status: 500, Code: "OperationTimedOut"})
	job := h.startPending(simCopyReq(h, "lost.bin", "lost.bin", map[string]any{"leaseSource": true}))
	c, ok := h.sim.Copy(simAccount, "dst", "lost.bin")
	if !ok || c.ID != job.CopyID {
		t.Fatalf("job tracks %s, storage runs %+v", job.CopyID, c)
	}
	if l := h.sim.Lease(simAccount, "src", "lost.bin"); l.State != "leased" || l.ID != job.LeaseID {
		t.Fatalf("lease %+v, job lease %s", l, job.LeaseID)
	}
}

// Case 5: Copy Blob slower than the start's deadline: the start gives up its call (503,
// retryable) long before the tick may take over; the next attempt adopts the copy the
// slow call started. One copy, the lease held while it runs.
func TestSlowCopyBlobIsAdoptedNotDuplicated(t *testing.T) {
	h := newHarness(t, map[string]string{"COPY_START_GRACE": "3s"}) // start deadline 0.75 s
	h.sim.PutBlob(simAccount, "src", "slow.bin", []byte("slow"), nil)
	h.sim.FailNext(copysim.OpCopyBlob, copysim.Fault{When: copysim.After, Delay: 3 * time.Second})
	req := simCopyReq(h, "slow.bin", "slow.bin", map[string]any{"leaseSource": true})
	key := map[string]string{"Idempotency-Key": "slow-1"}
	r := h.do(http.MethodPost, "/api/copies", req, key)
	// The slow call was carried out: either its answer is awaited (202), or the start
	// gave it up at its deadline and found its copy (202), or it could not tell yet (503).
	if r.status != http.StatusAccepted && r.status != http.StatusServiceUnavailable {
		t.Fatalf("start: %d %s", r.status, r.body)
	}
	var id string
	h.tickUntil("the copy tracked", func() bool {
		rr := h.do(http.MethodPost, "/api/copies", req, key)
		if rr.status != http.StatusAccepted {
			return false
		}
		id = rr.job(t).ID
		return true
	})
	rec := h.record(id)
	c, _ := h.sim.Copy(simAccount, "dst", "slow.bin")
	if rec.Status != copyjob.StatusPending || rec.CopyID != c.ID {
		t.Fatalf("record %s %s, storage %+v", rec.Status, rec.CopyID, c)
	}
	if n := copyStartsFor(h.sim, "slow.bin"); n != 1 {
		t.Fatalf("%d copies started, want 1", n)
	}
	if l := h.sim.Lease(simAccount, "src", "slow.bin"); l.State != "leased" {
		t.Fatalf("lease released while the copy runs: %+v", l)
	}
}

func copyStartsFor(sim *copysim.Server, blob string) int {
	n := 0
	for _, r := range sim.Requests() {
		if r.Op == copysim.OpCopyBlob && r.Blob == blob && r.Status < 300 {
			n++
		}
	}
	return n
}

// Case 4: 40 pending copies with callbacks, 4 concurrent status readers, two tick
// runners at once (two instances): one callback per job, leases recorded released.
func TestConcurrentReadersAndTicksDeliverOneCallbackPerJob(t *testing.T) {
	h := newHarness(t, nil)
	recv := newReceiver(t, 0)
	const n = 40
	ids := make([]string, n)
	for i := range n {
		name := fmt.Sprintf("c%d.bin", i)
		h.sim.PutBlob(simAccount, "src", name, []byte("concurrent "+name), nil)
		ids[i] = h.startPending(simCopyReq(h, name, name, map[string]any{"leaseSource": true, "callbackUrl": recv.srv.URL + "/done"})).ID
	}
	ctx, stop := context.WithCancel(context.Background())
	var readers sync.WaitGroup
	for r := range 4 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for i := r; ctx.Err() == nil; i = (i + 1) % n {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, h.srv.URL+"/api/copies/"+ids[i], nil)
				if resp, err := h.srv.Client().Do(req); err == nil {
					resp.Body.Close()
				}
			}
		}()
	}
	for i := range n {
		if err := h.sim.Complete(simAccount, "dst", fmt.Sprintf("c%d.bin", i)); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for h.queueLength("copyjobs") > 0 && time.Now().Before(deadline) {
		var ticks sync.WaitGroup
		for range 2 {
			ticks.Add(1)
			go func() { defer ticks.Done(); _, _ = h.app.Copies.Tick(context.Background()) }()
		}
		ticks.Wait()
		time.Sleep(300 * time.Millisecond)
	}
	stop()
	readers.Wait()
	per := map[string]int{}
	for _, o := range recv.outcomes() {
		per[o.JobID]++
	}
	for _, id := range ids {
		rec := h.record(id)
		if rec.Status != copyjob.StatusSuccess || per[id] != 1 || rec.Lease.State != copyjob.LeaseReleased {
			t.Errorf("job %s: %s, %d callbacks, lease %s", id, rec.Status, per[id], rec.Lease.State)
		}
	}
}

// The copy domain's lines of a timer invocation carry the host's invocation id, so the
// host's log stream correlates them (issue 12: copyjob logs with the invocation context).
func TestTickLinesCarryTheInvocationID(t *testing.T) {
	h := newHarness(t, nil)
	h.sim.PutBlob(simAccount, "src", "inv.bin", []byte("inv"), nil)
	job := h.startPending(simCopyReq(h, "inv.bin", "inv.bin", nil))
	if err := h.sim.Complete(simAccount, "dst", "inv.bin"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // COPY_FIRST_POLL
	now := time.Now().UTC().Format(time.RFC3339Nano)
	payload := fmt.Sprintf(`{"Data":{"timer":{"Schedule":{"AdjustForDST":true},"ScheduleStatus":null,"IsPastDue":false}},"Metadata":{"sys":{"MethodName":"statusfn","UtcNow":%q,"RandGuid":"0f8fad5b-d9cb-469f-a165-70867728950e"}}}`, now)
	const invocation = "5d2c6a1e-8f0b-4c1f-9a57-3e6b2c9d0a11"
	r := h.do(http.MethodPost, "/statusfn", payload, map[string]string{"X-Azure-Functions-InvocationId": invocation})
	if r.status != http.StatusOK {
		t.Fatalf("invocation: %d %s", r.status, r.body)
	}
	if rec := h.record(job.ID); rec.Status != copyjob.StatusSuccess {
		t.Fatalf("job %s", rec.Status)
	}
	found := false
	for _, line := range strings.Split(string(r.body)+h.logs.String(), "\n") {
		if strings.Contains(line, "copy outcome recorded") && strings.Contains(line, job.ID) {
			found = true
			if !strings.Contains(line, invocation) {
				t.Errorf("outcome line without the invocation id: %s", line)
			}
		}
	}
	if !found {
		t.Fatalf("no outcome line for %s in the invocation's Logs or the log", job.ID)
	}
}

// Issue 16: a copy that failed because its source SAS expired is retried with POST
// .../retry: same job id, a freshly signed SAS, the failure kept in history.
func TestRetryAfterTheSourceSASExpired(t *testing.T) {
	h := newHarness(t, nil)
	src := h.upload("acct2", "src", "expire.bin", []byte(strings.Repeat("e", 64)))
	job := h.startPending(map[string]any{"source": src, "destination": map[string]any{"account": "sim", "container": "dst", "blob": "expire.bin"},
		"leaseSource": true, "sasLifetime": "1h"})
	h.clock.Advance(2 * time.Hour) // the copy is slower than the SAS lasts
	if err := h.sim.Complete(simAccount, "dst", "expire.bin"); err != nil {
		t.Fatal(err)
	}
	h.tickUntil("failure recorded", func() bool { return h.record(job.ID).Status.Terminal() })
	failed := h.getJob(job.ID)
	if failed.Status != copyjob.StatusFailed || failed.RetryPostURI != "/api/copies/"+job.ID+"/retry" {
		t.Fatalf("failed job %+v", failed)
	}
	h.clock.Advance(-2 * time.Hour) // storage's clock agrees with the app's again
	r := h.do(http.MethodPost, "/api/copies/"+job.ID+"/retry", nil, nil)
	if r.status != http.StatusAccepted {
		t.Fatalf("retry: %d %s", r.status, r.body)
	}
	j := r.job(t)
	if j.ID != job.ID || j.Status != copyjob.StatusPending || j.CopyID == job.CopyID || len(j.History) != 1 ||
		j.History[0].Status != copyjob.StatusFailed || j.Source.SASExpiresAt == nil || !j.Source.SASExpiresAt.After(*failed.Source.SASExpiresAt) {
		t.Fatalf("retried job %+v", j)
	}
	if err := h.sim.Complete(simAccount, "dst", "expire.bin"); err != nil {
		t.Fatal(err)
	}
	h.tickUntil("success recorded", func() bool { return h.record(job.ID).Status == copyjob.StatusSuccess })
	if r := h.do(http.MethodPost, "/api/copies/"+job.ID+"/retry", nil, nil); r.status != http.StatusConflict ||
		r.errorResponse(t).Error.Code != string(copyjob.CodeCopyNotRetryable) {
		t.Fatalf("retry of a success: %d %s", r.status, r.body)
	}
}

// A copy that ends at once logs its outcome in one line at Info, "copy outcome
// recorded", as every other outcome does (a refused start too, beside its "copy not
// started" line): the dashboard's per-hour count (docs/operations.md) counts each copy
// once, and a start writes no more lines than it needs (issue 13: each line is
// ingested and billed by Application Insights).
func TestCopyThatEndsAtOnceLogsOneOutcomeLine(t *testing.T) {
	h := newHarness(t, nil)
	src := h.upload("devstoreaccount1", "once", "a.txt", []byte("once"))
	for _, tt := range []struct {
		name   string
		body   map[string]any
		status int
	}{
		{"ends at once", map[string]any{"source": src, "destination": map[string]any{"container": "once", "blob": "b.txt"}}, http.StatusOK},
		{"refused: the destination exists", map[string]any{"source": src, "overwrite": false, "destination": map[string]any{"container": "once", "blob": "b.txt"}}, http.StatusConflict},
	} {
		r := h.startCopy(tt.body)
		if r.status != tt.status {
			t.Fatalf("%s: start: %d %s", tt.name, r.status, r.body)
		}
		var id string
		if r.status == http.StatusOK {
			id = r.job(t).ID
		} else {
			var e struct{ Job struct{ ID string } }
			decodeJSON(t, r.body, &e)
			id = e.Job.ID
		}
		h.app.Copies.Wait() // a request's outcome line is written behind its answer
		var outcomes []string
		for _, line := range strings.Split(h.logs.String(), "\n") {
			if strings.Contains(line, `"level":"DEBUG"`) {
				continue // the harness logs at Debug; the app's default level is Info
			}
			if id != "" && strings.Contains(line, id) && (strings.Contains(line, "copy outcome recorded") || strings.Contains(line, "copy finished at start")) {
				outcomes = append(outcomes, line)
			}
		}
		if len(outcomes) != 1 || !strings.Contains(outcomes[0], "copy outcome recorded") {
			t.Fatalf("%s: want one 'copy outcome recorded' line for job %q, got %d:\n%s", tt.name, id, len(outcomes), strings.Join(outcomes, "\n"))
		}
	}
}
