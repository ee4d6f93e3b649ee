package copyjob_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/copyjob/copyjobtest"
)

// A copy failed (its source SAS expired): the retry starts a new attempt under the same
// job id, with a new lease, and keeps the failed outcome in History, unchanged.
func TestRetryAFailedCopy(t *testing.T) {
	h := newHarness(t)
	job, failed := failedLeasedCopy(h, hook)
	h.wantLeaseReleased(failed)

	got, err := h.svc.Retry(h.ctx, job.ID, copyjob.RetryOptions{})
	if err != nil || got.Status != copyjob.StatusPending || got.CopyID == failed.CopyID {
		t.Fatalf("retry: %+v %v", got, err)
	}
	rec := h.wantStatus(job.ID, copyjob.StatusPending)
	if len(rec.History) != 1 || rec.History[0].Status != copyjob.StatusFailed || rec.History[0].CopyID != failed.CopyID ||
		rec.History[0].StatusDescription != failed.StatusDescription {
		t.Fatalf("history = %+v", rec.History)
	}
	if rec.Lease.ID == failed.Lease.ID || h.Blobs.LeaseHolder(srcRef) != rec.Lease.ID {
		t.Fatalf("lease %+v, holder %q", rec.Lease, h.Blobs.LeaseHolder(srcRef))
	}
	if rec.Callback.DeliveredAt != nil || rec.Callback.DeliveryID != "" || rec.Attempts != 2 {
		t.Fatalf("callback %+v attempts %d", rec.Callback, rec.Attempts)
	}
	_ = h.Blobs.CompleteCopy(dstRef)
	h.tickAfter(time.Hour)
	h.wantLeaseReleased(h.wantStatus(job.ID, copyjob.StatusSuccess))
	d := h.Notifier.Deliveries()
	if len(d) != 2 || d[0].Job.Status != copyjob.StatusFailed || d[1].Job.Status != copyjob.StatusSuccess ||
		d[0].Job.Callback.DeliveryID == d[1].Job.Callback.DeliveryID {
		t.Fatalf("one delivery per outcome, each with its own id: %+v", d)
	}
	h.wantMessages(0)
}

// A refused start is retried once the cause is gone (the destination freed).
func TestRetryARefusedStart(t *testing.T) {
	h := newHarness(t)
	h.Blobs.Put(dstRef, 10, nil)
	job, _, err := h.svc.Start(h.ctx, copyjob.StartRequest{Source: srcURL, Destination: dstRef})
	wantCode(t, err, copyjob.CodeDestinationExists)
	h.Blobs.Delete(dstRef)
	got, err := h.svc.Retry(h.ctx, job.ID, copyjob.RetryOptions{})
	if err != nil || got.Status != copyjob.StatusPending {
		t.Fatalf("retry: %+v %v", got, err)
	}
	if rec := h.record(job.ID); len(rec.History) != 1 || rec.History[0].Refusal == nil || rec.Refusal != nil {
		t.Fatalf("history %+v refusal %+v", rec.History, rec.Refusal)
	}
}

func TestRetryRefusesWhatCannotBeRetried(t *testing.T) {
	h := newHarness(t)
	pending := h.start(leasedReq())
	_, err := h.svc.Retry(h.ctx, pending.ID, copyjob.RetryOptions{})
	wantCode(t, err, copyjob.CodeCopyNotRetryable)
	_, err = h.svc.Retry(h.ctx, "nope", copyjob.RetryOptions{})
	wantCode(t, err, copyjob.CodeJobNotFound)

	// A failed copy whose lease release has not succeeded yet: its attempt is still
	// being finished.
	_ = h.Blobs.FailCopy(dstRef, "failed")
	h.Blobs.FailAlways(copyjobtest.OpReleaseLease, errBusy)
	h.tickAfter(time.Minute)
	h.wantStatus(pending.ID, copyjob.StatusFailed)
	_, err = h.svc.Retry(h.ctx, pending.ID, copyjob.RetryOptions{})
	wantCode(t, err, copyjob.CodeCopyNotRetryable)
	h.Blobs.Heal("")
	h.tickAfter(time.Hour)
	if _, err := h.svc.Retry(h.ctx, pending.ID, copyjob.RetryOptions{}); err != nil {
		t.Fatalf("retry after the lease was released: %v", err)
	}
	_ = h.Blobs.CompleteCopy(dstRef)
	h.tickAfter(time.Hour)
	h.wantStatus(pending.ID, copyjob.StatusSuccess)
	_, err = h.svc.Retry(h.ctx, pending.ID, copyjob.RetryOptions{})
	wantCode(t, err, copyjob.CodeCopyNotRetryable) // succeeded
}

