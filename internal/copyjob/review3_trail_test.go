package copyjob_test

// Adversarial review of the unkeyed start whose tracking message is its crash trail
// (startWithMessage, recoverStart): each test reproduces a broken promise.

import (
	"strings"
	"testing"
	"time"

	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/copyjob/copyjobtest"
)

// Review 3, finding 1: Put Message is carried out but its answer is lost (a timeout, a
// reset connection, 500 OperationTimedOut). startWithMessage answers 503 "nothing
// started", with no job, and deletes the snapshot it took; but the message is there and
// carries the whole job. After StartGrace the tick's recoverStart writes the record and
// takes the start over: it runs Copy Blob for a request the client was told had not
// started (the client, without a key, retries and makes a second job), acquires the
// source lease, and overwrites the destination although the snapshot that the record
// names was deleted (an abort can no longer restore the destination).
func TestReview3LostEnqueueAnswerRunsTheCopyOfA503(t *testing.T) {
	h := newHarness(t)
	h.Blobs.Put(dstRef, 42, nil) // an existing destination, protected by a snapshot
	req := copyjob.StartRequest{Source: srcURL, Destination: dstRef,
		Options: copyjob.Options{LeaseSource: true, SnapshotDestination: true, Overwrite: true}}
	h.Queue.LoseNextAnswer(copyjobtest.OpEnqueue, errBusy)
	job, _, err := h.svc.Start(h.ctx, req)
	if err == nil || !copyjob.Retryable(err) || job != nil {
		t.Fatalf("precondition: start answered %+v, %v; want a 503 naming no job", job, err)
	}
	h.wantStartCopies(0)
	if n := len(h.Queue.Messages()); n != 1 {
		t.Fatalf("precondition: %d messages; the lost Put Message landed", n)
	}

	h.tickAfter(h.svc.Config().StartGrace + time.Second)
	h.tickAfter(time.Minute)

	calls := h.Blobs.StartCopyCalls()
	jobs := h.Records.Jobs()
	for _, j := range jobs {
		t.Logf("record %s: status=%s copy=%s snapshot=%q lease=%+v", j.ID, j.Status, j.CopyID, j.DestinationSnapshot, j.Lease)
	}
	if len(calls) != 0 {
		t.Errorf("the start answered 503 (nothing started, no job), yet %d Copy Blob call(s) ran for it: %+v", len(calls), calls)
	}
	for _, j := range jobs {
		if j.DestinationSnapshot == "" {
			continue
		}
		snap := dstRef
		snap.Snapshot = j.DestinationSnapshot
		if _, ok := h.Blobs.Blob(snap); !ok {
			t.Errorf("record %s names destination snapshot %s, which the start deleted: nothing protects the overwritten destination", j.ID, j.DestinationSnapshot)
		}
	}
}

// Review 3, finding 1b: the same through unrecordedStart's "no copy" branch, whose
// comment says "the tick drops the message after StartGrace": the lease cannot be
// acquired (storage busy) and the postponing record cannot be created either. The start
// answers 503 naming no job; after the grace recoverStart takes the start over and runs
// the copy the client was told had not started.
func TestReview3UnrecordedStartWithoutACopyIsStartedByTheTick(t *testing.T) {
	h := newHarness(t)
	h.Blobs.FailNext(copyjobtest.OpAcquireLease, errBusy)
	h.Records.FailAlways(copyjobtest.OpCreate, errBusy)
	job, _, err := h.svc.Start(h.ctx, leasedReq())
	h.Records.Heal("")
	if err == nil || !copyjob.Retryable(err) || job != nil {
		t.Fatalf("precondition: start answered %+v, %v; want a 503 naming no job", job, err)
	}
	h.wantStartCopies(0)
	h.tickAfter(h.svc.Config().StartGrace + time.Second)
	h.tickAfter(time.Minute)
	if calls := h.Blobs.StartCopyCalls(); len(calls) != 0 {
		t.Errorf("the start answered 503 naming no job (its message to be dropped, says unrecordedStart), yet the tick ran %d Copy Blob call(s) for it", len(calls))
	}
	if held := h.Blobs.HeldLeases(); len(held) != 0 {
		t.Logf("leases held: %v", held)
	}
}

