package copyjob_test

import (
	"testing"
	"time"

	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/copyjob/copyjobtest"
)

// Review 6: the tracking message of a start whose job is recorded in its outcome is
// deleted behind the answer (Service.dropMessageBehind). These tests hold that
// deletion (OnNext on Delete Message) and do, meanwhile, what a client, a second
// instance or the timer may do once the answer has left, then check the promise: one
// true outcome per job, no lease left held, one callback per outcome, no message left,
// nothing poisoned.

func (h *harness) wantSettled(id string, want copyjob.Status, deliveries int) {
	h.t.Helper()
	h.svc.Wait()
	rec := h.wantStatus(id, want)
	if rec.Lease != nil && (rec.Lease.State == copyjob.LeaseHeld || rec.Lease.State == copyjob.LeaseAcquiring) {
		h.t.Fatalf("lease left %s: %+v", rec.Lease.State, rec.Lease)
	}
	h.wantNoLeases()
	if d := h.Notifier.Deliveries(); len(d) != deliveries {
		h.t.Fatalf("%d callbacks delivered, want %d: %+v", len(d), deliveries, d)
	}
	if p := h.Queue.Poisoned(); len(p) != 0 {
		h.t.Fatalf("poisoned: %+v", p)
	}
	h.wantMessages(0)
}

// The timer visits the message while the start's deletion is held (the deletion slower
// than COPY_FIRST_POLL): the tick finds the record in its outcome and deletes the
// message itself; the late deletion, with the start's superseded pop receipt, changes
// nothing. Sound: passes.
func TestReview6TickOvertakesAHeldDeletion(t *testing.T) {
	for _, tt := range []struct {
		name string
		req  copyjob.StartRequest
	}{
		{"unkeyed", copyjob.StartRequest{Source: srcURL, Destination: dstRef, CallbackURL: hook}},
		{"keyed, leased", func() copyjob.StartRequest {
			r := keyed(leasedReq())
			r.CallbackURL = hook
			return r
		}()},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.Blobs.SetStartStatus(copyjob.StatusSuccess)
			hold := holdNextDelete(h)
			job, _, err := h.svc.Start(h.ctx, tt.req)
			if err != nil {
				t.Fatal(err)
			}
			hold.held()
			before := h.record(job.ID)
			r := h.tickAfter(h.svc.Config().FirstPoll + time.Second)
			if r.Dequeued != 1 || r.Completed != 1 {
				t.Fatalf("tick report %+v, want the start's message dequeued and completed", r)
			}
			hold.release()
			h.wantSettled(job.ID, copyjob.StatusSuccess, 1)
			if after := h.record(job.ID); after.UpdatedAt != before.UpdatedAt {
				t.Fatalf("the finished record was written again: %v -> %v", before.UpdatedAt, after.UpdatedAt)
			}
		})
	}
}

// A copy that failed at once is retried while its first attempt's message is still
// being deleted: the retry's attempt has its own message, the old one is dropped as
// stale (by the tick or by the late deletion), and the retried copy is followed to its
// end. Both orders of the tick and the late deletion. Sound: passes.
func TestReview6RetryWhileTheFirstDeletionIsHeld(t *testing.T) {
	for _, tickFirst := range []bool{true, false} {
		t.Run(map[bool]string{true: "tick first", false: "deletion first"}[tickFirst], func(t *testing.T) {
			h := newHarness(t)
			h.Blobs.SetStartStatus(copyjob.StatusFailed)
			req := leasedReq()
			req.CallbackURL = hook
			hold := holdNextDelete(h)
			job := h.start(req)
			hold.held()
			h.wantStatus(job.ID, copyjob.StatusFailed)
			h.Blobs.SetStartStatus(copyjob.StatusPending)
			got, err := h.svc.Retry(h.ctx, job.ID, copyjob.RetryOptions{})
			if err != nil || got.Status != copyjob.StatusPending {
				t.Fatalf("retry: %+v %v", got, err)
			}
			if tickFirst {
				h.tickAfter(h.svc.Config().FirstPoll + time.Second)
				hold.release()
			} else {
				hold.release()
				h.tickAfter(h.svc.Config().FirstPoll + time.Second)
			}
			h.svc.Wait()
			h.wantStatus(job.ID, copyjob.StatusPending)
			if h.Blobs.LeaseHolder(srcRef) == "" {
				t.Fatal("the retried copy runs without its source lease")
			}
			if n := h.Queue.Len(); n != 1 {
				t.Fatalf("%d messages while the retried copy runs, want 1 (its own): %+v", n, h.Queue.Messages())
			}
			_ = h.Blobs.CompleteCopy(dstRef)
			h.tickAfter(time.Hour)
			h.wantSettled(job.ID, copyjob.StatusSuccess, 2)
		})
	}
}

