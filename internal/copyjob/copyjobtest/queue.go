package copyjobtest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/blobcopy/blobcopy/internal/copyjob"
)

// MaxMessageSize is the Storage queue limit on a message's text.
const MaxMessageSize = 64 * 1024

// QueuedMessage is a message as the fake holds it.
type QueuedMessage struct {
	ID           string
	PopReceipt   string
	Text         string
	DequeueCount int64
	InsertedAt   time.Time
	VisibleAt    time.Time
}

// PoisonedMessage is an entry of the poison queue.
type PoisonedMessage struct {
	Text   string
	Reason string
}

// Queue is an in-memory copyjob.Queue with Storage queue semantics: a dequeued message
// is hidden for the visibility timeout and its dequeue count grows; Update and Delete
// need the latest pop receipt: a superseded one is copyjob.ErrConflict (400
// PopReceiptMismatch), a message that is gone is copyjob.ErrNotFound for Update (404
// MessageNotFound) and no error for Delete (the adapter's rule); at most 32 messages per
// Dequeue and 64 KiB per message (copyjob.ErrRefused otherwise). Time comes from the
// clock set with SetClock.
type Queue struct {
	Faults
	mu     sync.Mutex
	now    func() time.Time
	msgs   map[string]*QueuedMessage
	poison []PoisonedMessage
	seq    int
}

var _ copyjob.Queue = (*Queue)(nil)

// NewQueue returns an empty queue on the real clock (see SetClock).
func NewQueue() *Queue { return &Queue{now: time.Now, msgs: map[string]*QueuedMessage{}} }

// SetClock sets the clock that drives visibility.
func (q *Queue) SetClock(now func() time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.now = now
}

func (q *Queue) receiptLocked() string {
	q.seq++
	return fmt.Sprintf("pop-%d", q.seq)
}

// Enqueue implements copyjob.Queue.
func (q *Queue) Enqueue(ctx context.Context, text string, visibleAfter time.Duration) (copyjob.Message, error) {
	v, err := q.carryEnqueue(ctx, text, visibleAfter)
	q.loseAnswer(OpEnqueue, &err)
	return v, err
}

