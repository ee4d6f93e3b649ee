package copyjob_test

// Regression tests for the cases reported in issue 10, one per case, on the in-memory
// fakes. Each failed before the job state machine landed.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/copyjob/copyjobtest"
)

// Case 1: Copy Blob answers 503 past the SDK's retries. The start answers a retryable
// error, the job stays "starting" (not terminal), and a retry of the same request (an
// Idempotency-Key replay, an Event Grid redelivery) attempts Copy Blob again.
func TestTransientStartFailureStaysRetryable(t *testing.T) {
	h := newHarness(t)
	req := leasedReq()
	req.JobID = "idem-1"
	busyCopyBlob(h) // every try of the attempt
	job, created, err := h.svc.Start(h.ctx, req)
	wantCode(t, err, copyjob.CodeStorageUnavailable)
	if !copyjob.Retryable(err) || !created || job.Status != copyjob.StatusStarting {
		t.Fatalf("job %s created %v err %v", job.Status, created, err)
	}
	rec := h.wantStatus(job.ID, copyjob.StatusStarting)
	if rec.Claim != nil || rec.StartFailures != 1 || rec.NextAttemptAt == nil || rec.Lease.State != copyjob.LeaseHeld || rec.Refusal != nil {
		t.Fatalf("record claim %+v failures %d next %v lease %+v refusal %+v", rec.Claim, rec.StartFailures, rec.NextAttemptAt, rec.Lease, rec.Refusal)
	}
	h.wantMessages(1)

	// The client retries with the same key once storage recovered: a new attempt, not a
	// replay of the failure.
	again, created, err := h.svc.Start(h.ctx, req)
	if err != nil || created || again.Status != copyjob.StatusPending {
		t.Fatalf("retry: %+v created %v err %v", again, created, err)
	}
	if n := len(h.Blobs.StartCopyCalls()); n != copyTries+1 {
		t.Fatalf("%d Copy Blob calls, want %d", n, copyTries+1)
	}
	if h.Blobs.LeaseHolder(srcRef) != rec.Lease.ID {
		t.Fatal("the retry did not reuse the job's lease")
	}
	_ = h.Blobs.CompleteCopy(dstRef)
	h.tickAfter(time.Hour)
	h.wantLeaseReleased(h.wantStatus(job.ID, copyjob.StatusSuccess))
}

// copyTries is how often one start attempt tries Copy Blob (start.go).
const copyTries = 3

// busyCopyBlob makes every try of the next start attempt's Copy Blob answer 503
// ServerBusy: the failure outlives the attempt's own retries.
func busyCopyBlob(h *harness) {
	for range copyTries {
		h.Blobs.FailNext(copyjobtest.OpStartCopy, errBusy)
	}
}

// The first tries of an attempt fail (503 before the operation): the attempt's own
// retry starts the copy, once.
func TestCopyBlobRetriedWithinTheAttempt(t *testing.T) {
	h := newHarness(t)
	h.Blobs.FailNext(copyjobtest.OpStartCopy, errBusy)
	job := h.start(leasedReq())
	if job.Status != copyjob.StatusPending || len(h.Blobs.StartCopyCalls()) != 2 {
		t.Fatalf("job %s after %d tries", job.Status, len(h.Blobs.StartCopyCalls()))
	}
}

