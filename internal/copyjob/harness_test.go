package copyjob_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/copyjob/copyjobtest"
)

// Blobs every harness starts with.
var (
	srcRef      = copyjob.BlobRef{Container: "src", Blob: "dir/a.bin"}
	srcURL      = "https://" + copyjobtest.DefaultHost + "/src/dir/a.bin"
	otherRef    = copyjob.BlobRef{Account: "other", Container: "in", Blob: "b.bin"}
	otherURL    = "https://" + copyjobtest.OtherHost + "/in/b.bin"
	externalURL = "https://files.example.org/pub/c.iso"
	dstRef      = copyjob.BlobRef{Container: "dst", Blob: "out.bin"}
)

const srcSize = 1 << 20

// errBusy is what the adapters return for 503 ServerBusy past the SDK's retries.
var errBusy = fmt.Errorf("%w: storage answered 503 ServerBusy", copyjob.ErrUnavailable)

// errDenied is what the adapters return for a 403 the app's role does not cover.
var errDenied = fmt.Errorf("%w: storage answered 403 AuthorizationPermissionMismatch", copyjob.ErrForbidden)

type harness struct {
	t *testing.T
	*copyjobtest.Env
	svc *copyjob.Service
	ctx context.Context
}

// testConfig keeps numbers small and explicit so tests can reason about them.
func testConfig() copyjob.Config {
	return copyjob.Config{
		FirstPoll:            5 * time.Second,
		MaxPollInterval:      time.Minute,
		StartGrace:           2 * time.Minute,
		MaxFailures:          3,
		ProcessingVisibility: 30 * time.Second,
		MaxCallbackAttempts:  3,
		BatchSize:            4,
		Concurrency:          4,
	}
}

func newHarness(t *testing.T, tweak ...func(*copyjob.Config, *copyjobtest.Env)) *harness {
	t.Helper()
	env := copyjobtest.NewEnv()
	env.Blobs.Put(srcRef, srcSize, map[string]string{"origin": "src"})
	env.Blobs.Put(otherRef, 2*srcSize, nil)
	env.Blobs.PutExternal(externalURL, 3*srcSize)
	cfg := testConfig()
	for _, f := range tweak {
		f(&cfg, env)
	}
	return &harness{t: t, Env: env, svc: env.Service(cfg), ctx: context.Background()}
}

func (h *harness) start(req copyjob.StartRequest) *copyjob.Job {
	h.t.Helper()
	job, created, err := h.svc.Start(h.ctx, req)
	if err != nil {
		h.t.Fatalf("Start: %v", err)
	}
	if !created {
		h.t.Fatalf("Start: created = false")
	}
	return job
}

// leasedReq copies srcRef to dstRef holding a source lease.
func leasedReq() copyjob.StartRequest {
	return copyjob.StartRequest{Source: srcURL, Destination: dstRef, Options: copyjob.Options{LeaseSource: true}}
}

// keyed gives req a job id, as an idempotency key or an event id does: such a start
// creates its record first (the lock a second delivery stops at); one without starts
// with its tracking message and records once, after Copy Blob.
func keyed(req copyjob.StartRequest) copyjob.StartRequest {
	req.JobID = "keyed-job"
	return req
}

// tick runs one status tick and fails the test on error.
func (h *harness) tick() copyjob.TickReport {
	h.t.Helper()
	r, err := h.svc.Tick(h.ctx)
	if err != nil {
		h.t.Fatalf("Tick: %v", err)
	}
	return r
}

// tickAfter advances the clock by d, then ticks.
func (h *harness) tickAfter(d time.Duration) copyjob.TickReport {
	h.t.Helper()
	h.Clock.Advance(d)
	return h.tick()
}

// record returns the stored job or fails.
func (h *harness) record(id string) *copyjob.Job {
	h.t.Helper()
	j := h.Records.Job(id)
	if j == nil {
		h.t.Fatalf("no record %s", id)
	}
	return j
}

