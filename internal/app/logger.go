package app

import (
	"io"
	"log/slog"

	"github.com/blobcopy/blobcopy/internal/funchost"
	"github.com/blobcopy/blobcopy/internal/redact"
)

// NewLogger is the handler's logger: JSON lines, Warn and Error to stderr, which the
// host logs at Warning and Error level, Info and Debug to stdout (Information). Every
// line is redacted and carries the invocation id its context names. The binary logs
// through it, and so does the app the bench times beside the bare SDK calls.
func NewLogger(stdout, stderr io.Writer, level slog.Leveler) *slog.Logger {
	return slog.New(redact.NewHandler(funchost.NewContextHandler(
		funchost.NewStreamsHandler(stdout, stderr, &slog.HandlerOptions{Level: level}))))
}
