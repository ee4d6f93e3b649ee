package funchost

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"
)

// DefaultListenAddress is where the handler listens standalone, the port
// Core Tools uses, so local URLs look the same with or without the host.
const DefaultListenAddress = "127.0.0.1:7071"

// ListenAddress tells where to listen. Under the Functions host,
// FUNCTIONS_CUSTOMHANDLER_PORT is set and the host expects 127.0.0.1 at
// that port (hosted is true). Standalone, BLOBCOPY_LISTEN_ADDRESS
// ("host:port") is used, DefaultListenAddress when unset.
func ListenAddress(s Settings) (addr string, hosted bool, err error) {
	if port, ok := s.Lookup("FUNCTIONS_CUSTOMHANDLER_PORT"); ok && port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return "", false, fmt.Errorf("FUNCTIONS_CUSTOMHANDLER_PORT %q is not a port number (1-65535)", port)
		}
		return net.JoinHostPort("127.0.0.1", strconv.Itoa(n)), true, nil
	}
	addr = s.Get("BLOBCOPY_LISTEN_ADDRESS", DefaultListenAddress)
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", false, fmt.Errorf("BLOBCOPY_LISTEN_ADDRESS %q is not host:port: %w", addr, err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return "", false, fmt.Errorf("BLOBCOPY_LISTEN_ADDRESS %q: %q is not a port number (0-65535)", addr, port)
	}
	return addr, false, nil
}

// Serve listens on addr and serves h until ctx is done, then shuts down
// gracefully, letting in-flight requests finish for up to shutdownTimeout.
// It returns nil after a graceful shutdown.
func Serve(ctx context.Context, addr string, h http.Handler, logger *slog.Logger, shutdownTimeout time.Duration) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	return serveListener(ctx, ln, h, logger, shutdownTimeout)
}

// ServeListener is Serve on a listener the caller opened, so that a caller can
// fail fast (and say why) when the address is taken before starting anything else.
func ServeListener(ctx context.Context, ln net.Listener, h http.Handler, logger *slog.Logger, shutdownTimeout time.Duration) error {
	return serveListener(ctx, ln, h, logger, shutdownTimeout)
}

func serveListener(ctx context.Context, ln net.Listener, h http.Handler, logger *slog.Logger, shutdownTimeout time.Duration) error {
	if logger == nil {
		logger = slog.Default()
	}
	srv := &http.Server{
		Handler: h,
		// Bounds slow-header clients; bodies are bounded by handlers.
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		// Requests keep ctx's values but not its cancellation, so shutdown
		// lets in-flight requests finish.
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	logger.InfoContext(ctx, "listening", "addr", ln.Addr().String())

	select {
	case err := <-served:
		return fmt.Errorf("serve on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}

	logger.InfoContext(ctx, "shutting down HTTP server", "timeout", shutdownTimeout)
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("shut down HTTP server on %s: %w", ln.Addr(), err)
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve on %s: %w", ln.Addr(), err)
	}
	return nil
}
