package funchost

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// DefaultListenAddress is where the handler listens standalone, the port
// Core Tools uses, so local URLs look the same with or without the host.
const DefaultListenAddress = "127.0.0.1:7071"

// ListenAddress tells where to listen. Under the Functions host,
// FUNCTIONS_CUSTOMHANDLER_PORT is set (and FUNCTIONS_HTTPWORKER_PORT, its
// legacy name, to the same port: HttpWorkerProcess.cs) and the host sends
// to 127.0.0.1 at that port (WorkerConstants.HostName); hosted is then
// true. Standalone, BLOBCOPY_LISTEN_ADDRESS ("host:port") is used,
// DefaultListenAddress when unset.
func ListenAddress(s Settings) (addr string, hosted bool, err error) {
	for _, name := range []string{"FUNCTIONS_CUSTOMHANDLER_PORT", "FUNCTIONS_HTTPWORKER_PORT"} {
		port, ok := s.Lookup(name)
		if !ok || port == "" {
			continue
		}
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return "", false, fmt.Errorf("%s %q is not a port number (1-65535)", name, port)
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

// IsLoopbackAddress reports whether a "host:port" listen address accepts
// connections from this machine only: "localhost" or a loopback IP
// ("127.0.0.1", "[::1]"). An empty host (":8080") listens everywhere.
func IsLoopbackAddress(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Server limits. The host forwards over loopback, but standalone the handler
// may face the network, and a client trickling its request must not hold a
// connection (and a goroutine) indefinitely.
const (
	// DefaultReadHeaderTimeout bounds reading a request's headers.
	DefaultReadHeaderTimeout = 10 * time.Second
	// DefaultReadTimeout bounds reading a whole request, body included: a
	// 1 MiB Event Grid batch, the largest body, arrives well within it, and
	// Event Grid itself gives up after 30 s.
	DefaultReadTimeout = 30 * time.Second
	// DefaultIdleTimeout closes kept-alive connections left unused.
	DefaultIdleTimeout = 2 * time.Minute
	// DefaultMaxHeaderBytes bounds request headers (the host's front end
	// allows less).
	DefaultMaxHeaderBytes = 64 << 10
	// DefaultWriteTimeout bounds a whole request when functionTimeout is
	// unlimited: 30 minutes, Flex Consumption's default functionTimeout,
	// plus the host's own minute of margin.
	DefaultWriteTimeout = 31 * time.Minute
)

// ServerOptions tune Serve; zero fields take the defaults above.
type ServerOptions struct {
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	IdleTimeout       time.Duration
	MaxHeaderBytes    int
	// WriteTimeout bounds a request from its headers to its last byte
	// written, so it must exceed the longest request: a timer invocation
	// runs up to functionTimeout. WriteTimeoutFor computes it.
	WriteTimeout time.Duration
	// ShutdownTimeout is how long in-flight requests may finish after ctx
	// ends.
	ShutdownTimeout time.Duration
}

// WriteTimeoutFor returns a write timeout above a functionTimeout (zero
// means unlimited): one minute more, as the host gives its own HTTP client
// (DefaultHttpWorkerService.cs: FunctionTimeout + 1 minute).
func WriteTimeoutFor(functionTimeout time.Duration) time.Duration {
	if functionTimeout <= 0 {
		return DefaultWriteTimeout
	}
	return functionTimeout + time.Minute
}

func (o ServerOptions) withDefaults() ServerOptions {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	def(&o.ReadTimeout, DefaultReadTimeout)
	def(&o.IdleTimeout, DefaultIdleTimeout)
	def(&o.WriteTimeout, DefaultWriteTimeout)
	def(&o.ShutdownTimeout, 30*time.Second)
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	return o
}

// Listen opens addr. Call it first thing: the host gives the handler 30 s
// to answer its first request and pings every 25 ms
// (DefaultHttpWorkerService.cs IsWorkerReady, HttpWorkerOptions.cs
// InitializationTimeout), and connections made before Serve starts wait in
// the listen backlog instead of failing.
func Listen(ctx context.Context, addr string) (net.Listener, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return ln, nil
}

// Serve serves h on ln until ctx is done, then shuts down gracefully,
// letting in-flight requests finish for up to opts.ShutdownTimeout. It
// returns nil after a graceful shutdown.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, logger *slog.Logger, opts ServerOptions) error {
	if logger == nil {
		logger = slog.Default()
	}
	opts = opts.withDefaults()
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: opts.ReadHeaderTimeout,
		ReadTimeout:       opts.ReadTimeout,
		WriteTimeout:      opts.WriteTimeout,
		IdleTimeout:       opts.IdleTimeout,
		MaxHeaderBytes:    opts.MaxHeaderBytes,
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

	logger.InfoContext(ctx, "shutting down HTTP server", "timeout", opts.ShutdownTimeout)
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opts.ShutdownTimeout)
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
