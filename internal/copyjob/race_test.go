package copyjob_test

import (
	"testing"
	"time"

	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/copyjob/copyjobtest"
)

// An abort lands while a tick polls the copy: the tick's terminal write (if storage
// already showed an end) or its next poll finds the abort's outcome, which stays.
func TestTickPollRacesAbort(t *testing.T) {
	h := newHarness(t)
	job := h.start(leasedReq())
	h.tickAfter(time.Minute) // the message now names the copy
	_ = h.Blobs.SetCopyProgress(dstRef, 77, srcSize)
	h.Blobs.OnNext(copyjobtest.OpCopyState, func() {
		if _, err := h.svc.Abort(h.ctx, job.ID, copyjob.AbortOptions{}); err != nil {
			t.Errorf("abort: %v", err)
		}
	})
	h.tickAfter(time.Hour)
	h.wantLeaseReleased(h.wantStatus(job.ID, copyjob.StatusAborted))
	h.tickAfter(time.Hour)
	h.wantStatus(job.ID, copyjob.StatusAborted)
	h.wantMessages(0)
}

// A tick records progress while an abort is on its way: the abort's write conflicts,
// reloads and still records the abort.
func TestAbortWriteRacesTickProgress(t *testing.T) {
	h := newHarness(t)
	job := h.start(leasedReq())
	h.tickAfter(time.Minute)
	_ = h.Blobs.SetCopyProgress(dstRef, 77, srcSize)
	h.Clock.Advance(time.Hour)
	h.Blobs.OnNext(copyjobtest.OpAbortCopy, func() {
		if r := h.tick(); r.Pending != 1 {
			t.Errorf("tick = %+v", r)
		}
	})
	got, err := h.svc.Abort(h.ctx, job.ID, copyjob.AbortOptions{})
	if err != nil || got.Status != copyjob.StatusAborted {
		t.Fatalf("abort: %+v %v", got, err)
	}
	h.wantLeaseReleased(h.wantStatus(job.ID, copyjob.StatusAborted))
}
