package copyjobtest_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/copyjob/copyjobtest"
)

var ctx = context.Background()

func TestRecordsETags(t *testing.T) {
	r := copyjobtest.NewRecords()
	j := &copyjob.Job{ID: "a", Status: copyjob.StatusPending}
	if err := r.Create(ctx, j); err != nil || j.ETag == "" {
		t.Fatalf("create: %v etag %q", err, j.ETag)
	}
	if err := r.Create(ctx, &copyjob.Job{ID: "a"}); !errors.Is(err, copyjob.ErrExists) {
		t.Fatalf("second create: %v", err)
	}
	stale, _ := r.Get(ctx, "a")
	j.Progress.BytesCopied = 1
	if err := r.Update(ctx, j); err != nil {
		t.Fatal(err)
	}
	if err := r.Update(ctx, stale); !errors.Is(err, copyjob.ErrConflict) {
		t.Fatalf("stale update: %v", err)
	}
	r.Modify("a", func(j *copyjob.Job) { j.Status = copyjob.StatusSuccess })
	if err := r.Update(ctx, j); !errors.Is(err, copyjob.ErrConflict) {
		t.Fatalf("update after Modify: %v", err)
	}
	if _, err := r.Get(ctx, "b"); !errors.Is(err, copyjob.ErrNotFound) {
		t.Fatalf("get missing: %v", err)
	}
	r.FailNext(copyjobtest.OpGet, copyjobtest.ErrCrash)
	if _, err := r.Get(ctx, "a"); !errors.Is(err, copyjobtest.ErrCrash) {
		t.Fatalf("injected: %v", err)
	}
	if got, _ := r.Get(ctx, "a"); got.Status != copyjob.StatusSuccess || r.Calls(copyjobtest.OpGet) != 4 {
		t.Fatalf("got %+v, %d calls", got, r.Calls(copyjobtest.OpGet))
	}
}

func TestQueueVisibility(t *testing.T) {
	c := copyjobtest.NewClock(time.Time{})
	q := copyjobtest.NewQueue()
	q.SetClock(c.Now)
	m, _ := q.Enqueue(ctx, "x", 10*time.Second)
	if got, _ := q.Dequeue(ctx, 32, time.Minute); len(got) != 0 {
		t.Fatal("visible too early")
	}
	c.Advance(10 * time.Second)
	got, _ := q.Dequeue(ctx, 32, time.Minute)
	if len(got) != 1 || got[0].DequeueCount != 1 || got[0].ID != m.ID {
		t.Fatalf("dequeued %+v", got)
	}
	if err := q.Delete(ctx, m); !errors.Is(err, copyjob.ErrConflict) {
		t.Fatalf("delete with an old pop receipt: %v", err)
	}
	c.Advance(time.Minute)
	again, _ := q.Dequeue(ctx, 32, time.Minute)
	if len(again) != 1 || again[0].DequeueCount != 2 {
		t.Fatalf("redelivered %+v", again)
	}
	upd, err := q.Update(ctx, again[0], "y", time.Hour)
	if err != nil || upd.PopReceipt == again[0].PopReceipt {
		t.Fatalf("update: %+v %v", upd, err)
	}
	if ms := q.Messages(); len(ms) != 1 || ms[0].Text != "y" || !ms[0].VisibleAt.Equal(c.Now().Add(time.Hour)) {
		t.Fatalf("messages %+v", ms)
	}
	if err := q.Delete(ctx, upd); err != nil || q.Len() != 0 {
		t.Fatalf("delete: %v", err)
	}
	_ = q.Poison(ctx, "z", "why")
	if p := q.Poisoned(); len(p) != 1 || p[0].Reason != "why" {
		t.Fatalf("poisoned %+v", p)
	}
	if _, err := q.Dequeue(ctx, 33, time.Minute); err == nil {
		t.Fatal("dequeue of 33 accepted")
	}
}

