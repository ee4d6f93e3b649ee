package azstorage

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2"
)

// PoisonMessage is one message of the poison queue held (dequeued, hidden) by an
// operator's tool: ID and PopReceipt address it for ReleasePoison and DeletePoison.
type PoisonMessage struct {
	ID         string
	PopReceipt string
	// DequeueCount counts the reads of this entry (each listing dequeues it once), not
	// the visits of the tracking message before it was poisoned.
	DequeueCount int64
	InsertedAt   time.Time
	// Text is the stored text: a PoisonEntry's JSON when the app wrote it.
	Text string
}

// Entry decodes the message as the PoisonEntry the app wrote.
func (m PoisonMessage) Entry() (PoisonEntry, error) {
	var e PoisonEntry
	if err := json.Unmarshal([]byte(m.Text), &e); err != nil {
		return PoisonEntry{}, fmt.Errorf("poison message %s is not a poison entry: %w", m.ID, err)
	}
	return e, nil
}

// maxDequeue is the most messages one Get Messages call returns (Azure's limit).
const maxDequeue = 32

// HoldPoison dequeues every visible entry of the poison queue and hides each for hold,
// so that the caller can show them all and requeue or delete some.
//
// Peek Messages would change nothing, but it returns at most 32 messages, always the
// first ones, and has no continuation: a queue holding more cannot be read through by
// peeking. Dequeuing can: each call hides what it returned, so the next one returns the
// following messages. The price is that entries are invisible to other readers while
// held and their dequeue count grows by one per read; the caller gives them back with
// ReleasePoison as soon as it is done, and a caller that dies leaves them to come back
// by themselves after hold. An entry seen again (the hold ran out while reading a long
// queue) is kept once, with its newest pop receipt; reading stops at the first call
// that brings nothing new. On error the entries already held are released.
func (q *Queue) HoldPoison(ctx context.Context, hold time.Duration) ([]PoisonMessage, error) {
	var held []PoisonMessage
	index := map[string]int{}
	for {
		resp, err := q.poison.DequeueMessages(ctx, &azqueue.DequeueMessagesOptions{
			NumberOfMessages:  to.Ptr(int32(maxDequeue)),
			VisibilityTimeout: seconds(hold),
		})
		if err != nil {
			_ = q.ReleaseAllPoison(ctx, held)
			return nil, fmt.Errorf("read the poison queue: %w", mapQueueErr(err))
		}
		fresh := 0
		for _, m := range resp.Messages {
			if m == nil || m.MessageID == nil {
				continue
			}
			pm := PoisonMessage{
				ID: *m.MessageID, PopReceipt: deref(m.PopReceipt), DequeueCount: deref(m.DequeueCount),
				InsertedAt: deref(m.InsertionTime), Text: deref(m.MessageText),
			}
			if i, seen := index[pm.ID]; seen {
				held[i] = pm // the earlier pop receipt is no longer valid
				continue
			}
			index[pm.ID] = len(held)
			held = append(held, pm)
			fresh++
		}
		if len(resp.Messages) < maxDequeue || fresh == 0 {
			return held, nil
		}
	}
}

// ReleasePoison makes a held entry visible again, unchanged.
func (q *Queue) ReleasePoison(ctx context.Context, m PoisonMessage) error {
	// Update Message rewrites the text with the visibility: the same text keeps it.
	if _, err := q.poison.UpdateMessage(ctx, m.ID, m.PopReceipt, m.Text, &azqueue.UpdateMessageOptions{VisibilityTimeout: to.Ptr(int32(0))}); err != nil {
		return fmt.Errorf("release poison message %s: %w", m.ID, mapQueueErr(err))
	}
	return nil
}

// DeletePoison removes a held entry. copyjob.ErrNotFound: the entry is gone, or another
// reader dequeued it since (its pop receipt changed); copyjob.ErrConflict likewise.
func (q *Queue) DeletePoison(ctx context.Context, m PoisonMessage) error {
	if _, err := q.poison.DeleteMessage(ctx, m.ID, m.PopReceipt, nil); err != nil {
		return fmt.Errorf("delete poison message %s: %w", m.ID, mapQueueErr(err))
	}
	return nil
}

// ReleaseAllPoison gives held entries back, a few at a time. It runs even when ctx was
// cancelled (an interrupted listing must not hide entries for the whole hold); an entry
// it cannot release comes back by itself after its hold. The error names the first
// failure and how many there were.
func (q *Queue) ReleaseAllPoison(ctx context.Context, held []PoisonMessage) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	var (
		mu     sync.Mutex
		first  error
		failed int
		wg     sync.WaitGroup
		slots  = make(chan struct{}, 8)
	)
	for _, m := range held {
		wg.Add(1)
		slots <- struct{}{}
		go func() {
			defer func() { <-slots; wg.Done() }()
			if err := q.ReleasePoison(ctx, m); err != nil {
				mu.Lock()
				failed++
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return fmt.Errorf("%d of %d poison entries not released (they come back after their hold): %w", failed, len(held), first)
	}
	return nil
}
