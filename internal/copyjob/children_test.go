package copyjob_test

import (
	"errors"
	"testing"
	"time"

	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/copyjob/copyjobtest"
)

func childReq() copyjob.StartRequest {
	return copyjob.StartRequest{JobID: "b1-child", Batch: "b1", Origin: "batch", Source: srcURL, Destination: dstRef}
}

// TestStartChildRecordsOnceAfterTheCopy: a child without leaseSource costs its Copy Blob
// and one record creation, in the state the copy is in: pending with its copy id, the
// outcome of a copy that ended at once, or startFailed with the refusal. No tracking
// message, no record update.
func TestStartChildRecordsOnceAfterTheCopy(t *testing.T) {
	for _, tc := range []struct {
		name   string
		setup  func(*harness)
		status copyjob.Status
	}{
		{"pending", func(*harness) {}, copyjob.StatusPending},
		{"ended at once", func(h *harness) { h.Blobs.SetStartStatus(copyjob.StatusSuccess) }, copyjob.StatusSuccess},
		{"refused", func(h *harness) { h.Blobs.Put(dstRef, 1, nil) }, copyjob.StatusStartFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			tc.setup(h)
			job, err := h.svc.StartChild(h.ctx, childReq())
			if job == nil || job.Status != tc.status {
				t.Fatalf("job %+v, err %v", job, err)
			}
			if tc.status == copyjob.StatusStartFailed {
				if copyjob.CodeOf(err) != copyjob.CodeDestinationExists || job.Refusal == nil {
					t.Fatalf("refusal: %v, %+v", err, job.Refusal)
				}
			} else if err != nil || job.CopyID == "" {
				t.Fatalf("copy id %q, err %v", job.CopyID, err)
			}
			stored := h.Records.Job("b1-child")
			if stored == nil || stored.Status != tc.status || stored.CopyID != job.CopyID || stored.Claim != nil || !stored.Tracked {
				t.Fatalf("stored %+v", stored)
			}
			if c, u, q := h.Records.Calls(copyjobtest.OpCreate), h.Records.Calls(copyjobtest.OpUpdate), h.Queue.Len(); c != 1 || u != 0 || q != 0 {
				t.Fatalf("%d creates, %d updates, %d messages", c, u, q)
			}
		})
	}
}

// TestStartChildInDoubt: Copy Blob's answer is lost and the destination cannot be read
// to tell: the child is recorded "starting", uncertain, for ResumeChild, which finds the
// copy that did start and adopts it (no second Copy Blob). When the record cannot be
// written either, nothing is recorded and the error says the copy is in doubt.
func TestStartChildInDoubt(t *testing.T) {
	h := newHarness(t)
	h.Blobs.LoseNextAnswer(copyjobtest.OpStartCopy, errBusy)
	h.Blobs.FailAlways(copyjobtest.OpCopyState, errBusy)
	job, err := h.svc.StartChild(h.ctx, childReq())
	h.Blobs.Heal(copyjobtest.OpCopyState)
	if job == nil || job.Status != copyjob.StatusStarting || !job.CopyUncertain || job.NextAttemptAt == nil || !copyjob.Retryable(err) {
		t.Fatalf("job %+v, err %v", job, err)
	}
	h.Clock.Advance(time.Hour)
	job = h.Records.Job("b1-child")
	if resumed, err := h.svc.ResumeChild(h.ctx, job); !resumed || err != nil || job.Status != copyjob.StatusPending {
		t.Fatalf("resume: %v %v %+v", resumed, err, job)
	}
	if n := len(h.Blobs.StartCopyCalls()); n != 1 {
		t.Fatalf("%d Copy Blob calls", n)
	}

	h2 := newHarness(t)
	h2.Blobs.LoseNextAnswer(copyjobtest.OpStartCopy, errBusy)
	h2.Blobs.FailAlways(copyjobtest.OpCopyState, errBusy)
	h2.Records.FailNext(copyjobtest.OpCreate, errBusy)
	job, err = h2.svc.StartChild(h2.ctx, childReq())
	if job != nil || !errors.Is(err, copyjob.ErrCopyInDoubt) || !copyjob.Retryable(err) {
		t.Fatalf("job %+v, err %v", job, err)
	}
}

// TestRecoverChild: a child with a record is left alone; a destination carrying the
// child's own unrecorded copy (begun since the page) is adopted, with overwrite false
// too; a copy another job records is not the child's (the child is started, and
// refused, as overwrite false says); an aborted batch's recovery starts nothing.
func TestRecoverChild(t *testing.T) {
	h := newHarness(t)
	since := h.Clock.Now()
	st, err := h.Blobs.StartCopy(h.ctx, dstRef, srcURL, copyjob.StartCopyOptions{IfNotExists: true})
	if err != nil {
		t.Fatal(err)
	}
	job, err := h.svc.RecoverChild(h.ctx, childReq(), since, false)
	if err != nil || job == nil || job.Status != copyjob.StatusPending || job.CopyID != st.CopyID {
		t.Fatalf("adopt: %+v, %v", job, err)
	}
	again, err := h.svc.RecoverChild(h.ctx, childReq(), since, false)
	if err != nil || again.ETag != job.ETag || len(h.Blobs.StartCopyCalls()) != 1 {
		t.Fatalf("a recorded child: %+v, %v", again, err)
	}

	h = newHarness(t)
	since = h.Clock.Now()
	st, _ = h.Blobs.StartCopy(h.ctx, dstRef, srcURL, copyjob.StartCopyOptions{})
	h.Records.Put(&copyjob.Job{ID: "someone-else", Status: copyjob.StatusPending, CopyID: st.CopyID,
		Destination: copyjob.Destination{BlobRef: dstRef}})
	if job, err := h.svc.RecoverChild(h.ctx, childReq(), since, true); job != nil || err != nil {
		t.Fatalf("adopt only: %+v, %v", job, err)
	}
	job, err = h.svc.RecoverChild(h.ctx, childReq(), since, false)
	if job == nil || job.Status != copyjob.StatusStartFailed || copyjob.CodeOf(err) != copyjob.CodePendingCopyOperation {
		t.Fatalf("another job's copy: %+v, %v", job, err)
	}
}
