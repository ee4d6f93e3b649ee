package batch_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/blobcopy/blobcopy/internal/batch"
	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/copyjob/copyjobtest"
)

// Review 12: a child of a finished batch retried through POST /api/copies/{id}/retry
// gets no tracking message (retry.go: "followed by its batch's message"), but a finished
// batch is no longer ticked: the retried copy is never settled, its source lease is never
// released and its callback never sent.
func TestRetriedChildOfAFinishedBatchIsFollowed(t *testing.T) {
	h := newHarness(t, batch.Config{})
	h.putSource(2)
	b := h.submit(t, batch.SubmitRequest{Options: copyjob.Options{LeaseSource: true},
		ChildCallbackURL: "https://hooks.example/child"})
	h.tick(t)
	kids := h.children(b.ID)
	if len(kids) != 2 {
		t.Fatalf("%d children", len(kids))
	}
	if err := h.env.Blobs.FailCopy(kids[0].Destination.BlobRef, "403 AuthenticationFailed source SAS expired"); err != nil {
		t.Fatal(err)
	}
	if err := h.env.Blobs.CompleteCopy(kids[1].Destination.BlobRef); err != nil {
		t.Fatal(err)
	}
	h.tick(t)
	h.tick(t)
	if got := h.store.Batch(b.ID); got.Status != batch.StatusFailed {
		t.Fatalf("batch %s", got.Status)
	}
	callbacksBefore := len(h.env.Notifier.Deliveries())

	job, err := h.copies.Retry(context.Background(), kids[0].ID, copyjob.RetryOptions{})
	if err != nil || job.Status != copyjob.StatusPending {
		t.Fatalf("retry: %v %+v", err, job)
	}
	src := *job.Source.Ref
	if h.env.Blobs.LeaseHolder(src) == "" {
		t.Fatal("the retried attempt holds no lease")
	}
	if err := h.env.Blobs.CompleteCopy(job.Destination.BlobRef); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		h.env.Clock.Advance(10 * time.Minute)
		h.tick(t)
		if _, err := h.copies.Tick(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	rec, _ := h.env.Records.Get(context.Background(), job.ID)
	var problems []string
	if rec.Status != copyjob.StatusSuccess {
		problems = append(problems, fmt.Sprintf("record still %s an hour after its copy succeeded", rec.Status))
	}
	if h.env.Blobs.LeaseHolder(src) != "" {
		problems = append(problems, "source lease still held")
	}
	if len(h.env.Notifier.Deliveries()) == callbacksBefore {
		problems = append(problems, "no callback for the retried attempt")
	}
	if len(problems) > 0 {
		t.Fatalf("retried child of a finished batch: %v (queue holds %d messages)", problems, h.env.Queue.Len())
	}
}

// Review 12: the batch's callback gets its delivery id in memory at each attempt and is
// recorded only after the attempt; when that record write fails, the next attempt goes
// out with another webhook-id, so receivers cannot deduplicate (README: "its callback
// is sent once per delivery id like a copy's"; a redelivery keeps its deliveryId).
func TestBatchCallbackRedeliveryKeepsItsDeliveryID(t *testing.T) {
	h := newHarness(t, batch.Config{})
	h.putSource(1)
	h.env.Blobs.SetStartStatus(copyjob.StatusSuccess)
	h.submit(t, batch.SubmitRequest{CallbackURL: "https://hooks.example/batch"})
	// Every write that records a callback attempt fails (an outage, or the process dies
	// right after the POST).
	h.store.BeforeUpdate = func(x *batch.Batch) error {
		if x.Callback != nil && x.Callback.Attempts > 0 {
			return fmt.Errorf("crash: %w", copyjob.ErrUnavailable)
		}
		return nil
	}
	h.tick(t)
	h.store.BeforeUpdate = nil
	h.env.Clock.Advance(time.Hour) // the claim expires
	h.tick(t)
	d := h.env.Notifier.Deliveries()
	if len(d) != 2 {
		t.Fatalf("%d deliveries, want the delivery and its redelivery", len(d))
	}
	if d[0].Job.Callback.DeliveryID != d[1].Job.Callback.DeliveryID {
		t.Fatalf("redelivery of the batch callback carries another delivery id: %q then %q",
			d[0].Job.Callback.DeliveryID, d[1].Job.Callback.DeliveryID)
	}
}

// Review 12: BATCH_MAX_CHILDREN is checked while counting only; the starting phase lists
// the source again and starts a child for every matching blob it finds, so a source that
// grows between the two listings gets more children than the limit.
func TestMaxChildrenHoldsWhenTheSourceGrowsAfterCounting(t *testing.T) {
	h := newHarness(t, batch.Config{MaxChildren: 5, PageSize: 5})
	h.putSource(5)
	h.env.Blobs.SetStartStatus(copyjob.StatusSuccess)
	b := h.submit(t, batch.SubmitRequest{})
	grown := false
	h.store.BeforeUpdate = func(x *batch.Batch) error {
		if !grown && x.Phase == batch.PhaseStarting && x.Started == 0 {
			grown = true // counting ended at 5; uploads land before the starting listing
			for i := range 20 {
				h.env.Blobs.Put(copyjob.BlobRef{Container: "src", Blob: fmt.Sprintf("in/g%05d.dat", i)}, 1, nil)
			}
		}
		return nil
	}
	for range 3 {
		h.tick(t)
	}
	got := h.store.Batch(b.ID)
	if n := len(h.children(b.ID)); n > 5 || got.Started > 5 {
		t.Fatalf("BATCH_MAX_CHILDREN=5 but %d children started (matched %d, started %d, status %s, summary %q)",
			n, got.Matched, got.Started, got.Status, got.Summary())
	}
	// The blobs past the limit are refused, and the batch says so.
	if got.Refused != 20 || got.Matched != 25 || got.Status != batch.StatusFailed ||
		got.Summary() != "5 of 25 children copied, 20 did not copy, 0 not finished" {
		t.Fatalf("batch %s, matched %d, refused %d: %q", got.Status, got.Matched, got.Refused, got.Summary())
	}
}

// Review 12: an abort that lands while a tick starts a page answers 202 ("enumeration
// stops"), but the runner checks AbortRequested once per page, from its own copy of the
// record: every child of the page (up to 5,000) is still started after the abort
// answered. Copies that end at once (small same-account blobs) are not abortable.
func TestAbortAnsweredMidPageStartsNoFurtherChild(t *testing.T) {
	h := newHarness(t, batch.Config{PageSize: 50})
	h.putSource(50)
	h.env.Blobs.SetStartStatus(copyjob.StatusSuccess)
	b := h.submit(t, batch.SubmitRequest{})
	var callsAtAbort int
	h.env.Blobs.OnNext("StartCopy", func() {
		if _, err := h.svc.Abort(context.Background(), b.ID, nil); err != nil {
			t.Errorf("abort: %v", err)
		}
		callsAtAbort = len(h.env.Blobs.StartCopyCalls())
	})
	for range 3 {
		h.tick(t)
	}
	got := h.store.Batch(b.ID)
	after := len(h.env.Blobs.StartCopyCalls()) - callsAtAbort
	if after > 1 { // the call the abort raced with
		t.Fatalf("%d Copy Blob calls after the abort answered; batch %s, counts %v", after, got.Status, got.Counts)
	}
}

// Review 12: children left "starting" by a transient Copy Blob failure are taken over
// by the batch's tracking (resumeChildren) even after the batch's abort was recorded:
// their copies start after the abort answered 202.
func TestAbortedBatchDoesNotResumeChildrenLeftStarting(t *testing.T) {
	h := newHarness(t, batch.Config{})
	h.putSource(3)
	h.env.Blobs.FailAlways("StartCopy", fmt.Errorf("503: %w", copyjob.ErrUnavailable))
	b := h.submit(t, batch.SubmitRequest{})
	h.tick(t)
	h.env.Blobs.Heal("StartCopy")
	h.env.Blobs.SetStartStatus(copyjob.StatusSuccess)
	if _, err := h.svc.Abort(context.Background(), b.ID, nil); err != nil {
		t.Fatal(err)
	}
	before := 0
	for _, c := range h.env.Blobs.StartCopyCalls() {
		if c.Err == nil {
			before++
		}
	}
	h.env.Clock.Advance(time.Hour)
	for range 3 {
		h.tick(t)
	}
	after := 0
	for _, c := range h.env.Blobs.StartCopyCalls() {
		if c.Err == nil {
			after++
		}
	}
	got := h.store.Batch(b.ID)
	if after > before {
		t.Fatalf("%d copies started after the batch's abort was recorded; batch %s, counts %v", after-before, got.Status, got.Counts)
	}
}

// Review 12 (low): blobs deleted between counting and starting leave Matched above the
// children that exist: the batch ends "success" and its callback says children are
// "not finished".
func TestSourceShrinkingAfterCountingIsNotReportedAsUnfinished(t *testing.T) {
	h := newHarness(t, batch.Config{PageSize: 5})
	h.putSource(5)
	h.env.Blobs.SetStartStatus(copyjob.StatusSuccess)
	h.submit(t, batch.SubmitRequest{CallbackURL: "https://hooks.example/batch"})
	done := false
	h.store.BeforeUpdate = func(x *batch.Batch) error {
		if !done && x.Phase == batch.PhaseStarting && x.Started == 0 {
			done = true
			h.env.Blobs.Delete(copyjob.BlobRef{Container: "src", Blob: "in/f00004.dat"})
		}
		return nil
	}
	for range 3 {
		h.tick(t)
	}
	d := h.env.Notifier.Deliveries()
	if len(d) != 1 {
		t.Fatalf("%d batch callbacks", len(d))
	}
	if got := d[0].Job; got.Status == copyjob.StatusSuccess && got.StatusDescription != "4 of 4 children copied, 0 did not copy, 0 not finished" {
		t.Fatalf("callback of a finished batch: status %s, %q", got.Status, got.StatusDescription)
	}
}

// Review 12, the other half: a child left "starting" in doubt (its Copy Blob's answer
// lost, the destination unreadable) whose copy did start is not left running when its
// batch is aborted: the copy is adopted (no second Copy Blob) and aborted with the batch.
func TestAbortedBatchAbortsTheCopyOfAChildInDoubt(t *testing.T) {
	h := newHarness(t, batch.Config{Concurrency: 1})
	h.putSource(1)
	h.env.Blobs.SetStartStatus(copyjob.StatusPending)
	unavailable := fmt.Errorf("500 OperationTimedOut: %w", copyjob.ErrUnavailable)
	h.env.Blobs.LoseNextAnswer(copyjobtest.OpStartCopy, unavailable)
	h.env.Blobs.FailNext(copyjobtest.OpCopyState, unavailable)
	b := h.submit(t, batch.SubmitRequest{})
	h.tick(t)
	kids := h.children(b.ID)
	if len(kids) != 1 || kids[0].Status != copyjob.StatusStarting {
		t.Fatalf("children %+v, want one starting in doubt", kids)
	}
	if _, err := h.svc.Abort(context.Background(), b.ID, nil); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		h.env.Clock.Advance(10 * time.Minute)
		h.tick(t)
	}
	h.wantOneCopyPerDestination(t)
	child := h.env.Records.Job(kids[0].ID)
	info, _ := h.env.Blobs.Blob(child.Destination.BlobRef)
	if child.Status != copyjob.StatusAborted || info.Copy.Status != copyjob.StatusAborted {
		t.Fatalf("child %s, its copy %s: want both aborted", child.Status, info.Copy.Status)
	}
	if got := h.store.Batch(b.ID); got.Status != batch.StatusAborted {
		t.Fatalf("batch %s", got.Status)
	}
}

// Review 12 (low): listings give last-modified times to the second, so a blob modified
// after a sub-second modifiedSince in the same second read as modified before it.
func TestModifiedSinceKeepsABlobOfTheSameSecond(t *testing.T) {
	since := time.Date(2026, 11, 1, 12, 0, 0, 500_000_000, time.UTC)
	f := batch.Filter{ModifiedSince: &since}
	for _, tt := range []struct {
		listed time.Time
		want   bool
	}{
		{time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC), true}, // modified at .700, listed as :00
		{time.Date(2026, 11, 1, 11, 59, 59, 0, time.UTC), false},
		{time.Date(2026, 11, 1, 12, 0, 1, 0, time.UTC), true},
	} {
		if got := f.Matches(batch.SourceBlob{Name: "x", LastModified: tt.listed}); got != tt.want {
			t.Errorf("listed %s: Matches = %v, want %v", tt.listed, got, tt.want)
		}
	}
}