// Two retries at once start one attempt: the compare-and-swap lets one win.
func TestConcurrentRetriesStartOneAttempt(t *testing.T) {
	h := newHarness(t)
	job := h.start(copyjob.StartRequest{Source: srcURL, Destination: dstRef, Options: copyjob.Options{Overwrite: true}})
	_ = h.Blobs.FailCopy(dstRef, "failed")
	h.tickAfter(time.Minute)
	before := len(h.Blobs.StartCopyCalls())
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = h.svc.Retry(context.Background(), job.ID, copyjob.RetryOptions{})
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
		}
	}
	if ok != 1 || len(h.Blobs.StartCopyCalls()) != before+1 {
		t.Fatalf("%d retries won, %d Copy Blob calls: %v", ok, len(h.Blobs.StartCopyCalls())-before, errs)
	}
	if rec := h.record(job.ID); len(rec.History) != 1 {
		t.Fatalf("history %+v", rec.History)
	}
}

// A retry whose attempt ends at once answers before its tracking message is deleted,
// as a start does (TestStartAnswersBeforeDeletingItsMessage).
func TestRetryAnswersBeforeDeletingItsMessage(t *testing.T) {
	h := newHarness(t)
	h.Blobs.Put(dstRef, 10, nil)
	job, _, err := h.svc.Start(h.ctx, copyjob.StartRequest{Source: srcURL, Destination: dstRef})
	wantCode(t, err, copyjob.CodeDestinationExists)
	h.wantMessages(0)
	h.Blobs.Delete(dstRef)
	h.Blobs.SetStartStatus(copyjob.StatusSuccess)
	held, got, err := h.answerWhileDeleteHeld(func() (*copyjob.Job, error) {
		return h.svc.Retry(h.ctx, job.ID, copyjob.RetryOptions{})
	})
	if err != nil || got.Status != copyjob.StatusSuccess {
		t.Fatalf("retry: %+v %v", got, err)
	}
	held.release()
	h.wantMessages(0)
}

// failedLeasedCopy starts a pending copy with leaseSource (and a callback when hook is
// set), fails it as an expired source SAS does, and lets a tick record the failure.
func failedLeasedCopy(h *harness, hook string) (*copyjob.Job, *copyjob.Job) {
	h.t.Helper()
	req := leasedReq()
	req.CallbackURL = hook
	job := h.start(req)
	_ = h.Blobs.FailCopy(dstRef, "403 CannotVerifyCopySource: the SAS expired")
	h.tickAfter(time.Minute)
	return job, h.wantStatus(job.ID, copyjob.StatusFailed)
}

// wantRetriedCopySucceeded checks the end of a retried copy: success, no lease held,
// one callback per outcome (the failure's and the success's).
func wantRetriedCopySucceeded(h *harness, id string) {
	h.t.Helper()
	h.svc.Wait()
	rec := h.record(id)
	if rec.Status != copyjob.StatusSuccess || len(h.Blobs.HeldLeases()) != 0 || len(h.Notifier.Deliveries()) != 2 {
		h.t.Fatalf("retried copy: job %s (lease %+v, held leases %v), %d callbacks (want 2), %d messages",
			rec.Status, rec.Lease, h.Blobs.HeldLeases(), len(h.Notifier.Deliveries()), h.Queue.Len())
	}
}
