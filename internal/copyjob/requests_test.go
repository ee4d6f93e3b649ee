package copyjob_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/copyjob/copyjobtest"
)

// storageOps counts the storage requests the fakes saw, by operation. PrepareSource
// and URL make none for a source in the destination's account and are left out.
func storageOps(h *harness) map[string]int {
	h.svc.Wait() // a start deletes a finished job's message behind its answer
	ops := map[string]int{}
	add := func(f *copyjobtest.Faults, names ...string) {
		for _, op := range names {
			if n := f.Calls(op); n > 0 {
				ops[op] = n
			}
		}
	}
	add(&h.Blobs.Faults, copyjobtest.OpStartCopy, copyjobtest.OpCopyState, copyjobtest.OpAbortCopy,
		copyjobtest.OpAcquireLease, copyjobtest.OpReleaseLease, copyjobtest.OpSnapshot, copyjobtest.OpDeleteSnapshot)
	add(&h.Records.Faults, copyjobtest.OpCreate, copyjobtest.OpGet, copyjobtest.OpUpdate, copyjobtest.OpList)
	add(&h.Queue.Faults, copyjobtest.OpEnqueue, copyjobtest.OpDequeue, copyjobtest.OpUpdateMessage,
		copyjobtest.OpDelete, copyjobtest.OpPoison)
	return ops
}

// Issue 13: what a start costs in storage requests, from the request to its recorded
// outcome (or its recorded "pending"), and with its message deleted when nothing is
// left to the tick. The fakes' operations are the REST requests one for one (the
// azstorage adapter reads no length after a Copy Blob that finished at once). A start
// nothing can replay (no job id) leaves its trail in its tracking message and records
// once, after Copy Blob; a keyed one (idempotency key, event id) creates its record
// first, the lock a second delivery stops at.
func TestStartRequestBudget(t *testing.T) {
	snapshotted := copyjob.StartRequest{Source: srcURL, Destination: dstRef, Options: copyjob.Options{SnapshotDestination: true, Overwrite: true}}
	tests := []struct {
		name    string
		req     copyjob.StartRequest
		atOnce  bool
		want    map[string]int
		rest    int // REST requests: the budget
		wantMsg int
		status  copyjob.Status
	}{
		{name: "plain, completes at once", req: copyjob.StartRequest{Source: srcURL, Destination: dstRef}, atOnce: true,
			want:   map[string]int{copyjobtest.OpEnqueue: 1, copyjobtest.OpStartCopy: 1, copyjobtest.OpCreate: 1, copyjobtest.OpDelete: 1},
			rest:   4, // Put Message, Copy Blob, Put Blob, Delete Message
			status: copyjob.StatusSuccess},
		{name: "plain, pending", req: copyjob.StartRequest{Source: srcURL, Destination: dstRef},
			want:    map[string]int{copyjobtest.OpEnqueue: 1, copyjobtest.OpStartCopy: 1, copyjobtest.OpCreate: 1},
			rest:    3, // Put Message, Copy Blob, Put Blob
			wantMsg: 1, status: copyjob.StatusPending},
		{name: "leaseSource, pending", req: leasedReq(),
			want: map[string]int{copyjobtest.OpEnqueue: 1, copyjobtest.OpAcquireLease: 1, copyjobtest.OpStartCopy: 1,
				copyjobtest.OpCreate: 1},
			rest:    4, // the pending start + Acquire Lease (its release comes with the outcome)
			wantMsg: 1, status: copyjob.StatusPending},
		{name: "leaseSource, completes at once", req: leasedReq(), atOnce: true,
			want: map[string]int{copyjobtest.OpEnqueue: 1, copyjobtest.OpAcquireLease: 1, copyjobtest.OpStartCopy: 1,
				copyjobtest.OpReleaseLease: 1, copyjobtest.OpCreate: 1, copyjobtest.OpDelete: 1},
			rest:   6, // the plain 4 + Acquire Lease + Release Lease
			status: copyjob.StatusSuccess},
		{name: "snapshotDestination, pending", req: snapshotted,
			want: map[string]int{copyjobtest.OpSnapshot: 1, copyjobtest.OpEnqueue: 1, copyjobtest.OpStartCopy: 1,
				copyjobtest.OpCreate: 1},
			rest:    4, // the pending start + Snapshot Blob
			wantMsg: 1, status: copyjob.StatusPending},
		{name: "snapshotDestination, completes at once", req: snapshotted, atOnce: true,
			want: map[string]int{copyjobtest.OpSnapshot: 1, copyjobtest.OpEnqueue: 1, copyjobtest.OpStartCopy: 1,
				copyjobtest.OpCreate: 1, copyjobtest.OpDelete: 1},
			rest:   5, // the plain 4 + Snapshot Blob
			status: copyjob.StatusSuccess},
		{name: "keyed, completes at once", req: keyed(copyjob.StartRequest{Source: srcURL, Destination: dstRef}), atOnce: true,
			want:   map[string]int{copyjobtest.OpCreate: 1, copyjobtest.OpStartCopy: 1, copyjobtest.OpUpdate: 1},
			rest:   3, // Put Blob, Copy Blob, Put Blob
			status: copyjob.StatusSuccess},
		{name: "keyed, pending", req: keyed(copyjob.StartRequest{Source: srcURL, Destination: dstRef}),
			want:    map[string]int{copyjobtest.OpCreate: 1, copyjobtest.OpStartCopy: 1, copyjobtest.OpEnqueue: 1, copyjobtest.OpUpdate: 1},
			rest:    4, // Put Blob, Copy Blob, Put Message, Put Blob
			wantMsg: 1, status: copyjob.StatusPending},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			if tt.atOnce {
				h.Blobs.SetStartStatus(copyjob.StatusSuccess)
			}
			if tt.req.Options.SnapshotDestination {
				h.Blobs.Put(dstRef, 5, nil) // a destination to protect
			}
			job := h.start(tt.req)
			got := storageOps(h)
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("storage operations %v, want %v", got, tt.want)
			}
			rest := 0
			for _, n := range got {
				rest += n
			}
			if rest != tt.rest {
				t.Errorf("%d REST requests, want %d", rest, tt.rest)
			}
			// The record already tells the truth: a read right after the answer never
			// says "starting".
			rec := h.wantStatus(job.ID, tt.status)
			if job.Status != tt.status {
				t.Errorf("answered %s, recorded %s", job.Status, rec.Status)
			}
			h.wantMessages(tt.wantMsg)
			if tt.req.Options.LeaseSource && tt.atOnce {
				h.wantLeaseReleased(rec)
				h.wantNoLeases()
			}
		})
	}
}

