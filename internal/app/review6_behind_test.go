package app_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/blobcopy/blobcopy/internal/app"
	"github.com/blobcopy/blobcopy/internal/copyjob"
)

// Review 6: a start whose copy ended at once deletes its tracking message behind its
// answer, and App.Run waits for that deletion at most 5 s on exit. These tests hold
// the start's Delete Message (a policy on the app's storage clients) and check the
// answer, the exit and what the tick does with the message the deletion left.

// deleteHold blocks the app's Delete Message requests on its tracking queue while armed,
// and then fails them for good (403: azcore does not retry it), as a deletion that never
// lands (the process stopped) would leave the queue.
type deleteHold struct {
	mu      sync.Mutex
	armed   bool
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func newDeleteHold() *deleteHold {
	return &deleteHold{armed: true, entered: make(chan struct{}, 16), release: make(chan struct{})}
}

func (d *deleteHold) Do(req *policy.Request) (*http.Response, error) {
	r := req.Raw()
	d.mu.Lock()
	armed := d.armed
	d.mu.Unlock()
	if !armed || r.Method != http.MethodDelete || !strings.Contains(r.URL.Path, "/"+app.DefaultQueue+"/messages/") {
		return req.Next()
	}
	select {
	case d.entered <- struct{}{}:
	default:
	}
	select {
	case <-d.release:
	case <-r.Context().Done():
		return nil, r.Context().Err()
	}
	h := http.Header{}
	h.Set("x-ms-error-code", "AuthorizationFailure")
	return &http.Response{StatusCode: http.StatusForbidden, Status: "403 Forbidden", Header: h,
		Body: io.NopCloser(strings.NewReader("")), Request: r}, nil
}

func (d *deleteHold) let() {
	d.once.Do(func() {
		d.mu.Lock()
		d.armed = false
		d.mu.Unlock()
		close(d.release)
	})
}

// The answer does not wait for Delete Message; an exit waits for it at most
// behindAnswersGrace (5 s) and says so; the message the deletion left is deleted by the
// tick's first visit to the finished job, which stays as recorded. Sound: passes.
func TestReview6ExitWaitsAtMostTheGraceForAHeldDeletion(t *testing.T) {
	hold := newDeleteHold()
	h := newHarnessWith(t, nil, hold)
	t.Cleanup(hold.let)
	src := h.upload("devstoreaccount1", "behind", "a.txt", []byte("ends at once"))
	began := time.Now()
	r := h.startCopy(map[string]any{"source": src, "destination": map[string]any{"container": "behind", "blob": "b.txt"}})
	if r.status != http.StatusOK || r.job(t).Status != copyjob.StatusSuccess {
		t.Fatalf("start: %d %s", r.status, r.body)
	}
	answered := time.Since(began)
	select {
	case <-hold.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the start's Delete Message never began")
	}
	id := r.job(t).ID
	before := h.record(id)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.app.Run(ctx) }()
	time.Sleep(300 * time.Millisecond)
	stopped := time.Now()
	cancel()
	select {
	case err := <-done:
		took := time.Since(stopped)
		t.Logf("answered in %s; Run returned %v after %s with the deletion held", answered, err, took)
		if took < 4*time.Second || took > 9*time.Second {
			t.Errorf("Run returned after %s with a deletion held, want about the 5 s grace", took)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return")
	}
	if !strings.Contains(h.logs.String(), "exiting before the work left behind answers ended") {
		t.Error("no warning about the deletion left behind")
	}
	hold.let() // the deletion fails for good: the message stays for the tick
	time.Sleep(1200 * time.Millisecond)
	h.tickUntil("the tick deletes the finished job's message", func() bool { return h.queueLength(app.DefaultQueue) == 0 })
	after := h.record(id)
	if after.Status != copyjob.StatusSuccess || !after.UpdatedAt.Equal(before.UpdatedAt) {
		t.Errorf("the finished record changed: %s %v -> %s %v", before.Status, before.UpdatedAt, after.Status, after.UpdatedAt)
	}
}