// Case 1, the tick's side: nobody retries the request; the tick attempts the start
// again once NextAttemptAt is due, and gives up (startFailed, lease released) after
// MaxFailures transient failures in a row.
func TestTickRetriesATransientlyFailedStart(t *testing.T) {
	t.Run("recovers", func(t *testing.T) {
		h := newHarness(t)
		busyCopyBlob(h)
		job, _, _ := h.svc.Start(h.ctx, leasedReq())
		h.tickAfter(time.Second) // not due yet
		h.wantStatus(job.ID, copyjob.StatusStarting)
		h.tickAfter(time.Minute)
		h.wantStatus(job.ID, copyjob.StatusPending)
	})
	t.Run("gives up", func(t *testing.T) {
		h := newHarness(t)
		h.Blobs.FailAlways(copyjobtest.OpStartCopy, errBusy)
		job, _, _ := h.svc.Start(h.ctx, leasedReq())
		for range 10 {
			h.tickAfter(time.Hour)
		}
		rec := h.wantStatus(job.ID, copyjob.StatusStartFailed)
		if rec.Refusal == nil || rec.Refusal.Code != copyjob.CodeStartRetriesExhausted {
			t.Fatalf("refusal = %+v", rec.Refusal)
		}
		if got := len(h.Blobs.StartCopyCalls()); got != testConfig().MaxFailures*copyTries {
			t.Fatalf("%d Copy Blob tries, want %d (%d attempts of %d tries)", got, testConfig().MaxFailures*copyTries, testConfig().MaxFailures, copyTries)
		}
		h.wantLeaseReleased(rec)
		h.wantMessages(0)
	})
}

// Case 2: permanent errors are answered as such (a precise code, not retryable), so
// neither a client nor Event Grid retries what cannot succeed.
func TestPermanentStartErrorsAreNotRetryable(t *testing.T) {
	tests := []struct {
		name  string
		setup func(*harness, *copyjob.StartRequest)
		code  copyjob.Code
	}{
		{name: "missing source with leaseSource", code: copyjob.CodeSourceNotFound,
			setup: func(h *harness, r *copyjob.StartRequest) {
				r.Source = "https://" + copyjobtest.DefaultHost + "/src/missing.bin"
			}},
		{name: "destination leased by someone else", code: copyjob.CodeDestinationLeased,
			setup: func(h *harness, _ *copyjob.StartRequest) {
				h.Blobs.FailNext(copyjobtest.OpStartCopy, fmt.Errorf("%w: storage answered 412 LeaseIdMissing", copyjob.ErrDestinationLeased))
			}},
		{name: "self-copy with leaseSource", code: copyjob.CodeInvalidRequest,
			setup: func(h *harness, r *copyjob.StartRequest) { r.Destination = srcRef }},
		{name: "storage refuses a value", code: copyjob.CodeInvalidRequest,
			setup: func(h *harness, _ *copyjob.StartRequest) {
				h.Blobs.FailNext(copyjobtest.OpStartCopy, fmt.Errorf("%w: storage answered 400 InvalidHeaderValue", copyjob.ErrInvalidValue))
			}},
		{name: "another 4xx", code: copyjob.CodeStorageRefused,
			setup: func(h *harness, _ *copyjob.StartRequest) {
				h.Blobs.FailNext(copyjobtest.OpStartCopy, fmt.Errorf("%w: storage answered 409 BlobArchived", copyjob.ErrRefused))
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			req := leasedReq()
			tt.setup(h, &req)
			_, _, err := h.svc.Start(h.ctx, req)
			wantCode(t, err, tt.code)
			if copyjob.Retryable(err) {
				t.Fatalf("%v is retryable", err)
			}
			h.wantNoLeases()
		})
	}
}

