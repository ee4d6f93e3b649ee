package copyjob_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/copyjob/copyjobtest"
	"github.com/blobcopy/blobcopy/internal/funchost"
	"github.com/blobcopy/blobcopy/internal/testenv/syncbuf"
)

// Work left behind an answer under HoldBehindAnswer waits for release, Wait waits for
// it, and one answer's deletions (an Event Grid delivery can leave one per event) run
// a few at a time, not all at the same instant.
func TestHeldDeletionsRunAfterReleaseAFewAtATime(t *testing.T) {
	h := newHarness(t)
	h.Blobs.SetStartStatus(copyjob.StatusSuccess)
	const starts = 30
	var running, most atomic.Int64
	for range starts {
		h.Queue.OnNext(copyjobtest.OpDelete, func() {
			n := running.Add(1)
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			time.Sleep(2 * time.Millisecond)
			running.Add(-1)
		})
	}
	ctx, release := copyjob.HoldBehindAnswer(h.ctx)
	for i := range starts {
		dst := copyjob.BlobRef{Container: "dst", Blob: "held-" + string(rune('a'+i))}
		if _, _, err := h.svc.Start(ctx, copyjob.StartRequest{Source: srcURL, Destination: dst}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(10 * time.Millisecond)
	if n := h.Queue.Calls(copyjobtest.OpDelete); n != 0 {
		t.Fatalf("%d deletions ran before the answer was released", n)
	}
	waited := make(chan struct{})
	var once sync.Once
	go func() { h.svc.Wait(); once.Do(func() { close(waited) }) }()
	select {
	case <-waited:
		t.Fatal("Wait returned while deletions were held")
	case <-time.After(10 * time.Millisecond):
	}
	release()
	<-waited
	if n := h.Queue.Calls(copyjobtest.OpDelete); n != starts {
		t.Fatalf("%d deletions after release, want %d", n, starts)
	}
	h.wantMessages(0)
	if m := most.Load(); m > 8 || m < 2 {
		t.Errorf("at most %d deletions ran at once, want 2 to 8", m)
	}
	// Work left after the release runs at once.
	if _, _, err := h.svc.Start(ctx, copyjob.StartRequest{Source: srcURL, Destination: copyjob.BlobRef{Container: "dst", Blob: "late"}}); err != nil {
		t.Fatal(err)
	}
	h.svc.Wait()
	if n := h.Queue.Calls(copyjobtest.OpDelete); n != starts+1 {
		t.Fatalf("%d deletions, want %d: work left after the release did not run", n, starts+1)
	}
}

// An answer that takes long (an Event Grid delivery of many events) does not keep its
// first deletions waiting: held work runs after at most a second, released or not,
// well before the tick could find the messages (COPY_FIRST_POLL).
func TestHeldDeletionRunsAfterASecondWithoutItsAnswer(t *testing.T) {
	h := newHarness(t)
	h.Blobs.SetStartStatus(copyjob.StatusSuccess)
	ctx, release := copyjob.HoldBehindAnswer(h.ctx)
	defer release()
	if _, _, err := h.svc.Start(ctx, copyjob.StartRequest{Source: srcURL, Destination: dstRef}); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	h.svc.Wait() // returns once the held deletion has run
	if n := h.Queue.Calls(copyjobtest.OpDelete); n != 1 {
		t.Fatalf("%d deletions, want 1", n)
	}
	if waited := time.Since(began); waited < 500*time.Millisecond || waited > 10*time.Second {
		t.Errorf("the held deletion ran after %s, want about a second", waited)
	}
	h.wantMessages(0)
}

// A request's line reporting its recorded transition ("copy outcome recorded", "copy
// pending") is written behind its answer, not on its critical path (issue 13: it was a
// sixth of all the app added to the bare storage calls), and is never lost: Wait,
// which a shutdown calls, waits for it. Without an answer (a tick, a batch) it is
// written at once.
func TestRequestReportLinesAreWrittenBehindTheAnswer(t *testing.T) {
	for _, tt := range []struct {
		name   string
		status copyjob.Status
		line   string
	}{
		{"ends at once", copyjob.StatusSuccess, "copy outcome recorded"},
		{"stays pending", copyjob.StatusPending, "copy pending"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			env := copyjobtest.NewEnv()
			env.Blobs.Put(srcRef, srcSize, nil)
			env.Blobs.SetStartStatus(tt.status)
			var logs syncbuf.Buffer
			svc := copyjob.NewService(env.Blobs, env.Records, env.Queue, env.Notifier, testConfig(),
				slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo})))
			count := func() int { return strings.Count(logs.String(), `"msg":"`+tt.line+`"`) }

			ctx, release := copyjob.HoldBehindAnswer(context.Background())
			if _, _, err := svc.Start(ctx, copyjob.StartRequest{Source: srcURL, Destination: dstRef}); err != nil {
				t.Fatal(err)
			}
			if n := count(); n != 0 {
				t.Fatalf("%q written %d times before the answer was released", tt.line, n)
			}
			release()
			svc.Wait()
			if n := count(); n != 1 {
				t.Fatalf("%q written %d times once the answer left, want 1:\n%s", tt.line, n, logs.String())
			}

			other := copyjob.BlobRef{Container: "dst", Blob: "no-answer"}
			if _, _, err := svc.Start(context.Background(), copyjob.StartRequest{Source: srcURL, Destination: other}); err != nil {
				t.Fatal(err)
			}
			if n := count(); n != 2 {
				t.Fatalf("%q written %d times, want 2: a call without an answer writes it at once", tt.line, n)
			}
		})
	}
}

