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

// Exit codes. The host restarts a handler that exits with anything but 0 and
// logs its stderr lines in the exception (WorkerProcess.cs OnProcessExited);
// 200 would ask it for an intentional restart, so it is never used.
const (
	exitOK          = 0 // stopped by SIGINT/SIGTERM after a graceful shutdown
	exitConfigError = 1 // bad settings or app files, or the port cannot be opened
)

func main() {
	if err := run(); err != nil {
		// One line with "error" in it, on stderr: the host logs it at Error level.
		fmt.Fprintln(os.Stderr, "blobcopy: error:", redact.Text(err.Error()))
		os.Exit(exitConfigError)
	}
	os.Exit(exitOK)
}

func run() error {
	// The host starts the handler in the app root (HttpWorkerOptionsSetup.cs: the
	// working directory defaults to it) and names it in FUNCTIONS_APP_ROOT_PATH
	// (HttpWorkerProcess.cs).
	defaultDir := "."
	if root := os.Getenv("FUNCTIONS_APP_ROOT_PATH"); root != "" {
		defaultDir = root
	}
	appDir := flag.String("app-dir", defaultDir, "the function app folder (host.json, function folders, local.settings.json); default $FUNCTIONS_APP_ROOT_PATH or .")
	ensure := flag.Bool("ensure-storage", false, "create the queue and the records container, then exit")
	flag.Parse()

	settings, err := funchost.LoadSettings(filepath.Join(*appDir, "local.settings.json"), os.Environ())
	if err != nil {
		return err
	}
	log := app.NewLogger(os.Stdout, os.Stderr, logLevel(settings))
	slog.SetDefault(log)

	a, err := app.New(*appDir, settings, app.Options{Logger: log})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if *ensure {
		ensureCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		return a.EnsureStorage(ensureCtx)
	}
	// Run listens before anything else touches the network, then creates the app's
	// queue, poison queue and records container in the background (infra creates
	// them too; this is idempotent and costs three requests).
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
