package copyjob_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/copyjob/copyjobtest"
)

// Faults of a retry's record write (the write that moves a failed job to "starting"
// under the retry's claim, after the attempt's tracking message was enqueued).

// The write lands but its answer is lost. Retry used to delete the attempt's only
// tracking message then (it took the re-read "starting" for a refusal, or the lost
// answer for a failure), leaving the record "starting" under the retry's claim with
// Tracked still true from the first attempt: no message followed it and the sweep
// skips tracked records. The job must reach an outcome.
func TestRetryWhoseWriteAnswerIsLostIsNotStranded(t *testing.T) {
	for _, tt := range []struct {
		name string
		lost error
	}{
		// the adapter's answer after a timeout / 500 that storage carried out
		{"lost answer", errBusy},
		// the SDK's own retry of the same If-Match Put Blob meets the write it made (412)
		{"SDK retry meets its own write", fmt.Errorf("%w: 412 ConditionNotMet", copyjob.ErrConflict)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			job, _ := failedLeasedCopy(h, "") // was pending: a tracking message followed it (Tracked)
			h.wantMessages(0)

			h.Records.LoseNextAnswer(copyjobtest.OpUpdate, tt.lost)
			_, err := h.svc.Retry(h.ctx, job.ID, copyjob.RetryOptions{})
			t.Logf("retry answered: %v", err)
			rec := h.record(job.ID)
			t.Logf("record after the retry: status %s, tracked %v, history %d, messages %d", rec.Status, rec.Tracked, len(rec.History), h.Queue.Len())

			for range 20 { // 20 minutes of ticks: well past StartGrace (2 min) and its sweeps
				h.tickAfter(time.Minute)
			}
			h.svc.Wait()
			rec = h.record(job.ID)
			if rec.Status == copyjob.StatusStarting && h.Queue.Len() == 0 {
				t.Fatalf("job stranded: status %s (claim %+v, tracked %v), no tracking message, %d StartCopy calls; "+
					"a further retry answers: %v", rec.Status, rec.Claim, rec.Tracked, len(h.Blobs.StartCopyCalls()), retryErr(h, job.ID))
			}
		})
	}
}

func retryErr(h *harness, id string) error {
	_, err := h.svc.Retry(h.ctx, id, copyjob.RetryOptions{})
	return err
}

// A write that did not land leaves its message, which the tick drops once
// COPY_START_GRACE has passed; the job stays failed and retryable.
func TestRetryWhoseWriteFailedLeavesNothing(t *testing.T) {
	h := newHarness(t)
	job := h.start(leasedReq())
	_ = h.Blobs.FailCopy(dstRef, "failed")
	h.tickAfter(time.Minute)
	h.Records.FailNext(copyjobtest.OpUpdate, errBusy)
	if _, err := h.svc.Retry(h.ctx, job.ID, copyjob.RetryOptions{}); err == nil {
		t.Fatal("retry succeeded")
	}
	for range 4 { // past StartGrace: a message ahead of its record is dropped by then
		h.tickAfter(time.Minute)
	}
	h.wantStatus(job.ID, copyjob.StatusFailed)
	h.wantMessages(0)
	if _, err := h.svc.Retry(h.ctx, job.ID, copyjob.RetryOptions{}); err != nil {
		t.Fatal(err)
	}
}

// A write slower than FirstPoll (the SDK retrying a 503, a slow Put Blob) lets a tick
// visit the message first, one attempt ahead of the record's History. The tick used to
// drop it as an earlier attempt's; the write then landed, the attempt started a pending
// copy and nothing followed it: pending for good, the source lease held, no callback.
func TestRetryWriteSlowerThanFirstPollKeepsItsMessage(t *testing.T) {
	h := newHarness(t)
	job, _ := failedLeasedCopy(h, hook)
	h.wantMessages(0)

	var during copyjob.TickReport
	h.Records.OnNext(copyjobtest.OpUpdate, func() {
		// Retry's record write is slow: a tick runs once its message is visible.
		h.Clock.Advance(h.svc.Config().FirstPoll + time.Second)
		during = h.tick()
	})
	got, err := h.svc.Retry(h.ctx, job.ID, copyjob.RetryOptions{})
	if err != nil || got.Status != copyjob.StatusPending {
		t.Fatalf("retry: %+v %v", got, err)
	}
	t.Logf("tick during the retry's write: %+v; messages after the retry: %d", during, h.Queue.Len())

	_ = h.Blobs.CompleteCopy(dstRef)
	for range 10 {
		h.tickAfter(time.Minute)
	}
	wantRetriedCopySucceeded(h, job.ID)
}

// A retry whose write failed keeps its message (the write may have landed); the
// caller, told 503, retries at once and that retry records the attempt. Two messages
// now name the same attempt: the job must still end once, with one callback per
// outcome, its lease released and no message left.
func TestRetryAfterAFailedRetryWriteEndsOnce(t *testing.T) {
	for _, atOnce := range []bool{false, true} {
		t.Run(fmt.Sprintf("copy ends at once %v", atOnce), func(t *testing.T) {
			h := newHarness(t)
			job, _ := failedLeasedCopy(h, hook)

			h.Records.FailNext(copyjobtest.OpUpdate, errBusy)
			if _, err := h.svc.Retry(h.ctx, job.ID, copyjob.RetryOptions{}); err == nil {
				t.Fatal("the first retry succeeded")
			}
			h.wantMessages(1) // kept: its write might have landed
			if atOnce {
				h.Blobs.SetStartStatus(copyjob.StatusSuccess)
			}
			if _, err := h.svc.Retry(h.ctx, job.ID, copyjob.RetryOptions{}); err != nil {
				t.Fatalf("the second retry: %v", err)
			}
			h.svc.Wait()
			if atOnce {
				h.wantMessages(1) // the first retry's; the second's was deleted behind its answer
			} else {
				h.wantMessages(2) // both name the attempt the second retry recorded
				_ = h.Blobs.CompleteCopy(dstRef)
			}
			for range 10 {
				h.tickAfter(time.Minute)
			}
			wantRetriedCopySucceeded(h, job.ID)
			h.wantMessages(0)
		})
	}
}
