// Package copyjobtest provides in-memory fakes of the copy domain's ports (copyjob.Blobs,
// copyjob.Records, copyjob.Queue, copyjob.Notifier) and a settable clock, for unit tests
// of the copy domain and of anything built on a copyjob.Service (the HTTP API, the timer).
//
// Every fake is safe for concurrent use and embeds Faults, so any operation can be made
// to fail (FailNext, FailAlways), to happen with its answer lost (LoseNextAnswer),
// counted (Calls) or interleaved with something else (OnNext). Operation names are the
// interface method names (OpStartCopy, OpUpdate, ...).
//
// The fakes pass the same contract suite as the azstorage adapters on Azurite and on the
// copy simulator (package contract), so their errors are the ones storage gives.
//
// The fakes follow the storage semantics the domain relies on:
//
//   - Blobs: one pending copy per destination (ErrPendingCopy), If-None-Match: * refuses
//     an existing destination (ErrExists), copies stay pending until the test moves them
//     (SetCopyProgress, CompleteCopy, FailCopy, FinishCopy), infinite leases keyed by the
//     proposed id (acquiring again with the same id succeeds), snapshots, and a log of
//     every Copy Blob call (StartCopyCalls).
//   - Records: JSON documents with an ETag that changes on every write; Update with a
//     stale ETag returns copyjob.ErrConflict.
//   - Queue: visibility timeouts on an injectable clock, pop receipts, dequeue counts and
//     a poison list.
//
// NewEnv wires all of them to one Clock and builds a Service with a quiet logger.
package copyjobtest

import (
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/blobcopy/blobcopy/internal/copyjob"
)

// Operation names, as used with Faults. They are the interface method names.
const (
	OpPrepareSource  = "PrepareSource"
	OpURL            = "URL"
	OpStartCopy      = "StartCopy"
	OpCopyState      = "CopyState"
	OpAbortCopy      = "AbortCopy"
	OpAcquireLease   = "AcquireLease"
	OpReleaseLease   = "ReleaseLease"
	OpSnapshot       = "Snapshot"
	OpDeleteSnapshot = "DeleteSnapshot"

	OpCreate = "Create"
	OpGet    = "Get"
	OpUpdate = "Update"
	OpList   = "List"
	// OpClaimFullSweep is Records.ClaimFullSweep (Untracked counts as OpList).
	OpClaimFullSweep = "ClaimFullSweep"

	OpEnqueue = "Enqueue"
	OpDequeue = "Dequeue"
	// OpUpdateMessage is Queue.Update (named apart from Records.Update).
	OpUpdateMessage = "UpdateMessage"
	OpDelete        = "Delete"
	OpPoison        = "Poison"

	OpNotify = "Notify"
)

// Faults injects errors into a fake's operations and counts calls. The zero value is
// ready to use; every fake embeds one.
type Faults struct {
	mu     sync.Mutex
	next   map[string][]error
	always map[string]error
	hooks  map[string][]func()
	calls  map[string]int
	lost   map[string][]error
}

// FailNext makes the next call of op fail with err. Calls queue up: FailNext twice fails
// the next two calls.
func (f *Faults) FailNext(op string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.next == nil {
		f.next = map[string][]error{}
	}
	f.next[op] = append(f.next[op], err)
}

// LoseNextAnswer makes the next call of op happen and then answer err instead of its
// result: storage carried the operation out but the answer was lost (a client timeout,
// a reset connection, 500 OperationTimedOut). err should wrap copyjob.ErrUnavailable,
// as the adapters' would. Supported by the writes: Blobs StartCopy, AbortCopy,
// AcquireLease, ReleaseLease, Snapshot, DeleteSnapshot; Records Create, Update; Queue
// Enqueue, UpdateMessage, Delete, Poison.
func (f *Faults) LoseNextAnswer(op string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.lost == nil {
		f.lost = map[string][]error{}
	}
	f.lost[op] = append(f.lost[op], err)
}

// loseAnswer replaces *err with a queued lost-answer error of op, if any; deferred by
// the operations LoseNextAnswer supports.
func (f *Faults) loseAnswer(op string, err *error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if errs := f.lost[op]; len(errs) > 0 {
		f.lost[op] = errs[1:]
		*err = errs[0]
	}
}

// FailAlways makes every call of op fail with err until Heal.
func (f *Faults) FailAlways(op string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.always == nil {
		f.always = map[string]error{}
	}
	f.always[op] = err
}

// Heal removes the queued and permanent faults of op, or of every operation when op is "".
func (f *Faults) Heal(op string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if op == "" {
		f.next, f.always, f.lost = nil, nil, nil
		return
	}
	delete(f.next, op)
	delete(f.always, op)
	delete(f.lost, op)
}

// OnNext runs fn once, just before the next call of op does anything (and before any
// fault is applied). fn runs without the fake's locks held, so it may call the fakes,
// e.g. to complete a copy while an abort is on its way.
func (f *Faults) OnNext(op string, fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.hooks == nil {
		f.hooks = map[string][]func(){}
	}
	f.hooks[op] = append(f.hooks[op], fn)
}

// Calls reports how many times op was called, failed calls included.
func (f *Faults) Calls(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

// enter counts a call of op, runs its pending hook and returns the injected error, if any.
func (f *Faults) enter(op string) error {
	f.mu.Lock()
	if f.calls == nil {
		f.calls = map[string]int{}
	}
	f.calls[op]++
	var hook func()
	if hs := f.hooks[op]; len(hs) > 0 {
		hook, f.hooks[op] = hs[0], hs[1:]
	}
	f.mu.Unlock()
	if hook != nil {
		hook()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if errs := f.next[op]; len(errs) > 0 {
		f.next[op] = errs[1:]
		return errs[0]
	}
	return f.always[op]
}

// ErrCrash is a convenient error for simulating a process that died mid-way.
var ErrCrash = fmt.Errorf("copyjobtest: simulated crash")

// Clock is a settable clock, safe for concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// Epoch is where NewClock(time.Time{}) starts.
var Epoch = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// NewClock returns a clock reading t (Epoch when t is zero).
func NewClock(t time.Time) *Clock {
	if t.IsZero() {
		t = Epoch
	}
	return &Clock{t: t}
}

// Now reads the clock.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Set sets the clock.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// Env is a set of fakes sharing one clock.
type Env struct {
	Clock    *Clock
	Blobs    *Blobs
	Records  *Records
	Queue    *Queue
	Notifier *Notifier
}

// NewEnv returns fresh fakes on a Clock at Epoch. Blobs knows the app's own account ""
// (host DefaultHost) and the account "other" (host OtherHost).
func NewEnv() *Env {
	c := NewClock(time.Time{})
	b := NewBlobs()
	b.SetClock(c.Now)
	b.AddAccount("other", OtherHost)
	q := NewQueue()
	q.SetClock(c.Now)
	return &Env{Clock: c, Blobs: b, Records: NewRecords(), Queue: q, Notifier: NewNotifier()}
}

// Service builds a copyjob.Service on the fakes, with cfg.Now defaulting to the Env's
// clock and a logger that discards everything. Pass a nil notifier by clearing
// e.Notifier first.
func (e *Env) Service(cfg copyjob.Config) *copyjob.Service {
	if cfg.Now == nil {
		cfg.Now = e.Clock.Now
	}
	var n copyjob.Notifier
	if e.Notifier != nil {
		n = e.Notifier
	}
	return copyjob.NewService(e.Blobs, e.Records, e.Queue, n, cfg, slog.New(slog.DiscardHandler))
}