func (h *harness) wantStatus(id string, want copyjob.Status) *copyjob.Job {
	h.t.Helper()
	j := h.record(id)
	if j.Status != want {
		h.t.Fatalf("job %s status = %s (%s), want %s", id, j.Status, j.StatusDescription, want)
	}
	return j
}

func (h *harness) wantNoLeases() {
	h.t.Helper()
	if held := h.Blobs.HeldLeases(); len(held) != 0 {
		h.t.Fatalf("leases still held: %v", held)
	}
}

func (h *harness) wantLeaseReleased(j *copyjob.Job) {
	h.t.Helper()
	if j.Lease == nil {
		h.t.Fatalf("job %s has no lease record", j.ID)
	}
	if j.Lease.State != copyjob.LeaseReleased {
		h.t.Fatalf("job %s lease state = %s, want released", j.ID, j.Lease.State)
	}
	h.wantNoLeases()
}

func (h *harness) wantMessages(n int) []copyjobtest.QueuedMessage {
	h.t.Helper()
	h.svc.Wait() // a start deletes a finished job's message behind its answer
	ms := h.Queue.Messages()
	if len(ms) != n {
		h.t.Fatalf("queue holds %d messages, want %d: %+v", len(ms), n, ms)
	}
	return ms
}

func (h *harness) wantStartCopies(n int) []copyjobtest.StartCopyCall {
	h.t.Helper()
	calls := h.Blobs.StartCopyCalls()
	if len(calls) != n {
		h.t.Fatalf("%d StartCopy calls, want %d: %+v", len(calls), n, calls)
	}
	return calls
}

func wantCode(t *testing.T, err error, want copyjob.Code) *copyjob.Error {
	t.Helper()
	var e *copyjob.Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %v (%T), want a *copyjob.Error with code %s", err, err, want)
	}
	if e.Code != want {
		t.Fatalf("code = %s (%v), want %s", e.Code, err, want)
	}
	return e
}

// heldDelete blocks the next Delete Message (the start's, behind its answer): install
// it before the start, call held after it (it waits for the deletion to have begun),
// and release to let the deletion go on. release is idempotent and also runs at
// cleanup, so a failing test leaves no goroutine blocked.
type heldDelete struct {
	h       *harness
	ch      chan struct{}
	entered chan struct{}
	done    bool
}

func holdNextDelete(h *harness) *heldDelete {
	d := &heldDelete{h: h, ch: make(chan struct{}), entered: make(chan struct{})}
	h.Queue.OnNext(copyjobtest.OpDelete, func() { close(d.entered); <-d.ch })
	h.t.Cleanup(d.release)
	return d
}

func (d *heldDelete) held() {
	d.h.t.Helper()
	select {
	case <-d.entered:
	case <-time.After(5 * time.Second):
		d.h.t.Fatal("the start's Delete Message never began")
	}
}

func (d *heldDelete) release() {
	if !d.done {
		d.done = true
		close(d.ch)
	}
}

// answerWhileDeleteHeld makes call (a start or a retry) while the next Delete Message is
// held, and returns its answer with the held deletion: it fails the test when call
// waits for that deletion, or when the message is gone before it is let go.
func (h *harness) answerWhileDeleteHeld(call func() (*copyjob.Job, error)) (*heldDelete, *copyjob.Job, error) {
	h.t.Helper()
	held := holdNextDelete(h)
	type answer struct {
		job *copyjob.Job
		err error
	}
	answered := make(chan answer, 1)
	go func() {
		job, err := call()
		answered <- answer{job, err}
	}()
	select {
	case a := <-answered:
		if n := h.Queue.Len(); n != 1 {
			h.t.Fatalf("queue holds %d messages while Delete Message is held, want 1", n)
		}
		return held, a.job, a.err
	case <-time.After(5 * time.Second):
		h.t.Fatal("the answer waited for Delete Message")
		return held, nil, nil
	}
}