// Case 4: concurrent status readers, two tick "instances" and completions never produce
// a second callback, and the lease is recorded as released (not lost).
func TestConcurrentSettlePathsDeliverOneCallback(t *testing.T) {
	h := newHarness(t)
	const jobs = 40
	ids := make([]string, jobs)
	for i := range jobs {
		src := copyjob.BlobRef{Container: "src", Blob: fmt.Sprintf("s%d", i)}
		h.Blobs.Put(src, 100, nil)
		job := h.start(copyjob.StartRequest{
			Source:      "https://" + copyjobtest.DefaultHost + "/src/" + src.Blob,
			Destination: copyjob.BlobRef{Container: "dst", Blob: fmt.Sprintf("d%d", i)},
			Options:     copyjob.Options{LeaseSource: true},
			CallbackURL: hook,
		})
		ids[i] = job.ID
	}
	other := h.Env.Service(testConfig()) // a second handler instance on the same storage
	h.tickAfter(time.Minute)
	ctx, stop := context.WithCancel(h.ctx)
	var wg sync.WaitGroup
	for r := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := r; ctx.Err() == nil; i = (i + 1) % jobs {
				_, _ = h.svc.Get(ctx, ids[i])
			}
		}()
	}
	for i := range jobs {
		_ = h.Blobs.CompleteCopy(copyjob.BlobRef{Container: "dst", Blob: fmt.Sprintf("d%d", i)})
	}
	for range 6 {
		h.Clock.Advance(time.Hour)
		var tw sync.WaitGroup
		for _, svc := range []*copyjob.Service{h.svc, other} {
			tw.Add(1)
			go func() { defer tw.Done(); _, _ = svc.Tick(h.ctx) }()
		}
		tw.Wait()
	}
	stop()
	wg.Wait()
	per := map[string]int{}
	for _, d := range h.Notifier.Deliveries() {
		per[d.Job.ID]++
	}
	for _, id := range ids {
		rec := h.wantStatus(id, copyjob.StatusSuccess)
		if per[id] != 1 {
			t.Errorf("job %s: %d callbacks", id, per[id])
		}
		if rec.Lease.State != copyjob.LeaseReleased {
			t.Errorf("job %s: lease %s", id, rec.Lease.State)
		}
	}
	h.wantNoLeases()
}

// Case 5: a start slow enough for its claim to expire is taken over by the tick; the
// slow start then loses, adopts the tick's outcome, and releases nothing: one copy,
// the lease held while it runs, one callback naming one copy id. (A keyed start: its
// record is the lock the takeover claims. A start without a key relies on its deadline:
// its Copy Blob is sent before StartDeadline, which TestStartGivesUpAtItsDeadline pins,
// and storage carries it out within its server timeout, before StartGrace ends.)
func TestSlowStartTakenOverNeverReleasesTheLease(t *testing.T) {
	h := newHarness(t)
	req := keyed(leasedReq())
	req.CallbackURL = hook
	var tickReport copyjob.TickReport
	h.Blobs.OnNext(copyjobtest.OpStartCopy, func() {
		// Storage is slow: past the claim, a tick takes the start over.
		h.Clock.Advance(h.svc.Config().StartGrace + time.Second)
		tickReport = h.tick()
	})
	job, _, err := h.svc.Start(h.ctx, req)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	if tickReport.Resumed != 1 {
		t.Fatalf("tick = %+v", tickReport)
	}
	rec := h.wantStatus(job.ID, copyjob.StatusPending)
	if job.Status != copyjob.StatusPending || job.CopyID != rec.CopyID {
		t.Fatalf("the slow start answered %s %s, record %s %s", job.Status, job.CopyID, rec.Status, rec.CopyID)
	}
	if h.Blobs.LeaseHolder(srcRef) != rec.Lease.ID || h.Blobs.Calls(copyjobtest.OpReleaseLease) != 0 {
		t.Fatal("the lease was released while the copy runs")
	}
	_ = h.Blobs.CompleteCopy(dstRef)
	h.tickAfter(time.Hour)
	h.wantLeaseReleased(h.wantStatus(job.ID, copyjob.StatusSuccess))
	if d := h.Notifier.Deliveries(); len(d) != 1 || d[0].Job.CopyID != rec.CopyID {
		t.Fatalf("deliveries = %+v", d)
	}
}

