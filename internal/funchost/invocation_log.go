package funchost

import (
	"context"
	"log/slog"
	"strings"
	"sync"
)

// InvocationLog collects log lines for InvokeResponse.Logs, which the host
// shows in the invocation's log stream, and mirrors every record to a
// slog.Logger so the same lines reach stdout. It is safe for concurrent use.
type InvocationLog struct {
	mu     sync.Mutex
	lines  []string
	logger *slog.Logger
}

// NewInvocationLog returns a log that mirrors to base (slog.Default when nil).
func NewInvocationLog(base *slog.Logger) *InvocationLog {
	if base == nil {
		base = slog.Default()
	}
	l := &InvocationLog{}
	lines := slog.NewTextHandler(lineSink{l}, &slog.HandlerOptions{
		Level: slog.LevelInfo,
		// The host stamps its own time on each line.
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	})
	l.logger = slog.New(slog.NewMultiHandler(base.Handler(), lines))
	return l
}

// Logger returns a logger writing both to the invocation's lines and to the
// base logger; pass it to code that logs with slog.
func (l *InvocationLog) Logger() *slog.Logger { return l.logger }

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

// Lines returns a copy of the lines collected so far.
func (l *InvocationLog) Lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string{}, l.lines...)
}

func (l *InvocationLog) appendLine(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, line)
}

// lineSink receives one Write per record from slog.TextHandler.
type lineSink struct{ log *InvocationLog }

func (s lineSink) Write(p []byte) (int, error) {
	s.log.appendLine(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
