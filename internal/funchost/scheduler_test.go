package funchost

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/blobcopy/blobcopy/internal/testenv/syncbuf"
)

// These tests use short real intervals and assert on counts and order,
// never on durations, so a loaded machine only makes them slower.

// waitFor polls cond for up to 10 s, generous for a busy CI machine.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func every(d time.Duration) Schedule { return Schedule{expr: d.String(), every: d} }

// startScheduler runs s in the background; the returned func cancels it and
// returns Run's error.
func startScheduler(t *testing.T, s *Scheduler) (stop func() error, done <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { errc <- s.Run(ctx) }()
	t.Cleanup(cancel)
	return func() error { cancel(); return <-errc }, errc
}

func TestSchedulerRunsTicksInOrder(t *testing.T) {
	var mu sync.Mutex
	var infos []TimerInfo
	run := func(ctx context.Context, info TimerInfo, log *InvocationLog) error {
		mu.Lock()
		defer mu.Unlock()
		infos = append(infos, info)
		return nil
	}
	s := NewScheduler("copystatus", every(20*time.Millisecond), run, discardLogger(), SchedulerOptions{})
	stop, _ := startScheduler(t, s)
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(infos) }
	waitFor(t, "three ticks", func() bool { return count() >= 3 })
	if err := stop(); err != nil {
		t.Fatalf("Run = %v, want nil after cancel", err)
	}

	mu.Lock()
	defer mu.Unlock()
	if infos[0].ScheduleStatus == nil || !infos[0].ScheduleStatus.Last.IsZero() {
		t.Errorf("first tick status = %+v, want Last zero", infos[0].ScheduleStatus)
	}
	for i := 1; i < len(infos); i++ {
		prev, cur := infos[i-1].ScheduleStatus, infos[i].ScheduleStatus
		if cur == nil || cur.Last.IsZero() {
			t.Fatalf("tick %d has no Last: %+v", i, cur)
		}
		if !cur.Next.After(cur.LastUpdated) || !cur.Last.After(prev.Last) || cur.LastUpdated.Before(prev.LastUpdated) {
			t.Errorf("tick %d status %+v does not follow %+v", i, cur, prev)
		}
	}
}

func TestSchedulerSkipsTickWhilePreviousRuns(t *testing.T) {
	var logs syncbuf.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))

	release := make(chan struct{})
	var running, maxRunning, calls atomic.Int32
	run := func(ctx context.Context, info TimerInfo, log *InvocationLog) error {
		n := running.Add(1)
		defer running.Add(-1)
		for {
			m := maxRunning.Load()
			if n <= m || maxRunning.CompareAndSwap(m, n) {
				break
			}
		}
		if calls.Add(1) == 1 {
			<-release // the first tick overruns several periods
		}
		return nil
	}
	s := NewScheduler("copystatus", every(20*time.Millisecond), run, logger, SchedulerOptions{})
	stop, _ := startScheduler(t, s)

	waitFor(t, "a skipped tick", func() bool {
		return strings.Contains(logs.String(), "timer tick skipped: previous run still in progress")
	})
	if got := calls.Load(); got != 1 {
		t.Errorf("run called %d times while the first tick was running, want 1", got)
	}
	close(release)
	waitFor(t, "ticks after the slow one", func() bool { return calls.Load() >= 3 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := maxRunning.Load(); got != 1 {
		t.Errorf("at most %d ticks ran at once, want 1", got)
	}
	for line := range strings.SplitSeq(logs.String(), "\n") {
		if strings.Contains(line, "timer tick skipped") {
			if !strings.Contains(line, "level=WARN") || !strings.Contains(line, "function=copystatus") {
				t.Errorf("skip line %q lacks level or function name", line)
			}
			break
		}
	}
}

func TestSchedulerShutdownWaitsForRunningTick(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	var tickCtxErrAtShutdown error
	var hasDeadline atomic.Bool
	finished := make(chan struct{})
	run := func(ctx context.Context, info TimerInfo, log *InvocationLog) error {
		select {
		case <-started:
			return nil // only the first tick matters
		default:
		}
		_, ok := ctx.Deadline()
		hasDeadline.Store(ok)
		close(started)
		<-release
		tickCtxErrAtShutdown = ctx.Err()
		close(finished)
		return nil
	}
	s := NewScheduler("copystatus", every(10*time.Millisecond), run, discardLogger(), SchedulerOptions{Timeout: time.Hour})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- s.Run(ctx) }()

	<-started
	cancel()
	select {
	case err := <-errc:
		t.Fatalf("Run returned %v while a tick was running", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after the tick finished")
	}
	select {
	case <-finished:
	default:
		t.Fatal("Run returned before the tick finished")
	}
	if tickCtxErrAtShutdown != nil {
		t.Errorf("tick context was cancelled by shutdown: %v", tickCtxErrAtShutdown)
	}
	if !hasDeadline.Load() {
		t.Error("tick context has no deadline; want the Timeout budget")
	}
}

func TestSchedulerRunOnStartup(t *testing.T) {
	infos := make(chan TimerInfo, 10)
	run := func(ctx context.Context, info TimerInfo, log *InvocationLog) error {
		infos <- info
		return nil
	}
	s := NewScheduler("copystatus", every(time.Hour), run, discardLogger(), SchedulerOptions{RunOnStartup: true})
	stop, _ := startScheduler(t, s)
	var info TimerInfo
	select {
	case info = <-infos:
	case <-time.After(10 * time.Second):
		t.Fatal("no tick on startup")
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if info.IsPastDue || info.ScheduleStatus == nil || !info.ScheduleStatus.Last.IsZero() || info.ScheduleStatus.Next.IsZero() {
		t.Errorf("startup tick info = %+v, status %+v", info, info.ScheduleStatus)
	}
	if n := len(infos); n != 0 {
		t.Errorf("%d more ticks ran; the next one is an hour away", n)
	}
}

func TestSchedulerMarksLateTickPastDue(t *testing.T) {
	// After the first reading the clock jumps an hour, as after a suspend:
	// the first tick is late by far more than its period.
	var readings atomic.Int32
	now := func() time.Time {
		if readings.Add(1) == 1 {
			return time.Now()
		}
		return time.Now().Add(time.Hour)
	}
	infos := make(chan TimerInfo, 100)
	run := func(ctx context.Context, info TimerInfo, log *InvocationLog) error {
		infos <- info
		return nil
	}
	// A period long enough that a busy machine does not make the second tick late.
	s := NewScheduler("copystatus", every(300*time.Millisecond), run, discardLogger(), SchedulerOptions{Now: now})
	stop, _ := startScheduler(t, s)
	waitFor(t, "two ticks", func() bool { return len(infos) >= 2 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	first, second := <-infos, <-infos
	if !first.IsPastDue {
		t.Error("first tick after the clock jump is not past due")
	}
	if second.IsPastDue {
		t.Error("second tick is past due; it ran on time")
	}
}

func TestSchedulerLogsTickErrors(t *testing.T) {
	var logs syncbuf.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	var calls atomic.Int32
	run := func(ctx context.Context, info TimerInfo, log *InvocationLog) error {
		if calls.Add(1) == 1 {
			panic("tick exploded")
		}
		return context.Canceled
	}
	s := NewScheduler("copystatus", every(10*time.Millisecond), run, logger, SchedulerOptions{})
	stop, _ := startScheduler(t, s)
	waitFor(t, "two ticks", func() bool { return calls.Load() >= 2 })
	waitFor(t, "failure logged", func() bool { return strings.Contains(logs.String(), "timer tick failed") })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "tick exploded") {
		t.Errorf("panic not logged:\n%s", logs.String())
	}
}
