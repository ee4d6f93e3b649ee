package batch_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/blobcopy/blobcopy/internal/batch"
	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/copyjob/copyjobtest"
)

// Found by review. PageBegun records only the page's start marker, and a runner that
// recovers the page lists it again from there; if the source changed meanwhile (a blob
// uploaded into the page's range) or List Blobs answers fewer results (which Azure may
// do with a continuation marker), the page ends earlier than the one the crashed runner
// started, and its last children fall into the next page. Their copies, which may run
// unrecorded, are adopted from the destination before anything starts again: one Copy
// Blob per destination.
func TestRecoveredPageListedElsewhereStartsNoSecondCopy(t *testing.T) {
	h, b, c := crashMidPage(t, copyjob.Options{Overwrite: true}) // f00000..f00002 recorded; f00003 copied, unrecorded
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
	h.wantOneCopyPerDestination(t)
	k := h.env.Records.Job(batch.ChildID(b.ID, "in/f00003.dat"))
	t.Logf("child f00003: %+v", k)
}

// Same, overwrite false: the child's own copy is adopted, not started again and refused
// DestinationExists (the child once ended startFailed, and the batch failed, though
// every blob was copied).
func TestRecoveredPageListedElsewhereKeepsOverwriteFalseChild(t *testing.T) {
	h, b, c := crashMidPage(t, copyjob.Options{})
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

// A source blob deleted after the crashed runner started its copy: no listing of the
// source names it any more, and its copy is still adopted from the destination (it once
// landed with no record naming it, and the batch reported success without it).
func TestRecoveryAdoptsTheCopyOfADeletedSource(t *testing.T) {
	h, b, c := crashMidPage(t, copyjob.Options{Overwrite: true})
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
func TestRecoveryAfterATransientCreateFailureListedElsewhere(t *testing.T) {
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
	h.wantOneCopyPerDestination(t)
}

// A source listing refused for good (403/404) while a page begun by a crashed runner is
// to be recovered: the copies that runner left unrecorded are adopted from the
// destination before the batch is refused (they once ran with no record naming them).
func TestRefusalWhileRecoveringAdoptsFirst(t *testing.T) {
	h, b, c := crashMidPage(t, copyjob.Options{Overwrite: true})
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

// A source listing refused for good after some children started (a container deleted,
// a permission revoked mid-batch): the children already started run on, and a child is
// followed by its batch only. The batch keeps following them to their outcomes (it once
// ended failed at once, leaving them pending for ever), then ends failed with the refusal.
func TestRefusedBatchFollowsItsStartedChildren(t *testing.T) {
	h := newHarness(t, batch.Config{PageSize: 3})
	h.putSource(7)
	b := h.submit(t, batch.SubmitRequest{Options: copyjob.Options{Overwrite: true}})
	// Counting, then the first page starts; the listing of the second is refused.
	armed := false
	h.store.BeforeUpdate = func(x *batch.Batch) error {
		if x.Started > 0 && !armed {
			armed = true
			h.env.Blobs.FailNext(copyjobtest.OpListBlobs, fmt.Errorf("403: %w", copyjob.ErrForbidden))
		}
		return nil
	}
	h.tick(t)
	h.store.BeforeUpdate = nil
	got := h.store.Batch(b.ID)
	if got.Refusal == nil {
		t.Fatalf("batch %s/%s, started %d: want the source listing refused", got.Status, got.Phase, got.Started)
	}
	started := h.children(b.ID)
	if len(started) == 0 {
		t.Fatal("no child started before the refusal: the test did not set the scene")
	}
	if got.Status.Terminal() {
		t.Fatalf("batch %s with %d children started and not finished", got.Status, len(started))
	}
	got = h.finish(t, b.ID)
	for _, k := range h.children(b.ID) {
		if !k.Status.Terminal() {
			t.Errorf("child %s left %s", k.Destination.Blob, k.Status)
		}
	}
	if got.Status != batch.StatusFailed || got.Refusal == nil {
		t.Errorf("batch %s, refusal %+v: want failed with the refusal", got.Status, got.Refusal)
	}
}