func (q *Queue) carryEnqueue(_ context.Context, text string, visibleAfter time.Duration) (copyjob.Message, error) {
	if err := q.enter(OpEnqueue); err != nil {
		return copyjob.Message{}, err
	}
	if len(text) > MaxMessageSize {
		return copyjob.Message{}, errTooLarge
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.seq++
	now := q.now()
	m := &QueuedMessage{ID: fmt.Sprintf("msg-%d", q.seq), PopReceipt: q.receiptLocked(), Text: text,
		InsertedAt: now, VisibleAt: now.Add(visibleAfter)}
	q.msgs[m.ID] = m
	return copyjob.Message{ID: m.ID, PopReceipt: m.PopReceipt, Text: text}, nil
}

// Dequeue implements copyjob.Queue: visible messages, the longest visible first.
func (q *Queue) Dequeue(_ context.Context, max int, visibility time.Duration) ([]copyjob.Message, error) {
	if err := q.enter(OpDequeue); err != nil {
		return nil, err
	}
	if max < 1 || max > 32 {
		return nil, fmt.Errorf("copyjobtest: dequeue %d messages: must be 1..32: %w", max, copyjob.ErrRefused)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.now()
	var visible []*QueuedMessage
	for _, m := range q.msgs {
		if !m.VisibleAt.After(now) {
			visible = append(visible, m)
		}
	}
	sort.Slice(visible, func(i, j int) bool {
		if !visible[i].VisibleAt.Equal(visible[j].VisibleAt) {
			return visible[i].VisibleAt.Before(visible[j].VisibleAt)
		}
		return visible[i].ID < visible[j].ID
	})
	if len(visible) > max {
		visible = visible[:max]
	}
	out := make([]copyjob.Message, 0, len(visible))
	for _, m := range visible {
		m.DequeueCount++
		m.PopReceipt = q.receiptLocked()
		m.VisibleAt = now.Add(visibility)
		out = append(out, copyjob.Message{ID: m.ID, PopReceipt: m.PopReceipt, DequeueCount: m.DequeueCount, Text: m.Text})
	}
	return out, nil
}

// errTooLarge is storage's 413 for a message over 64 KiB, a permanent refusal.
var errTooLarge = fmt.Errorf("copyjobtest: message over %d bytes: %w", MaxMessageSize, copyjob.ErrRefused)

func (q *Queue) findLocked(m copyjob.Message) (*QueuedMessage, error) {
	held, ok := q.msgs[m.ID]
	if !ok {
		return nil, fmt.Errorf("copyjobtest: message %s: %w", m.ID, copyjob.ErrNotFound)
	}
	if held.PopReceipt != m.PopReceipt {
		return nil, fmt.Errorf("copyjobtest: message %s: pop receipt %s superseded: %w", m.ID, m.PopReceipt, copyjob.ErrConflict)
	}
	return held, nil
}

// Update implements copyjob.Queue.
func (q *Queue) Update(ctx context.Context, m copyjob.Message, text string, visibleAfter time.Duration) (copyjob.Message, error) {
	v, err := q.carryUpdate(ctx, m, text, visibleAfter)
	q.loseAnswer(OpUpdateMessage, &err)
	return v, err
}

func (q *Queue) carryUpdate(_ context.Context, m copyjob.Message, text string, visibleAfter time.Duration) (copyjob.Message, error) {
	if err := q.enter(OpUpdateMessage); err != nil {
		return copyjob.Message{}, err
	}
	if len(text) > MaxMessageSize {
		return copyjob.Message{}, errTooLarge
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	held, err := q.findLocked(m)
	if err != nil {
		return copyjob.Message{}, err
	}
	held.Text = text
	held.PopReceipt = q.receiptLocked()
	held.VisibleAt = q.now().Add(visibleAfter)
	return copyjob.Message{ID: held.ID, PopReceipt: held.PopReceipt, DequeueCount: held.DequeueCount, Text: text}, nil
}

// Delete implements copyjob.Queue.
func (q *Queue) Delete(ctx context.Context, m copyjob.Message) error {
	err := q.carryDelete(ctx, m)
	q.loseAnswer(OpDelete, &err)
	return err
}

func (q *Queue) carryDelete(_ context.Context, m copyjob.Message) error {
	if err := q.enter(OpDelete); err != nil {
		return err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if _, err := q.findLocked(m); err != nil && !errors.Is(err, copyjob.ErrNotFound) {
		return err
	}
	delete(q.msgs, m.ID)
	return nil
}

// Remove drops a message outside the service (a test's stand-in for a message an
// operator deleted, or one poisoned in an earlier process).
func (q *Queue) Remove(id string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.msgs, id)
}

// Poison implements copyjob.Queue.
func (q *Queue) Poison(ctx context.Context, text, reason string) error {
	err := q.carryPoison(ctx, text, reason)
	q.loseAnswer(OpPoison, &err)
	return err
}

func (q *Queue) carryPoison(_ context.Context, text, reason string) error {
	if err := q.enter(OpPoison); err != nil {
		return err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.poison = append(q.poison, PoisonedMessage{Text: text, Reason: reason})
	return nil
}

// Messages returns the queued messages (visible or not), oldest first.
func (q *Queue) Messages() []QueuedMessage {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make([]QueuedMessage, 0, len(q.msgs))
	for _, m := range q.msgs {
		out = append(out, *m)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].InsertedAt.Equal(out[j].InsertedAt) {
			return out[i].InsertedAt.Before(out[j].InsertedAt)
		}
		return len(out[i].ID) < len(out[j].ID) || (len(out[i].ID) == len(out[j].ID) && out[i].ID < out[j].ID)
	})
	return out
}

// Len is the number of queued messages, visible or not.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.msgs)
}

// Poisoned returns the poison queue's entries in order.
func (q *Queue) Poisoned() []PoisonedMessage {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]PoisonedMessage(nil), q.poison...)
}
