package copyjob

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// Config tunes the service; zero values take the defaults in withDefaults.
type Config struct {
	// SASLifetime is how long a generated source SAS stays valid when the request names
	// none. A SAS must outlive the copy (pitfalls #3); MaxSASLifetime bounds requests.
	SASLifetime    time.Duration
	MaxSASLifetime time.Duration
	// FirstPoll is when a new job's tracking message first becomes visible; later polls
	// back off exponentially up to MaxPollInterval.
	FirstPoll       time.Duration
	MaxPollInterval time.Duration
	// StartGrace is how long a start's claim lasts: after it, the tick (or a replay)
	// assumes the starter died and takes the start over.
	StartGrace time.Duration
	// FullSweepInterval is how often (once for every instance together, claimed through
	// Records.ClaimFullSweep) the sweep for untracked starts lists every "starting"
	// record instead of asking the records' index (Records.Untracked): a backstop for
	// records the index does not know, written by an earlier version (before the index
	// tag) or by an instance whose account refused the tag. Default one hour.
	FullSweepInterval time.Duration
	// StartDeadline bounds the storage calls of one start attempt. It is kept at most
	// StartGrace minus storageServerTimeout, so a request sent before it has been carried
	// out or dropped by storage before anyone may take the start over.
	StartDeadline time.Duration
	// EffectsGrace is how long the claim for a terminal job's effects (lease release,
	// callback) lasts before another actor may take them over.
	EffectsGrace time.Duration
	// MaxFailures is how many consecutive failed attempts a message gets before it is
	// moved to the poison queue, and how many transient start failures in a row end a
	// start as startFailed.
	MaxFailures int
	// BatchSize (<= 32), Concurrency and TickBudget bound one status tick.
	BatchSize   int
	Concurrency int
	TickBudget  time.Duration
	// ProcessingVisibility hides a dequeued message while a tick works on it.
	ProcessingVisibility time.Duration
	// MaxCallbackAttempts bounds completion callback deliveries.
	MaxCallbackAttempts int
	// CallbackRetryDelays are the waits after the 1st, 2nd, ... failed attempt of a
	// delivery before the next; the last repeats (default: callbackRetrySchedule).
	CallbackRetryDelays []time.Duration
	Now                 func() time.Time
	// InternalContainers are the app's own containers (its records), named by every
	// account alias of the app's own storage account; Blob is ignored. They are never a
	// copy's source or destination: a record holds what answers redact (a callback
	// URL's token) and other owners' jobs, and the app signs the SAS that would read it.
	InternalContainers []BlobRef
}

// Internal reports whether ref lies in one of the app's own containers. Container
// names compare without regard to case, as a refusal must not depend on how storage
// treats a name it would refuse anyway.
func (c Config) Internal(ref BlobRef) bool {
	for _, in := range c.InternalContainers {
		if in.Account == ref.Account && strings.EqualFold(in.Container, ref.Container) {
			return true
		}
	}
	return false
}

