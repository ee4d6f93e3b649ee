package contract

import (
	"strings"
	"testing"
	"time"

	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/copyjob/copyjobtest"
)

// QueueHarness is a copyjob.Queue under test with the hooks the suite needs.
type QueueHarness interface {
	Queue() copyjob.Queue
	// Wait lets d pass for the queue's visibility timeouts (a fake clock advances; a
	// real queue sleeps). The suite waits whole seconds: storage counts in seconds.
	Wait(d time.Duration)
	// Poisoned returns the texts and reasons written by Poison, oldest first.
	Poisoned(t *testing.T) []Poisoned
	FaultInjector
}

// Poisoned is one poison queue entry.
type Poisoned struct{ Text, Reason string }

// RunQueue runs the Queue contract; newQueue returns a fresh, empty queue per subtest.
func RunQueue(t *testing.T, newQueue func(t *testing.T) QueueHarness) {
	t.Run("visibility and dequeue count", func(t *testing.T) { queueVisibility(t, newQueue(t)) })
	t.Run("pop receipts", func(t *testing.T) { queueReceipts(t, newQueue(t)) })
	t.Run("poison", func(t *testing.T) { queuePoison(t, newQueue(t)) })
	t.Run("refusals", func(t *testing.T) { queueRefusals(t, newQueue(t)) })
	t.Run("transient faults", func(t *testing.T) { queueTransient(t, newQueue(t)) })
}

// queueTransient: transient failures are ErrUnavailable; a Delete whose answer was lost
// happened, and deleting again succeeds.
func queueTransient(t *testing.T, h QueueHarness) {
	q := h.Queue()
	inject := func(op string, after bool) {
		t.Helper()
		if !h.InjectTransient(t, op, after) {
			t.Skipf("the queue cannot inject faults into %s", op)
		}
	}
	inject(copyjobtest.OpEnqueue, false)
	_, err := q.Enqueue(ctx(t), "x", 0)
	wantErr(t, "Enqueue meeting a 503", err, copyjob.ErrUnavailable)
	if _, err := q.Enqueue(ctx(t), "x", 0); err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	inject(copyjobtest.OpDequeue, false)
	_, err = q.Dequeue(ctx(t), 32, time.Minute)
	wantErr(t, "Dequeue meeting a 503", err, copyjob.ErrUnavailable)
	m, ok := dequeueOne(t, q, time.Minute)
	if !ok {
		t.Fatal("nothing dequeued")
	}
	inject(copyjobtest.OpUpdateMessage, false)
	_, err = q.Update(ctx(t), m, "y", time.Minute)
	wantErr(t, "Update meeting a 503", err, copyjob.ErrUnavailable)
	inject(copyjobtest.OpDelete, true)
	wantErr(t, "Delete with its answer lost", q.Delete(ctx(t), m), copyjob.ErrUnavailable)
	wantOK(t, "the retried Delete", q.Delete(ctx(t), m))
	inject(copyjobtest.OpPoison, false)
	wantErr(t, "Poison meeting a 503", q.Poison(ctx(t), "z", "why"), copyjob.ErrUnavailable)
}

func dequeueOne(t *testing.T, q copyjob.Queue, visibility time.Duration) (copyjob.Message, bool) {
	t.Helper()
	msgs, err := q.Dequeue(ctx(t), 32, visibility)
	if err != nil {
		t.Fatalf("Dequeue: %v", err)
	}
	if len(msgs) > 1 {
		t.Fatalf("Dequeue gave %d messages, want at most 1", len(msgs))
	}
	if len(msgs) == 0 {
		return copyjob.Message{}, false
	}
	return msgs[0], true
}

