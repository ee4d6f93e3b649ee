package funchost

import (
	"context"
	"log/slog"
	"strings"
	"sync"

	"github.com/blobcopy/blobcopy/internal/redact"
)

// InvocationLog routes one invocation's log records to where the Functions
// host reads them, so that each line shows in the host's log stream exactly
// once and at its level:
//
//   - Warn and Error records go at once to the base logger, whose handler
//     (NewStreamsHandler) writes them to stderr; the host logs a stderr line
//     containing "warn" at Warning and any other at Error (WorkerProcess.cs,
//     ParseErrorMessageAndLog).
//   - Info records are kept as Lines for the Logs of a 2xx answer, which the
//     host logs at Information (DefaultHttpWorkerService.cs,
//     ProcessLogsFromHttpResponse: LogInformation for every entry, whatever it
//     says; Logs cannot carry a level). They do not also go to stdout.
//   - When the invocation fails, the host reads nothing of a non-2xx body
//     (EnsureSuccessStatusCode in ProcessDefaultInvocationRequest), so Finish
//     writes the kept Info records to the base logger (stdout) instead.
//   - Debug records go straight to the base logger.
//
// A direct log (the standalone scheduler, which has no host to read Logs)
// writes every record to the base logger at once. Lines are redacted like
// every other log line. It is safe for concurrent use.
type InvocationLog struct {
	mu       sync.Mutex
	lines    []logLine
	kept     []keptRecord
	direct   bool
	finished bool
	logger   *slog.Logger
}

type logLine struct {
	text string
	// streamed is true for a Warn or Error line, which went to the base logger
	// (stderr) and is left out of Lines.
	streamed bool
}

type keptRecord struct {
	base slog.Handler
	rec  slog.Record
}

// NewInvocationLog returns a log for one host invocation over base
// (slog.Default when nil); args are attributes of every line (Logs and
// stdout/stderr alike), such as the invocation id. Call Finish when the
// invocation ends.
func NewInvocationLog(base *slog.Logger, args ...any) *InvocationLog {
	return newInvocationLog(base, false, args)
}

// NewDirectInvocationLog returns a log that writes every record to base at
// once and collects no Lines, for runs no host reads (the standalone timer).
func NewDirectInvocationLog(base *slog.Logger, args ...any) *InvocationLog {
	return newInvocationLog(base, true, args)
}

func newInvocationLog(base *slog.Logger, direct bool, args []any) *InvocationLog {
	if base == nil {
		base = slog.Default()
	}
	l := &InvocationLog{direct: direct}
	lines := redact.NewHandler(slog.NewTextHandler(lineSink{l}, &slog.HandlerOptions{
		Level: slog.LevelInfo,
		// The host stamps its own time on each line.
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
	l.logger = slog.New(&invocationHandler{log: l, base: base.Handler(), lines: lines}).With(args...)
	return l
}

// Logger returns a logger routing records as described on InvocationLog; pass
// it to code that logs with slog.
func (l *InvocationLog) Logger() *slog.Logger { return l.logger }

// With returns the log's logger with extra attributes.
func (l *InvocationLog) With(args ...any) *slog.Logger { return l.logger.With(args...) }

// Info logs at Info level.
func (l *InvocationLog) Info(msg string, args ...any) {
	l.logger.Log(context.Background(), slog.LevelInfo, msg, args...)
}

// Warn logs at Warn level.
func (l *InvocationLog) Warn(msg string, args ...any) {
	l.logger.Log(context.Background(), slog.LevelWarn, msg, args...)
}

// Error logs at Error level.
func (l *InvocationLog) Error(msg string, args ...any) {
	l.logger.Log(context.Background(), slog.LevelError, msg, args...)
}

// Lines returns the lines for the Logs of a 2xx answer: every Info line so
// far, not the Warn and Error lines, which went to stderr.
func (l *InvocationLog) Lines() []string { return l.collect(false) }

// AllLines returns every line so far, Warn and Error lines included, for the
// body of a failed answer (which the host does not read, but other callers do).
func (l *InvocationLog) AllLines() []string { return l.collect(true) }

func (l *InvocationLog) collect(withStreamed bool) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]string, 0, len(l.lines))
	for _, line := range l.lines {
		if withStreamed || !line.streamed {
			out = append(out, line.text)
		}
	}
	return out
}

// Finish ends the invocation. When it failed, the kept records are written
// to the base logger, since the host drops the Logs of a failed answer.
// Records logged after Finish (by work the invocation left running) go to
// the base logger at once.
func (l *InvocationLog) Finish(failed bool) {
	l.mu.Lock()
	kept := l.kept
	l.kept, l.finished = nil, true
	l.mu.Unlock()
	if !failed {
		return
	}
	for _, k := range kept {
		if k.base.Enabled(context.Background(), k.rec.Level) {
			_ = k.base.Handle(context.Background(), k.rec)
		}
	}
}

// keep records r for Finish; it reports false when the invocation has ended
// and r must go to the base logger now.
func (l *InvocationLog) keep(base slog.Handler, r slog.Record) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.finished || l.direct {
		return false
	}
	l.kept = append(l.kept, keptRecord{base: base, rec: r.Clone()})
	return true
}

func (l *InvocationLog) appendLine(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	// The line handler drops the time, so each line starts with its level
	// ("level=WARN", "level=ERROR", or one of those with "+n").
	l.lines = append(l.lines, logLine{text: line, streamed: strings.HasPrefix(line, "level=WARN") || strings.HasPrefix(line, "level=ERROR")})
}

// invocationHandler is the slog.Handler behind InvocationLog.Logger.
type invocationHandler struct {
	log   *InvocationLog
	base  slog.Handler
	lines slog.Handler
}

func (h *invocationHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.base.Enabled(ctx, level) || h.lines.Enabled(ctx, level)
}

func (h *invocationHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelInfo && !h.log.direct {
		// Warn and Error lines are collected too, for AllLines; Lines leaves them out.
		_ = h.lines.Handle(ctx, r)
	}
	if r.Level >= stderrLevel || r.Level < slog.LevelInfo || !h.log.keep(h.base, r) {
		if !h.base.Enabled(ctx, r.Level) {
			return nil
		}
		return h.base.Handle(ctx, r)
	}
	return nil
}

func (h *invocationHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &invocationHandler{log: h.log, base: h.base.WithAttrs(as), lines: h.lines.WithAttrs(as)}
}

func (h *invocationHandler) WithGroup(name string) slog.Handler {
	return &invocationHandler{log: h.log, base: h.base.WithGroup(name), lines: h.lines.WithGroup(name)}
}

// lineSink receives one Write per record from slog.TextHandler.
type lineSink struct{ log *InvocationLog }

func (s lineSink) Write(p []byte) (int, error) {
	s.log.appendLine(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