// storageServerTimeout is the longest time the Blob service works on one request
// (its server-side timeout for blob operations is 30 s): a request sent before a
// start's deadline is finished, one way or the other, this much later.
const storageServerTimeout = 30 * time.Second

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.SASLifetime, 24*time.Hour)
	def(&c.MaxSASLifetime, 7*24*time.Hour)
	def(&c.FirstPoll, 5*time.Second)
	def(&c.MaxPollInterval, 5*time.Minute)
	def(&c.StartGrace, 2*time.Minute)
	def(&c.FullSweepInterval, time.Hour)
	def(&c.StartDeadline, max(c.StartGrace-storageServerTimeout-30*time.Second, c.StartGrace/4))
	c.StartDeadline = min(c.StartDeadline, c.StartGrace)
	def(&c.EffectsGrace, time.Minute)
	def(&c.TickBudget, 4*time.Minute)
	def(&c.ProcessingVisibility, 2*time.Minute)
	if c.MaxFailures <= 0 {
		c.MaxFailures = 5
	}
	if c.BatchSize <= 0 || c.BatchSize > 32 {
		c.BatchSize = 32
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 16
	}
	if len(c.CallbackRetryDelays) == 0 {
		c.CallbackRetryDelays = callbackRetrySchedule
	}
	if c.MaxCallbackAttempts <= 0 {
		c.MaxCallbackAttempts = 8
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Service runs copy jobs. Its work is split by job: start.go (starting a copy,
// replays, resumes), settle.go (terminal transitions and their effects), abort.go,
// reads.go (status and lists), tick.go (the status timer); state.go holds the state
// machine they all go through.
type Service struct {
	blobs    Blobs
	records  Records
	queue    Queue
	notifier Notifier
	cfg      Config
	log      *slog.Logger

	// sweepMu guards lastSweep, when this instance last swept for untracked starts, and
	// sweepFirst, set when a tick's budget ran out before its sweep.
	sweepMu    sync.Mutex
	lastSweep  time.Time
	sweepFirst bool

	// background counts the deletions starts left running behind their answers
	// (dropMessageBehind).
	background behindWork
}

// behindWork counts running goroutines of dropMessageBehind. Not a sync.WaitGroup: starts add to
// it while a test or a shutdown waits, which a WaitGroup does not allow from zero.
type behindWork struct {
	mu      sync.Mutex
	running int
	idle    *sync.Cond
}

func (w *behindWork) add(n int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.running += n; w.running == 0 && w.idle != nil {
		w.idle.Broadcast()
	}
}

func (w *behindWork) wait() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.idle == nil {
		w.idle = sync.NewCond(&w.mu)
	}
	for w.running > 0 {
		w.idle.Wait()
	}
}

// NewService wires a service; notifier may be nil.
func NewService(blobs Blobs, records Records, queue Queue, notifier Notifier, cfg Config, log *slog.Logger) *Service {
	if log == nil {
		log = slog.Default()
	}
	return &Service{blobs: blobs, records: records, queue: queue, notifier: notifier, cfg: cfg.withDefaults(), log: log}
}

// Config returns the effective configuration.
func (s *Service) Config() Config { return s.cfg }

// dropMessageBehind is dropMessage run behind the answer, in its own goroutine with a
// bookkeeping context that outlives the request: a start whose job is recorded in its
// outcome deletes its message while the client reads the answer, not before (issue 13:
// Delete Message is the fourth call of a copy that ends at once and nothing depends on
// it; if it never lands, the tick drops the message of a finished job at its first
// visit). Wait waits for it.
//
// Under HoldBehindAnswer it starts only once the answer has been sent, so that the
// deletion does not compete with it for the CPU, and one answer's deletions run at
// most maxBehindWorkers at a time.
func (s *Service) dropMessageBehind(ctx context.Context, m Message, log *slog.Logger) {
	leave(ctx, s.counted(func() {
		bctx, cancel := bookkeeping(ctx)
		defer cancel()
		s.dropMessage(bctx, m, log)
	}))
}

// Wait returns once the work starts left running behind their answers has ended (a
// tracking message's deletion): for a shutdown that lets it land, and for tests that
// count requests.
func (s *Service) Wait() { s.background.wait() }

func (s *Service) dropMessage(ctx context.Context, m Message, log *slog.Logger) {
	err := s.queue.Delete(ctx, m)
	switch {
	case err == nil:
	case errors.Is(err, ErrConflict):
		// A tick visited the message first (a start slower than FirstPoll): its pop
		// receipt changed. Expected; that tick, or the next, drops the finished job's
		// message.
		log.DebugContext(ctx, "tracking message visited by a tick meanwhile; the tick deletes it", "err", err)
	default:
		// Harmless: the tick drops a message whose job is gone or finished.
		log.WarnContext(ctx, "cannot delete tracking message", "err", err)
	}
}

func (s *Service) sasLifetime(requested Duration) (time.Duration, error) {
	d := time.Duration(requested)
	if d == 0 {
		d = s.cfg.SASLifetime
	}
	if d < time.Minute || d > s.cfg.MaxSASLifetime {
		return 0, newError(CodeInvalidRequest, "sasLifetime",
			fmt.Sprintf("sasLifetime must be between 1m and %s", s.cfg.MaxSASLifetime), nil)
	}
	return d, nil
}

// bookkeeping returns a context for record writes that must land even when the
// request that started the work has gone (a client that hung up must not leave a
// half-recorded start).
func bookkeeping(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), storageServerTimeout)
}