// A start whose tracking message cannot be enqueued (the queue is down) after its copy
// started: it is answered (the copy runs; a 503 would make a client start another), and
// the tick's sweep gives its record a message once the start's claim has expired; the
// copy is adopted, never started twice.
func TestStartWithoutItsMessageIsSweptUp(t *testing.T) {
	h := newHarness(t)
	h.Queue.FailNext(copyjobtest.OpEnqueue, errBusy)
	job, created, err := h.svc.Start(h.ctx, keyed(leasedReq()))
	if err != nil || !created || job.Status != copyjob.StatusPending {
		t.Fatalf("job %+v created %v err %v", job, created, err)
	}
	h.wantMessages(0)
	h.wantStatus(job.ID, copyjob.StatusStarting)

	h.tickAfter(h.svc.Config().StartGrace / 2) // the claim is live: nothing to sweep
	h.wantMessages(0)
	r := h.tickAfter(h.svc.Config().StartGrace)
	if r.Swept != 1 || r.Resumed != 1 {
		t.Fatalf("report %+v", r)
	}
	rec := h.wantStatus(job.ID, copyjob.StatusPending)
	h.wantStartCopies(1)
	if rec.CopyID != job.CopyID || !rec.Tracked || rec.Lease.State != copyjob.LeaseHeld {
		t.Fatalf("record %+v", rec)
	}
	h.wantMessages(1)
	_ = h.Blobs.CompleteCopy(dstRef)
	h.tickAfter(time.Hour)
	h.wantLeaseReleased(h.wantStatus(job.ID, copyjob.StatusSuccess))
	h.wantMessages(0)
}

// A start that failed transiently is followed by a message (enqueued when it was
// postponed), so the sweep leaves it alone and the tick attempts it again.
func TestPostponedStartIsTracked(t *testing.T) {
	h := newHarness(t)
	h.Blobs.FailNext(copyjobtest.OpStartCopy, errBusy)
	h.Blobs.FailNext(copyjobtest.OpCopyState, errBusy) // the destination cannot tell: postponed
	_, _, err := h.svc.Start(h.ctx, leasedReq())
	e := wantCode(t, err, copyjob.CodeStorageUnavailable)
	rec := h.wantStatus(e.Job.ID, copyjob.StatusStarting)
	if !rec.Tracked || rec.NextAttemptAt == nil {
		t.Fatalf("record %+v", rec)
	}
	h.wantMessages(1)
	for range 3 {
		if r := h.tickAfter(h.svc.Config().StartGrace); r.Swept != 0 {
			t.Fatalf("swept a tracked start: %+v", r)
		}
	}
	h.wantStatus(e.Job.ID, copyjob.StatusPending)
	h.wantStartCopies(2)
	h.wantMessages(1)
}

