package copyjob_test

import (
	"errors"
	"testing"
	"time"

	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/copyjob/copyjobtest"
)

// TestCallbackSurvivesAShortReceiverOutage (review R1): with the default settings
// (COPY_MAX_CALLBACK_ATTEMPTS 5, COPY_FIRST_POLL 5 s, statusfn every 30 s) a failed
// callback was attempted again at the very next tick, with no backoff, so a receiver
// down for about two and a half minutes (a deployment, a restart) lost the job's only
// callback for good (gaveUp), although it answered again a minute later.
func TestCallbackSurvivesAShortReceiverOutage(t *testing.T) {
	h := newHarness(t, func(c *copyjob.Config, _ *copyjobtest.Env) { *c = copyjob.Config{} }) // the app's defaults
	job := h.start(copyjob.StartRequest{Source: srcURL, Destination: dstRef, CallbackURL: hook})
	_ = h.Blobs.CompleteCopy(dstRef)
	h.Notifier.FailAlways(copyjobtest.OpNotify, errors.New("callback to https://hook.example answered 503 Service Unavailable"))
	const tickEvery = 30 * time.Second
	outage := 3 * time.Minute
	for elapsed := time.Duration(0); elapsed < outage; elapsed += tickEvery {
		h.tickAfter(tickEvery)
	}
	h.Notifier.Heal(copyjobtest.OpNotify) // the receiver is back
	for range 20 {
		h.tickAfter(tickEvery)
	}
	rec := h.record(job.ID)
	if rec.Callback.DeliveredAt == nil {
		t.Fatalf("a %v receiver outage lost the callback for good: attempts %d, gaveUp %v, lastError %q",
			outage, rec.Callback.Attempts, rec.Callback.GaveUp, rec.Callback.LastError)
	}
}

// TestCallbackAttemptsBackOffOverADay: a receiver that never answers gets the default 8
// attempts, each no sooner than the schedule says after the one before (5 s, 5 min,
// 30 min, 2 h, 5 h, 10 h, 10 h), then the delivery is given up; the message waits for
// each attempt instead of coming back at every tick.
func TestCallbackAttemptsBackOffOverADay(t *testing.T) {
	h := newHarness(t, func(c *copyjob.Config, _ *copyjobtest.Env) { *c = copyjob.Config{} })
	job := h.start(copyjob.StartRequest{Source: srcURL, Destination: dstRef, CallbackURL: hook})
	_ = h.Blobs.CompleteCopy(dstRef)
	h.Notifier.FailAlways(copyjobtest.OpNotify, errors.New("callback to https://hook.example answered 503 Service Unavailable"))
	var at []time.Time
	visits := 0
	for range 40 * 60 * 2 { // 40 hours of ticks every 30 s
		r := h.tickAfter(30 * time.Second)
		visits += r.Dequeued
		if rec := h.record(job.ID); rec.Callback != nil && rec.Callback.Attempts > len(at) {
			at = append(at, h.Clock.Now())
		}
	}
	rec := h.record(job.ID)
	if rec.Callback.Attempts != 8 || !rec.Callback.GaveUp || rec.Callback.NextAttemptAt != nil {
		t.Fatalf("callback after 40 hours: %+v", rec.Callback)
	}
	want := []time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour}
	for i, d := range want {
		if gap := at[i+1].Sub(at[i]); gap < d || gap > d+time.Minute {
			t.Errorf("attempt %d came %v after attempt %d, want %v", i+2, gap, i+1, d)
		}
	}
	if visits > 40 {
		t.Errorf("%d visits of the message over 40 hours: it should wait for each attempt", visits)
	}
	h.wantMessages(0)
}
