package batch_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/blobcopy/blobcopy/internal/batch"
	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/copyjob/copyjobtest"
)

// TestChildLeaseIsReleasedAfterAShort403Burst (review R6): README says a release storage
// refuses "is attempted again with backoff" before the lease is recorded releaseRefused.
// A batch child's release goes through FinishChild at every batch tick, without any
// backoff, and the settle's own attempt and FinishChild's in the same tick count two:
// with the defaults a 403 lasting 2 minutes records the child's lease releaseRefused and
// ends the batch; nothing asked storage again, and the source kept an infinite lease.
// Now the child's release backs off, followed by a message of its own once the batch
// has ended, which the copy tick follows.
func TestChildLeaseIsReleasedAfterAShort403Burst(t *testing.T) {
	h := newHarness(t, batch.Config{})
	h.putSource(1)
	b := h.submit(t, batch.SubmitRequest{Options: copyjob.Options{LeaseSource: true}})
	h.tick(t)
	h.tick(t)
	forbidden := fmt.Errorf("%w: storage answered 403 AuthorizationPermissionMismatch", copyjob.ErrForbidden)
	h.env.Blobs.FailAlways(copyjobtest.OpReleaseLease, forbidden)
	h.completeChildren(t, b.ID)
	statusfn := func() { // a status tick: batches, then copies (a child whose leftovers back off has its own message)
		h.env.Clock.Advance(30 * time.Second)
		h.tick(t)
		if _, err := h.copies.Tick(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	for range 5 { // 2.5 minutes of 403s, statusfn every 30 s
		statusfn()
	}
	h.env.Blobs.Heal(copyjobtest.OpReleaseLease)
	for range 120 { // one more hour
		statusfn()
	}
	h.copies.Wait()
	if held := h.env.Blobs.HeldLeases(); len(held) != 0 {
		k := h.env.Records.Job(h.children(b.ID)[0].ID)
		t.Fatalf("an hour after a 2.5-minute 403 burst ended, source leases are still held: %v (child lease %+v, %d Release Lease calls, batch %s)",
			held, *k.Lease, h.env.Blobs.Calls(copyjobtest.OpReleaseLease), h.store.Batch(b.ID).Status)
	}
}
