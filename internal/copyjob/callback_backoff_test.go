package copyjob_test

import (
	"errors"
	"testing"
	"time"

	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/copyjob/copyjobtest"
)

// TestRetryIsNotHeldUpByACallbackBackingOff (review R5): a copy failed (source SAS
// expired), its callback receiver was down for 40 minutes. Retry answers 409
// CopyNotRetryable "the last attempt is still being finished ...; retry in a minute"
// as long as the callback is due (retryable -> hasLeftovers -> callbackDue), and with
// the new backoff (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h) the callback stays due for
// up to ~28 hours: a retry is refused for hours although nothing runs.
func TestRetryIsNotHeldUpByACallbackBackingOff(t *testing.T) {
	h := newHarness(t, func(c *copyjob.Config, _ *copyjobtest.Env) { *c = copyjob.Config{} }) // the app's defaults
	job := h.start(copyjob.StartRequest{Source: srcURL, Destination: dstRef, CallbackURL: hook})
	if err := h.Blobs.FailCopy(dstRef, "403 AuthenticationFailed: the source SAS expired"); err != nil {
		t.Fatal(err)
	}
	h.Notifier.FailAlways(copyjobtest.OpNotify, errors.New("callback answered 503"))
	// The receiver is down for 40 minutes, ticks every 30 s.
	for range 80 {
		h.tickAfter(30 * time.Second)
	}
	h.Notifier.Heal(copyjobtest.OpNotify)
	h.wantStatus(job.ID, copyjob.StatusFailed)
	// One more hour passes with the receiver up and ticks running.
	for range 120 {
		h.tickAfter(30 * time.Second)
	}
	h.svc.Wait()
	_, err := h.svc.Retry(h.ctx, job.ID, copyjob.RetryOptions{})
	if copyjob.CodeOf(err) == copyjob.CodeCopyNotRetryable {
		rec := h.record(job.ID)
		t.Fatalf("an hour after a 40-minute receiver outage ended, retry of the failed copy is still refused: %v (callback attempts %d, nextAttemptAt %v)",
			err, rec.Callback.Attempts, rec.Callback.NextAttemptAt)
	}
}

// TestRefusedReleaseDoesNotLoseTheCallback (review R5): a lease whose release storage refuses for
// good (403) now counts towards poisoning; the job's callback, backing off because the
// receiver was briefly down, is then abandoned with the message: the record says it is
// neither delivered nor given up, and no tick will ever attempt it again, although the
// receiver answers again minutes later.
func TestRefusedReleaseDoesNotLoseTheCallback(t *testing.T) {
	h := newHarness(t, func(c *copyjob.Config, _ *copyjobtest.Env) {
		*c = copyjob.Config{} // the app's defaults
	})
	req := leasedReq()
	req.CallbackURL = hook
	job := h.start(req)
	h.tickAfter(h.svc.Config().FirstPoll)
	if err := h.Blobs.CompleteCopy(dstRef); err != nil {
		t.Fatal(err)
	}
	h.Blobs.FailAlways(copyjobtest.OpReleaseLease, errDenied)
	h.Notifier.FailAlways(copyjobtest.OpNotify, errors.New("callback answered 503"))
	for range 10 { // 5 minutes down
		h.tickAfter(30 * time.Second)
	}
	h.Notifier.Heal(copyjobtest.OpNotify)
	for range 48 * 60 * 2 { // two days of ticks every 30 s
		h.tickAfter(30 * time.Second)
	}
	h.svc.Wait()
	rec := h.record(job.ID)
	if rec.Callback.DeliveredAt == nil {
		t.Fatalf("two days after a 5-minute receiver outage the callback was never delivered: attempts %d, gaveUp %v, nextAttemptAt %v, poisoned %q, messages %d",
			rec.Callback.Attempts, rec.Callback.GaveUp, rec.Callback.NextAttemptAt, rec.PoisonReason, len(h.Queue.Messages()))
	}
}
