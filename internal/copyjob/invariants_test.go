package copyjob_test

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/copyjob/copyjobtest"
	"github.com/blobcopy/blobcopy/internal/testenv/syncbuf"
)

// The randomized concurrency test: many goroutines start, read, abort, tick (two
// handler instances) and move copies in storage at once, with transient faults, lost
// Copy Blob answers and clock jumps past claims, then storage settles and the ticks
// drain the queue. After every run the invariants the README promises are checked.
// `make test` runs a few fixed seeds with -race; `make stress` runs many random ones
// (-stress.runs, the seed of a failing run is printed).

var (
	stressRuns = flag.Int("stress.runs", 0, "random seeds to run in TestInvariantsUnderConcurrency (0: the fixed seeds)")
	stressSeed = flag.Uint64("stress.seed", 0, "run only this seed")
)

func TestInvariantsUnderConcurrency(t *testing.T) {
	seeds := []uint64{1, 2, 3, 4, 5, 6}
	switch {
	case *stressSeed != 0:
		seeds = []uint64{*stressSeed}
	case *stressRuns > 0:
		seeds = seeds[:0]
		for range *stressRuns {
			seeds = append(seeds, rand.Uint64())
		}
	}
	for _, seed := range seeds {
		for _, crashy := range []bool{false, true} {
			name := fmt.Sprintf("seed=%d/bookkeepingFaults=%v", seed, crashy)
			t.Run(name, func(t *testing.T) {
				w := newWorld(t, seed, crashy)
				w.run()
				w.settle()
				w.check()
				if t.Failed() {
					path := filepath.Join(os.TempDir(), fmt.Sprintf("invariants-%d-%v.log", seed, crashy))
					_ = os.WriteFile(path, []byte(w.logs.String()), 0o644)
					t.Logf("the run's log: %s", path)
					t.Logf("reproduce with: go test -race -run 'TestInvariantsUnderConcurrency/%s' ./internal/copyjob -stress.seed=%d", name, seed)
				}
			})
		}
	}
}

type world struct {
	t      *testing.T
	rng    *rand.Rand
	rngMu  sync.Mutex
	env    *copyjobtest.Env
	blobs  *watchedBlobs
	recs   *watchedRecords
	svcs   []*copyjob.Service
	crashy bool // transient faults on record writes too (a crash after a callback)

	logs syncbuf.Buffer
	time sync.RWMutex // held for reading by every operation, for writing to move the clock

	mu       sync.Mutex
	accepted map[string]bool // job ids a Start answered with a job
	// unanswered: destinations of starts without a key answered 503 (one whose record
	// and message could not name its copy may leave it untracked once another copy
	// replaced it: README, Limits).
	unanswered map[copyjob.BlobRef]bool
	sources    []string
	dests      []copyjob.BlobRef
}