func TestBlobsCopyAndLeases(t *testing.T) {
	env := copyjobtest.NewEnv()
	b := env.Blobs
	src := copyjob.BlobRef{Container: "c", Blob: "s"}
	dst := copyjob.BlobRef{Container: "c", Blob: "d"}
	b.Put(src, 100, nil)
	srcURL, _ := b.URL(src)

	if err := b.AcquireLease(ctx, src, "L1"); err != nil {
		t.Fatal(err)
	}
	if err := b.AcquireLease(ctx, src, "L1"); err != nil {
		t.Fatalf("re-acquire with the same id: %v", err)
	}
	if err := b.AcquireLease(ctx, src, "L2"); !errors.Is(err, copyjob.ErrLeaseConflict) {
		t.Fatalf("acquire with another id: %v", err)
	}
	if err := b.ReleaseLease(ctx, src, "L2"); !errors.Is(err, copyjob.ErrLeaseConflict) {
		t.Fatalf("release with another id: %v", err)
	}
	if err := b.ReleaseLease(ctx, src, "L1"); err != nil {
		t.Fatal(err)
	}
	if err := b.ReleaseLease(ctx, src, "L1"); !errors.Is(err, copyjob.ErrLeaseNotHeld) {
		t.Fatalf("second release: %v", err)
	}

	st, err := b.StartCopy(ctx, dst, srcURL, copyjob.StartCopyOptions{IfNotExists: true})
	if err != nil || st.Status != copyjob.StatusPending || st.CopyID == "" || st.SourceURL != srcURL {
		t.Fatalf("start: %+v %v", st, err)
	}
	if _, err := b.StartCopy(ctx, dst, srcURL, copyjob.StartCopyOptions{}); !errors.Is(err, copyjob.ErrPendingCopy) {
		t.Fatalf("second start: %v", err)
	}
	_ = b.SetCopyProgress(dst, 40, 100)
	if cs, _ := b.CopyState(ctx, dst); cs.Progress.BytesCopied != 40 {
		t.Fatalf("progress %+v", cs.Progress)
	}
	if err := b.AbortCopy(ctx, dst, "other"); !errors.Is(err, copyjob.ErrCopyIDMismatch) {
		t.Fatalf("abort with another id: %v", err)
	}
	_ = b.CompleteCopy(dst)
	if err := b.AbortCopy(ctx, dst, st.CopyID); !errors.Is(err, copyjob.ErrNoPendingCopy) {
		t.Fatalf("abort after completion: %v", err)
	}
	if _, err := b.StartCopy(ctx, dst, srcURL, copyjob.StartCopyOptions{IfNotExists: true}); !errors.Is(err, copyjob.ErrExists) {
		t.Fatalf("If-None-Match: %v", err)
	}
	other := copyjob.BlobRef{Account: "other", Container: "c", Blob: "o"}
	if _, err := b.StartCopy(ctx, other, srcURL, copyjob.StartCopyOptions{}); !errors.Is(err, copyjob.ErrSourceUnreadable) {
		t.Fatalf("cross-account without SAS: %v", err)
	}
	p, _ := b.PrepareSource(ctx, srcURL, other, time.Hour)
	if p.Source.Kind != copyjob.SourceOtherAccount || p.Source.URL != srcURL || p.ReadURL == srcURL {
		t.Fatalf("prepared %+v", p)
	}
	if _, err := b.StartCopy(ctx, other, p.ReadURL, copyjob.StartCopyOptions{}); err != nil {
		t.Fatalf("cross-account with SAS: %v", err)
	}
	env.Clock.Advance(2 * time.Hour)
	_ = b.CompleteCopy(other)
	if _, err := b.StartCopy(ctx, other, p.ReadURL, copyjob.StartCopyOptions{}); !errors.Is(err, copyjob.ErrSourceUnreadable) {
		t.Fatalf("expired SAS: %v", err)
	}
}

func TestFakesConcurrentUse(t *testing.T) {
	env := copyjobtest.NewEnv()
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			ref := copyjob.BlobRef{Container: "c", Blob: string(rune('a' + i))}
			env.Blobs.Put(ref, 1, nil)
			_ = env.Blobs.AcquireLease(ctx, ref, "x")
			_ = env.Records.Create(ctx, &copyjob.Job{ID: ref.Blob})
			_, _ = env.Queue.Enqueue(ctx, ref.Blob, 0)
			_, _ = env.Queue.Dequeue(ctx, 2, time.Second)
			env.Clock.Advance(time.Millisecond)
		})
	}
	wg.Wait()
	if len(env.Blobs.HeldLeases()) != 20 || len(env.Records.Jobs()) != 20 || env.Queue.Len() != 20 {
		t.Fatal("lost writes")
	}
}
