package copyjob_test

import (
	"strings"
	"testing"
	"time"

	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/copyjob/copyjobtest"
)

func TestAbortPending(t *testing.T) {
	h := newHarness(t)
	job := h.start(leasedReq())
	_ = h.Blobs.SetCopyProgress(dstRef, 42, srcSize)
	got, err := h.svc.Abort(h.ctx, job.ID, copyjob.AbortOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != copyjob.StatusAborted || got.CompletedAt == nil || got.StatusDescription == "" {
		t.Fatalf("job = %+v", got)
	}
	if h.Blobs.Calls(copyjobtest.OpAbortCopy) != 1 {
		t.Fatal("AbortCopy not called once")
	}
	b, _ := h.Blobs.Blob(dstRef)
	if b.Copy.Status != copyjob.StatusAborted || b.Copy.CopyID != job.CopyID {
		t.Fatalf("destination copy state = %+v", b.Copy)
	}
	h.wantLeaseReleased(h.wantStatus(job.ID, copyjob.StatusAborted))
	// The tick drops the message without touching the outcome.
	if r := h.tickAfter(time.Hour); r.Completed != 1 {
		t.Fatalf("report = %+v", r)
	}
	h.wantStatus(job.ID, copyjob.StatusAborted)
	h.wantMessages(0)
}

func TestAbortNotPending(t *testing.T) {
	h := newHarness(t)
	h.Blobs.SetStartStatus(copyjob.StatusSuccess)
	job := h.start(copyjob.StartRequest{Source: srcURL, Destination: dstRef})
	got, err := h.svc.Abort(h.ctx, job.ID, copyjob.AbortOptions{})
	e := wantCode(t, err, copyjob.CodeCopyNotPending)
	if e.Job == nil || e.Job.ID != job.ID || e.Job.Status != copyjob.StatusSuccess || got == nil {
		t.Fatalf("error job = %+v", e.Job)
	}
	if h.Blobs.Calls(copyjobtest.OpAbortCopy) != 0 {
		t.Fatal("AbortCopy called on a finished job")
	}
}

func TestAbortUnknown(t *testing.T) {
	h := newHarness(t)
	_, err := h.svc.Abort(h.ctx, "nope", copyjob.AbortOptions{})
	wantCode(t, err, copyjob.CodeJobNotFound)
	h.Records.FailNext(copyjobtest.OpGet, errBusy)
	_, err = h.svc.Abort(h.ctx, "nope", copyjob.AbortOptions{})
	wantCode(t, err, copyjob.CodeStorageUnavailable)
}

// The copy ends between the record read and the abort: the real outcome is recorded.
func TestAbortRacesCompletion(t *testing.T) {
	tests := []struct {
		name string
		race func(*harness)
		want copyjob.Status
	}{
		{name: "completed", want: copyjob.StatusSuccess, race: func(h *harness) { _ = h.Blobs.CompleteCopy(dstRef) }},
		{name: "failed", want: copyjob.StatusFailed, race: func(h *harness) { _ = h.Blobs.FailCopy(dstRef, "source modified") }},
		{name: "replaced", want: copyjob.StatusCopyIDMismatch, race: func(h *harness) {
			_ = h.Blobs.CompleteCopy(dstRef)
			h.Blobs.ForeignCopy(dstRef, externalURL)
		}},
		{name: "deleted", want: copyjob.StatusDestinationMissing, race: func(h *harness) { h.Blobs.Delete(dstRef) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			job := h.start(leasedReq())
			h.Blobs.OnNext(copyjobtest.OpAbortCopy, func() { tt.race(h) })
			got, err := h.svc.Abort(h.ctx, job.ID, copyjob.AbortOptions{})
			e := wantCode(t, err, copyjob.CodeCopyNotPending)
			if got.Status != tt.want || e.Job.Status != tt.want {
				t.Fatalf("status = %s, want %s", got.Status, tt.want)
			}
			h.wantLeaseReleased(h.wantStatus(job.ID, tt.want))
		})
	}
	t.Run("fake answers NoPendingCopy", func(t *testing.T) {
		h := newHarness(t)
		job := h.start(leasedReq())
		_ = h.Blobs.CompleteCopy(dstRef)
		h.Blobs.FailNext(copyjobtest.OpAbortCopy, copyjob.ErrNoPendingCopy)
		_, err := h.svc.Abort(h.ctx, job.ID, copyjob.AbortOptions{})
		wantCode(t, err, copyjob.CodeCopyNotPending)
		h.wantLeaseReleased(h.wantStatus(job.ID, copyjob.StatusSuccess))
	})
}

func TestAbortStorageError(t *testing.T) {
	h := newHarness(t)
	job := h.start(leasedReq())
	h.Blobs.FailNext(copyjobtest.OpAbortCopy, errBusy)
	_, err := h.svc.Abort(h.ctx, job.ID, copyjob.AbortOptions{})
	wantCode(t, err, copyjob.CodeStorageUnavailable)
	h.wantStatus(job.ID, copyjob.StatusPending)
	if h.Blobs.LeaseHolder(srcRef) != job.Lease.ID {
		t.Fatal("lease released although the copy still runs")
	}
}

func TestAbortRestoresSnapshot(t *testing.T) {
	h := newHarness(t)
	h.Blobs.Put(dstRef, 10, map[string]string{"v": "old"})
	job := h.start(copyjob.StartRequest{Source: srcURL, Destination: dstRef,
		Options: copyjob.Options{Overwrite: true, SnapshotDestination: true, LeaseSource: true}})
	if job.DestinationSnapshot == "" {
		t.Fatal("no snapshot")
	}
	got, err := h.svc.Abort(h.ctx, job.ID, copyjob.AbortOptions{Restore: true})
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != copyjob.StatusAborted || got.RestoredFrom != job.DestinationSnapshot ||
		!strings.Contains(got.StatusDescription, job.DestinationSnapshot) {
		t.Fatalf("job = %+v", got)
	}
	rec := h.wantStatus(job.ID, copyjob.StatusAborted)
	if rec.RestoredFrom != job.DestinationSnapshot {
		t.Fatalf("RestoredFrom = %q", rec.RestoredFrom)
	}
	h.wantLeaseReleased(rec)
	calls := h.wantStartCopies(2)
	restore := calls[1]
	if restore.Dst != dstRef || !strings.Contains(restore.ReadURL, "snapshot=") || restore.Err != nil || restore.Opts.IfNotExists {
		t.Fatalf("restore call = %+v", restore)
	}
	_ = h.Blobs.CompleteCopy(dstRef)
	if b, _ := h.Blobs.Blob(dstRef); b.Size != 10 || b.Metadata["v"] != "old" {
		t.Fatalf("destination after restore = %+v", b)
	}
	// The restore copy is not this job's copy: the tick must not change the outcome.
	h.tickAfter(time.Hour)
	h.wantStatus(job.ID, copyjob.StatusAborted)
	h.wantMessages(0)
}

func TestAbortRestoreFailsIsRecorded(t *testing.T) {
	h := newHarness(t)
	h.Blobs.Put(dstRef, 10, nil)
	job := h.start(copyjob.StartRequest{Source: srcURL, Destination: dstRef,
		Options: copyjob.Options{Overwrite: true, SnapshotDestination: true}})
	h.Blobs.FailNext(copyjobtest.OpStartCopy, errBusy)
	got, err := h.svc.Abort(h.ctx, job.ID, copyjob.AbortOptions{Restore: true})
	if err != nil {
		t.Fatal(err)
	}
	// The abort is recorded before the restore; a failed restore leaves restoredFrom
	// empty, which the description says is how to tell.
	if got.Status != copyjob.StatusAborted || got.RestoredFrom != "" || !strings.Contains(got.StatusDescription, "restoredFrom names it") {
		t.Fatalf("job = %+v", got)
	}
	if rec := h.wantStatus(job.ID, copyjob.StatusAborted); rec.RestoredFrom != "" {
		t.Fatalf("record says restored from %s", rec.RestoredFrom)
	}
}

func TestAbortRestoreWithoutSnapshot(t *testing.T) {
	h := newHarness(t)
	job := h.start(copyjob.StartRequest{Source: srcURL, Destination: dstRef})
	_, err := h.svc.Abort(h.ctx, job.ID, copyjob.AbortOptions{Restore: true})
	wantCode(t, err, copyjob.CodeInvalidRequest)
	if h.Blobs.Calls(copyjobtest.OpAbortCopy) != 0 {
		t.Fatal("aborted although the restore could not happen")
	}
	h.wantStatus(job.ID, copyjob.StatusPending)
}

// TestAbortOfAStartNoMessageFollowsKeepsItsCallback (found by make stress): an event's
// start that waits for the copy pending on its destination, whose tracking message could
// not be enqueued, is aborted; its callback fails once and backs off. No message
// followed the job (the sweep gives one only to a record still starting), so the
// callback was never attempted again. The abort now gives such a job a message first.
func TestAbortOfAStartNoMessageFollowsKeepsItsCallback(t *testing.T) {
	h := newHarness(t)
	h.start(copyjob.StartRequest{JobID: "first", Source: srcURL, Destination: dstRef})
	h.Queue.FailNext(copyjobtest.OpEnqueue, errBusy)
	req := keyed(copyjob.StartRequest{Source: otherURL, Destination: dstRef, Origin: "eventgrid", CallbackURL: hook,
		Options: copyjob.Options{Overwrite: true}})
	job, _, _ := h.svc.Start(h.ctx, req)
	if job == nil || job.Status != copyjob.StatusStarting {
		t.Fatalf("setup: %+v, want a start waiting for the destination", job)
	}
	h.Notifier.FailNext(copyjobtest.OpNotify, errBusy)
	if _, err := h.svc.Abort(h.ctx, job.ID, copyjob.AbortOptions{}); err != nil {
		t.Fatalf("abort: %v", err)
	}
	h.svc.Wait()
	for range 20 {
		h.tickAfter(time.Minute)
	}
	if cb := h.record(job.ID).Callback; cb == nil || cb.DeliveredAt == nil {
		t.Fatalf("the aborted start's callback was never delivered: %+v", cb)
	}
}
