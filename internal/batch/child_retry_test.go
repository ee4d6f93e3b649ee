package batch_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/blobcopy/blobcopy/internal/batch"
	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/copyjob/copyjobtest"
)

// TestRetryNeverSupersedesAChildCallbackNeverAttempted (review R6): a child whose
// Copy Blob is refused at start is recorded startFailed with its callback due; its
// callback is the batch's leftovers pass's (recordCopy / FinishChild), which runs only
// once every child has finished. R5 lets a retry supersede "a callback that only waits
// for its next attempt" (README), but Retry supersedes any undelivered callback: the
// refused child's retried while its siblings still copy has its outcome's callback
// marked gaveUp "not delivered: superseded" without a single attempt. The receiver never
// hears that this child's first attempt failed (before R5 the retry was refused until
// the callback was settled).
func TestRetryNeverSupersedesAChildCallbackNeverAttempted(t *testing.T) {
	h := newHarness(t, batch.Config{})
	h.putSource(3)
	b := h.submit(t, batch.SubmitRequest{ChildCallbackURL: "https://hooks.example/child"})
	h.env.Blobs.FailNext(copyjobtest.OpStartCopy, fmt.Errorf("404 CannotVerifyCopySource: %w", copyjob.ErrSourceNotFound))
	h.tick(t) // counts and starts: the first child is refused, the others copy
	var refused *copyjob.Job
	for _, k := range h.children(b.ID) {
		if k.Status == copyjob.StatusStartFailed {
			refused = k
		}
	}
	if refused == nil {
		t.Fatal("setup: no child refused at start")
	}
	h.env.Clock.Advance(time.Minute)
	h.tick(t)
	h.copies.Wait()
	if _, err := h.copies.Retry(t.Context(), refused.ID, copyjob.RetryOptions{}); copyjob.CodeOf(err) == copyjob.CodeCopyNotRetryable {
		return // refused until its callback is attempted: sound
	}
	h.copies.Wait()
	rec := h.env.Records.Job(refused.ID)
	if len(rec.History) > 0 && rec.History[0].Callback != nil && rec.History[0].Callback.Attempts == 0 && rec.History[0].Callback.GaveUp {
		t.Fatalf("the refused child's callback was superseded by its retry without a single attempt (%d callbacks delivered to the children's receiver so far): %+v",
			len(h.env.Notifier.Deliveries()), *rec.History[0].Callback)
	}
}
