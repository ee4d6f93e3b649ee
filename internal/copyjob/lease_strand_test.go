package copyjob_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/copyjob/copyjobtest"
)

// lostAcquireBlobs acquires the lease at its first Acquire Lease but loses the answer
// (a timeout: ErrUnavailable), and answers the next one 403 once (a transient
// AuthenticationFailed / AuthorizationPermissionMismatch, e.g. a role assignment being
// re-propagated), as storage would.
type lostAcquireBlobs struct {
	*copyjobtest.Blobs
	calls atomic.Int32
}

func (b *lostAcquireBlobs) AcquireLease(ctx context.Context, ref copyjob.BlobRef, leaseID string) error {
	switch b.calls.Add(1) {
	case 1:
		if err := b.Blobs.AcquireLease(ctx, ref, leaseID); err != nil {
			return err
		}
		return fmt.Errorf("%w: context deadline exceeded (answer lost)", copyjob.ErrUnavailable)
	case 2:
		return fmt.Errorf("%w: storage answered 403 AuthenticationFailed", copyjob.ErrForbidden)
	}
	return b.Blobs.AcquireLease(ctx, ref, leaseID)
}

// TestLeaseHeldFromALostAnswerIsNotStranded (review R5): refusedForCertain at acquire (new)
// records the lease notAcquired on any classified refusal, including a 403. But an
// earlier attempt of the same job may hold that very lease (its acquire landed, its
// answer was lost, the lease stayed "acquiring" and the start was postponed): the next
// attempt's 403 says nothing about that lease. Recorded notAcquired, it is never
// released: an infinite lease on the source, held by nobody. Before, only LeaseConflict
// and NotFound (which do prove the lease is not ours) set notAcquired.
func TestLeaseHeldFromALostAnswerIsNotStranded(t *testing.T) {
	env := copyjobtest.NewEnv()
	env.Blobs.Put(srcRef, srcSize, nil)
	blobs := &lostAcquireBlobs{Blobs: env.Blobs}
	cfg := testConfig()
	cfg.Now = env.Clock.Now
	svc := copyjob.NewService(blobs, env.Records, env.Queue, nil, cfg, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	job, _, err := svc.Start(ctx, keyed(leasedReq()))
	if job == nil {
		t.Fatalf("start: %v", err)
	}
	for range 30 {
		env.Clock.Advance(time.Minute)
		if _, err := svc.Tick(ctx); err != nil {
			t.Fatal(err)
		}
	}
	svc.Wait()
	rec := env.Records.Job(job.ID)
	if held := env.Blobs.LeaseHolder(srcRef); held != "" {
		t.Fatalf("30 minutes later the source is still leased by %s (job %s, recorded lease %+v, %d tracking messages): nothing will ever release it",
			held, rec.Status, *rec.Lease, len(env.Queue.Messages()))
	}
}
