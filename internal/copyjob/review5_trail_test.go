package copyjob_test

// Adversarial review 5 of the unkeyed start whose tracking message is its crash trail
// (startWithMessage, unrecordedStart, recoverStart): each test reproduces a broken
// promise.

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/copyjob/copyjobtest"
)

// snapshotsOf lists the snapshots of ref the fake holds.
func snapshotsOf(h *harness, ref copyjob.BlobRef) []string {
	var out []string
	for _, r := range h.Blobs.Refs() {
		if r.Snapshot != "" && r.Account == ref.Account && r.Container == ref.Container && r.Blob == ref.Blob {
			out = append(out, r.Snapshot)
		}
	}
	return out
}

// Review 5, finding 1: a start without a key with snapshotDestination takes the
// destination's snapshot before its message (startWithMessage step 1). Storage refuses
// that message for good (errTrailRefused: too large once escaped), and Start falls back
// on the keyed order, whose first step, the record Create, fails (503). The start
// answers 503 naming no job; nothing names the snapshot (no record, no message), and
// nobody deletes it: a snapshot left behind on every such start, outside the cases the
// README's Limits list (a lost Snapshot Blob answer followed by a refusal; a crash
// between the snapshot and the message). The keyed order never leaks here: it snapshots
// only after its record exists.
func TestReview5RefusedTrailThenFailedCreateLeavesTheSnapshot(t *testing.T) {
	h := newHarness(t)
	h.Blobs.Put(dstRef, 42, nil)
	req := copyjob.StartRequest{Source: srcURL, Destination: dstRef,
		Options: copyjob.Options{SnapshotDestination: true, Overwrite: true}}
	h.Queue.FailNext(copyjobtest.OpEnqueue, fmt.Errorf("413 RequestBodyTooLarge: %w", copyjob.ErrRefused))
	h.Records.FailNext(copyjobtest.OpCreate, errBusy)
	job, _, err := h.svc.Start(h.ctx, req)
	if err == nil || !copyjob.Retryable(err) {
		t.Fatalf("precondition: start answered %+v, %v; want a 503", job, err)
	}
	h.wantStartCopies(0)
	for range 3 {
		h.tickAfter(h.svc.Config().StartGrace + time.Second)
	}
	if snaps := snapshotsOf(h, dstRef); len(snaps) != 0 {
		t.Errorf("the start answered 503 and started nothing, yet destination snapshot(s) %v are left behind (records %d, messages %d)",
			snaps, len(h.Records.Jobs()), len(h.Queue.Messages()))
	}
}

// Review 5, check: a start without a key whose copy ends at once and whose record cannot
// be created names the copy and its outcome in its message; the Update's answer is lost
// (it landed), so unrecordedStart enqueues a second message with the same ticket. Both
// are visited at once: one record, one callback delivery id, the lease released, no
// message left.
func TestReview5TwoOutcomeTicketsRecordOneOutcome(t *testing.T) {
	h := newHarness(t)
	h.Blobs.SetStartStatus(copyjob.StatusSuccess)
	h.Records.FailAlways(copyjobtest.OpCreate, errBusy)
	h.Queue.LoseNextAnswer(copyjobtest.OpUpdateMessage, errBusy)
	req := leasedReq()
	req.CallbackURL = "https://hooks.example.org/done"
	job, created, err := h.svc.Start(h.ctx, req)
	h.Records.Heal("")
	h.Blobs.SetStartStatus(copyjob.StatusPending)
	if err != nil || !created || job.CopyID == "" {
		t.Fatalf("precondition: start answered %+v created %v err %v", job, created, err)
	}
	h.wantMessages(2)
	for range 4 {
		h.tickAfter(h.svc.Config().EffectsGrace + time.Second)
	}
	rec := h.wantStatus(job.ID, copyjob.StatusSuccess)
	if d := h.Notifier.Deliveries(); len(d) != 1 {
		t.Errorf("%d callback deliveries, want 1", len(d))
	}
	h.wantLeaseReleased(rec)
	h.wantMessages(0)
}

// Review 5, finding 2: a start without a key whose copy ends at once (Copy Blob answered
// success) and whose record cannot be created is answered as accepted, but with status
// "pending": unrecordedStart turns every non-terminal answer into "pending", and the job
// is still "starting" in memory because the settle that would have made it terminal is
// the write that failed (job.ended holds the outcome). The client is answered 202
// "pending" with Retry-After for a copy storage reported finished, and the tick then
// records "success": the answer and the record disagree (a keyed start answers 200 with
// the outcome, README "Try it").
func TestReview5UnrecordedFinishedCopyIsAnsweredPending(t *testing.T) {
	h := newHarness(t)
	job := h.startUnrecorded(copyjob.StatusSuccess, copyjob.StartRequest{Source: srcURL, Destination: dstRef})
	if job.Status != copyjob.StatusSuccess {
		t.Errorf("Copy Blob answered success, yet the start answers %s", job.Status)
	}
	h.tickAfter(h.svc.Config().FirstPoll)
	h.wantStatus(job.ID, copyjob.StatusSuccess)
}

