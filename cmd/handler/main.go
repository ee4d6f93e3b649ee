// Command handler is the blobcopy custom handler: it serves copyfn and abortfn over
// HTTP and runs statusfn, either under the Azure Functions host
// (FUNCTIONS_CUSTOMHANDLER_PORT set) or standalone with its own timer.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/blobcopy/blobcopy/internal/app"
	"github.com/blobcopy/blobcopy/internal/funchost"
	"github.com/blobcopy/blobcopy/internal/redact"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "blobcopy:", redact.Text(err.Error()))
		os.Exit(1)
	}
}

func run() error {
	appDir := flag.String("app-dir", ".", "the function app folder (host.json, function folders, local.settings.json)")
	ensure := flag.Bool("ensure-storage", false, "create the queue and the records container, then exit")
	flag.Parse()

	settings, err := funchost.LoadSettings(filepath.Join(*appDir, "local.settings.json"), os.Environ())
	if err != nil {
		return err
	}
	log := slog.New(redact.NewHandler(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{Level: logLevel(settings)})))
	slog.SetDefault(log)

	a, err := app.New(*appDir, settings, app.Options{Logger: log})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// The app owns its queue, poison queue and records container: create them if
	// missing (infra creates them too; this is idempotent and costs three requests).
	ensureCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = a.EnsureStorage(ensureCtx)
	cancel()
	if *ensure {
		return err
	}
	if err != nil {
		log.Warn("cannot create the app's queue/container yet; requests will fail until storage answers", "err", err)
	}
	return a.Run(ctx)
}

// logLevel reads BLOBCOPY_LOG_LEVEL (debug, info, warn, error); the host's own
// logging.logLevel in host.json filters what it keeps from stdout.
func logLevel(s funchost.Settings) slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(s.Get("BLOBCOPY_LOG_LEVEL", "INFO")))); err != nil {
		return slog.LevelInfo
	}
	return l
}