func newWorld(t *testing.T, seed uint64, crashy bool) *world {
	env := copyjobtest.NewEnv()
	w := &world{t: t, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), env: env, crashy: crashy, accepted: map[string]bool{}, unanswered: map[copyjob.BlobRef]bool{}}
	for i := range 5 {
		ref := copyjob.BlobRef{Container: "src", Blob: fmt.Sprintf("s%d.bin", i)}
		env.Blobs.Put(ref, int64(100*(i+1)), nil)
		w.sources = append(w.sources, "https://"+copyjobtest.DefaultHost+"/src/"+ref.Blob)
	}
	other := copyjob.BlobRef{Account: "other", Container: "in", Blob: "o.bin"}
	env.Blobs.Put(other, 700, nil)
	w.sources = append(w.sources, "https://"+copyjobtest.OtherHost+"/in/o.bin")
	for i := range 6 {
		w.dests = append(w.dests, copyjob.BlobRef{Container: "dst", Blob: fmt.Sprintf("d%d.bin", i)})
	}
	env.Blobs.Put(w.dests[0], 5, nil) // an existing destination: overwrite false refuses, snapshots have something to keep
	w.blobs = &watchedBlobs{Blobs: env.Blobs, w: w}
	w.recs = &watchedRecords{Records: env.Records, w: w}
	cfg := testConfig()
	cfg.Now = env.Clock.Now
	cfg.MaxFailures = 4
	for range 2 { // two handler instances on the same storage
		log := slog.New(slog.NewTextHandler(&w.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		w.svcs = append(w.svcs, copyjob.NewService(w.blobs, w.recs, env.Queue, env.Notifier, cfg, log))
	}
	return w
}

func (w *world) intn(n int) int {
	w.rngMu.Lock()
	defer w.rngMu.Unlock()
	return w.rng.IntN(n)
}

func (w *world) chance(p float64) bool {
	w.rngMu.Lock()
	defer w.rngMu.Unlock()
	return w.rng.Float64() < p
}

func (w *world) svc() *copyjob.Service { return w.svcs[w.intn(len(w.svcs))] }

// faultOps are the operations transient faults are injected into.
var faultOps = []struct {
	fakes func(*copyjobtest.Env) *copyjobtest.Faults
	op    string
}{
	{func(e *copyjobtest.Env) *copyjobtest.Faults { return &e.Blobs.Faults }, copyjobtest.OpStartCopy},
	{func(e *copyjobtest.Env) *copyjobtest.Faults { return &e.Blobs.Faults }, copyjobtest.OpCopyState},
	{func(e *copyjobtest.Env) *copyjobtest.Faults { return &e.Blobs.Faults }, copyjobtest.OpAcquireLease},
	{func(e *copyjobtest.Env) *copyjobtest.Faults { return &e.Blobs.Faults }, copyjobtest.OpReleaseLease},
	{func(e *copyjobtest.Env) *copyjobtest.Faults { return &e.Blobs.Faults }, copyjobtest.OpSnapshot},
	{func(e *copyjobtest.Env) *copyjobtest.Faults { return &e.Blobs.Faults }, copyjobtest.OpAbortCopy},
	{func(e *copyjobtest.Env) *copyjobtest.Faults { return &e.Records.Faults }, copyjobtest.OpGet},
	{func(e *copyjobtest.Env) *copyjobtest.Faults { return &e.Records.Faults }, copyjobtest.OpCreate},
	{func(e *copyjobtest.Env) *copyjobtest.Faults { return &e.Queue.Faults }, copyjobtest.OpEnqueue},
	{func(e *copyjobtest.Env) *copyjobtest.Faults { return &e.Queue.Faults }, copyjobtest.OpDequeue},
	{func(e *copyjobtest.Env) *copyjobtest.Faults { return &e.Queue.Faults }, copyjobtest.OpUpdateMessage},
	{func(e *copyjobtest.Env) *copyjobtest.Faults { return &e.Queue.Faults }, copyjobtest.OpDelete},
	{func(e *copyjobtest.Env) *copyjobtest.Faults { return &e.Notifier.Faults }, copyjobtest.OpNotify},
}

func (w *world) run() {
	ctx := context.Background()
	var wg sync.WaitGroup
	actor := func(n int, f func(i int)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				f(i)
			}
		}()
	}
	// Time passes between operations, never during one: in production every operation's
	// storage calls end by a real-time deadline well inside the claim it works under
	// (StartDeadline, the effects margin), which a fake clock jumping mid-operation would
	// not model. Takeovers of stalled operations are the regression tests' (case 5).
	op := func(f func()) {
		w.time.RLock()
		defer w.time.RUnlock()
		f()
	}
	for s := range 3 {
		actor(12, func(i int) { op(func() { w.startOne(ctx, fmt.Sprintf("k%d", w.intn(14)), s, i) }) })
	}
	actor(40, func(int) { op(func() { w.readOne(ctx) }) })
	actor(10, func(int) { op(func() { w.abortOne(ctx) }) })
	actor(25, func(int) { op(func() { _, _ = w.svc().Tick(ctx) }) })
	actor(25, func(int) {
		w.time.Lock()
		w.env.Clock.Advance(time.Duration(w.intn(90)) * time.Second)
		w.time.Unlock()
	})
	actor(25, func(int) { op(w.moveStorage) })
	actor(30, func(int) {
		f := faultOps[w.intn(len(faultOps))]
		f.fakes(w.env).FailNext(f.op, errBusy)
		if w.crashy && w.chance(0.3) {
			w.env.Records.FailNext(copyjobtest.OpUpdate, errBusy)
		}
		if w.chance(0.1) {
			// The record lands, its answer is lost (the review's finding 2).
			w.env.Records.LoseNextAnswer(copyjobtest.OpCreate, errBusy)
		}
	})
	wg.Wait()
}

