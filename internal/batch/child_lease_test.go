package batch_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/blobcopy/blobcopy/internal/batch"
	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/copyjob/copyjobtest"
)

// TestChildLeaseReleaseRefusedForGoodEndsTheBatch (review R5): commit c6834e0 made a lease
// release storage refuses for good (403) count towards poisoning, so a single copy's
// message stops after COPY_MAX_FAILURES and names the lease. A batch child's leftovers
// go through FinishChild instead, whose error (the refusal) only keeps the batch
// unfinished: the batch stays "running" for ever, every tick re-reading every child's
// record and calling Release Lease again, and its callback is never sent. Now the
// children's releases back off, followed by messages of their own, and the batch ends.
func TestChildLeaseReleaseRefusedForGoodEndsTheBatch(t *testing.T) {
	h := newHarness(t, batch.Config{})
	h.putSource(3)
	b := h.submit(t, batch.SubmitRequest{Options: copyjob.Options{LeaseSource: true}, CallbackURL: "https://hooks.example/batch"})
	h.tick(t)
	forbidden := fmt.Errorf("%w: storage answered 403 AuthorizationPermissionMismatch", copyjob.ErrForbidden)
	h.env.Blobs.FailAlways(copyjobtest.OpReleaseLease, forbidden)
	h.completeChildren(t, b.ID)
	for range 24 * 60 { // a day of ticks every minute
		h.env.Clock.Advance(time.Minute)
		h.tick(t)
	}
	h.copies.Wait()
	if got := h.store.Batch(b.ID); !got.Status.Terminal() {
		t.Fatalf("a day after its children ended, with their lease releases refused for good, the batch is still %q: %d Release Lease calls, no end, no callback, nothing poisoned",
			got.Status, h.env.Blobs.Calls(copyjobtest.OpReleaseLease))
	}
}