// The sweep looks for untracked starts at most once per half StartGrace, however often
// the tick runs: its cost is one Find Blobs by Tags request per sweep (azstorage; a
// listing of the records on an account without the blob index).
func TestSweepRunsAtMostTwicePerStartGrace(t *testing.T) {
	h := newHarness(t)
	grace := h.svc.Config().StartGrace
	ticks := 0
	for elapsed := time.Duration(0); elapsed < 2*grace; elapsed += time.Second {
		h.tickAfter(time.Second)
		ticks++
	}
	if n := h.Records.Calls(copyjobtest.OpList); n > 5 || n < 4 {
		t.Fatalf("%d listings in %d ticks over %s, want 4 or 5 (one per %s)", n, ticks, 2*grace, grace/2)
	}
}

// Issue 13: each option adds only its own REST calls. The tick that sees a pending copy
// end costs the same with leaseSource as without, plus the Release Lease: the lease is
// released before the terminal write, which records it (see releaseFirst), instead of
// under an effects claim that a second write gives back.
func TestCompletionRequestBudget(t *testing.T) {
	tests := []struct {
		name string
		req  copyjob.StartRequest
		want map[string]int
	}{
		{name: "plain", req: copyjob.StartRequest{Source: srcURL, Destination: dstRef},
			want: map[string]int{copyjobtest.OpDequeue: 1, copyjobtest.OpGet: 1, copyjobtest.OpCopyState: 1,
				copyjobtest.OpUpdate: 1, copyjobtest.OpDelete: 1}},
		{name: "leaseSource", req: leasedReq(),
			want: map[string]int{copyjobtest.OpDequeue: 1, copyjobtest.OpGet: 1, copyjobtest.OpCopyState: 1,
				copyjobtest.OpReleaseLease: 1, copyjobtest.OpUpdate: 1, copyjobtest.OpDelete: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			job := h.start(tt.req)
			h.tickAfter(h.svc.Config().FirstPoll) // a first poll (and this tick's sweep)
			if err := h.Blobs.CompleteCopy(dstRef); err != nil {
				t.Fatal(err)
			}
			before := storageOps(h)
			h.tickAfter(30 * time.Second) // no sweep is due yet
			got := storageOps(h)
			for op, n := range before {
				if got[op] -= n; got[op] == 0 {
					delete(got, op)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("the completing tick's storage operations %v, want %v", got, tt.want)
			}
			rec := h.wantStatus(job.ID, copyjob.StatusSuccess)
			h.wantMessages(0)
			if tt.req.Options.LeaseSource {
				h.wantLeaseReleased(rec)
				h.wantNoLeases()
			}
		})
	}
}

// A start the records' index does not know (its record was written before the index
// tag existed, or where the account refused it) is still swept up: one sweep per
// FullSweepInterval (claimed in the store, for every instance together) lists every
// "starting" record. Between them the sweep asks the index only.
func TestSweepBackstopFindsStartsTheIndexMisses(t *testing.T) {
	h := newHarness(t)
	cfg := h.svc.Config()
	h.Queue.FailNext(copyjobtest.OpEnqueue, errBusy)
	first, _, err := h.svc.Start(h.ctx, keyed(leasedReq()))
	if err != nil {
		t.Fatal(err)
	}
	h.Records.HideFromIndex(first.ID)
	h.tickAfter(time.Second) // the first sweep claims the backstop: the start's claim is live, nothing to do
	h.wantMessages(0)
	if r := h.tickAfter(cfg.StartGrace); r.Swept != 0 {
		t.Fatalf("the index does not know the start, yet a sweep between backstops found it: %+v", r)
	}
	h.wantStatus(first.ID, copyjob.StatusStarting)
	swept := 0
	for elapsed := time.Duration(0); elapsed <= cfg.FullSweepInterval && swept == 0; elapsed += cfg.StartGrace {
		swept += h.tickAfter(cfg.StartGrace).Swept
	}
	if swept != 1 {
		t.Fatalf("the backstop swept %d starts within %s, want the one the index misses", swept, cfg.FullSweepInterval)
	}
	rec := h.wantStatus(first.ID, copyjob.StatusPending)
	if rec.CopyID != first.CopyID || rec.Lease.State != copyjob.LeaseHeld {
		t.Fatalf("record %+v: want the started copy adopted with its lease", rec)
	}
	h.wantStartCopies(1)
}