func (w *world) startOne(ctx context.Context, key string, s, i int) {
	req := copyjob.StartRequest{
		Source:      w.sources[w.intn(len(w.sources))],
		Destination: w.dests[w.intn(len(w.dests))],
		Options: copyjob.Options{
			LeaseSource:         w.chance(0.6),
			Overwrite:           w.chance(0.7),
			SnapshotDestination: w.chance(0.3),
		},
	}
	if strings.Contains(req.Source, copyjobtest.OtherHost) {
		req.Options.LeaseSource = false
	}
	if w.chance(0.7) {
		req.CallbackURL = hook
	}
	if w.chance(0.3) {
		// An event's start waits for a copy pending on its destination (and may be
		// aborted while it waits) instead of being refused.
		req.Origin = "eventgrid"
	}
	if w.chance(0.5) {
		// An idempotency key from a small pool: replays, and the same key with another
		// body (refused), happen.
		req.JobID, req.RequestHash = key, key
	}
	var job *copyjob.Job
	var err error
	w.answered(ctx, func(ctx context.Context, svc *copyjob.Service) { job, _, err = svc.Start(ctx, req) })
	w.mu.Lock()
	defer w.mu.Unlock()
	if job != nil && job.ID != "" {
		w.accepted[job.ID] = true
	}
	if job == nil && req.JobID == "" && copyjob.Retryable(err) {
		w.unanswered[req.Destination] = true
	}
}

func (w *world) jobIDs() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	ids := make([]string, 0, len(w.accepted))
	for id := range w.accepted {
		ids = append(ids, id)
	}
	return ids
}

func (w *world) readOne(ctx context.Context) {
	if ids := w.jobIDs(); len(ids) > 0 {
		_, _ = w.svc().Get(ctx, ids[w.intn(len(ids))])
	}
}

func (w *world) abortOne(ctx context.Context) {
	if ids := w.jobIDs(); len(ids) > 0 {
		id, restore := ids[w.intn(len(ids))], w.chance(0.3)
		w.answered(ctx, func(ctx context.Context, svc *copyjob.Service) {
			_, _ = svc.Abort(ctx, id, copyjob.AbortOptions{Restore: restore})
		})
	}
}

// answered makes a call as the HTTP layer does most of the time: under
// HoldBehindAnswer, releasing the held work (a callback, a message's deletion) once the
// call has answered, and letting it run before the operation ends (in production it
// runs at once, in real time, well inside the claim it works under); otherwise without
// a hold, as a tick's batch starts do.
func (w *world) answered(ctx context.Context, call func(context.Context, *copyjob.Service)) {
	svc := w.svc()
	if !w.chance(0.7) {
		call(ctx, svc)
		return
	}
	hctx, release := copyjob.HoldBehindAnswer(ctx)
	call(hctx, svc)
	release()
	svc.Wait()
}

// moveStorage makes storage progress, finish or fail a pending copy, as Azure does.
func (w *world) moveStorage() {
	dst := w.dests[w.intn(len(w.dests))]
	switch w.intn(4) {
	case 0:
		_ = w.env.Blobs.SetCopyProgress(dst, int64(w.intn(50)), 100)
	case 1, 2:
		_ = w.env.Blobs.CompleteCopy(dst)
	case 3:
		_ = w.env.Blobs.FailCopy(dst, "500 InternalError: simulated")
	}
}

// settle heals every fault, lets storage finish every copy and ticks until the queue is
// empty: every accepted job must then have reached its terminal state.
func (w *world) settle() {
	for _, f := range faultOps {
		f.fakes(w.env).Heal("")
	}
	w.env.Records.Heal("")
	ctx := context.Background()
	for round := 0; round < 300 && (w.env.Queue.Len() > 0 || round < 2); round++ { // two rounds at least: the sweep gives untracked starts a message
		for _, d := range w.dests {
			_ = w.env.Blobs.CompleteCopy(d)
		}
		w.env.Clock.Advance(10 * time.Minute)
		if _, err := w.svcs[round%2].Tick(ctx); err != nil {
			w.t.Errorf("tick while settling: %v", err)
		}
	}
	if n := w.env.Queue.Len(); n != 0 {
		w.t.Errorf("%d tracking messages left after settling: %+v", n, w.env.Queue.Messages())
	}
}