// Case 5, the bound that keeps takeovers away from live starts: a start's storage
// calls end at StartDeadline, so it gives its claim back (transiently failed) instead of
// running on into the time the tick may take over.
func TestStartGivesUpAtItsDeadline(t *testing.T) {
	env := copyjobtest.NewEnv()
	env.Blobs.Put(srcRef, srcSize, nil)
	slow := &deadlineBlobs{Blobs: env.Blobs}
	cfg := testConfig()
	cfg.StartDeadline = 50 * time.Millisecond
	cfg.Now = env.Clock.Now
	svc := copyjob.NewService(slow, env.Records, env.Queue, env.Notifier, cfg, nil)
	began := time.Now()
	job, _, err := svc.Start(context.Background(), leasedReq())
	wantCode(t, err, copyjob.CodeStorageUnavailable)
	if took := time.Since(began); took > 5*time.Second {
		t.Fatalf("start took %s", took)
	}
	rec := env.Records.Job(job.ID)
	if rec.Status != copyjob.StatusStarting || rec.Claim != nil {
		t.Fatalf("record %s claim %+v", rec.Status, rec.Claim)
	}
}

// deadlineBlobs is storage that never answers Copy Blob: the call ends with its context.
type deadlineBlobs struct{ *copyjobtest.Blobs }

func (d *deadlineBlobs) StartCopy(ctx context.Context, _ copyjob.BlobRef, _ string, _ copyjob.StartCopyOptions) (copyjob.CopyState, error) {
	<-ctx.Done()
	return copyjob.CopyState{}, fmt.Errorf("%w: %w", copyjob.ErrUnavailable, ctx.Err())
}

// Case 6: a refused start leaves no snapshot: with overwrite false none is taken; with a
// snapshot taken and then a refusal, it is deleted and the record says so.
func TestRefusedStartLeavesNoSnapshot(t *testing.T) {
	t.Run("overwrite false", func(t *testing.T) {
		h := newHarness(t)
		h.Blobs.Put(dstRef, 10, nil)
		req := copyjob.StartRequest{JobID: "snap", Source: srcURL, Destination: dstRef, Options: copyjob.Options{SnapshotDestination: true}}
		for range 3 {
			_, _, err := h.svc.Start(h.ctx, req)
			wantCode(t, err, copyjob.CodeDestinationExists)
		}
		if n := h.Blobs.Calls(copyjobtest.OpSnapshot); n != 0 || len(h.Blobs.Refs()) != 3 {
			t.Fatalf("%d snapshots taken, blobs %v", n, h.Blobs.Refs())
		}
	})
	t.Run("refused after the snapshot", func(t *testing.T) {
		h := newHarness(t)
		h.Blobs.Put(dstRef, 10, nil)
		h.Blobs.FailNext(copyjobtest.OpStartCopy, fmt.Errorf("%w: 412 LeaseIdMissing", copyjob.ErrDestinationLeased))
		job, _, err := h.svc.Start(h.ctx, copyjob.StartRequest{Source: srcURL, Destination: dstRef,
			Options: copyjob.Options{SnapshotDestination: true, Overwrite: true}})
		wantCode(t, err, copyjob.CodeDestinationLeased)
		if h.Blobs.Calls(copyjobtest.OpSnapshot) != 1 || h.Blobs.Calls(copyjobtest.OpDeleteSnapshot) != 1 || len(h.Blobs.Refs()) != 3 {
			t.Fatalf("snapshot not cleaned up: %v", h.Blobs.Refs())
		}
		rec := h.wantStatus(job.ID, copyjob.StatusStartFailed)
		if rec.DestinationSnapshot != "" || !strings.Contains(rec.StatusDescription, "snapshot taken for this start is deleted") {
			t.Fatalf("record snapshot %q description %q", rec.DestinationSnapshot, rec.StatusDescription)
		}
	})
}

// lostAnswerBlobs carries Copy Blob out and then loses its answer, as a client timeout
// or a 500 OperationTimedOut does (the adapter makes one try: no SDK retry).
type lostAnswerBlobs struct {
	*copyjobtest.Blobs
}

