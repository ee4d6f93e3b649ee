package azstorage

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2/queueerror"

	"github.com/blobcopy/blobcopy/internal/copyjob"
)

// Queue implements copyjob.Queue with a storage queue and its "-poison" twin (the
// Functions convention for queue-triggered functions).
type Queue struct {
	main   *azqueue.QueueClient
	poison *azqueue.QueueClient
	now    func() time.Time
}

var _ copyjob.Queue = (*Queue)(nil)

// NewQueue wraps a queue client and its poison queue.
func NewQueue(main, poison *azqueue.QueueClient) *Queue {
	return &Queue{main: main, poison: poison, now: time.Now}
}

// EnsureQueues creates both queues if needed.
func (q *Queue) EnsureQueues(ctx context.Context) error {
	for _, c := range []*azqueue.QueueClient{q.main, q.poison} {
		_, err := c.Create(ctx, nil)
		if err != nil && !queueerror.HasCode(err, queueerror.QueueAlreadyExists) {
			return fmt.Errorf("create queue %s: %w", c.URL(), err)
		}
	}
	return nil
}

func seconds(d time.Duration) *int32 {
	s := int32(d / time.Second)
	if d > 0 && s == 0 {
		s = 1
	}
	return to.Ptr(s)
}

// Enqueue adds a message that never expires (a copy may pend for two weeks; the
// default seven-day TTL would drop its tracking).
func (q *Queue) Enqueue(ctx context.Context, text string, visibleAfter time.Duration) (copyjob.Message, error) {
	resp, err := q.main.EnqueueMessage(ctx, text, &azqueue.EnqueueMessageOptions{
		VisibilityTimeout: seconds(visibleAfter),
		TimeToLive:        to.Ptr(int32(-1)),
	})
	if err != nil {
		return copyjob.Message{}, fmt.Errorf("enqueue: %w", mapQueueErr(err))
	}
	if len(resp.Messages) == 0 || resp.Messages[0] == nil {
		return copyjob.Message{}, fmt.Errorf("enqueue: empty answer")
	}
	m := resp.Messages[0]
	return copyjob.Message{ID: deref(m.MessageID), PopReceipt: deref(m.PopReceipt), Text: text}, nil
}

// Dequeue takes up to max visible messages and hides them for visibility.
func (q *Queue) Dequeue(ctx context.Context, max int, visibility time.Duration) ([]copyjob.Message, error) {
	resp, err := q.main.DequeueMessages(ctx, &azqueue.DequeueMessagesOptions{
		NumberOfMessages:  to.Ptr(int32(max)),
		VisibilityTimeout: seconds(visibility),
	})
	if err != nil {
		return nil, fmt.Errorf("dequeue: %w", mapQueueErr(err))
	}
	out := make([]copyjob.Message, 0, len(resp.Messages))
	for _, m := range resp.Messages {
		if m == nil {
			continue
		}
		out = append(out, copyjob.Message{
			ID: deref(m.MessageID), PopReceipt: deref(m.PopReceipt),
			DequeueCount: deref(m.DequeueCount), Text: deref(m.MessageText),
		})
	}
	return out, nil
}

// Update rewrites a message and hides it for visibleAfter.
func (q *Queue) Update(ctx context.Context, m copyjob.Message, text string, visibleAfter time.Duration) (copyjob.Message, error) {
	resp, err := q.main.UpdateMessage(ctx, m.ID, m.PopReceipt, text, &azqueue.UpdateMessageOptions{VisibilityTimeout: seconds(visibleAfter)})
	if err != nil {
		return m, fmt.Errorf("update message %s: %w", m.ID, mapQueueErr(err))
	}
	m.PopReceipt, m.Text = deref(resp.PopReceipt), text
	return m, nil
}

// Delete removes a message; one already gone is not an error.
func (q *Queue) Delete(ctx context.Context, m copyjob.Message) error {
	_, err := q.main.DeleteMessage(ctx, m.ID, m.PopReceipt, nil)
	if err != nil && queueerror.HasCode(err, queueerror.MessageNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete message %s: %w", m.ID, mapQueueErr(err))
	}
	return nil
}

// PoisonEntry is what the poison queue holds: the original text and why it was moved.
type PoisonEntry struct {
	Message string    `json:"message"`
	Reason  string    `json:"reason"`
	At      time.Time `json:"at"`
}

// Poison writes the message to the poison queue, never expiring, for an operator.
func (q *Queue) Poison(ctx context.Context, text, reason string) error {
	b, err := json.Marshal(PoisonEntry{Message: text, Reason: reason, At: q.now().UTC()})
	if err != nil {
		return err
	}
	if _, err := q.poison.EnqueueMessage(ctx, string(b), &azqueue.EnqueueMessageOptions{TimeToLive: to.Ptr(int32(-1))}); err != nil {
		return fmt.Errorf("poison: %w", mapQueueErr(err))
	}
	return nil
}