func (w *world) check() {
	t := w.t
	jobs := map[string]*copyjob.Job{}
	for _, j := range w.env.Records.Jobs() {
		jobs[j.ID] = j
	}
	for id := range w.accepted {
		if jobs[id] == nil {
			t.Errorf("accepted job %s has no record", id)
		}
	}
	owners := map[string][]*copyjob.Job{}
	for _, j := range jobs {
		// Every job reaches exactly one terminal state...
		if !j.Status.Terminal() {
			t.Errorf("job %s is %s after settling (%s)", j.ID, j.Status, j.StatusDescription)
			continue
		}
		// ... equal to storage's outcome of its copy.
		if j.CopyID != "" {
			owners[j.CopyID] = append(owners[j.CopyID], j)
			switch j.Status {
			case copyjob.StatusSuccess, copyjob.StatusFailed, copyjob.StatusAborted:
				if got, ok := w.env.Blobs.CopyOutcome(j.CopyID); !ok || got != j.Status {
					t.Errorf("job %s recorded %s, storage ended copy %s with %q", j.ID, j.Status, j.CopyID, got)
				}
			}
		}
		if j.Status == copyjob.StatusStartFailed && j.CopyID != "" {
			t.Errorf("refused job %s names copy %s", j.ID, j.CopyID)
		}
		// No lease held after a terminal state.
		if j.Lease != nil && (j.Lease.State == copyjob.LeaseHeld || j.Lease.State == copyjob.LeaseAcquiring) {
			t.Errorf("job %s is %s with its lease %s", j.ID, j.Status, j.Lease.State)
		}
		if j.Claim != nil && w.env.Clock.Now().Before(j.Claim.Until) {
			t.Errorf("job %s still claimed by %s", j.ID, j.Claim.Actor)
		}
		// One callback per job: exactly one delivery id, delivered once without
		// bookkeeping faults, at least once with them.
		if j.Callback != nil {
			n, ids := w.deliveries(j.ID)
			switch {
			case j.Callback.GaveUp:
			case j.Callback.DeliveredAt == nil:
				t.Errorf("job %s: callback neither delivered nor given up: %+v", j.ID, j.Callback)
			case len(ids) != 1:
				t.Errorf("job %s: callbacks with %d delivery ids", j.ID, len(ids))
			case !w.crashy && n != 1:
				t.Errorf("job %s: %d callbacks", j.ID, n)
			}
		}
	}
	if held := w.env.Blobs.HeldLeases(); len(held) != 0 {
		t.Errorf("leases still held: %v", held)
	}
	// Every copy the service started is tracked by a job (restores of a snapshot
	// excepted); two jobs share a copy only when both copy the same source onto the
	// same destination (one adopted the other's copy in a race, see README).
	shared := sharedOn(owners)
	for _, c := range w.env.Blobs.StartCopyCalls() {
		if c.CopyID == "" || strings.Contains(c.ReadURL, "snapshot=") {
			continue
		}
		if len(owners[c.CopyID]) == 0 && !uncertainOn(jobs, c.Dst) && !abandonedOn(jobs, c.Dst) && !shared[c.Dst] && !w.unanswered[c.Dst] {
			t.Errorf("copy %s onto %v is tracked by no job", c.CopyID, c.Dst)
		}
	}
	for id, js := range owners {
		for _, j := range js[1:] {
			if j.Source.URL != js[0].Source.URL || j.Destination.BlobRef != js[0].Destination.BlobRef {
				t.Errorf("copy %s is tracked by jobs %s and %s of different copies", id, js[0].ID, j.ID)
			}
		}
	}
	// No snapshot left by a refused start: every snapshot is some kept job's.
	kept := map[string]bool{}
	for _, j := range jobs {
		if j.DestinationSnapshot != "" && j.Status != copyjob.StatusStartFailed {
			kept[j.DestinationSnapshot] = true
		}
	}
	for _, ref := range w.env.Blobs.Refs() {
		if ref.Snapshot != "" && !kept[ref.Snapshot] {
			t.Errorf("snapshot %v belongs to no job that started", ref)
		}
	}
	for _, v := range w.violations() {
		t.Error(v)
	}
}

// uncertainOn tells whether a job on dst recorded that one of its Copy Blob calls got no
// answer (or its starter died) and the destination no longer showed that copy when it
// looked: the one case where a started copy can be left untracked, because another copy
// replaced it first (README, Limits).
func uncertainOn(jobs map[string]*copyjob.Job, dst copyjob.BlobRef) bool {
	for _, j := range jobs {
		if j.Destination.BlobRef == dst && j.CopyUncertain {
			return true
		}
	}
	return false
}

