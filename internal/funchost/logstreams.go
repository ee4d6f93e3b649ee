package funchost

import (
	"context"
	"io"
	"log/slog"
	"sync"
)

// NewStreamsHandler returns a JSON slog.Handler that writes Warn and Error (and
// above) records to stderr and Info and Debug records to stdout, each record to one
// stream only. The Functions host logs a custom handler's stdout lines at Information
// (WorkerProcess.cs OnOutputDataReceived) and reads its stderr lines by their text
// (ParseErrorMessageAndLog): one containing "warn" (any case) at Warning, any other at
// Error (HttpWorkerDescription.UseStdErrorStreamForErrorsOnly is true for custom
// handlers). Every Warn line holds "level":"WARN", so the host logs it at Warning; an
// Error line is logged at Error unless its text also contains "warn" (a message quoting
// a warning), which the host then logs at Warning.
func NewStreamsHandler(stdout, stderr io.Writer, opts *slog.HandlerOptions) slog.Handler {
	return &streamsHandler{out: slog.NewJSONHandler(stdout, opts), err: builtHandler(slog.NewJSONHandler(stderr, opts))}
}

// stderrLevel is the lowest level written to stderr.
const stderrLevel = slog.LevelWarn

type streamsHandler struct {
	out slog.Handler
	// err is built on its first Warn or Error record: most derived loggers (one per
	// start, with its job id) never log one, and formatting their attributes for a
	// second stream is work thrown away.
	err *lazyHandler
}

// lazyHandler is a handler built on first use.
type lazyHandler struct {
	once  sync.Once
	build func() slog.Handler
	h     slog.Handler
}

func builtHandler(h slog.Handler) *lazyHandler {
	l := &lazyHandler{h: h}
	l.once.Do(func() {})
	return l
}

func (l *lazyHandler) get() slog.Handler {
	l.once.Do(func() { l.h, l.build = l.build(), nil })
	return l.h
}

// derive returns the handler with(parent), built when first used.
func (l *lazyHandler) derive(with func(slog.Handler) slog.Handler) *lazyHandler {
	return &lazyHandler{build: func() slog.Handler { return with(l.get()) }}
}

func (h *streamsHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.out.Enabled(ctx, l)
}

func (h *streamsHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= stderrLevel {
		return h.err.get().Handle(ctx, r)
	}
	return h.out.Handle(ctx, r)
}

func (h *streamsHandler) WithAttrs(as []slog.Attr) slog.Handler {
	// A handler owns the slice it is given (slog.Handler), so the deferred build may
	// keep it.
	return &streamsHandler{out: h.out.WithAttrs(as),
		err: h.err.derive(func(p slog.Handler) slog.Handler { return p.WithAttrs(as) })}
}

func (h *streamsHandler) WithGroup(name string) slog.Handler {
	return &streamsHandler{out: h.out.WithGroup(name),
		err: h.err.derive(func(p slog.Handler) slog.Handler { return p.WithGroup(name) })}
}

type invocationIDKey struct{}

// WithInvocationID returns ctx carrying the host's invocation id, which
// NewContextHandler adds to every record logged with that context.
func WithInvocationID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, invocationIDKey{}, id)
}

// InvocationID returns the invocation id ctx carries, if any.
func InvocationID(ctx context.Context) (string, bool) {
	id, ok := ctx.Value(invocationIDKey{}).(string)
	return id, ok && id != ""
}

// NewContextHandler wraps inner so that a record logged with a context from
// WithInvocationID carries "invocationId" (code logging with the
// *Context methods of slog.Logger during an invocation).
func NewContextHandler(inner slog.Handler) slog.Handler { return &contextHandler{inner: inner} }

type contextHandler struct {
	inner slog.Handler
	// tagged is true once WithAttrs added invocationId itself (InvocationLog
	// loggers do), so it is not added twice.
	tagged bool
}

func (h *contextHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h *contextHandler) Handle(ctx context.Context, r slog.Record) error {
	if id, ok := InvocationID(ctx); ok && !h.tagged && !hasAttr(r, InvocationIDAttr) {
		r = r.Clone()
		r.AddAttrs(slog.String(InvocationIDAttr, id))
	}
	return h.inner.Handle(ctx, r)
}

func (h *contextHandler) WithAttrs(as []slog.Attr) slog.Handler {
	tagged := h.tagged
	for _, a := range as {
		tagged = tagged || a.Key == InvocationIDAttr
	}
	return &contextHandler{inner: h.inner.WithAttrs(as), tagged: tagged}
}

func (h *contextHandler) WithGroup(name string) slog.Handler {
	return &contextHandler{inner: h.inner.WithGroup(name), tagged: h.tagged}
}

func hasAttr(r slog.Record, key string) bool {
	found := false
	r.Attrs(func(a slog.Attr) bool {
		found = a.Key == key
		return !found
	})
	return found
}

// InvocationIDAttr is the log attribute naming the host's invocation id.
const InvocationIDAttr = "invocationId"
