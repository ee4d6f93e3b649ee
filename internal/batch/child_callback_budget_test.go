package batch_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/blobcopy/blobcopy/internal/batch"
	"github.com/blobcopy/blobcopy/internal/batch/batchtest"
	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/copyjob/copyjobtest"
)

// hungReceiver never answers: each callback lasts until its context ends (in production
// the notifier's 10 s timeout).
type hungReceiver struct{}

func (hungReceiver) Notify(ctx context.Context, _ string, _ *copyjob.Job) error {
	<-ctx.Done()
	return ctx.Err()
}

// TestBatchTickKeepsItsBudgetWithChildCallbacks (review R6): since R5 a
// leaseSource child's start (Start, ActorStart) sends the callback of a copy that ended
// at once inline when the context has no answer hold: the batch tick's. Those effects
// run under bookkeeping(ctx), detached from the tick's deadline, one notifier timeout
// each, Concurrency at a time: with a hung child receiver a page of N children holds the
// tick for N/Concurrency notifier timeouts (5,000 children, 16 at once, 10 s each: 52
// minutes against a 4-minute TickBudget and a 6-minute batch claim), and the copy
// tick, which runs after the batch tick in the same invocation, polls nothing meanwhile.
// Before R5 those callbacks ran behind, and the tick kept its budget.
func TestBatchTickKeepsItsBudgetWithChildCallbacks(t *testing.T) {
	env := copyjobtest.NewEnv()
	env.Blobs.SetStartStatus(copyjob.StatusSuccess) // small blobs: each copy ends at once
	// EffectsGrace 2 s: one callback attempt lasts at most its margin, 1 s (10 s in production).
	copies := copyjob.NewService(env.Blobs, env.Records, env.Queue, hungReceiver{}, copyjob.Config{Now: env.Clock.Now, EffectsGrace: 2 * time.Second},
		slog.New(slog.DiscardHandler))
	store := batchtest.NewStore(env.Records)
	storage := batchtest.NewStorage(env.Blobs)
	const budget = time.Second
	svc := batch.NewService(batch.Deps{Copies: copies, Records: env.Records, Blobs: env.Blobs, Store: store, Storage: storage,
		Notifier: env.Notifier}, batch.Config{Now: env.Clock.Now, Concurrency: 4, TickBudget: budget}, slog.New(slog.DiscardHandler))
	h := &harness{env: env, copies: copies, store: store, storage: storage, svc: svc}
	h.putSource(24)
	h.submit(t, batch.SubmitRequest{Options: copyjob.Options{LeaseSource: true}, ChildCallbackURL: "https://hooks.example/child"})
	began := time.Now()
	for range 2 { // counting, then starting
		if _, err := svc.Tick(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	took := time.Since(began)
	copies.Wait()
	if took > 3*budget {
		t.Fatalf("two batch ticks with a %v TickBudget took %v: %d child starts each held the tick for one inline callback attempt to a hung receiver (%d at once)",
			budget, took.Round(100*time.Millisecond), 24, 4)
	}
}
