package funchost

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultTickTimeout bounds a standalone tick when SchedulerOptions.Timeout
// is zero; it is the host's default functionTimeout on the Consumption plan.
const DefaultTickTimeout = 5 * time.Minute

// SchedulerOptions tune a Scheduler; the zero value is usable.
type SchedulerOptions struct {
	// RunOnStartup runs a tick as soon as Run starts, like function.json's
	// runOnStartup.
	RunOnStartup bool
	// Timeout bounds each tick (pass host.json's functionTimeout);
	// zero means DefaultTickTimeout.
	Timeout time.Duration
	// Location is the time zone schedules are read in; nil means UTC, the
	// host's default (WEBSITE_TIME_ZONE changes it there).
	Location *time.Location
	// Now replaces time.Now in tests.
	Now func() time.Time
}

// Scheduler runs a timer function in-process when there is no Functions
// host. Like the host it never runs two ticks of one function at once.
type Scheduler struct {
	name    string
	sched   Schedule
	run     TimerFunc
	logger  *slog.Logger
	opts    SchedulerOptions
	running atomic.Bool
	ticks   sync.WaitGroup
}

// NewScheduler returns a scheduler for the function called name.
func NewScheduler(name string, sched Schedule, run TimerFunc, logger *slog.Logger, opts SchedulerOptions) *Scheduler {
	if logger == nil {
		logger = slog.Default()
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTickTimeout
	}
	if opts.Location == nil {
		opts.Location = time.UTC
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Scheduler{
		name:   name,
		sched:  sched,
		run:    run,
		logger: logger.With("function", name),
		opts:   opts,
	}
}

// Run fires ticks on schedule until ctx is done, then waits for a running
// tick to finish and returns nil. A tick due while the previous one still
// runs is skipped with a warning. Ticks get a context that survives ctx's
// cancellation (so shutdown lets them finish) but ends after Timeout.
func (s *Scheduler) Run(ctx context.Context) error {
	defer s.ticks.Wait()

	now := s.now()
	next := s.sched.Next(now)
	if next.IsZero() {
		return fmt.Errorf("timer %s: schedule %q has no next occurrence after %s", s.name, s.sched, now.Format(time.RFC3339))
	}
	s.logger.InfoContext(ctx, "timer scheduled", "schedule", s.sched.String(), "next", next)

	var last time.Time
	if s.opts.RunOnStartup {
		s.fire(ctx, TimerInfo{ScheduleStatus: &ScheduleStatus{Next: next, LastUpdated: now}})
	}

	timer := time.NewTimer(next.Sub(now))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			s.logger.InfoContext(ctx, "timer stopping", "tickRunning", s.running.Load())
			return nil
		case <-timer.C:
		}
		scheduled := next
		now = s.now()
		following := s.sched.Next(now)
		if following.IsZero() {
			return fmt.Errorf("timer %s: schedule %q has no next occurrence after %s", s.name, s.sched, now.Format(time.RFC3339))
		}
		if s.running.Load() {
			s.logger.WarnContext(ctx, "timer tick skipped: previous run still in progress", "scheduled", scheduled)
		} else {
			// Late by more than a period: the process was suspended or the
			// machine too busy to fire on time.
			period := s.sched.Next(scheduled).Sub(scheduled)
			s.fire(ctx, TimerInfo{
				ScheduleStatus: &ScheduleStatus{Last: last, Next: following, LastUpdated: now},
				IsPastDue:      now.Sub(scheduled) > period,
			})
			last = scheduled
		}
		next = following
		timer.Reset(next.Sub(s.now()))
	}
}

func (s *Scheduler) now() time.Time { return s.opts.Now().In(s.opts.Location) }

// fire starts a tick unless one is running; only Run calls it, so the
// check-then-set cannot race with another fire.
func (s *Scheduler) fire(ctx context.Context, info TimerInfo) {
	s.running.Store(true)
	s.ticks.Add(1)
	tickCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.Timeout)
	go func() {
		defer s.ticks.Done()
		defer s.running.Store(false)
		defer cancel()
		s.tick(tickCtx, info)
	}()
}

func (s *Scheduler) tick(ctx context.Context, info TimerInfo) {
	// No host reads Logs here: lines go to stdout/stderr as they come, each
	// tagged with an invocation id like a hosted invocation's.
	id := newInvocationID()
	ctx = WithInvocationID(ctx, id)
	logger := s.logger.With(InvocationIDAttr, id)
	log := NewDirectInvocationLog(s.logger, InvocationIDAttr, id)
	start := time.Now()
	err := func() (err error) {
		defer func() {
			if p := recover(); p != nil {
				log.Logger().ErrorContext(ctx, "timer tick panicked", "panic", p, "stack", string(debug.Stack()))
				err = fmt.Errorf("panic: %v", p)
			}
		}()
		return s.run(ctx, info, log)
	}()
	switch {
	case err == nil:
		logger.InfoContext(ctx, "timer tick done", "elapsed", time.Since(start), "pastDue", info.IsPastDue)
	case errors.Is(err, ErrAlreadyRunning):
		logger.WarnContext(ctx, "timer tick skipped: another run of the function is in progress")
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil:
		logger.ErrorContext(ctx, "timer tick timed out", "timeout", s.opts.Timeout, "error", err)
	default:
		logger.ErrorContext(ctx, "timer tick failed", "error", err, "elapsed", time.Since(start))
	}
}
