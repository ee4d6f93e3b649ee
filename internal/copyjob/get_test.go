package copyjob_test

import (
	"testing"
	"time"

	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/copyjob/copyjobtest"
)

func TestGetPendingReadsLive(t *testing.T) {
	h := newHarness(t)
	job := h.start(leasedReq())
	_ = h.Blobs.SetCopyProgress(dstRef, 512, srcSize)
	h.Clock.Advance(time.Second)
	got, err := h.svc.Get(h.ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Progress.BytesCopied != 512 || got.Status != copyjob.StatusPending {
		t.Fatalf("job = %+v", got)
	}

	// Storage unreadable: the record answers.
	h.Blobs.FailNext(copyjobtest.OpCopyState, errBusy)
	if got, err := h.svc.Get(h.ctx, job.ID); err != nil || got.Status != copyjob.StatusPending {
		t.Fatalf("job %+v err %v", got, err)
	}

	// A finished copy is shown by the read, which writes nothing: no record write, no
	// lease release, no callback (GET is safe; one settle path fewer). The tick records it.
	_ = h.Blobs.CompleteCopy(dstRef)
	writes, releases := h.Records.Calls(copyjobtest.OpUpdate), h.Blobs.Calls(copyjobtest.OpReleaseLease)
	got, err = h.svc.Get(h.ctx, job.ID)
	if err != nil || got.Status != copyjob.StatusSuccess || got.Progress.BytesCopied != srcSize {
		t.Fatalf("job %+v err %v", got, err)
	}
	if h.Records.Calls(copyjobtest.OpUpdate) != writes || h.Blobs.Calls(copyjobtest.OpReleaseLease) != releases {
		t.Fatal("a status read wrote")
	}
	h.wantStatus(job.ID, copyjob.StatusPending)
	h.tickAfter(time.Minute)
	h.wantLeaseReleased(h.wantStatus(job.ID, copyjob.StatusSuccess))

	// Terminal: no more live reads.
	reads := h.Blobs.Calls(copyjobtest.OpCopyState)
	if _, err := h.svc.Get(h.ctx, job.ID); err != nil {
		t.Fatal(err)
	}
	if h.Blobs.Calls(copyjobtest.OpCopyState) != reads {
		t.Fatal("a terminal job was read live")
	}
	h.tickAfter(time.Hour)
	h.wantMessages(0)
}

func TestGetErrors(t *testing.T) {
	h := newHarness(t)
	_, err := h.svc.Get(h.ctx, "nope")
	wantCode(t, err, copyjob.CodeJobNotFound)
	h.Records.FailNext(copyjobtest.OpGet, errBusy)
	_, err = h.svc.Get(h.ctx, "nope")
	wantCode(t, err, copyjob.CodeStorageUnavailable)
}

func TestList(t *testing.T) {
	h := newHarness(t)
	h.Blobs.SetStartStatus(copyjob.StatusFailed)
	h.start(copyjob.StartRequest{JobID: "a", Source: srcURL, Destination: copyjob.BlobRef{Container: "dst", Blob: "a"}})
	h.Blobs.SetStartStatus(copyjob.StatusPending)
	h.start(copyjob.StartRequest{JobID: "b", Source: srcURL, Destination: copyjob.BlobRef{Container: "dst", Blob: "b"}})
	h.start(copyjob.StartRequest{JobID: "c", Source: srcURL, Destination: copyjob.BlobRef{Container: "dst", Blob: "c"}})

	page, err := h.svc.List(h.ctx, copyjob.ListOptions{Status: copyjob.StatusFailed})
	if err != nil || len(page.Jobs) != 1 || page.Jobs[0].ID != "a" {
		t.Fatalf("failed jobs: %+v %v", page, err)
	}
	page, err = h.svc.List(h.ctx, copyjob.ListOptions{Limit: 2})
	if err != nil || len(page.Jobs) != 2 || page.NextMarker == "" {
		t.Fatalf("page 1: %+v %v", page, err)
	}
	if page.Jobs[0].ID != "c" || page.Jobs[1].ID != "b" {
		t.Fatalf("page 1 = %s %s, want newest first (ties by id, descending)", page.Jobs[0].ID, page.Jobs[1].ID)
	}
	page, err = h.svc.List(h.ctx, copyjob.ListOptions{Limit: 2, Marker: page.NextMarker})
	if err != nil || len(page.Jobs) != 1 || page.Jobs[0].ID != "a" || page.NextMarker != "" {
		t.Fatalf("page 2: %+v %v", page, err)
	}
	_, err = h.svc.List(h.ctx, copyjob.ListOptions{Marker: "not a marker"})
	wantCode(t, err, copyjob.CodeInvalidRequest)
	_, err = h.svc.List(h.ctx, copyjob.ListOptions{Status: "bogus"})
	wantCode(t, err, copyjob.CodeInvalidRequest)
	h.Records.FailNext(copyjobtest.OpList, errBusy)
	_, err = h.svc.List(h.ctx, copyjob.ListOptions{})
	wantCode(t, err, copyjob.CodeStorageUnavailable)
}
