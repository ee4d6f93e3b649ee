package copyjob

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Work a start leaves behind its answer (a finished job's tracking message deletion)
// must not compete with the answer for the CPU: on a small plan the deletion's request
// (signing, the SDK's pipeline, the connection's goroutines) runs on the same cores
// that are still encoding and sending the answer. The layer that sends the answer (the
// HTTP layer) therefore holds that work until the answer has left, then releases it.
// copyjob knows no HTTP: it only sees a context that says "hold what you leave behind".

// maxBehindHold bounds how long work waits for its answer. A start answers within
// milliseconds of leaving it, but an Event Grid delivery answers after its last event
// (up to its 20 s budget): past this, its first events' deletions run without waiting,
// well before their messages become visible to the tick (COPY_FIRST_POLL, 5 s by
// default), which would otherwise visit each one for nothing.
const maxBehindHold = time.Second

// maxBehindWorkers bounds the goroutines that run the work one answer released: an
// Event Grid delivery of many events can leave one deletion per event, which would
// otherwise all open their requests (and connections) at the same instant.
const maxBehindWorkers = 8

// behindHold collects the work of one call until its answer has been sent.
type behindHold struct {
	mu   sync.Mutex
	held []func()
	// reports are the held report lines (reportBehind), written by release itself
	// before it starts the held work: in the workers' queue, behind an Event Grid
	// delivery's callbacks (up to the notifier's timeout each), they waited past the
	// grace a graceful exit gives that work, and were lost (review R9).
	reports  []func()
	released bool
	timer    *time.Timer // releases the held work after maxBehindHold
}

type behindHoldKey struct{}

// HoldBehindAnswer returns a context under which the work a call leaves behind its
// answer waits until release is called (or maxBehindHold has passed), and release. The
// caller calls release once the answer has been sent, and in any case, deferred. Work
// left after release runs at once. Without this context, that work starts as soon as
// it is left.
func HoldBehindAnswer(ctx context.Context) (context.Context, func()) {
	h := &behindHold{}
	return context.WithValue(ctx, behindHoldKey{}, h), h.release
}

// answering reports whether ctx is a call whose answer holds work behind it (an HTTP
// request): work a call without one leaves (a tick's, a batch's) has no answer to wait
// for, and runs where the caller bounds it.
func answering(ctx context.Context) bool {
	_, ok := ctx.Value(behindHoldKey{}).(*behindHold)
	return ok
}

// leave runs work in a goroutine of its own now, or holds it if ctx asks to and its
// answer has not been sent.
func leave(ctx context.Context, work func()) {
	if h, ok := ctx.Value(behindHoldKey{}).(*behindHold); ok && h.hold(&h.held, work) {
		return
	}
	go work()
}

// hold appends work to list (h.held or h.reports) unless the answer has been released,
// and tells whether it did.
func (h *behindHold) hold(list *[]func(), work func()) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.released {
		return false
	}
	*list = append(*list, work)
	if h.timer == nil {
		h.timer = time.AfterFunc(maxBehindHold, h.release)
	}
	return true
}

// reportBehind writes a line that reports a transition already recorded (an outcome,
// a copy pending, an abort). A request's is written behind its answer: the line says
// what the answer says, and writing it (formatting a JSON line, a write to the host's
// pipe) need not delay it. It took about 50 µs of a start's critical path on a busy
// 2-core machine, a sixth of all the app added to the bare storage calls (figure 2 of
// `make bench`). The release writes the held lines itself, in the order they were
// left, before it starts the held work: behind an Event Grid delivery's callbacks in
// the workers' queue, they waited past the grace a graceful exit gives that work, and
// were lost (review R9). The HTTP layer releases before its handler returns, and a
// graceful exit waits for handlers, so it writes them; Wait waits for them too.
// Anywhere else (the tick, a batch) the line is written at once.
func (s *Service) reportBehind(ctx context.Context, report func()) {
	h, ok := ctx.Value(behindHoldKey{}).(*behindHold)
	if !ok {
		report()
		return
	}
	counted := s.counted(report)
	if !h.hold(&h.reports, counted) {
		counted() // the answer has left: now, in the caller's goroutine
	}
}

// counted returns work counted as left behind from now (Wait waits for it, also while
// it is held) until it has run.
func (s *Service) counted(work func()) func() {
	s.background.add(1)
	return func() {
		defer s.background.add(-1)
		work()
	}
}

// release writes the held report lines, then runs the held work in at most
// maxBehindWorkers goroutines.
func (h *behindHold) release() {
	h.mu.Lock()
	held, reports := h.held, h.reports
	h.held, h.reports, h.released = nil, nil, true
	if h.timer != nil {
		h.timer.Stop()
	}
	h.mu.Unlock()
	for _, report := range reports {
		report()
	}
	var next atomic.Int64
	for range min(len(held), maxBehindWorkers) {
		go func() {
			for i := next.Add(1) - 1; i < int64(len(held)); i = next.Add(1) - 1 {
				held[i]()
			}
		}()
	}
}
