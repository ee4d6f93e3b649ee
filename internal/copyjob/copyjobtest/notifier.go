package copyjobtest

import (
	"context"
	"encoding/json"
	"sync"

	"github.com/blobcopy/blobcopy/internal/copyjob"
)

// Delivery is one successful callback.
type Delivery struct {
	URL string
	Job *copyjob.Job // a copy of the job as sent
}

// Notifier is an in-memory copyjob.Notifier. Calls(OpNotify) counts attempts; make
// them fail with FailNext(OpNotify, err) or FailAlways.
type Notifier struct {
	Faults
	mu         sync.Mutex
	deliveries []Delivery
}

var _ copyjob.Notifier = (*Notifier)(nil)

// NewNotifier returns a notifier that accepts every callback.
func NewNotifier() *Notifier { return &Notifier{} }

// Notify implements copyjob.Notifier.
func (n *Notifier) Notify(_ context.Context, callbackURL string, job *copyjob.Job) error {
	if err := n.enter(OpNotify); err != nil {
		return err
	}
	b, err := json.Marshal(job)
	if err != nil {
		return err
	}
	var sent copyjob.Job
	_ = json.Unmarshal(b, &sent)
	n.mu.Lock()
	defer n.mu.Unlock()
	n.deliveries = append(n.deliveries, Delivery{URL: callbackURL, Job: &sent})
	return nil
}

// Deliveries returns the successful callbacks in order.
func (n *Notifier) Deliveries() []Delivery {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]Delivery(nil), n.deliveries...)
}
