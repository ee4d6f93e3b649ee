package copyjob_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/copyjob/copyjobtest"
)

// An Event Grid event announces a new version of its source. A copy pending on its
// destination (an earlier version's, another client's) ends in time: the event's job
// waits for it, without counting failures, and copies the new version once the
// destination is free. Refused, the newest version would never be copied (Event Grid
// drops an event answered as refused).
func TestEventStartWaitsForTheCopyPendingOnItsDestination(t *testing.T) {
	h := newHarness(t)
	h.Blobs.SetStartStatus(copyjob.StatusPending)
	first := h.start(copyjob.StartRequest{Source: srcURL, Destination: dstRef, Origin: "eventgrid", JobID: "version-1", Options: copyjob.Options{Overwrite: true}})
	if first.Status != copyjob.StatusPending {
		t.Fatalf("first copy: %s", first.Status)
	}
	event := copyjob.StartRequest{Source: srcURL, Destination: dstRef, Origin: "eventgrid", JobID: "version-2", Options: copyjob.Options{Overwrite: true}}
	_, _, err := h.svc.Start(h.ctx, event)
	if copyjob.CodeOf(err) != copyjob.CodeWaitingForDestination {
		t.Fatalf("second event's start: %v, want %s", err, copyjob.CodeWaitingForDestination)
	}
	var e *copyjob.Error
	if !errors.As(err, &e) || e.Job == nil || e.Job.ID != "version-2" {
		t.Fatalf("the error names %+v, want the event's own job", e)
	}
	h.wantStatus("version-2", copyjob.StatusStarting)
	// Far more visits than COPY_MAX_FAILURES while the first copy runs: still waiting.
	for range 3 * testConfig().MaxFailures {
		h.tickAfter(testConfig().MaxPollInterval)
	}
	if j := h.wantStatus("version-2", copyjob.StatusStarting); j.StartFailures != 0 {
		t.Errorf("waiting counted %d start failures", j.StartFailures)
	}
	// The first copy ends: the next visits record it and start the second.
	firstCopyEnds(t, h)
	if n := h.Blobs.Calls(copyjobtest.OpStartCopy); n < 3 {
		t.Errorf("%d Copy Blob calls, want the second event's to be made again", n)
	}
}

// An API start meets the same pending copy with a 409 naming its owner, as before: its
// caller decides.
func TestAPIStartOntoAPendingCopyIsStillRefused(t *testing.T) {
	h := newHarness(t)
	h.Blobs.SetStartStatus(copyjob.StatusPending)
	h.start(copyjob.StartRequest{Source: srcURL, Destination: dstRef, Origin: "api"})
	if _, _, err := h.svc.Start(h.ctx, copyjob.StartRequest{Source: srcURL, Destination: dstRef, Origin: "api"}); copyjob.CodeOf(err) != copyjob.CodePendingCopyOperation {
		t.Fatalf("second API start: %v, want %s", err, copyjob.CodePendingCopyOperation)
	}
}

// waitingEvent starts version-1 pending on dstRef and an event's version-2 waiting for
// it.
func waitingEvent(t *testing.T, h *harness) {
	t.Helper()
	h.Blobs.SetStartStatus(copyjob.StatusPending)
	h.start(copyjob.StartRequest{Source: srcURL, Destination: dstRef, Origin: "eventgrid", JobID: "version-1", Options: copyjob.Options{Overwrite: true}})
	event := copyjob.StartRequest{Source: srcURL, Destination: dstRef, Origin: "eventgrid", JobID: "version-2", Options: copyjob.Options{Overwrite: true}}
	if _, _, err := h.svc.Start(h.ctx, event); copyjob.CodeOf(err) != copyjob.CodeWaitingForDestination {
		t.Fatalf("second event's start: %v, want %s", err, copyjob.CodeWaitingForDestination)
	}
}

