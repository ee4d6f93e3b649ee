package copyjob_test

import (
	"testing"
	"time"

	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/copyjob/copyjobtest"
)

// guessSetup builds the guess_test two-message start with production-like timings
// (FirstPoll 5s, MaxPollInterval 5m, StartGrace 2m) and simulates a tick that dequeued
// both messages and died while visiting the second (the one naming the copy): that
// message stays hidden for the visibility it was dequeued with (visitVisibility = 5m,
// longer than the grace plus the guess window). The first is visible again at once.
// It returns the job and the second message as held by the dead tick.
func guessSetup(t *testing.T, h *harness) (*copyjob.Job, copyjob.Message) {
	return guessSetupWith(t, h, hook)
}

func guessSetupWith(t *testing.T, h *harness, callback string) (*copyjob.Job, copyjob.Message) {
	t.Helper()
	h.Records.FailAlways(copyjobtest.OpCreate, errBusy)
	h.Queue.FailNext(copyjobtest.OpUpdateMessage, errBusy)
	job, _, err := h.svc.Start(h.ctx, copyjob.StartRequest{Source: srcURL, Destination: dstRef, Options: copyjob.Options{Overwrite: true},
		CallbackURL: callback})
	h.Records.Heal("")
	if err != nil || job == nil {
		t.Fatalf("start: %v", err)
	}
	if n := len(h.Queue.Messages()); n != 2 {
		t.Fatalf("%d messages, want 2", n)
	}
	if err := h.Blobs.CompleteCopy(dstRef); err != nil {
		t.Fatal(err)
	}
	h.Blobs.ForeignCopy(dstRef, externalURL)
	h.Clock.Advance(h.svc.Config().FirstPoll)
	// A tick dequeues both (visitVisibility); it visits the first and dies on the second.
	msgs, err := h.Queue.Dequeue(h.ctx, 32, 5*time.Minute)
	if err != nil || len(msgs) != 2 {
		t.Fatalf("dequeue: %v %d", err, len(msgs))
	}
	if _, err := h.Queue.Update(h.ctx, msgs[0], msgs[0].Text, 0); err != nil {
		t.Fatal(err)
	}
	return job, msgs[1]
}

func prodTimings(c *copyjob.Config, _ *copyjobtest.Env) {
	c.FirstPoll, c.MaxPollInterval, c.StartGrace, c.ProcessingVisibility = 5*time.Second, 5*time.Minute, 2*time.Minute, 30*time.Second
	c.BatchSize, c.Concurrency = 1, 1
}

// TestGuessOutlivedByItsOtherMessageSendsOneCallback (review R7): the second message comes
// back after GuessStandsUntil (a dead visit hides it for visitVisibility, 5m, > 2 x
// StartGrace): the guess's callback (startFailed, false) goes out, then the correction
// sends a second one with another outcome and another delivery id.
func TestGuessOutlivedByItsOtherMessageSendsOneCallback(t *testing.T) {
	h := newHarness(t, prodTimings)
	job, _ := guessSetup(t, h)
	for range 40 {
		h.tickAfter(15 * time.Second)
	}
	h.svc.Wait()
	j := h.record(job.ID)
	d := h.Notifier.Deliveries()
	var got []string
	for _, x := range d {
		got = append(got, string(x.Job.Status)+"/"+x.Job.Callback.DeliveryID)
	}
	t.Logf("final record %s copy %q; callbacks %v", j.Status, j.CopyID, got)
	if len(d) != 1 || d[0].Job.Status != j.Status {
		t.Fatalf("callbacks %v, want exactly one, of the job's final outcome %s", got, j.Status)
	}
}

