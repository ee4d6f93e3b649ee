package copyjob_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/copyjob/copyjobtest"
)

// gateNotifier holds every callback until open is closed (a receiver taking its time,
// up to the notifier's 10 s timeout).
type gateNotifier struct{ open chan struct{} }

func (n gateNotifier) Notify(ctx context.Context, _ string, _ *copyjob.Job) error {
	select {
	case <-n.open:
	case <-ctx.Done():
	}
	return nil
}

// TestRetryRightAfterARefusedStartSaysWhenItCanBeRetried (review R5, R6): a start
// refused at once (the source was not there yet: 404 CannotVerifyCopySource) is answered
// before its callback is sent (effectsBehind). The client puts the source in place and
// retries at once, while the receiver takes its time: the retry answers 409
// CopyNotRetryable saying until when (the effects claim's end, at most EffectsGrace),
// not "in a minute"; once the callback has been sent, the retry is accepted.
func TestRetryRightAfterARefusedStartSaysWhenItCanBeRetried(t *testing.T) {
	env := copyjobtest.NewEnv()
	env.Blobs.Put(srcRef, srcSize, nil)
	recv := gateNotifier{open: make(chan struct{})}
	cfg := testConfig()
	cfg.Now = env.Clock.Now
	svc := copyjob.NewService(env.Blobs, env.Records, env.Queue, recv, cfg, slog.New(slog.DiscardHandler))
	opened := false
	defer func() {
		if !opened {
			close(recv.open)
		}
		svc.Wait()
	}()
	hold, release := copyjob.HoldBehindAnswer(context.Background())
	env.Blobs.FailNext(copyjobtest.OpStartCopy, fmt.Errorf("404 CannotVerifyCopySource: %w", copyjob.ErrSourceNotFound))
	req := keyed(copyjob.StartRequest{Source: srcURL, Destination: dstRef, CallbackURL: hook})
	job, _, err := svc.Start(hold, req)
	release() // the answer has been sent: the callback leaves
	if copyjob.CodeOf(err) != copyjob.CodeSourceNotFound {
		t.Fatalf("start: %v, want %s", err, copyjob.CodeSourceNotFound)
	}
	ctx := context.Background()
	_, err = svc.Retry(ctx, job.ID, copyjob.RetryOptions{})
	until := env.Clock.Now().Add(svc.Config().EffectsGrace).UTC().Format(time.RFC3339)
	if copyjob.CodeOf(err) != copyjob.CodeCopyNotRetryable || !strings.Contains(err.Error(), "retry after "+until) {
		t.Fatalf("retry while the refusal's callback is in flight: %v, want 409 saying retry after %s", err, until)
	}
	close(recv.open)
	opened = true
	svc.Wait()
	if _, err := svc.Retry(ctx, job.ID, copyjob.RetryOptions{}); err != nil {
		t.Fatalf("retry once the callback was sent: %v", err)
	}
}
