package funchost

import (
	"context"
	"io"
	"log/slog"
)

// NewStreamsHandler returns a JSON slog.Handler that writes Error (and above)
// records to stderr and every other record to stdout. The Functions host logs
// a custom handler's stdout at Information and its stderr at Error
// (WorkerProcess.cs: OnOutputDataReceived, ParseErrorMessageAndLog; the
// latter picks Warning for a stderr line containing "warn" and Error for one
// containing "error", which every line written here does as "level":"ERROR").
func NewStreamsHandler(stdout, stderr io.Writer, opts *slog.HandlerOptions) slog.Handler {
	return &streamsHandler{out: slog.NewJSONHandler(stdout, opts), err: slog.NewJSONHandler(stderr, opts)}
}

type streamsHandler struct{ out, err slog.Handler }

func (h *streamsHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.out.Enabled(ctx, l)
}

func (h *streamsHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError {
		return h.err.Handle(ctx, r)
	}
	return h.out.Handle(ctx, r)
}

func (h *streamsHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &streamsHandler{out: h.out.WithAttrs(as), err: h.err.WithAttrs(as)}
}

func (h *streamsHandler) WithGroup(name string) slog.Handler {
	return &streamsHandler{out: h.out.WithGroup(name), err: h.err.WithGroup(name)}
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
