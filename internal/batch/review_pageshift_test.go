package batch_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/blobcopy/blobcopy/internal/batch"
	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/copyjob/copyjobtest"
)

// REVIEW: PageBegun records only the page's start marker. A runner that recovers the
// page lists it again from that marker; if the source changed in the meantime (a blob
// uploaded into the page's range), or List Blobs answers fewer results (which Azure may
// do with a continuation token), the recovered page ends earlier than the page the
// crashed runner started. Its last children, whose copies may run unrecorded, then fall
// into the next page, which is started fresh (StartChild, no recovery): a second Copy
// Blob onto their destination.
func TestReviewPageShiftAfterCrashStartsASecondCopy(t *testing.T) {
	h := newHarness(t, batch.Config{Concurrency: 1, PageSize: 4})
	h.putSource(8)
	b := h.submit(t, batch.SubmitRequest{Options: copyjob.Options{Overwrite: true}})
	c := crashBeforeCreate(h, 4) // f00000..f00002 recorded; f00003 copied, unrecorded
	h.tick(t)
	if !c.happened() {
		t.Fatal("no crash")
	}
	c.heal()
	// f00003's copy ends (small blobs copy at once); a blob is uploaded into the page's range.
	_ = h.env.Blobs.CompleteCopy(copyjob.BlobRef{Container: "dst", Blob: "out/f00003.dat"})
	h.env.Blobs.Put(copyjob.BlobRef{Container: "src", Blob: "in/f00000a.dat"}, 3, nil)
	h.env.Clock.Advance(10 * time.Minute)
	h.tick(t)
	h.tick(t)
	for dst, n := range h.copiesPerDestination() {
		if n > 1 {
			t.Errorf("%d copies started onto %s", n, dst)
		}
	}
	k := h.env.Records.Job(batch.ChildID(b.ID, "in/f00003.dat"))
	t.Logf("child f00003: %+v", k)
}

// Same, overwrite false: the child's own copy succeeded, but the fresh start of the next
// page is refused DestinationExists: the child is recorded startFailed and the batch
// fails although every blob was copied.
func TestReviewPageShiftAfterCrashOverwriteFalseFailsTheChild(t *testing.T) {
	h := newHarness(t, batch.Config{Concurrency: 1, PageSize: 4})
	h.putSource(8)
	b := h.submit(t, batch.SubmitRequest{})
	c := crashBeforeCreate(h, 4)
	h.tick(t)
	c.heal()
	h.env.Blobs.Put(copyjob.BlobRef{Container: "src", Blob: "in/f00000a.dat"}, 3, nil)
	h.env.Clock.Advance(10 * time.Minute)
	got := h.finish(t, b.ID)
	k := h.env.Records.Job(batch.ChildID(b.ID, "in/f00003.dat"))
	if k == nil || k.Status != copyjob.StatusSuccess {
		t.Errorf("child f00003 (its own copy succeeded): %+v", k)
	}
	if got.Status != batch.StatusSuccess {
		t.Errorf("batch %s: %s, failures %+v", got.Status, got.Summary(), got.Failures)
	}
}

// A source blob deleted after the crashed runner started its copy: the recovered page no
// longer lists it, so the copy it left runs (and lands) with no record ever naming it,
// and the batch reports success without it.
func TestReviewSourceDeletedAfterCrashLeavesAnUnrecordedCopy(t *testing.T) {
	h := newHarness(t, batch.Config{Concurrency: 1, PageSize: 4})
	h.putSource(8)
	b := h.submit(t, batch.SubmitRequest{Options: copyjob.Options{Overwrite: true}})
	c := crashBeforeCreate(h, 4)
	h.tick(t)
	c.heal()
	h.env.Blobs.Delete(copyjob.BlobRef{Container: "src", Blob: "in/f00003.dat"})
	h.env.Clock.Advance(10 * time.Minute)
	got := h.finish(t, b.ID)
	recorded := map[string]bool{}
	for _, k := range h.children(b.ID) {
		recorded[k.Destination.Blob] = true
	}
	for dst := range h.copiesPerDestination() {
		if !recorded[dst] {
			t.Errorf("the copy onto %s runs and no child records it (batch %s: %s)", dst, got.Status, got.Summary())
		}
	}
}

// No crash: one transient failure of a child's record creation (ErrCopyUnrecorded), the
// page is retried at the next tick, and a blob uploaded in between shifts the page.
func TestReviewPageShiftAfterTransientCreateFailure(t *testing.T) {
	h := newHarness(t, batch.Config{Concurrency: 1, PageSize: 4})
	h.putSource(8)
	h.submit(t, batch.SubmitRequest{Options: copyjob.Options{Overwrite: true}})
	for range 3 {
		h.env.Records.OnNext(copyjobtest.OpCreate, func() {})
	}
	h.env.Records.OnNext(copyjobtest.OpCreate, func() {
		h.env.Records.FailNext(copyjobtest.OpCreate, fmt.Errorf("503: %w", copyjob.ErrUnavailable)) // the 4th creation
	})
	h.tick(t)
	h.env.Blobs.Put(copyjob.BlobRef{Container: "src", Blob: "in/f00000a.dat"}, 3, nil)
	for _, k := range []string{"out/f00000.dat", "out/f00001.dat", "out/f00002.dat", "out/f00003.dat"} {
		_ = h.env.Blobs.CompleteCopy(copyjob.BlobRef{Container: "dst", Blob: k})
	}
	h.tick(t)
	h.tick(t)
	for dst, n := range h.copiesPerDestination() {
		if n > 1 {
			t.Errorf("%d copies started onto %s", n, dst)
		}
	}
}

// A source listing refused for good (403/404) while a page begun by a crashed runner is
// to be recovered: the batch is refused (failed, terminal) with the page still begun and
// never recovered: the crashed runner's copy runs with no record naming it.
func TestReviewRefusalWhileRecoveringLeavesAnUnrecordedCopy(t *testing.T) {
	h := newHarness(t, batch.Config{Concurrency: 1, PageSize: 4})
	h.putSource(8)
	b := h.submit(t, batch.SubmitRequest{Options: copyjob.Options{Overwrite: true}})
	c := crashBeforeCreate(h, 4)
	h.tick(t)
	c.heal()
	h.env.Blobs.FailNext(copyjobtest.OpListBlobs, fmt.Errorf("403: %w", copyjob.ErrForbidden))
	h.env.Clock.Advance(10 * time.Minute)
	h.tick(t)
	got := h.store.Batch(b.ID)
	recorded := map[string]bool{}
	for _, k := range h.children(b.ID) {
		recorded[k.Destination.Blob] = true
	}
	for dst := range h.copiesPerDestination() {
		if !recorded[dst] {
			t.Errorf("the copy onto %s runs and no child records it (batch %s, pageBegun %+v)", dst, got.Status, got.PageBegun)
		}
	}
}