// TestGetNeverShowsAGuessAsFinal (review R7): during the guess window, a status read answers
// the guess as the job's terminal outcome (startFailed, completedAt set), which the
// other message then reverses.
func TestGetNeverShowsAGuessAsFinal(t *testing.T) {
	h := newHarness(t, prodTimings)
	job, _ := guessSetup(t, h)
	h.tickAfter(h.svc.Config().StartGrace) // the message naming no copy: the guess
	h.svc.Wait()
	seen, err := h.svc.Get(h.ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	for range 40 {
		h.tickAfter(15 * time.Second)
	}
	h.svc.Wait()
	final := h.record(job.ID)
	t.Logf("GET during the guess: %s (completedAt %v, guessStandsUntil %v); final: %s", seen.Status, seen.CompletedAt, seen.GuessStandsUntil, final.Status)
	if seen.Status.Terminal() && seen.Status != final.Status {
		t.Fatalf("GET answered terminal %s, later the job is %s: a terminal outcome a reader saw was reversed", seen.Status, final.Status)
	}
}

// TestCorrectionWaitsForTheGuessCallbackInFlight (review R7): the other message is
// visited (another instance) while the first message's effects deliver the guess's
// callback once the window has ended. correctGuess writes the corrected outcome (the
// record's callback not yet marked delivered, so no new delivery), and the effects'
// bookkeeping write then stores the guess's delivered callback over it: the receiver got
// startFailed only, the record says copyIdMismatch with its callback delivered.
func TestCorrectionWaitsForTheGuessCallbackInFlight(t *testing.T) {
	h := newHarness(t, prodTimings)
	cfg := h.svc.Config()
	other := h.Env.Service(cfg) // a second instance on the same storage
	job, held := guessSetup(t, h)
	h.tickAfter(cfg.StartGrace) // the guess
	h.svc.Wait()
	g := h.record(job.ID)
	if g.GuessStandsUntil == nil {
		t.Fatalf("no guess: %+v", g)
	}
	// The dead tick's hold on the other message ends just after the guess window.
	if _, err := h.Queue.Update(h.ctx, held, held.Text, g.GuessStandsUntil.Sub(h.Clock.Now())+3*time.Second); err != nil {
		t.Fatal(err)
	}
	h.Notifier.OnNext(copyjobtest.OpNotify, func() {
		h.Clock.Advance(2 * time.Second) // the other message becomes visible to the other instance
		if rep, err := other.Tick(h.ctx); err != nil {
			t.Logf("other tick %+v", rep)
			t.Errorf("other tick: %v", err)
		} else {
			t.Logf("other tick %+v", rep)
		}
		other.Wait()
		r := h.record(job.ID)
		t.Logf("inside the guess's callback: record %s copy %q claim %+v callback %+v", r.Status, r.CopyID, r.Claim, r.Callback)
	})
	h.Clock.Set(g.GuessStandsUntil.Add(2 * time.Second))
	h.tick()
	h.svc.Wait()
	for range 40 {
		h.tickAfter(15 * time.Second)
	}
	h.svc.Wait()
	j := h.record(job.ID)
	var got []copyjob.Status
	for _, x := range h.Notifier.Deliveries() {
		got = append(got, x.Job.Status)
	}
	t.Logf("final record %s copy %q callback delivered %v; callbacks sent %v", j.Status, j.CopyID, j.Callback.DeliveredAt != nil, got)
	if len(got) != 1 || got[0] != j.Status {
		t.Fatalf("callbacks %v, final record %s (callback delivered=%v): want one callback, of the final outcome", got, j.Status, j.Callback.DeliveredAt != nil)
	}
}

// TestRetryWaitsForTheGuessWindow (review R7): a job without a callback is
// retryable while its guess may still be corrected; the retry clears the guess, the
// other message is then dropped as stale, and the history keeps "it ended before Copy
// Blob" for an attempt whose copy ran (copy-1, replaced: copyIdMismatch).
func TestRetryWaitsForTheGuessWindow(t *testing.T) {
	h := newHarness(t, prodTimings)
	job, held := guessSetupWith(t, h, "")
	h.tickAfter(h.svc.Config().StartGrace) // the guess
	h.svc.Wait()
	g := h.record(job.ID)
	if g.GuessStandsUntil == nil || !h.Clock.Now().Before(*g.GuessStandsUntil) {
		t.Fatalf("precondition: guess %v", g.GuessStandsUntil)
	}
	if _, err := h.Queue.Update(h.ctx, held, held.Text, time.Minute); err != nil {
		t.Fatal(err)
	}
	_ = h.Blobs.CompleteCopy(dstRef) // the other client's copy ends
	_, rerr := h.svc.Retry(h.ctx, job.ID, copyjob.RetryOptions{})
	for range 40 {
		h.tickAfter(15 * time.Second)
	}
	h.svc.Wait()
	j := h.record(job.ID)
	var hist []string
	for _, o := range j.History {
		hist = append(hist, string(o.Status)+" copy="+o.CopyID)
	}
	t.Logf("retry during the guess window: err=%v; history %v; now %s copy %s", rerr, hist, j.Status, j.CopyID)
	if rerr == nil && len(j.History) > 0 && j.History[0].CopyID == "" {
		t.Fatalf("retry accepted while the guess could be corrected; attempt 1 (copy %s ran) stays in history as %v", job.CopyID, hist)
	}
}