// Review 3, finding 2: trailFits counts bytes of the request's strings, but the ticket is
// JSON, and encoding/json writes '<', '>' and '&' as six bytes each (\u003c): printable
// ASCII metadata values (accepted up to 8 KiB) and a callback URL with a query string
// grow up to six-fold. A job trailFits accepts then makes a message over storage's 64
// KiB: Put Message is refused for good (413), and the start answers 500 InternalError
// ("cannot enqueue the tracking message"; the adapter maps other queue failures to a
// 503), to this request and to every retry of it, although the same request with an
// Idempotency-Key (record first, a ticket without the job) starts.
func TestReview3TrailTooLargeForTheQueueRefusesAValidStart(t *testing.T) {
	h := newHarness(t)
	req := copyjob.StartRequest{Source: srcURL, Destination: dstRef,
		Options:     copyjob.Options{Overwrite: true, Metadata: map[string]string{"note": strings.Repeat("<&>", 8000/3)}},
		CallbackURL: "https://hooks.example.org/done?" + strings.Repeat("a=1&", 4000)}
	for try := 1; try <= 3; try++ {
		job, _, err := h.svc.Start(h.ctx, req)
		if err != nil {
			t.Errorf("try %d: a valid request (it starts with a key) is refused without one: %v (retryable %v)", try, err, copyjob.Retryable(err))
			continue
		}
		t.Logf("unkeyed try %d started job %s (%s)", try, job.ID, job.Status)
		_ = h.Blobs.CompleteCopy(dstRef) // the next try's copy may start
	}
	if _, _, err := h.svc.Start(h.ctx, keyed(req)); err != nil {
		t.Fatalf("the same request with a key: %v", err)
	}
}

// Review 3, finding 3: a record deleted behind the app's back before its job's first
// visit, while the copy it recorded ends and the destination is then deleted (or
// replaced). The message still carries the job (the first visit strips it), so
// recoverStart writes the record again as "starting" and takes the start over: it finds
// no copy of the job on the destination and runs Copy Blob a second time, recreating a
// destination someone deleted with a second copy. The ticket of a keyed start (it names
// the copy) releases the lease and poisons the message instead: never a second copy
// (README: "the tick writes the record again from the message and follows the copy
// (never a second one)").
func TestReview3DeletedRecordOfAFinishedCopyIsCopiedAgain(t *testing.T) {
	h := newHarness(t)
	job := h.start(leasedReq())
	h.Records.Delete(job.ID)
	_ = h.Blobs.CompleteCopy(dstRef)
	h.Blobs.Delete(dstRef) // the destination is deleted after the copy succeeded
	h.tickAfter(h.svc.Config().StartGrace + time.Second)
	h.tickAfter(time.Hour)
	calls := h.Blobs.StartCopyCalls()
	if rec := h.Records.Job(job.ID); rec != nil {
		t.Logf("record: status=%s copy=%s desc=%q", rec.Status, rec.CopyID, rec.StatusDescription)
	}
	if len(calls) != 1 {
		t.Errorf("%d Copy Blob calls for one job whose copy ran and ended (the second recreated the deleted destination): %+v", len(calls), calls)
	}
}

// Review 3, finding 4: a start slower than FirstPoll (storage slow) whose record storage
// then refuses. A tick visits the trail message meanwhile (recoverStart, within the
// grace: keepPolling), which gives the message a new pop receipt. unrecordedStart then
// rewrites the message with the start's stale receipt (tr.msg): 400 PopReceiptMismatch
// (ErrConflict), and the start answers 500 InternalError ("the copy started but could
// not be recorded") with no job while its copy runs; the client, without a key, retries
// and starts a second job onto the same destination. The message itself was
// fine: only the receipt was stale (the fast-start case answers 202:
// TestUnkeyedStartWhoseRecordFailsIsRecordedByTheTick).
func TestReview3SlowStartWhoseRecordFailsAnswersAnErrorForItsRunningCopy(t *testing.T) {
	h := newHarness(t)
	h.Blobs.OnNext(copyjobtest.OpStartCopy, func() {
		h.Clock.Advance(h.svc.Config().FirstPoll)
		h.tick()
	})
	h.Records.FailAlways(copyjobtest.OpCreate, errBusy)
	job, created, err := h.svc.Start(h.ctx, leasedReq())
	h.Records.Heal("")
	b, _ := h.Blobs.Blob(dstRef)
	if b.Copy.Status != copyjob.StatusPending {
		t.Fatalf("precondition: the copy runs: %+v", b.Copy)
	}
	if err != nil || !created || job == nil {
		t.Errorf("the start's copy %s runs, but the start answered %+v created=%v err=%v (a client without a key retries: a second job)", b.Copy.CopyID, job, created, err)
	}
}