func (l *lostAnswerBlobs) StartCopy(ctx context.Context, dst copyjob.BlobRef, readURL string, opts copyjob.StartCopyOptions) (copyjob.CopyState, error) {
	if _, err := l.Blobs.StartCopy(ctx, dst, readURL, opts); err != nil {
		return copyjob.CopyState{}, err
	}
	return copyjob.CopyState{}, fmt.Errorf("%w: storage answered 500 OperationTimedOut", copyjob.ErrUnavailable)
}

// Case 7: Copy Blob is carried out but its answer is lost. The job reads the destination
// and adopts its own copy (pending, lease held), never refuses it nor copies again.
func TestLostCopyAnswerIsAdopted(t *testing.T) {
	for _, tc := range []struct {
		name      string
		overwrite bool
		status    copyjob.Status
	}{
		{"pending copy", true, copyjob.StatusPending},
		{"pending copy, overwrite false", false, copyjob.StatusPending},
		{"synchronous copy", false, copyjob.StatusSuccess},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := copyjobtest.NewEnv()
			env.Blobs.Put(srcRef, srcSize, nil)
			if tc.status == copyjob.StatusSuccess {
				env.Blobs.SetStartStatus(copyjob.StatusSuccess)
			}
			cfg := testConfig()
			svc := copyjob.NewService(&lostAnswerBlobs{Blobs: env.Blobs}, env.Records, env.Queue, env.Notifier, withClock(cfg, env), nil)
			job, _, err := svc.Start(context.Background(), copyjob.StartRequest{Source: srcURL, Destination: dstRef,
				Options: copyjob.Options{LeaseSource: true, Overwrite: tc.overwrite}})
			if err != nil || job.Status != tc.status || job.CopyID == "" {
				t.Fatalf("job %+v err %v", job, err)
			}
			if n := len(env.Blobs.StartCopyCalls()); n != 1 {
				t.Fatalf("%d Copy Blob calls, want 1", n)
			}
			rec := env.Records.Job(job.ID)
			want := copyjob.LeaseHeld
			if tc.status.Terminal() {
				want = copyjob.LeaseReleased
			}
			if rec.Status != tc.status || rec.Lease.State != want {
				t.Fatalf("record %s lease %+v", rec.Status, rec.Lease)
			}
			if tc.status == copyjob.StatusPending && env.Blobs.LeaseHolder(srcRef) != rec.Lease.ID {
				t.Fatal("the lease of the running copy was released")
			}
		})
	}
}

func withClock(cfg copyjob.Config, env *copyjobtest.Env) copyjob.Config {
	cfg.Now = env.Clock.Now
	return cfg
}

// Case 8: a crash between the callback and its record write makes a later tick deliver
// again, with the same delivery id, so the receiver can deduplicate.
func TestRedeliveredCallbackKeepsItsDeliveryID(t *testing.T) {
	h := newHarness(t)
	req := leasedReq()
	req.CallbackURL = hook
	job := h.start(req)
	_ = h.Blobs.CompleteCopy(dstRef)
	h.Notifier.OnNext(copyjobtest.OpNotify, func() {
		h.Records.FailNext(copyjobtest.OpUpdate, copyjobtest.ErrCrash) // the bookkeeping write after the callback
	})
	h.tickAfter(time.Minute)
	h.tickAfter(h.svc.Config().EffectsGrace + time.Second) // the claim expired: taken over
	d := h.Notifier.Deliveries()
	if len(d) != 2 || d[0].Job.Callback.DeliveryID == "" || d[0].Job.Callback.DeliveryID != d[1].Job.Callback.DeliveryID {
		t.Fatalf("deliveries = %+v", d)
	}
	rec := h.wantStatus(job.ID, copyjob.StatusSuccess)
	if rec.Callback.DeliveredAt == nil || rec.Callback.DeliveryID != d[0].Job.Callback.DeliveryID {
		t.Fatalf("callback = %+v", rec.Callback)
	}
	h.wantMessages(0)
}

