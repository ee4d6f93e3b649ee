package copyjob_test

// Adversarial review 4 of the unkeyed start whose tracking message is its crash trail
// (startWithMessage, unrecordedStart, recoverStart): each test reproduces a broken
// promise.

import (
	"errors"
	"testing"
	"time"

	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/copyjob/copyjobtest"
)

// Review 4, finding 1: a start without a key fails transiently before Copy Blob (the
// lease cannot be acquired: 503), so postpone creates a "starting" record. That Create
// is carried out but its answer is lost; createRecord's second try meets the record
// (ErrExists), and write's re-read fails (storage still busy). unrecordedStart sees
// job.unrecorded, finds no copy, strips the job from the error and answers 503 naming
// no job ("nothing started"). But the record exists: "starting", tracked, with a next
// attempt; the trail message finds it and the tick's resumeIfAbandoned takes the start
// over and runs Copy Blob for a request whose client was told nothing started (without
// a key it retries: a second job, a second copy onto the same destination).
//
// Fixed: the 503 of a start without a key names its job, as a keyed start's does (its
// record may have landed); the tick then attempts it like any transient failure, and the
// job ends with one outcome.
func TestReview4LostPostponeCreateRunsTheCopyOfA503(t *testing.T) {
	h := newHarness(t)
	h.Blobs.FailNext(copyjobtest.OpAcquireLease, errBusy)
	h.Records.LoseNextAnswer(copyjobtest.OpCreate, errBusy) // the postponing record lands
	h.Records.FailNext(copyjobtest.OpGet, errBusy)          // write's re-read after ErrExists
	_, _, err := h.svc.Start(h.ctx, leasedReq())
	var e *copyjob.Error
	if err == nil || !copyjob.Retryable(err) || !errors.As(err, &e) || e.Job == nil {
		t.Fatalf("start answered %v; want a 503 naming its job", err)
	}
	recs := h.Records.Jobs()
	if len(recs) != 1 || recs[0].ID != e.Job.ID || recs[0].Status != copyjob.StatusStarting {
		t.Fatalf("precondition: records %+v; want the lost Create's starting record", recs)
	}
	h.tickAfter(h.svc.Config().FirstPoll)
	h.tickAfter(time.Minute)
	h.tickAfter(h.svc.Config().StartGrace + time.Second)
	_ = h.Blobs.CompleteCopy(dstRef)
	h.tickAfter(time.Hour)
	h.wantLeaseReleased(h.wantStatus(e.Job.ID, copyjob.StatusSuccess))
	h.wantStartCopies(1)
	h.wantMessages(0)
}

// Review 4, finding 2: the trail of a start that started no copy (its Copy Blob was
// refused, and the refusal's record could not be created: the client got the refusal,
// no job) is dropped after the grace by dropUnstarted, which first releases the lease
// the ticket names. A Release Lease that storage answers 503 (the source account
// throttling for half a minute) makes dropUnstarted return outFailed, which counts
// towards poisoning: after MaxFailures such visits the message is poisoned, no record
// names the lease, and the source stays leased for good (README: storage unavailable
// "never count[s] towards poisoning"; no lease left held).
func TestReview4TransientLeaseReleasePoisonsATrailAndKeepsTheLease(t *testing.T) {
	h := newHarness(t)
	h.Blobs.FailNext(copyjobtest.OpStartCopy, copyjob.ErrPendingCopy) // a refusal (a foreign pending copy)
	h.Records.FailAlways(copyjobtest.OpCreate, errBusy)
	job, _, err := h.svc.Start(h.ctx, leasedReq())
	h.Records.Heal("")
	if err == nil || job != nil {
		t.Fatalf("precondition: start answered %+v, %v; want a refusal naming no job", job, err)
	}
	if len(h.Blobs.HeldLeases()) != 1 {
		t.Fatalf("precondition: the start's lease is held: %v", h.Blobs.HeldLeases())
	}
	h.Blobs.FailAlways(copyjobtest.OpReleaseLease, errBusy) // the source account throttles
	h.tickAfter(h.svc.Config().StartGrace + time.Second)
	for range 5 {
		h.tickAfter(time.Minute)
	}
	h.Blobs.Heal("")
	for range 3 {
		h.tickAfter(time.Hour)
	}
	if p := h.Queue.Poisoned(); len(p) != 0 {
		t.Errorf("a trail message was poisoned because Release Lease answered 503 (storage unavailable must not count): %+v", p[0].Reason)
	}
	if held := h.Blobs.HeldLeases(); len(held) != 0 {
		t.Errorf("the source lease of a start that started nothing is held for good: %v (messages %d, records %d)",
			held, len(h.Queue.Messages()), len(h.Records.Jobs()))
	}
}