// A second start onto the same destination while the first's deletion is held: two
// jobs, each with its one outcome; the first's message never touches the second.
// Sound: passes.
func TestReview6SecondStartOnTheDestinationWhileTheDeletionIsHeld(t *testing.T) {
	h := newHarness(t)
	h.Blobs.SetStartStatus(copyjob.StatusSuccess)
	hold := holdNextDelete(h)
	first := h.start(copyjob.StartRequest{Source: srcURL, Destination: dstRef, CallbackURL: hook,
		Options: copyjob.Options{Overwrite: true, LeaseSource: true}})
	hold.held()
	h.Blobs.SetStartStatus(copyjob.StatusPending)
	second := h.start(copyjob.StartRequest{Source: otherURL, Destination: dstRef, CallbackURL: hook,
		Options: copyjob.Options{Overwrite: true}})
	h.tickAfter(h.svc.Config().FirstPoll + time.Second)
	hold.release()
	h.svc.Wait()
	h.wantStatus(second.ID, copyjob.StatusPending)
	if n := h.Queue.Len(); n != 1 {
		t.Fatalf("%d messages while the second copy runs, want 1: %+v", n, h.Queue.Messages())
	}
	_ = h.Blobs.CompleteCopy(dstRef)
	h.tickAfter(time.Hour)
	h.wantStatus(first.ID, copyjob.StatusSuccess)
	h.wantSettled(second.ID, copyjob.StatusSuccess, 2)
}

// A keyed start (an event) redelivered while its deletion is held answers the job as it
// stands: no second Copy Blob, no second callback. Sound: passes.
func TestReview6RedeliveryWhileTheDeletionIsHeld(t *testing.T) {
	h := newHarness(t)
	h.Blobs.SetStartStatus(copyjob.StatusSuccess)
	req := keyed(leasedReq())
	req.CallbackURL = hook
	hold := holdNextDelete(h)
	job := h.start(req)
	hold.held()
	again, created, err := h.svc.Start(h.ctx, req)
	if err != nil || created || again.ID != job.ID || again.Status != copyjob.StatusSuccess {
		t.Fatalf("redelivery: %+v created=%v %v", again, created, err)
	}
	hold.release()
	h.wantStartCopies(1)
	h.wantSettled(job.ID, copyjob.StatusSuccess, 1)
}

// The deletion never lands (the process stopped behind the answer, or storage refused
// it): the claim under review is that this costs the tick one visit to a finished job
// and nothing else. The tick's first visit deletes the message and leaves the record,
// the lease and the callback as the start recorded them. Sound: passes.
func TestReview6LostDeletionCostsTheTickOneVisit(t *testing.T) {
	for _, tt := range []struct {
		name   string
		req    copyjob.StartRequest
		status copyjob.Status
		setup  func(h *harness)
	}{
		{"unkeyed, ended at once", copyjob.StartRequest{Source: srcURL, Destination: dstRef, CallbackURL: hook,
			Options: copyjob.Options{LeaseSource: true}}, copyjob.StatusSuccess,
			func(h *harness) { h.Blobs.SetStartStatus(copyjob.StatusSuccess) }},
		{"unkeyed, refused", copyjob.StartRequest{Source: srcURL, Destination: dstRef, CallbackURL: hook,
			Options: copyjob.Options{LeaseSource: true}}, copyjob.StatusStartFailed,
			func(h *harness) { h.Blobs.Put(dstRef, 10, nil) }},
		{"keyed, ended at once", func() copyjob.StartRequest {
			r := keyed(leasedReq())
			r.CallbackURL = hook
			return r
		}(), copyjob.StatusSuccess, func(h *harness) { h.Blobs.SetStartStatus(copyjob.StatusSuccess) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			tt.setup(h)
			h.Queue.FailNext(copyjobtest.OpDelete, copyjobtest.ErrCrash)
			job, _, _ := h.svc.Start(h.ctx, tt.req)
			if job == nil {
				t.Fatal("no job")
			}
			h.svc.Wait()
			h.wantMessages(1)
			before := h.wantStatus(job.ID, tt.status)
			r := h.tickAfter(h.svc.Config().FirstPoll + time.Second)
			if r.Dequeued != 1 || r.Completed != 1 {
				t.Fatalf("tick report %+v, want one visit that completes", r)
			}
			wantDeliveries := 1
			h.wantSettled(job.ID, tt.status, wantDeliveries)
			if after := h.record(job.ID); !after.UpdatedAt.Equal(before.UpdatedAt) {
				t.Fatalf("the tick wrote the finished record again")
			}
		})
	}
}