// abandonedOn tells whether a job on dst was recorded as not started from a start's
// message that named no copy, while its copy had run and another had replaced it on the
// destination: a limit README states (its other message, naming the copy, then finds a
// record and follows it).
func abandonedOn(jobs map[string]*copyjob.Job, dst copyjob.BlobRef) bool {
	for _, j := range jobs {
		if j.Destination.BlobRef == dst && j.Status == copyjob.StatusStartFailed && j.CopyID == "" &&
			strings.HasPrefix(j.StatusDescription, "the start left no record and the destination shows no copy of it") {
			return true
		}
	}
	return false
}

// sharedOn names the destinations where two jobs track one copy: a start's message that
// named no copy was visited first and adopted, as its own, another job's copy of the
// same source that had replaced this start's copy on the destination, while its other
// message named the copy it had started (README, Limits: found by make stress with
// seed 8193988386109183451). The replaced copy is then tracked by no job.
func sharedOn(owners map[string][]*copyjob.Job) map[copyjob.BlobRef]bool {
	out := map[copyjob.BlobRef]bool{}
	for _, js := range owners {
		if len(js) > 1 {
			out[js[0].Destination.BlobRef] = true
		}
	}
	return out
}

func (w *world) deliveries(jobID string) (int, map[string]bool) {
	n, ids := 0, map[string]bool{}
	for _, d := range w.env.Notifier.Deliveries() {
		if d.Job.ID == jobID {
			n++
			ids[d.Job.Callback.DeliveryID] = true
		}
	}
	return n, ids
}

var violationsMu sync.Mutex

func (w *world) violations() []string {
	violationsMu.Lock()
	defer violationsMu.Unlock()
	return append(append([]string(nil), w.blobs.violations...), w.recs.violations...)
}

// watchedBlobs checks, at each lease release, that no copy of the job owning the lease
// is pending on its destination.
type watchedBlobs struct {
	*copyjobtest.Blobs
	w          *world
	violations []string
	released   atomic.Int64
}

func (b *watchedBlobs) ReleaseLease(ctx context.Context, ref copyjob.BlobRef, leaseID string) error {
	for _, j := range b.w.env.Records.Jobs() {
		if j.Lease == nil || j.Lease.ID != leaseID {
			continue
		}
		info, ok := b.Blobs.Blob(j.Destination.BlobRef)
		if !ok || info.Copy.Status != copyjob.StatusPending {
			continue
		}
		// The job's copy is the one it recorded (an untracked copy is caught at the end:
		// every started copy must be tracked).
		mine := j.CopyID != "" && info.Copy.CopyID == j.CopyID
		if mine {
			violationsMu.Lock()
			b.violations = append(b.violations, fmt.Sprintf("lease %s of job %s released while its copy %s is pending", leaseID, j.ID, info.Copy.CopyID))
			violationsMu.Unlock()
		}
	}
	b.released.Add(1)
	return b.Blobs.ReleaseLease(ctx, ref, leaseID)
}

// StartCopy sometimes carries the copy out and loses its answer (a client timeout, a
// 500 OperationTimedOut), as real storage does.
func (b *watchedBlobs) StartCopy(ctx context.Context, dst copyjob.BlobRef, readURL string, opts copyjob.StartCopyOptions) (copyjob.CopyState, error) {
	st, err := b.Blobs.StartCopy(ctx, dst, readURL, opts)
	if err == nil && b.w.chance(0.1) {
		return copyjob.CopyState{}, fmt.Errorf("%w: the answer to Copy Blob was lost", copyjob.ErrUnavailable)
	}
	return st, err
}

// watchedRecords checks that no write ever changes a terminal record's outcome.
type watchedRecords struct {
	*copyjobtest.Records
	w          *world
	violations []string
}

func (r *watchedRecords) Update(ctx context.Context, job *copyjob.Job) error {
	before := r.Records.Job(job.ID)
	sent := job.ETag
	err := r.Records.Update(ctx, job)
	if err == nil && before != nil && before.ETag == sent && before.Status.Terminal() &&
		(before.Status != job.Status || before.StatusDescription != job.StatusDescription || before.CopyID != job.CopyID) {
		violationsMu.Lock()
		r.violations = append(r.violations, fmt.Sprintf("terminal record %s changed: %s %q -> %s %q", job.ID, before.Status, before.StatusDescription, job.Status, job.StatusDescription))
		violationsMu.Unlock()
	}
	return err
}
