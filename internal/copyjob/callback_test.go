package copyjob_test

import (
	"errors"
	"testing"
	"time"

	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/copyjob/copyjobtest"
)

const hook = "https://hook.example/copies"

func TestCallbackDelivered(t *testing.T) {
	h := newHarness(t)
	req := leasedReq()
	req.CallbackURL = hook
	job := h.start(req)
	if len(h.Notifier.Deliveries()) != 0 {
		t.Fatal("notified while pending")
	}
	h.tickAfter(time.Minute)
	if len(h.Notifier.Deliveries()) != 0 {
		t.Fatal("notified while pending")
	}
	_ = h.Blobs.CompleteCopy(dstRef)
	h.tickAfter(time.Hour)
	d := h.Notifier.Deliveries()
	if len(d) != 1 || d[0].URL != hook || d[0].Job.ID != job.ID || d[0].Job.Status != copyjob.StatusSuccess {
		t.Fatalf("deliveries = %+v", d)
	}
	rec := h.wantStatus(job.ID, copyjob.StatusSuccess)
	if rec.Callback == nil || rec.Callback.DeliveredAt == nil || rec.Callback.Attempts != 1 || rec.Callback.LastError != "" {
		t.Fatalf("callback = %+v", rec.Callback)
	}
	h.wantMessages(0)
	h.tickAfter(time.Hour)
	if len(h.Notifier.Deliveries()) != 1 {
		t.Fatal("delivered twice")
	}
}

func TestCallbackRetriedThenDelivered(t *testing.T) {
	h := newHarness(t)
	req := leasedReq()
	req.CallbackURL = hook
	job := h.start(req)
	_ = h.Blobs.CompleteCopy(dstRef)
	h.Notifier.FailNext(copyjobtest.OpNotify, errors.New("502 from hook"))

	h.tickAfter(time.Hour)
	if n := h.Notifier.Calls(copyjobtest.OpNotify); n != 1 {
		t.Fatalf("%d attempts in the first tick, want 1 (retries belong to later ticks)", n)
	}
	rec := h.wantStatus(job.ID, copyjob.StatusSuccess)
	h.wantLeaseReleased(rec)
	if rec.Callback.Attempts != 1 || rec.Callback.LastError == "" || rec.Callback.DeliveredAt != nil {
		t.Fatalf("callback = %+v", rec.Callback)
	}
	h.wantMessages(1) // kept for the retry

	h.tickAfter(time.Hour)
	rec = h.record(job.ID)
	if rec.Callback.DeliveredAt == nil || rec.Callback.Attempts != 2 || rec.Callback.LastError != "" {
		t.Fatalf("callback = %+v", rec.Callback)
	}
	h.wantMessages(0)
}

func TestCallbackGivesUp(t *testing.T) {
	h := newHarness(t)
	job := h.start(copyjob.StartRequest{Source: srcURL, Destination: dstRef, CallbackURL: hook})
	_ = h.Blobs.FailCopy(dstRef, "boom")
	h.Notifier.FailAlways(copyjobtest.OpNotify, errors.New("connection refused"))
	max := h.svc.Config().MaxCallbackAttempts
	for i := 1; i < max; i++ {
		h.tickAfter(time.Hour)
		rec := h.wantStatus(job.ID, copyjob.StatusFailed)
		if rec.Callback.Attempts != i || rec.Callback.GaveUp {
			t.Fatalf("tick %d: callback = %+v", i, rec.Callback)
		}
		h.wantMessages(1)
	}
	h.tickAfter(time.Hour)
	rec := h.record(job.ID)
	if rec.Callback.Attempts != max || !rec.Callback.GaveUp || rec.Callback.LastError != "connection refused" {
		t.Fatalf("callback = %+v", rec.Callback)
	}
	h.wantMessages(0)
	h.tickAfter(time.Hour)
	if n := h.Notifier.Calls(copyjobtest.OpNotify); n != max {
		t.Fatalf("%d attempts, want %d", n, max)
	}
	if len(h.Queue.Poisoned()) != 0 {
		t.Fatal("poisoned")
	}
}

// A callback URL with no notifier configured must not keep the message forever.
func TestCallbackWithoutNotifier(t *testing.T) {
	h := newHarness(t, func(_ *copyjob.Config, env *copyjobtest.Env) { env.Notifier = nil })
	job := h.start(copyjob.StartRequest{Source: srcURL, Destination: dstRef, CallbackURL: hook})
	_ = h.Blobs.CompleteCopy(dstRef)
	h.tickAfter(time.Hour)
	h.wantStatus(job.ID, copyjob.StatusSuccess)
	h.tickAfter(time.Hour)
	h.wantMessages(0)
}