// Review 8: storage blips while an event's job waits are transient failures, each
// followed by more waiting. They must not add up across the wait (a waiting job whose
// failures reached COPY_MAX_FAILURES was refused, or poisoned), nor make the job forget
// that it waits (a blip's description replaced the one that said so).
func TestBlipsWhileWaitingForTheDestinationDoNotAddUp(t *testing.T) {
	h := newHarness(t)
	waitingEvent(t, h)
	// Event Grid redelivers the event: each delivery attempts the start again. Every
	// other one meets a blip reading the destination.
	event := copyjob.StartRequest{Source: srcURL, Destination: dstRef, Origin: "eventgrid", JobID: "version-2", Options: copyjob.Options{Overwrite: true}}
	for range 3 * testConfig().MaxFailures {
		h.Blobs.FailNext(copyjobtest.OpCopyState, errBusy)
		if _, _, err := h.svc.Start(h.ctx, event); copyjob.CodeOf(err) != copyjob.CodeStorageUnavailable {
			t.Fatalf("delivery during a blip: %v, want StorageUnavailable", err)
		}
		if _, _, err := h.svc.Start(h.ctx, event); copyjob.CodeOf(err) != copyjob.CodeWaitingForDestination {
			t.Fatalf("delivery: %v, want %s", err, copyjob.CodeWaitingForDestination)
		}
	}
	if j := h.wantStatus("version-2", copyjob.StatusStarting); j.StartFailures != 0 {
		t.Errorf("%d start failures counted across the wait", j.StartFailures)
	}
	h.tickAfter(testConfig().MaxPollInterval)
	if j := h.wantStatus("version-2", copyjob.StatusStarting); j.StartFailures != 0 {
		t.Errorf("%d start failures counted across the wait", j.StartFailures)
	}
	if p := h.Queue.Poisoned(); len(p) != 0 {
		t.Fatalf("poisoned while waiting: %+v", p)
	}
	firstCopyEnds(t, h)
}

// Review 8: a waiting job backs off like a poll (up to COPY_MAX_POLL_INTERVAL), not
// attempted at every tick: each attempt reads the destination and lists records.
func TestWaitingForTheDestinationBacksOff(t *testing.T) {
	h := newHarness(t)
	waitingEvent(t, h)
	var last time.Duration
	for range 6 {
		h.tickAfter(testConfig().MaxPollInterval)
		j := h.wantStatus("version-2", copyjob.StatusStarting)
		if j.NextAttemptAt == nil {
			t.Fatal("no next attempt recorded")
		}
		last = j.NextAttemptAt.Sub(h.Clock.Now())
	}
	if last < testConfig().MaxPollInterval/2 {
		t.Errorf("after six waits the next attempt is %s away, want it backed off towards %s", last, testConfig().MaxPollInterval)
	}
}

// Review 8: the copy the job waits for ended, but its own job will never record it (its
// tracking message was poisoned): the waiting job records that outcome for it (as its
// tick would have, lease and callback included) and goes on, instead of waiting for
// ever. A wait has an end all the same (a copy that never ends), and a waiting job can
// be aborted.
func TestWaitingForTheDestinationEnds(t *testing.T) {
	t.Run("the owner's outcome is recorded for it", func(t *testing.T) {
		h := newHarness(t)
		waitingEvent(t, h)
		for _, m := range h.Queue.Messages() {
			if strings.Contains(m.Text, "version-1") {
				h.Queue.Remove(m.ID) // as if poisoned: nothing follows version-1 any more
			}
		}
		if err := h.Blobs.CompleteCopy(dstRef); err != nil {
			t.Fatal(err)
		}
		h.Blobs.SetStartStatus(copyjob.StatusSuccess)
		for range 4 {
			h.tickAfter(testConfig().MaxPollInterval)
		}
		h.wantStatus("version-1", copyjob.StatusSuccess)
		h.wantStatus("version-2", copyjob.StatusSuccess)
	})
	t.Run("a copy that never ends", func(t *testing.T) {
		h := newHarness(t)
		waitingEvent(t, h)
		for range 20 {
			h.tickAfter(24 * time.Hour)
		}
		if j := h.wantStatus("version-2", copyjob.StatusStartFailed); !strings.Contains(j.StatusDescription, string(copyjob.CodePendingCopyOperation)) {
			t.Errorf("description %q, want it to name the pending copy", j.StatusDescription)
		}
	})
	t.Run("abort", func(t *testing.T) {
		h := newHarness(t)
		waitingEvent(t, h)
		before := h.Blobs.Calls(copyjobtest.OpStartCopy)
		job, err := h.svc.Abort(h.ctx, "version-2", copyjob.AbortOptions{})
		if err != nil || job.Status != copyjob.StatusAborted {
			t.Fatalf("abort: %+v, %v; want aborted", job, err)
		}
		if err := h.Blobs.CompleteCopy(dstRef); err != nil {
			t.Fatal(err)
		}
		for range 4 {
			h.tickAfter(testConfig().MaxPollInterval)
		}
		h.wantStatus("version-2", copyjob.StatusAborted)
		h.wantStatus("version-1", copyjob.StatusSuccess)
		if n := h.Blobs.Calls(copyjobtest.OpStartCopy) - before; n != 0 {
			t.Errorf("%d Copy Blob calls after the abort", n)
		}
	})
}

