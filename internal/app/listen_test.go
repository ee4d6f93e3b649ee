package app_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/blobcopy/blobcopy/internal/app"
	"github.com/blobcopy/blobcopy/internal/funchost"
)

// TestRunFailsFastWhenTheAddressIsTaken: with the listen address taken (an orphan of an
// earlier run), Run returns an error naming the address and the setting at once, instead
// of logging "started" and running timer ticks while never listening.
func TestRunFailsFastWhenTheAddressIsTaken(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	addr := taken.Addr().String()
	a, err := app.New(repoRoot(t), funchost.NewSettings(map[string]string{
		"FUNCTIONS_WORKER_RUNTIME": "custom",
		"AzureWebJobsStorage":      "UseDevelopmentStorage=true",
		"COPY_STATUS_SCHEDULE":     "* * * * * *",
		"BLOBCOPY_AUTH_DISABLED":   "true",
		"BLOBCOPY_LISTEN_ADDRESS":  addr,
	}), app.Options{})
	if err != nil {
		t.Fatalf("app.New: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	err = a.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "already in use") || !strings.Contains(err.Error(), "BLOBCOPY_LISTEN_ADDRESS") {
		t.Fatalf("Run = %v, want an error naming %s, 'already in use' and BLOBCOPY_LISTEN_ADDRESS", err, addr)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Run took %s to fail", d)
	}
}