// Case 8: the lease is recorded "released" when the app released it (also when an
// earlier run released it before crashing: storage then says no lease), and "lost" only
// when someone else holds it.
func TestLeaseStateIsTruthful(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(h *harness, leaseID string)
		want  copyjob.LeaseState
	}{
		{"released by the app", func(*harness, string) {}, copyjob.LeaseReleased},
		{"already free", func(h *harness, _ string) { h.Blobs.SetLease(srcRef, "") }, copyjob.LeaseReleased},
		{"someone else's", func(h *harness, _ string) { h.Blobs.SetLease(srcRef, "intruder") }, copyjob.LeaseLost},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			job := h.start(leasedReq())
			tc.setup(h, job.Lease.ID)
			_ = h.Blobs.CompleteCopy(dstRef)
			h.tickAfter(time.Minute)
			if rec := h.wantStatus(job.ID, copyjob.StatusSuccess); rec.Lease.State != tc.want {
				t.Fatalf("lease %s, want %s", rec.Lease.State, tc.want)
			}
		})
	}
}

// No terminal record ever changes its outcome: a late writer (a slow tick that read the
// copy pending) loses to the abort that settled first.
func TestTerminalRecordsNeverChange(t *testing.T) {
	h := newHarness(t)
	job := h.start(leasedReq())
	h.Blobs.OnNext(copyjobtest.OpCopyState, func() {
		if _, err := h.svc.Abort(h.ctx, job.ID, copyjob.AbortOptions{}); err != nil {
			t.Errorf("abort: %v", err)
		}
	})
	h.tickAfter(time.Hour)
	rec := h.wantStatus(job.ID, copyjob.StatusAborted)
	h.tickAfter(time.Hour)
	if again := h.record(job.ID); again.Status != rec.Status || again.StatusDescription != rec.StatusDescription {
		t.Fatalf("terminal record changed: %+v -> %+v", rec, again)
	}
	if !errors.Is(copyjob.ErrUnavailable, copyjob.ErrUnavailable) || !copyjob.CanTransition(copyjob.StatusPending, copyjob.StatusAborted) ||
		copyjob.CanTransition(copyjob.StatusAborted, copyjob.StatusSuccess) || copyjob.CanTransition(copyjob.StatusStartFailed, copyjob.StatusPending) {
		t.Fatal("transition table")
	}
}

// Issue 16, network: what storage answers behind a firewall, private endpoints or a
// permitted copy scope maps to a 4xx naming the side at fault (docs/network.md).
func TestNetworkRefusalsNameTheSideAtFault(t *testing.T) {
	for _, tc := range []struct {
		name   string
		err    error
		code   copyjob.Code
		target string
	}{
		{"destination firewall or copy scope", fmt.Errorf("%w: storage answered 403 AuthorizationFailure", copyjob.ErrForbidden), copyjob.CodeForbidden, "destination"},
		{"source firewall", fmt.Errorf("%w: storage answered 403 CannotVerifyCopySource", copyjob.ErrSourceUnreadable), copyjob.CodeSourceNotReadable, "source"},
		{"source missing", fmt.Errorf("%w: storage answered 404 CannotVerifyCopySource", copyjob.ErrSourceNotFound), copyjob.CodeSourceNotFound, "source"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.Blobs.FailNext(copyjobtest.OpStartCopy, tc.err)
			_, _, err := h.svc.Start(h.ctx, copyjob.StartRequest{Source: srcURL, Destination: dstRef})
			e := wantCode(t, err, tc.code)
			if e.Target != tc.target || copyjob.Retryable(err) {
				t.Fatalf("target %q retryable %v: %v", e.Target, copyjob.Retryable(err), err)
			}
			if tc.code != copyjob.CodeSourceNotFound && !strings.Contains(e.Message, "docs/network.md") {
				t.Errorf("message %q does not point to docs/network.md", e.Message)
			}
		})
	}
}