// firstCopyEnds completes version-1's copy; the next visits record it, then start
// version-2's copy, which succeeds at once.
func firstCopyEnds(t *testing.T, h *harness) {
	t.Helper()
	if err := h.Blobs.CompleteCopy(dstRef); err != nil {
		t.Fatal(err)
	}
	h.Blobs.SetStartStatus(copyjob.StatusSuccess)
	for range 4 {
		h.tickAfter(testConfig().MaxPollInterval)
	}
	h.wantStatus("version-1", copyjob.StatusSuccess)
	h.wantStatus("version-2", copyjob.StatusSuccess)
}

// Review 9: a copy pending for two weeks, and an event's job waiting for it as long, are
// visited at most about once per COPY_MAX_POLL_INTERVAL and never poisoned for their
// visits: a wait's message came back after FirstPoll after every attempt (the polls'
// backoff started again), and the cap on visits (20,000) was below two weeks at a
// one-minute interval even for the pending copy's steady polls.
func TestTwoWeeksPendingAreNotTooManyVisits(t *testing.T) {
	h := newHarness(t)
	waitingEvent(t, h)
	const fortnight = 14 * 24 * time.Hour
	for elapsed := time.Duration(0); elapsed < fortnight; elapsed += 30 * time.Second {
		h.tickAfter(30 * time.Second) // the default schedule
	}
	if p := h.Queue.Poisoned(); len(p) != 0 {
		t.Fatalf("poisoned while pending and waiting: %d entries, first %+v", len(p), p[0])
	}
	h.wantStatus("version-1", copyjob.StatusPending)
	h.wantStatus("version-2", copyjob.StatusStarting)
	steady := int64(fortnight / testConfig().MaxPollInterval)
	for _, m := range h.Queue.Messages() {
		if m.DequeueCount > steady+steady/10 {
			t.Errorf("a message was visited %d times in two weeks, want about %d (one per COPY_MAX_POLL_INTERVAL): %s", m.DequeueCount, steady, m.Text)
		}
	}
	for range 2 {
		h.tickAfter(24 * time.Hour)
	}
	h.wantStatus("version-2", copyjob.StatusStartFailed)
}

// Review 10: a waiting job whose attempt is due while another actor holds its claim (a
// redelivery's start that crashed holding it) is visited again when the claim ends, not
// every second until then.
func TestWaitingJobUnderAnotherClaimIsVisitedWhenTheClaimEnds(t *testing.T) {
	h := newHarness(t)
	waitingEvent(t, h)
	j := h.record("version-2")
	h.Clock.Advance(j.NextAttemptAt.Sub(h.Clock.Now()) + time.Second) // the attempt is due
	until := h.Clock.Now().Add(2 * time.Minute)
	h.Records.Modify("version-2", func(j *copyjob.Job) {
		j.Claim = &copyjob.Claim{Token: "crashed-redelivery", Actor: copyjob.Actor("eventgrid"), Until: until}
	})
	visits := func() int64 {
		for _, m := range h.Queue.Messages() {
			if strings.Contains(m.Text, `"version-2"`) {
				return m.DequeueCount
			}
		}
		t.Fatal("the waiting job's message is gone")
		return 0
	}
	before := visits()
	for h.Clock.Now().Before(until) {
		h.tickAfter(time.Second)
	}
	if n := visits() - before; n > 3 {
		t.Errorf("visited %d times during the other claim's two minutes, want it hidden until the claim ends", n)
	}
}
