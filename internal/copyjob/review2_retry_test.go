package copyjob_test

// Regression tests from the second adversarial review (retry, owners, polls): each
// reproduced a broken promise before its fix.

import (
	"testing"
	"time"

	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/copyjob/copyjobtest"
)

// R2-B: the first attempt's tracking message outlives its outcome (an abort found the
// copy failed and settled it; the message is still hidden). A retry whose Copy Blob
// fails transiently leaves the job "starting"; the old message's next visit passes its
// ticket's copy id (the FAILED first copy) as knownCopy to resumeStart, which adopts
// the first attempt's copy as the new attempt's outcome: no new Copy Blob, the new
// attempt recorded "failed" with the old copy id.
func TestReview2OldMessageHijacksRetriedAttempt(t *testing.T) {
	h := newHarness(t, func(c *copyjob.Config, _ *copyjobtest.Env) { c.Concurrency = 1; c.BatchSize = 1 })
	job := h.start(copyjob.StartRequest{Source: srcURL, Destination: dstRef, Options: copyjob.Options{Overwrite: true}, CallbackURL: hook})
	h.tickAfter(5 * time.Second) // a poll: the message now names copy-1
	first := h.wantStatus(job.ID, copyjob.StatusPending)
	_ = h.Blobs.FailCopy(dstRef, "403 CannotVerifyCopySource: the SAS expired")
	if _, err := h.svc.Abort(h.ctx, job.ID, copyjob.AbortOptions{}); err == nil {
		t.Fatalf("abort of an ended copy succeeded")
	}
	h.svc.Wait() // the outcome's callback is sent behind the abort's answer
	h.wantStatus(job.ID, copyjob.StatusFailed)
	h.Clock.Advance(7 * time.Second)
	h.Blobs.FailAlways(copyjobtest.OpStartCopy, errBusy)
	_, err := h.svc.Retry(h.ctx, job.ID, copyjob.RetryOptions{})
	wantCode(t, err, copyjob.CodeStorageUnavailable)
	h.Blobs.Heal(copyjobtest.OpStartCopy)
	t.Logf("messages after retry: %+v", h.Queue.Messages())
	calls := len(h.Blobs.StartCopyCalls())
	for range 4 {
		h.tickAfter(6 * time.Second)
	}
	rec := h.record(job.ID)
	t.Logf("record: status %s copy %s desc %q history %d, StartCopy calls since retry %d", rec.Status, rec.CopyID, rec.StatusDescription, len(rec.History), len(h.Blobs.StartCopyCalls())-calls)
	for _, d := range h.Notifier.Deliveries() {
		t.Logf("callback: status %s copy %s deliveryId %s", d.Job.Status, d.Job.CopyID, d.Job.Callback.DeliveryID)
	}
	if rec.CopyID == first.CopyID {
		t.Fatalf("the retried attempt adopted the first attempt's copy %s as its own: status %s (%s)", rec.CopyID, rec.Status, rec.StatusDescription)
	}
}

// R2-C: Retry's tracking message names the earlier attempt's (released) lease id, not
// the one the new attempt takes. The README's "record deleted behind the app's back"
// row relies on the message naming the lease: after a retry it names the wrong one and
// the new attempt's source lease stays held for good.
func TestReview2RetryTicketNamesTheOldLease(t *testing.T) {
	h := newHarness(t)
	job := h.start(leasedReq())
	_ = h.Blobs.FailCopy(dstRef, "403 CannotVerifyCopySource: the SAS expired")
	h.tickAfter(time.Minute)
	failed := h.wantStatus(job.ID, copyjob.StatusFailed)
	h.wantLeaseReleased(failed)
	h.wantMessages(0)
	if _, err := h.svc.Retry(h.ctx, job.ID, copyjob.RetryOptions{}); err != nil {
		t.Fatal(err)
	}
	rec := h.wantStatus(job.ID, copyjob.StatusPending)
	ms := h.wantMessages(1)
	t.Logf("new lease %s, old lease %s, message %s", rec.Lease.ID, failed.Lease.ID, ms[0].Text)
	h.Records.Delete(job.ID) // behind the app's back
	for range 5 {
		h.tickAfter(time.Minute)
	}
	_ = h.Blobs.CompleteCopy(dstRef)
	for range 5 {
		h.tickAfter(time.Hour)
	}
	if held := h.Blobs.HeldLeases(); len(held) != 0 {
		t.Fatalf("lease stranded after the record was deleted: %v (poisoned: %+v)", held, h.Queue.Poisoned())
	}
}

// R2-E: polls write no progress, and the abort records job.Progress (the record's, i.e.
// the start's) as the aborted outcome's progress: the record and the callback of an
// aborted copy say 0 bytes copied though storage copied most of it.
func TestReview2AbortRecordsStaleProgress(t *testing.T) {
	h := newHarness(t)
	req := leasedReq()
	req.CallbackURL = hook
	job := h.start(req)
	_ = h.Blobs.SetCopyProgress(dstRef, 900_000, srcSize)
	h.tickAfter(time.Minute)
	live, _ := h.svc.Get(h.ctx, job.ID)
	if _, err := h.svc.Abort(h.ctx, job.ID, copyjob.AbortOptions{}); err != nil {
		t.Fatal(err)
	}
	h.svc.Wait() // the callback is sent behind the abort's answer
	rec := h.wantStatus(job.ID, copyjob.StatusAborted)
	d := h.Notifier.Deliveries()
	t.Logf("live before abort %+v; recorded %+v; callback %+v", live.Progress, rec.Progress, d[len(d)-1].Job.Progress)
	if rec.Progress.BytesCopied != live.Progress.BytesCopied {
		t.Fatalf("aborted record progress %+v, last live read %+v", rec.Progress, live.Progress)
	}
}
