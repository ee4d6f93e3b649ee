package contract_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/copyjob/copyjobtest"
	"github.com/blobcopy/blobcopy/internal/copyjob/copyjobtest/contract"
)

// The in-memory fakes held to the same contract as the azstorage adapters (run in
// internal/azstorage on Azurite and on the copy simulator).

func TestFakeBlobs(t *testing.T) {
	contract.RunBlobs(t, func(t *testing.T) contract.BlobsHarness { return &fakeBlobs{b: copyjobtest.NewEnv().Blobs} })
}

func TestFakeRecords(t *testing.T) {
	contract.RunRecords(t, func(t *testing.T) copyjob.Records { return fakeRecords{copyjobtest.NewRecords()} })
}

func TestFakeQueue(t *testing.T) {
	contract.RunQueue(t, func(t *testing.T) contract.QueueHarness {
		c := copyjobtest.NewClock(time.Time{})
		q := copyjobtest.NewQueue()
		q.SetClock(c.Now)
		return &fakeQueue{q: q, clock: c}
	})
}

type fakeBlobs struct{ b *copyjobtest.Blobs }

func (f *fakeBlobs) Blobs() copyjob.Blobs { return f.b }
func (f *fakeBlobs) Ref(name string) copyjob.BlobRef {
	return copyjob.BlobRef{Container: "contract", Blob: name}
}
func (f *fakeBlobs) OtherRef(name string) copyjob.BlobRef {
	return copyjob.BlobRef{Account: "other", Container: "contract", Blob: name}
}
func (f *fakeBlobs) Put(_ *testing.T, ref copyjob.BlobRef, data []byte) {
	f.b.Put(ref, int64(len(data)), nil)
}
func (f *fakeBlobs) LeaseAsOther(_ *testing.T, ref copyjob.BlobRef, id string) { f.b.SetLease(ref, id) }
func (f *fakeBlobs) PendingCopies() bool                                       { return true }
func (f *fakeBlobs) CompleteCopy(t *testing.T, ref copyjob.BlobRef) {
	if err := f.b.CompleteCopy(ref); err != nil {
		t.Fatal(err)
	}
}
func (f *fakeBlobs) FailCopy(t *testing.T, ref copyjob.BlobRef, description string) {
	if err := f.b.FailCopy(ref, description); err != nil {
		t.Fatal(err)
	}
}
func (f *fakeBlobs) InjectTransient(_ *testing.T, op string, after bool) bool {
	return inject(f.b, op, after)
}

var errBusy = fmt.Errorf("injected 503 ServerBusy: %w", copyjob.ErrUnavailable)

// injector is the Faults every fake embeds.
type injector interface {
	FailNext(op string, err error)
	LoseNextAnswer(op string, err error)
}

func inject(f injector, op string, after bool) bool {
	if after {
		f.LoseNextAnswer(op, errBusy)
	} else {
		f.FailNext(op, errBusy)
	}
	return true
}

type fakeRecords struct{ *copyjobtest.Records }

func (f fakeRecords) InjectTransient(_ *testing.T, op string, after bool) bool {
	return inject(f.Records, op, after)
}

func (f *fakeQueue) InjectTransient(_ *testing.T, op string, after bool) bool {
	return inject(f.q, op, after)
}

type fakeQueue struct {
	q     *copyjobtest.Queue
	clock *copyjobtest.Clock
}

func (f *fakeQueue) Queue() copyjob.Queue { return f.q }
func (f *fakeQueue) Wait(d time.Duration) { f.clock.Advance(d) }
func (f *fakeQueue) Poisoned(*testing.T) []contract.Poisoned {
	var out []contract.Poisoned
	for _, p := range f.q.Poisoned() {
		out = append(out, contract.Poisoned{Text: p.Text, Reason: p.Reason})
	}
	return out
}
