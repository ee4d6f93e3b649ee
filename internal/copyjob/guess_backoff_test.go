package copyjob_test

import (
	"errors"
	"testing"
	"time"

	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/copyjob/copyjobtest"
)

// TestPastGuessKeepsTheCallbackBackoff (review R7): GuessStandsUntil is never cleared once
// its window has passed, and nextLeftoverAt takes the earliest of the lease's, the
// callback's and the guess's times: a past GuessStandsUntil is always the earliest, so a
// guessed job whose callback fails comes back every FirstPoll instead of at the
// callback's next attempt (5 m here): a visit, a record read and a queue write every
// few seconds for the whole ~28 h schedule (and towards maxVisits).
func TestPastGuessKeepsTheCallbackBackoff(t *testing.T) {
	h := newHarness(t, func(c *copyjob.Config, _ *copyjobtest.Env) {
		c.CallbackRetryDelays = []time.Duration{5 * time.Minute}
		c.MaxCallbackAttempts = 5
	})
	h.Blobs.LoseNextAnswer(copyjobtest.OpStartCopy, errBusy)
	h.Blobs.FailNext(copyjobtest.OpCopyState, errBusy)
	h.Records.FailAlways(copyjobtest.OpCreate, errBusy)
	req := leasedReq()
	req.CallbackURL = hook
	job, _, err := h.svc.Start(h.ctx, req)
	h.Records.Heal("")
	var e *copyjob.Error
	if err == nil || job != nil || !errors.As(err, &e) || e.Job == nil {
		t.Fatalf("precondition: start answered %+v, %v; want a 503 naming its job", job, err)
	}
	h.Blobs.ForeignCopy(dstRef, otherURL)
	h.Notifier.FailAlways(copyjobtest.OpNotify, errBusy)
	h.tickAfter(h.svc.Config().StartGrace + time.Second) // the guess
	h.svc.Wait()
	rec := h.record(e.Job.ID)
	if rec.Status != copyjob.StatusStartFailed || rec.GuessStandsUntil == nil {
		t.Fatalf("precondition: %s guess %v", rec.Status, rec.GuessStandsUntil)
	}
	h.Clock.Set(rec.GuessStandsUntil.Add(time.Second))
	h.tick() // the first attempt fails: next attempt in 5 m
	h.svc.Wait()
	rec = h.record(e.Job.ID)
	if rec.Callback.Attempts != 1 || rec.Callback.NextAttemptAt == nil {
		t.Fatalf("precondition: callback %+v", rec.Callback)
	}
	before := h.Queue.Calls(copyjobtest.OpUpdateMessage)
	visits := 0
	for range 24 { // two minutes, every 5 s: the callback is not due for 5 m
		r := h.tickAfter(5 * time.Second)
		visits += r.Dequeued
	}
	h.svc.Wait()
	msgs := h.Queue.Messages()
	t.Logf("callback next attempt %v; %d visits and %d message writes in 2 minutes; message visible at %v",
		rec.Callback.NextAttemptAt, visits, h.Queue.Calls(copyjobtest.OpUpdateMessage)-before, msgs[0].VisibleAt)
	if visits > 1 {
		t.Fatalf("%d visits in 2 minutes of a job whose only leftover (its callback) is due at %v: the past guess time defeats the backoff", visits, rec.Callback.NextAttemptAt)
	}
}
