package copyjob_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/copyjob/copyjobtest"
)

// A start slower than FirstPoll (slow storage) has its message visited by a tick
// before the deletion behind its answer is sent: that deletion's pop receipt is
// superseded, as the README expects. It is an expected race, not a warning.
func TestSupersededBehindDeletionIsNotAWarning(t *testing.T) {
	env := copyjobtest.NewEnv()
	env.Blobs.Put(srcRef, srcSize, nil)
	env.Blobs.SetStartStatus(copyjob.StatusSuccess)
	var buf bytes.Buffer
	cfg := testConfig()
	cfg.Now = env.Clock.Now
	svc := copyjob.NewService(env.Blobs, env.Records, env.Queue, env.Notifier, cfg,
		slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})))
	env.Blobs.OnNext(copyjobtest.OpStartCopy, func() {
		// Copy Blob is slow: a tick visits the start's message meanwhile.
		env.Clock.Advance(cfg.FirstPoll + time.Second)
		if _, err := svc.Tick(context.Background()); err != nil {
			t.Error(err)
		}
	})
	if _, _, err := svc.Start(context.Background(), copyjob.StartRequest{Source: srcURL, Destination: dstRef, CallbackURL: hook}); err != nil {
		t.Fatal(err)
	}
	svc.Wait()
	for _, line := range strings.Split(buf.String(), "\n") {
		if strings.Contains(line, `"level":"WARN"`) && strings.Contains(line, "cannot delete tracking message") {
			t.Fatalf("an expected, harmless race logged at Warn: %s", line)
		}
	}
}