// Review R9: an Event Grid delivery whose rule has a callback holds, per event, its
// outcome line and its callback behind one answer. The lines were queued with the
// callbacks for the 8 workers, so behind 8 receivers that were down (up to the
// notifier's 10 s each) the later events' lines waited past the 5 s a graceful exit
// gives that work, and were lost. The release now writes every held line itself,
// before any held work starts.
func TestReportLinesDoNotWaitBehindSlowCallbacks(t *testing.T) {
	const events = 12
	env := copyjobtest.NewEnv()
	env.Blobs.Put(srcRef, srcSize, nil)
	env.Blobs.SetStartStatus(copyjob.StatusSuccess)
	receiverDown := make(chan struct{})
	for range events {
		env.Notifier.OnNext(copyjobtest.OpNotify, func() { <-receiverDown })
	}
	var logs syncbuf.Buffer
	svc := copyjob.NewService(env.Blobs, env.Records, env.Queue, env.Notifier, testConfig(),
		slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo})))
	ctx, release := copyjob.HoldBehindAnswer(context.Background())
	for i := range events {
		dst := copyjob.BlobRef{Container: "dst", Blob: fmt.Sprintf("event-%d", i)}
		if _, _, err := svc.Start(ctx, copyjob.StartRequest{Source: srcURL, Destination: dst, CallbackURL: hook}); err != nil {
			t.Fatal(err)
		}
	}
	release()
	got := strings.Count(logs.String(), `"msg":"copy outcome recorded"`)
	close(receiverDown)
	svc.Wait()
	if got != events {
		t.Fatalf("%d of %d outcome lines written when the release returned; the rest waited behind the callbacks", got, events)
	}
}

// Review R9: a held line keeps the request's invocation id, and a start, its abort and
// the abort's outcome each write theirs once.
func TestHeldReportLinesKeepTheInvocationID(t *testing.T) {
	env := copyjobtest.NewEnv()
	env.Blobs.Put(srcRef, srcSize, nil)
	env.Blobs.SetStartStatus(copyjob.StatusPending)
	var logs syncbuf.Buffer
	svc := copyjob.NewService(env.Blobs, env.Records, env.Queue, env.Notifier, testConfig(),
		slog.New(funchost.NewContextHandler(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))))
	ctx, release := copyjob.HoldBehindAnswer(funchost.WithInvocationID(context.Background(), "inv-123"))
	job, _, err := svc.Start(ctx, copyjob.StartRequest{Source: srcURL, Destination: dstRef})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Abort(ctx, job.ID, copyjob.AbortOptions{}); err != nil {
		t.Fatal(err)
	}
	release()
	svc.Wait()
	n := 0
	for _, l := range strings.Split(logs.String(), "\n") {
		for _, m := range []string{"copy pending", "copy aborted", "copy outcome recorded"} {
			if strings.Contains(l, `"msg":"`+m+`"`) {
				n++
				if !strings.Contains(l, `"invocationId":"inv-123"`) {
					t.Errorf("no invocation id: %s", l)
				}
			}
		}
	}
	if n != 3 {
		t.Errorf("%d report lines, want 3:\n%s", n, logs.String())
	}
}
