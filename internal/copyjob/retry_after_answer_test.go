package copyjob_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"

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

// TestRetryRightAfterARefusedStartIsAccepted (review R5): a start refused at once (the
// source was not there yet: 404 CannotVerifyCopySource) is answered before its callback
// is sent (effectsBehind). The client puts the source in place and retries at once: the
// retry is answered 409 CopyNotRetryable "the last attempt is still being finished (its
// lease or callback); retry in a minute" for as long as the receiver takes to answer
// the refusal's callback (the effects claim is live; up to the notifier's 10 s). README's
// Retry row does list "409 while ... sending its callback", but before the callbacks
// moved behind the answer that window ended before the client had its answer.
func TestRetryRightAfterARefusedStartIsAccepted(t *testing.T) {
	env := copyjobtest.NewEnv()
	env.Blobs.Put(srcRef, srcSize, nil)
	recv := gateNotifier{open: make(chan struct{})}
	cfg := testConfig()
	cfg.Now = env.Clock.Now
	svc := copyjob.NewService(env.Blobs, env.Records, env.Queue, recv, cfg, slog.New(slog.DiscardHandler))
	defer func() { close(recv.open); svc.Wait() }()
	ctx := context.Background()
	env.Blobs.FailNext(copyjobtest.OpStartCopy, fmt.Errorf("404 CannotVerifyCopySource: %w", copyjob.ErrSourceNotFound))
	req := keyed(copyjob.StartRequest{Source: srcURL, Destination: dstRef, CallbackURL: hook})
	job, _, err := svc.Start(ctx, req)
	if copyjob.CodeOf(err) != copyjob.CodeSourceNotFound {
		t.Fatalf("start: %v, want %s", err, copyjob.CodeSourceNotFound)
	}
	if _, err := svc.Retry(ctx, job.ID, copyjob.RetryOptions{}); copyjob.CodeOf(err) == copyjob.CodeCopyNotRetryable {
		t.Fatalf("retry right after the refused start's answer: %v", err)
	}
}