// Review 5, finding 3: a start without a key whose Copy Blob answer is lost while the
// destination cannot be read (copyOnce: CopyUncertain) fails transiently, and its
// postponing record cannot be created: it answers 503 naming the job. Its message still
// carries the job as it began (unrecordedStart's no-copy branch does not update it), so
// the uncertainty is lost. The copy did run; another copy replaces it within the grace.
// recoverStart finds no copy of the job and records it startFailed "it ended before
// Copy Blob": untrue (one Copy Blob call ran and started a copy), and the record does not
// say that the app could not tell (README, Guarantees, Copy Blob: "One exception, stated
// in the record ... (statusDescription says so)"; the keyed order's refuse says so, and
// sets copyUncertain).
func TestReview5UncertainCopyOfAnUnrecordedStartIsRecordedAsNeverSent(t *testing.T) {
	h := newHarness(t)
	h.Blobs.LoseNextAnswer(copyjobtest.OpStartCopy, errBusy) // the copy starts, its answer is lost
	h.Blobs.FailNext(copyjobtest.OpCopyState, errBusy)       // and the destination cannot be read to tell
	h.Records.FailAlways(copyjobtest.OpCreate, errBusy)
	job, _, err := h.svc.Start(h.ctx, leasedReq())
	h.Records.Heal("")
	var e *copyjob.Error
	if err == nil || !copyjob.Retryable(err) || job != nil || !errors.As(err, &e) || e.Job == nil {
		t.Fatalf("precondition: start answered %+v, %v; want a 503 naming its job", job, err)
	}
	h.wantStartCopies(1)
	h.Blobs.ForeignCopy(dstRef, otherURL) // another client replaces the running copy
	h.tickAfter(h.svc.Config().StartGrace + time.Second)
	h.tickAfter(time.Minute)
	rec := h.wantStatus(e.Job.ID, copyjob.StatusStartFailed)
	if !rec.CopyUncertain && !strings.Contains(rec.StatusDescription, "whether") {
		t.Errorf("one Copy Blob call ran for job %s and its answer was lost, yet the record says %q (copyUncertain=%v)",
			rec.ID, rec.StatusDescription, rec.CopyUncertain)
	}
}

// Review 5, finding 4: a start without a key is refused for good by Copy Blob (409
// PendingCopyOperation: another client's copy of the same source runs on the
// destination) and the refusal's record cannot be created: the client is answered 409
// naming the job. The message still carries the job as it began, without the refusal.
// After the grace recoverStart reads the destination, finds a copy of the same source
// begun less than ClockSkew before the job and recorded by no job of this app, and
// adopts it as the job's own: the job the client was told was refused is recorded
// pending, takes the source lease for another client's copy, and later ends "success"
// (with its callback) for a copy it never made.
func TestReview5RefusedUnrecordedStartAdoptsAForeignCopy(t *testing.T) {
	h := newHarness(t)
	foreign := h.Blobs.ForeignCopy(dstRef, srcURL) // another tool copies the same source there
	h.Records.FailAlways(copyjobtest.OpCreate, errBusy)
	job, _, err := h.svc.Start(h.ctx, leasedReq())
	h.Records.Heal("")
	var e *copyjob.Error
	if err == nil || copyjob.Retryable(err) || job != nil || !errors.As(err, &e) || e.Job == nil {
		t.Fatalf("precondition: start answered %+v, %v; want a refusal naming its job", job, err)
	}
	h.wantStartCopies(1)
	h.tickAfter(h.svc.Config().StartGrace + time.Second)
	rec := h.record(e.Job.ID)
	if rec.Status != copyjob.StatusStartFailed || rec.CopyID == foreign {
		t.Errorf("job %s was answered %s (refused), yet is recorded %s following copy %s (the foreign copy is %s); source lease holder %q",
			rec.ID, e.Code, rec.Status, rec.CopyID, foreign, h.Blobs.LeaseHolder(srcRef))
	}
}

// Review 5, finding 5: a start without a key whose copy runs and whose record cannot be
// created names the copy in a second message (a tick holds its first: Update fails);
// that Put Message is carried out but its answer is lost. unrecordedStart answers 503
// "the copy started but could not be recorded" naming no job. The message is there:
// the tick records the copy under a job id the client was never given, and follows it
// to its end (lease, callback). The client, told to retry and without a key, starts a
// second job for the same copy (README, Guarantees: 503 "only when a retry can
// succeed"; review 4 made every other 503 of this start name its job).
func TestReview5LostSecondMessageAnswerHidesTheJobOfARunningCopy(t *testing.T) {
	h := newHarness(t)
	h.Records.FailAlways(copyjobtest.OpCreate, errBusy)
	h.Queue.FailNext(copyjobtest.OpUpdateMessage, errBusy) // a tick holds the first message
	h.Blobs.OnNext(copyjobtest.OpStartCopy, func() {
		h.Queue.LoseNextAnswer(copyjobtest.OpEnqueue, errBusy) // the second message lands, its answer is lost
	})
	job, _, err := h.svc.Start(h.ctx, leasedReq())
	h.Records.Heal("")
	h.Queue.Heal("")
	var e *copyjob.Error
	named := errors.As(err, &e) && e.Job != nil
	if err == nil || job != nil {
		t.Fatalf("precondition: start answered %+v, %v; want a 503", job, err)
	}
	h.wantStartCopies(1)
	h.tickAfter(h.svc.Config().FirstPoll)
	recs := h.Records.Jobs()
	if len(recs) != 1 || recs[0].Status != copyjob.StatusPending {
		t.Fatalf("precondition: records %+v; want the running copy recorded", recs)
	}
	if !named {
		t.Errorf("the copy runs under job %s (recorded pending by the tick), but the start answered %v naming no job: the client cannot find it and retries",
			recs[0].ID, err)
	}
}
