package batch_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/blobcopy/blobcopy/internal/batch"
	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/copyjob/copyjobtest"
)

// TestBatchSourceWithUserInfoIsRefused: a source with user info
// (https://user:password@account.blob...) is refused at submit (400 InvalidRequest,
// target source, a single copy's words) before anything is stored or logged, and
// Storage.Locate maps no such URL.
func TestBatchSourceWithUserInfoIsRefused(t *testing.T) {
	h := newHarness(t, batch.Config{})
	for _, src := range []string{
		"https://svc:S3cretPassw0rd@" + copyjobtest.DefaultHost + "/src/in/",
		"https://svc@" + copyjobtest.DefaultHost + "/src/in/",
		"https://:S3cretPassw0rd@" + copyjobtest.DefaultHost + "/src/",
	} {
		_, _, err := h.svc.Submit(context.Background(), batch.SubmitRequest{Source: src, Destination: batch.Location{Container: "dst"}})
		var ce *copyjob.Error
		if !errors.As(err, &ce) || ce.Code != copyjob.CodeInvalidRequest || ce.Target != "source" || ce.Message != batch.UserInfoRefused {
			t.Errorf("Submit(%s): %v, want InvalidRequest on source: %q", src, err, batch.UserInfoRefused)
		}
		if loc, ok := h.storage.Locate(src); ok {
			t.Errorf("batchtest Storage.Locate(%s) = %+v, true", src, loc)
		}
	}
	if h.store.Writes != 0 {
		t.Errorf("%d batch records written for refused sources", h.store.Writes)
	}
}

// TestBatchCallbackShowsTheSourceRedacted: a batch recorded before user info was
// refused may hold a password in its source URL; its callback sends the source as
// answers show it (the password replaced), never as recorded.
func TestBatchCallbackShowsTheSourceRedacted(t *testing.T) {
	h := newHarness(t, batch.Config{})
	h.putSource(1)
	b := h.submit(t, batch.SubmitRequest{CallbackURL: "https://hooks.example/batch"})
	h.store.Modify(b.ID, func(x *batch.Batch) {
		x.SourceURL = "https://svc:S3cretPassw0rd@" + copyjobtest.DefaultHost + "/src/in/"
	})
	h.tick(t)
	h.completeChildren(t, b.ID)
	h.tick(t)
	h.tick(t)
	var sent int
	for _, d := range h.env.Notifier.Deliveries() {
		if d.URL != "https://hooks.example/batch" {
			continue
		}
		sent++
		if strings.Contains(d.Job.Source.URL, "S3cretPassw0rd") || !strings.Contains(d.Job.Source.URL, "svc:REDACTED@") {
			t.Errorf("the batch callback sends source %q", d.Job.Source.URL)
		}
	}
	if sent != 1 {
		t.Fatalf("%d batch callbacks sent, want 1 (batch %+v)", sent, h.store.Batch(b.ID))
	}
}