func queueVisibility(t *testing.T, h QueueHarness) {
	q := h.Queue()
	sent, err := q.Enqueue(ctx(t), `{"jobId":"a"}`, 0)
	if err != nil || sent.ID == "" || sent.PopReceipt == "" {
		t.Fatalf("Enqueue = %+v, %v", sent, err)
	}
	m, ok := dequeueOne(t, q, 2*time.Second)
	if !ok || m.ID != sent.ID || m.Text != `{"jobId":"a"}` || m.DequeueCount != 1 || m.PopReceipt == "" {
		t.Fatalf("first Dequeue = %+v, %v", m, ok)
	}
	if again, ok := dequeueOne(t, q, time.Second); ok {
		t.Fatalf("dequeued %+v while it is hidden", again)
	}
	h.Wait(3 * time.Second)
	m2, ok := dequeueOne(t, q, time.Second)
	if !ok || m2.ID != sent.ID || m2.DequeueCount != 2 || m2.PopReceipt == m.PopReceipt {
		t.Fatalf("Dequeue after the visibility timeout = %+v, %v: want count 2 and a new pop receipt", m2, ok)
	}

	late, err := q.Enqueue(ctx(t), "later", 2*time.Second)
	if err != nil {
		t.Fatalf("Enqueue with a delay: %v", err)
	}
	h.Wait(1100 * time.Millisecond) // the first message is visible again, the late one not yet
	if m, ok := dequeueOne(t, q, 10*time.Second); !ok || m.ID != sent.ID {
		t.Fatalf("got %+v, %v: want only the first message", m, ok)
	}
	h.Wait(2 * time.Second)
	if m, ok := dequeueOne(t, q, 10*time.Second); !ok || m.ID != late.ID {
		t.Fatalf("got %+v, %v: want the delayed message once its delay passed", m, ok)
	}
}

func queueReceipts(t *testing.T, h QueueHarness) {
	q := h.Queue()
	if _, err := q.Enqueue(ctx(t), "v1", 0); err != nil {
		t.Fatal(err)
	}
	m, ok := dequeueOne(t, q, 30*time.Second)
	if !ok {
		t.Fatal("nothing dequeued")
	}
	upd, err := q.Update(ctx(t), m, "v2", time.Second)
	if err != nil || upd.ID != m.ID || upd.Text != "v2" || upd.PopReceipt == "" || upd.PopReceipt == m.PopReceipt {
		t.Fatalf("Update = %+v, %v: want the new text and a new pop receipt", upd, err)
	}
	// A superseded pop receipt of a message that is still there: storage answers 400
	// PopReceiptMismatch, someone else holds the message now.
	_, err = q.Update(ctx(t), m, "v3", time.Second)
	wantErr(t, "Update with a superseded pop receipt", err, copyjob.ErrConflict)
	wantErr(t, "Delete with a superseded pop receipt", q.Delete(ctx(t), m), copyjob.ErrConflict)
	h.Wait(2 * time.Second)
	m2, ok := dequeueOne(t, q, 30*time.Second)
	if !ok || m2.Text != "v2" || m2.DequeueCount != 2 {
		t.Fatalf("after Update: %+v, %v: want v2, dequeued twice (a superseded receipt deletes nothing)", m2, ok)
	}
	wantOK(t, "Delete", q.Delete(ctx(t), m2))
	// The message is gone: deleting it again is what a retried delete does, and is not
	// an error (the adapter's documented behaviour).
	wantOK(t, "Delete of a gone message", q.Delete(ctx(t), m2))
	_, err = q.Update(ctx(t), m2, "v4", 0)
	wantErr(t, "Update of a gone message", err, copyjob.ErrNotFound)
	h.Wait(time.Second)
	if m, ok := dequeueOne(t, q, time.Second); ok {
		t.Fatalf("dequeued %+v after Delete", m)
	}
}

func queuePoison(t *testing.T, h QueueHarness) {
	q := h.Queue()
	wantOK(t, "Poison", q.Poison(ctx(t), `{"jobId":"p"}`, "job record not found"))
	got := h.Poisoned(t)
	if len(got) != 1 || got[0].Text != `{"jobId":"p"}` || got[0].Reason != "job record not found" {
		t.Errorf("poison queue = %+v", got)
	}
	if m, ok := dequeueOne(t, q, time.Second); ok {
		t.Errorf("poisoned text reached the main queue: %+v", m)
	}
}

func queueRefusals(t *testing.T, h QueueHarness) {
	q := h.Queue()
	_, err := q.Enqueue(ctx(t), strings.Repeat("x", 64*1024+1), 0)
	wantErr(t, "Enqueue of 64 KiB + 1", err, copyjob.ErrRefused)
	_, err = q.Dequeue(ctx(t), 33, time.Second)
	wantErr(t, "Dequeue of 33 messages", err, copyjob.ErrRefused)
}
