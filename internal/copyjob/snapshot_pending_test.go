package copyjob_test

import (
	"testing"

	"github.com/blobcopy/blobcopy/internal/copyjob"
)

// TestSnapshotOntoAPendingCopyNamesItsOwner (review R3). README: "A destination with a copy already pending answers 409
// PendingCopyOperation naming the job that owns it, or saying the copy is not this
// app's." With snapshotDestination, attempt snapshots the destination first, and Snapshot
// Blob on a destination whose copy is pending is refused 409 PendingCopyOperation (the
// copy simulator and the fakes both refuse it; see copysim refusePending). attempt hands
// that error to blobError, which knows no ErrPendingCopy: the start is refused
// StorageRequestRefused ("cannot snapshot the destination: storage refused the
// request"), naming no owner, recorded as that refusal and replayed as it to every retry
// of the request.
func TestSnapshotOntoAPendingCopyNamesItsOwner(t *testing.T) {
	h := newHarness(t)
	first := h.start(copyjob.StartRequest{JobID: "first", Source: srcURL, Destination: dstRef})
	if first.Status != copyjob.StatusPending {
		t.Fatalf("first = %s, want pending", first.Status)
	}
	_, _, err := h.svc.Start(h.ctx, copyjob.StartRequest{JobID: "second", Source: otherURL, Destination: dstRef,
		Options: copyjob.Options{Overwrite: true, SnapshotDestination: true}})
	if code := copyjob.CodeOf(err); code != copyjob.CodePendingCopyOperation {
		t.Fatalf("start onto a pending destination with snapshotDestination: code %s (%v), want %s naming job %s",
			code, err, copyjob.CodePendingCopyOperation, first.ID)
	}
	var e *copyjob.Error
	if errorsAs(err, &e); e.Job == nil || e.Job.ID != first.ID {
		t.Errorf("owner = %+v, want job %s", e.Job, first.ID)
	}
}

func errorsAs(err error, e **copyjob.Error) bool {
	for err != nil {
		if c, ok := err.(*copyjob.Error); ok {
			*e = c
			return true
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		err = u.Unwrap()
	}
	return false
}
