package copyjob_test

import (
	"testing"
	"time"

	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/copyjob/copyjobtest"
)

// TestGuessKeepsTheLeaseOfItsOwnPendingCopy (review R7): abandonUnstarted's "no copy of
// it" rests on ownCopy, which also answers copyNotOurs when another record names the
// destination's copy (findOwner); here another job's record names this job's own
// copy-1 (as a concurrent unkeyed start of the same source and destination that
// crashed before its Copy Blob would adopt it: recoverStart -> ownCopy finds no
// owner, since this job has no record). The guess's effects release the source lease
// at once (leaseReady is not held back by the guess) while copy-1 runs, and
// correctGuess then records the job pending on copy-1 with its lease released.
func TestGuessKeepsTheLeaseOfItsOwnPendingCopy(t *testing.T) {
	h := newHarness(t, prodTimings)
	h.Records.FailAlways(copyjobtest.OpCreate, errBusy)
	h.Queue.FailNext(copyjobtest.OpUpdateMessage, errBusy)
	req := leasedReq()
	req.Options.Overwrite = true
	job, _, err := h.svc.Start(h.ctx, req)
	h.Records.Heal("")
	if err != nil || job == nil || job.CopyID == "" {
		t.Fatalf("start: %+v %v", job, err)
	}
	if n := len(h.Queue.Messages()); n != 2 {
		t.Fatalf("%d messages, want 2", n)
	}
	other := &copyjob.Job{ID: "other-unkeyed-job", Status: copyjob.StatusPending, CopyID: job.CopyID, Destination: job.Destination,
		Source: job.Source, CreatedAt: job.CreatedAt, UpdatedAt: job.CreatedAt}
	h.Records.Put(other)
	h.Clock.Advance(h.svc.Config().FirstPoll)
	msgs, err := h.Queue.Dequeue(h.ctx, 32, 5*time.Minute)
	if err != nil || len(msgs) != 2 {
		t.Fatalf("dequeue: %v %d", err, len(msgs))
	}
	if _, err := h.Queue.Update(h.ctx, msgs[0], msgs[0].Text, 0); err != nil {
		t.Fatal(err)
	}
	h.tickAfter(h.svc.Config().StartGrace) // the guess
	h.svc.Wait()
	g := h.record(job.ID)
	st, _ := h.Blobs.CopyState(h.ctx, dstRef)
	t.Logf("after the guess: %s guess=%v lease %+v; destination copy %s %s; source lease holder %q",
		g.Status, g.GuessStandsUntil, g.Lease, st.CopyID, st.Status, h.Blobs.LeaseHolder(srcRef))
	for range 40 {
		h.tickAfter(15 * time.Second)
	}
	h.svc.Wait()
	j := h.record(job.ID)
	st, _ = h.Blobs.CopyState(h.ctx, dstRef)
	t.Logf("final: %s copy %s lease %+v; destination copy %s %s; source lease holder %q", j.Status, j.CopyID, j.Lease, st.CopyID, st.Status, h.Blobs.LeaseHolder(srcRef))
	if st.CopyID == job.CopyID && st.Status == copyjob.StatusPending && h.Blobs.LeaseHolder(srcRef) != job.Lease.ID {
		t.Fatalf("copy %s still pending on the destination, job %s, yet its source lease %s was released by the guess", job.CopyID, j.Status, job.Lease.ID)
	}
}

// TestGuessKeepsTheLeaseOfACopyAnotherStartAdopted (review R7): the same without a planted record. Job A
// (leaseSource, overwrite) starts copy-1, its record cannot be created and a tick holds
// its first message (a second names copy-1; a dead visit hides that one). Seconds later
// job B, an unkeyed start of the same source and destination without a lease (a client
// posting again), fails transiently before its Copy Blob and cannot record it (503). B's
// recoverStart adopts copy-1 (same source, begun within ClockSkew of B, no record
// names it); A's first message then finds copy-1 owned by B, guesses "no copy", and the
// guess's effects release A's source lease while copy-1 runs.
func TestGuessKeepsTheLeaseOfACopyAnotherStartAdopted(t *testing.T) {
	h := newHarness(t, prodTimings)
	h.Records.FailAlways(copyjobtest.OpCreate, errBusy)
	h.Queue.FailNext(copyjobtest.OpUpdateMessage, errBusy)
	req := leasedReq()
	req.Options.Overwrite = true
	a, _, err := h.svc.Start(h.ctx, req)
	if err != nil || a == nil || a.CopyID == "" {
		t.Fatalf("start A: %+v %v", a, err)
	}
	h.Clock.Advance(h.svc.Config().FirstPoll)
	msgs, err := h.Queue.Dequeue(h.ctx, 32, 5*time.Minute)
	if err != nil || len(msgs) != 2 {
		t.Fatalf("dequeue: %v %d", err, len(msgs))
	}
	if _, err := h.Queue.Update(h.ctx, msgs[0], msgs[0].Text, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	h.Blobs.FailNext(copyjobtest.OpStartCopy, errBusy)
	b, _, berr := h.svc.Start(h.ctx, copyjob.StartRequest{Source: srcURL, Destination: dstRef, Options: copyjob.Options{Overwrite: true}})
	h.Records.Heal("")
	t.Logf("start B answered %+v, %v", b, berr)
	h.tickAfter(h.svc.Config().StartGrace + 10*time.Second)
	h.svc.Wait()
	ga := h.record(a.ID)
	st, _ := h.Blobs.CopyState(h.ctx, dstRef)
	for _, j := range h.Records.Jobs() {
		t.Logf("record %s: %s copy %q lease %+v", j.ID, j.Status, j.CopyID, j.Lease)
	}
	t.Logf("A after the tick: %s guess=%v; destination copy %s %s; source lease holder %q", ga.Status, ga.GuessStandsUntil, st.CopyID, st.Status, h.Blobs.LeaseHolder(srcRef))
	released := st.CopyID == a.CopyID && st.Status == copyjob.StatusPending && h.Blobs.LeaseHolder(srcRef) != a.Lease.ID
	for range 40 {
		h.tickAfter(15 * time.Second)
	}
	h.svc.Wait()
	fa := h.record(a.ID)
	t.Logf("A later: %s copy %q lease %+v (destination still pending %s)", fa.Status, fa.CopyID, fa.Lease, st.CopyID)
	if released {
		t.Fatalf("A's copy %s is pending on the destination, yet A (%s) released its source lease", a.CopyID, ga.Status)
	}
}
