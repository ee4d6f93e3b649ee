package copyjob_test

import (
	"errors"
	"testing"

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
	if err := h.Blobs.CompleteCopy(dstRef); err != nil {
		t.Fatal(err)
	}
	h.Blobs.SetStartStatus(copyjob.StatusSuccess)
	for range 3 {
		h.tickAfter(testConfig().MaxPollInterval)
	}
	h.wantStatus("version-1", copyjob.StatusSuccess)
	h.wantStatus("version-2", copyjob.StatusSuccess)
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
