package batch_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/blobcopy/blobcopy/internal/batch"
	"github.com/blobcopy/blobcopy/internal/batch/batchtest"
	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/copyjob/copyjobtest"
)

// TestBatchDoesNotWaitForAChildCallbackBackingOff (review R5): the children's receiver
// (childCallbackUrl) is down; the batch's own receiver (callbackUrl) is up. Every child
// copy has succeeded. With the new callback backoff (5 s ... 10 h, 8 attempts) a child's
// callback stays due for about 28 hours, and finishLeftovers keeps the batch unfinished
// until each child's callback is delivered or given up: the batch reads "running" and
// its own callback is held back for a day, while every tick re-reads every child's
// record (finishLeftovers: one Get per child per tick).
func TestBatchDoesNotWaitForAChildCallbackBackingOff(t *testing.T) {
	env := copyjobtest.NewEnv()
	childReceiver := copyjobtest.NewNotifier()
	childReceiver.FailAlways(copyjobtest.OpNotify, errors.New("child receiver answered 503"))
	copies := copyjob.NewService(env.Blobs, env.Records, env.Queue, childReceiver, copyjob.Config{Now: env.Clock.Now}, slog.New(slog.DiscardHandler))
	store := batchtest.NewStore(env.Records)
	storage := batchtest.NewStorage(env.Blobs)
	svc := batch.NewService(batch.Deps{Copies: copies, Records: env.Records, Blobs: env.Blobs, Store: store, Storage: storage,
		Notifier: env.Notifier}, batch.Config{Now: env.Clock.Now}, slog.New(slog.DiscardHandler))
	h := &harness{env: env, copies: copies, store: store, storage: storage, svc: svc}
	h.putSource(3)
	b := h.submit(t, batch.SubmitRequest{CallbackURL: "https://hooks.example/batch", ChildCallbackURL: "https://hooks.example/child"})
	h.tick(t)
	h.completeChildren(t, b.ID)
	getsBefore := env.Records.Calls(copyjobtest.OpGet)
	ticks := 0
	for range 6 * 60 * 2 { // six hours, statusfn every 30 s
		env.Clock.Advance(30 * time.Second)
		if _, err := svc.Tick(context.Background()); err != nil {
			t.Fatal(err)
		}
		ticks++
	}
	copies.Wait()
	got := store.Batch(b.ID)
	if !got.Status.Terminal() {
		t.Fatalf("six hours after every child copy succeeded the batch is still %q (its own receiver is up; only the children's is down): "+
			"%d record reads over %d ticks, %d batch callbacks delivered",
			got.Status, env.Records.Calls(copyjobtest.OpGet)-getsBefore, ticks, len(env.Notifier.Deliveries()))
	}
}

// slowReceiver is a child receiver that answers only when released, and counts the
// callbacks in flight at once.
type slowReceiver struct {
	mu       sync.Mutex
	inFlight int
	peak     int
	release  chan struct{}
}

func (r *slowReceiver) Notify(ctx context.Context, _ string, _ *copyjob.Job) error {
	r.mu.Lock()
	r.inFlight++
	r.peak = max(r.peak, r.inFlight)
	r.mu.Unlock()
	select {
	case <-r.release:
	case <-ctx.Done():
	}
	r.mu.Lock()
	r.inFlight--
	r.mu.Unlock()
	return nil
}

// TestChildCallbacksOfATickAreBoundedByItsConcurrency (review R5): a batch with leaseSource and a
// childCallbackUrl starts each child through Start, whose copy ending at once settles
// with ActorStart: the child's callback is now sent "behind the answer" (effectsBehind),
// but a tick has no answer and no HoldBehindAnswer, so leave() starts one goroutine per
// child at once. The batch's Concurrency (16 by default) no longer bounds the callbacks:
// every child of the page POSTs to the receiver at the same moment, and the work runs on
// after the tick (a timer invocation) has returned.
func TestChildCallbacksOfATickAreBoundedByItsConcurrency(t *testing.T) {
	env := copyjobtest.NewEnv()
	env.Blobs.SetStartStatus(copyjob.StatusSuccess) // small blobs: each copy ends at once
	recv := &slowReceiver{release: make(chan struct{})}
	copies := copyjob.NewService(env.Blobs, env.Records, env.Queue, recv, copyjob.Config{Now: env.Clock.Now}, slog.New(slog.DiscardHandler))
	store := batchtest.NewStore(env.Records)
	storage := batchtest.NewStorage(env.Blobs)
	const concurrency = 4
	svc := batch.NewService(batch.Deps{Copies: copies, Records: env.Records, Blobs: env.Blobs, Store: store, Storage: storage,
		Notifier: env.Notifier}, batch.Config{Now: env.Clock.Now, Concurrency: concurrency}, slog.New(slog.DiscardHandler))
	h := &harness{env: env, copies: copies, store: store, storage: storage, svc: svc}
	h.putSource(40)
	h.submit(t, batch.SubmitRequest{Options: copyjob.Options{LeaseSource: true}, ChildCallbackURL: "https://hooks.example/child"})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 3 {
			if _, err := svc.Tick(context.Background()); err != nil {
				t.Error(err)
			}
		}
	}()
	deadline := time.After(5 * time.Second)
	var peak int
wait:
	for {
		select {
		case <-done:
			break wait
		case <-deadline:
			break wait
		case <-time.After(50 * time.Millisecond):
		}
	}
	time.Sleep(200 * time.Millisecond)
	recv.mu.Lock()
	peak = recv.peak
	recv.mu.Unlock()
	close(recv.release)
	<-done
	copies.Wait()
	if peak > concurrency {
		t.Fatalf("%d child callbacks in flight at once from one batch tick (batch Concurrency %d): the behind-the-answer goroutines are unbounded outside a request", peak, concurrency)
	}
}
