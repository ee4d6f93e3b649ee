package copyjob_test

import (
	"testing"
	"time"

	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/copyjob/copyjobtest"
)

// TestRetryDoesNotCallADeliveredCallbackNotDelivered (review R6): the tick
// delivers a failed copy's callback but cannot record it (the record write fails):
// the effects claim expires and, before R5, the retry was refused until a tick sent
// it again (same delivery id) and recorded it. Now a retry after the claim's expiry
// supersedes it: History says the callback gave up, "not delivered", although the
// receiver has it. Only a callback known to have failed (NextAttemptAt set) waits.
func TestRetryDoesNotCallADeliveredCallbackNotDelivered(t *testing.T) {
	h := newHarness(t)
	job := h.start(copyjob.StartRequest{Source: srcURL, Destination: dstRef, CallbackURL: hook})
	if err := h.Blobs.FailCopy(dstRef, "403 AuthenticationFailed: the source SAS expired"); err != nil {
		t.Fatal(err)
	}
	h.Notifier.OnNext(copyjobtest.OpNotify, func() { h.Records.FailNext(copyjobtest.OpUpdate, errBusy) })
	h.tickAfter(h.svc.Config().FirstPoll) // settles, delivers, cannot record the delivery
	if n := len(h.Notifier.Deliveries()); n != 1 {
		t.Fatalf("setup: %d deliveries", n)
	}
	h.Clock.Advance(h.svc.Config().EffectsGrace + time.Second) // the claim has expired; no tick yet
	if _, err := h.svc.Retry(h.ctx, job.ID, copyjob.RetryOptions{}); err != nil && copyjob.CodeOf(err) == copyjob.CodeCopyNotRetryable {
		return // refused until the tick has settled the callback: sound
	}
	h.svc.Wait()
	rec := h.record(job.ID)
	if len(rec.History) == 0 || rec.History[0].Callback == nil {
		t.Fatalf("no history: %+v", rec.History)
	}
	if cb := rec.History[0].Callback; cb.DeliveredAt == nil {
		t.Fatalf("the first attempt's callback was delivered (deliveryId %s, %d deliveries) but History records it gaveUp=%v: %q",
			h.Notifier.Deliveries()[0].Job.Callback.DeliveryID, len(h.Notifier.Deliveries()), cb.GaveUp, cb.LastError)
	}
}