// Review 4, finding 3: the record write of a start without a key has no deadline (only
// its Copy Blob is bounded by StartDeadline). A start that failed transiently before
// Copy Blob (Acquire Lease answered 503) creates its "starting" record (postpone) on
// slow storage: the Create lands after StartGrace. Meanwhile the tick's recoverStart
// found no record and no copy of the job, released the lease and dropped the trail
// message. The record then lands "starting", Tracked (so the sweep never gives it a
// message) and with a next attempt nobody will make: the start answers 503 with that
// job, and the job stays "starting" for ever (no outcome, the lease recorded as the
// start left it).
func TestReview4SlowPostponeRecordLandsAfterItsTrailWasDropped(t *testing.T) {
	h := newHarness(t)
	h.Blobs.FailNext(copyjobtest.OpAcquireLease, errBusy)
	h.Records.OnNext(copyjobtest.OpCreate, func() {
		// Storage is slow: the start's Create is carried out after the grace.
		h.Clock.Advance(h.svc.Config().StartGrace + time.Second)
		if r := h.tick(); r.Dropped+r.Completed != 1 {
			t.Errorf("precondition: the tick during the slow Create: %+v, want the trail ended", r)
		}
	})
	job, _, err := h.svc.Start(h.ctx, leasedReq())
	if err == nil || !copyjob.Retryable(err) || job == nil {
		t.Fatalf("precondition: start answered %+v, %v; want a 503 with its job", job, err)
	}
	for range 5 {
		h.tickAfter(h.svc.Config().StartGrace + time.Second)
	}
	rec := h.record(job.ID)
	if !rec.Status.Terminal() {
		t.Errorf("job %s answered (503 with the job) stays %s for ever: no message follows it (tracked=%v, messages=%d), the sweep skips it",
			job.ID, rec.Status, rec.Tracked, len(h.Queue.Messages()))
	}
}

// Review 4, finding 4: a start without a key whose copy ends at once releases the source
// lease under its claim (adopt), then cannot create its record. unrecordedStart names
// the copy in the message, but in the trail's job as it was before the lease
// (trail.Attempts is refreshed, trail.Lease is not: still "acquiring"). The tick's
// recoverStart adopts the finished copy, takes the lease for held and releases it again;
// meanwhile the next job on that source (a lease is exclusive: jobs leasing one source
// run one after the other) holds it, so the release meets another lease and the record
// says "lost" (someone else broke or replaced it), although the app released it itself
// (README: lease states are truthful; TestLeaseStateIsTruthful).
func TestReview4UnrecordedStartRecordsItsReleasedLeaseAsLost(t *testing.T) {
	h := newHarness(t)
	h.Blobs.SetStartStatus(copyjob.StatusSuccess)
	h.Records.FailAlways(copyjobtest.OpCreate, errBusy)
	job, created, err := h.svc.Start(h.ctx, leasedReq())
	h.Records.Heal("")
	h.Blobs.SetStartStatus(copyjob.StatusPending)
	if err != nil || !created || job.CopyID == "" {
		t.Fatalf("precondition: start answered %+v created %v err %v", job, created, err)
	}
	if job.Lease == nil || job.Lease.State != copyjob.LeaseReleased || len(h.Blobs.HeldLeases()) != 0 {
		t.Fatalf("precondition: the start released its lease: %+v, held %v", job.Lease, h.Blobs.HeldLeases())
	}
	h.Blobs.SetLease(srcRef, "next-job-on-this-source") // the next job leasing the source
	h.tickAfter(h.svc.Config().FirstPoll)
	rec := h.wantStatus(job.ID, copyjob.StatusSuccess)
	if rec.Lease == nil || rec.Lease.State != copyjob.LeaseReleased {
		t.Errorf("the app released job %s's lease itself, but the record says %+v", job.ID, rec.Lease)
	}
	if h.Blobs.LeaseHolder(srcRef) != "next-job-on-this-source" {
		t.Errorf("the next job's lease was touched")
	}
}

// Review 4, finding 5: a start without a key whose copy ends at once (success) and whose
// record cannot be created names the copy in its message, but not what the start learnt
// of it: its outcome. The tick's first visit (FirstPoll later) derives the outcome from
// the destination again; a destination deleted (or written again) in between makes the
// record say destinationMissing (or copyIdMismatch) for a copy storage reported
// succeeded (README: the outcome is "equal to storage's copy status"; the record-first
// order records success at once).
func TestReview4UnrecordedFinishedCopyIsRecordedByWhatFollowedIt(t *testing.T) {
	h := newHarness(t)
	job := h.startUnrecorded(copyjob.StatusSuccess, copyjob.StartRequest{Source: srcURL, Destination: dstRef})
	if st, _ := h.Blobs.CopyOutcome(job.CopyID); st != copyjob.StatusSuccess {
		t.Fatalf("precondition: storage says copy %s %s", job.CopyID, st)
	}
	h.Blobs.Delete(dstRef) // the consumer of the copy moves it away
	h.tickAfter(h.svc.Config().FirstPoll)
	rec := h.record(job.ID)
	if rec.Status != copyjob.StatusSuccess {
		t.Errorf("copy %s succeeded (storage said so to the start), but the record says %s: %s", job.CopyID, rec.Status, rec.StatusDescription)
	}
}
