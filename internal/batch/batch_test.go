package batch_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/blobcopy/blobcopy/internal/batch"
	"github.com/blobcopy/blobcopy/internal/batch/batchtest"
	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/copyjob/copyjobtest"
)

type harness struct {
	env     *copyjobtest.Env
	copies  *copyjob.Service
	store   *batchtest.Store
	storage *batchtest.Storage
	svc     *batch.Service
}

func newHarness(t *testing.T, cfg batch.Config) *harness {
	t.Helper()
	env := copyjobtest.NewEnv()
	copies := env.Service(copyjob.Config{})
	store := batchtest.NewStore(env.Records)
	storage := batchtest.NewStorage(env.Blobs)
	if cfg.Now == nil {
		cfg.Now = env.Clock.Now
	}
	svc := batch.NewService(batch.Deps{Copies: copies, Records: env.Records, Blobs: env.Blobs, Store: store, Storage: storage,
		Notifier: env.Notifier}, cfg, slog.New(slog.DiscardHandler))
	return &harness{env: env, copies: copies, store: store, storage: storage, svc: svc}
}

// putSource writes n blobs "in/f<i>.dat" (and one outside the prefix) in container "src".
func (h *harness) putSource(n int) {
	for i := range n {
		h.env.Blobs.Put(copyjob.BlobRef{Container: "src", Blob: fmt.Sprintf("in/f%05d.dat", i)}, int64(10+i), nil)
	}
	h.env.Blobs.Put(copyjob.BlobRef{Container: "src", Blob: "other/x.dat"}, 1, nil)
}

func (h *harness) submit(t *testing.T, req batch.SubmitRequest) *batch.Batch {
	t.Helper()
	if req.Source == "" {
		req.Source = "https://" + copyjobtest.DefaultHost + "/src/in/"
	}
	if req.Destination.Container == "" {
		req.Destination = batch.Location{Container: "dst", Prefix: "out/"}
	}
	b, created, err := h.svc.Submit(context.Background(), req)
	if err != nil || !created {
		t.Fatalf("Submit: created %v, %v", created, err)
	}
	return b
}

func (h *harness) tick(t *testing.T) batch.TickReport {
	t.Helper()
	r, err := h.svc.Tick(context.Background())
	if err != nil {
		t.Fatalf("Tick: %v", err)
	}
	return r
}

// completeChildren lets storage finish the copy of every child of the batch.
func (h *harness) completeChildren(t *testing.T, batchID string) {
	t.Helper()
	for _, k := range h.children(batchID) {
		if err := h.env.Blobs.CompleteCopy(k.Destination.BlobRef); err != nil {
			t.Fatal(err)
		}
	}
}

func (h *harness) children(batchID string) []*copyjob.Job {
	var out []*copyjob.Job
	for _, j := range h.env.Records.Jobs() {
		if j.Batch == batchID {
			out = append(out, j)
		}
	}
	return out
}

func TestBatchCopiesAPrefixWithPendingChildrenAndFailures(t *testing.T) {
	h := newHarness(t, batch.Config{PageSize: 5})
	h.putSource(12)
	b := h.submit(t, batch.SubmitRequest{CallbackURL: "https://hooks.example/batch"})
	if b.Status != batch.StatusEnumerating {
		t.Fatalf("status %s", b.Status)
	}
	r := h.tick(t)
	got := h.store.Batch(b.ID)
	if got.Status != batch.StatusRunning || got.Matched != 12 || got.Started != 12 || r.Started != 12 {
		t.Fatalf("after the first tick: %+v (report %+v)", got, r)
	}
	kids := h.children(b.ID)
	if len(kids) != 12 {
		t.Fatalf("%d children", len(kids))
	}
	for _, k := range kids {
		if k.Status != copyjob.StatusPending || k.ID != batch.ChildID(b.ID, k.Source.Ref.Blob) ||
			k.Destination.Blob != "out/"+k.Source.Ref.Blob[len("in/"):] || k.Destination.Container != "dst" {
			t.Fatalf("child %+v", k)
		}
	}
	if n := h.env.Queue.Len(); n != 0 {
		t.Fatalf("children enqueued %d tracking messages; the batch tracks them", n)
	}
	// Pending children: a tick costs listings only.
	calls := h.env.Records.Calls(copyjobtest.OpGet)
	r = h.tick(t)
	if r.Changed != 0 || h.env.Records.Calls(copyjobtest.OpGet) != calls || h.env.Blobs.Calls(copyjobtest.OpCopyState) != 0 {
		t.Fatalf("a tick over pending children read records or blobs one by one: %+v", r)
	}
	for i, k := range kids {
		if i < 2 {
			if err := h.env.Blobs.FailCopy(k.Destination.BlobRef, "500 InternalError source read"); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := h.env.Blobs.CompleteCopy(k.Destination.BlobRef); err != nil {
			t.Fatal(err)
		}
	}
	r = h.tick(t)
	got = h.store.Batch(b.ID)
	if r.Changed != 12 || got.Status != batch.StatusFailed || got.Counts[copyjob.StatusSuccess] != 10 ||
		got.Counts[copyjob.StatusFailed] != 2 || len(got.Failures) != 2 || got.CompletedAt == nil {
		t.Fatalf("after the copies ended: %+v (report %+v)", got, r)
	}
	if got.Failures[0].Status != copyjob.StatusFailed || got.Failures[0].Description == "" {
		t.Fatalf("failure %+v", got.Failures[0])
	}
	if got.BytesTotal == 0 || got.BytesCopied > got.BytesTotal {
		t.Fatalf("bytes %d/%d", got.BytesCopied, got.BytesTotal)
	}
	if d := h.env.Notifier.Deliveries(); len(d) != 1 || d[0].Job.ID != b.ID || d[0].Job.Status != copyjob.StatusFailed {
		t.Fatalf("callbacks %+v, want one for the batch", d)
	}
	h.tick(t)
	if d := h.env.Notifier.Deliveries(); len(d) != 1 {
		t.Fatalf("%d callbacks after another tick", len(d))
	}
}

func TestBatchSuccessKeepsRelativeNamesAndFilters(t *testing.T) {
	h := newHarness(t, batch.Config{})
	h.putSource(4)
	h.env.Blobs.SetStartStatus(copyjob.StatusSuccess)
	h.env.Blobs.Put(copyjob.BlobRef{Container: "src", Blob: "in/sub/notes.txt"}, 3, nil)
	b := h.submit(t, batch.SubmitRequest{Filter: batch.Filter{Suffix: ".dat"}})
	h.tick(t)
	got := h.store.Batch(b.ID)
	if got.Status != batch.StatusSuccess || got.Matched != 4 || got.Counts[copyjob.StatusSuccess] != 4 {
		t.Fatalf("%+v", got)
	}
	if _, ok := h.env.Blobs.Blob(copyjob.BlobRef{Container: "dst", Blob: "out/f00003.dat"}); !ok {
		t.Fatal("relative name not kept under the destination prefix")
	}
	if _, ok := h.env.Blobs.Blob(copyjob.BlobRef{Container: "dst", Blob: "out/sub/notes.txt"}); ok {
		t.Fatal("the suffix filter let notes.txt through")
	}
	since := h.env.Clock.Now().Add(time.Hour)
	h.env.Clock.Advance(2 * time.Hour)
	h.env.Blobs.Put(copyjob.BlobRef{Container: "src", Blob: "in/new.dat"}, 5, nil)
	b2 := h.submit(t, batch.SubmitRequest{Filter: batch.Filter{ModifiedSince: &since}, Destination: batch.Location{Container: "dst2"}})
	h.tick(t)
	if got := h.store.Batch(b2.ID); got.Matched != 1 || got.Status != batch.StatusSuccess {
		t.Fatalf("modifiedSince: %+v", got)
	}
}

func TestBatchEmptyPrefixSucceedsAtOnce(t *testing.T) {
	h := newHarness(t, batch.Config{})
	b := h.submit(t, batch.SubmitRequest{Source: "https://" + copyjobtest.DefaultHost + "/src/nothing-here/"})
	h.tick(t)
	got := h.store.Batch(b.ID)
	if got.Status != batch.StatusSuccess || got.Matched != 0 || len(h.children(b.ID)) != 0 {
		t.Fatalf("%+v", got)
	}
}

func TestBatchTooLargeIsRefusedBeforeAnythingStarts(t *testing.T) {
	h := newHarness(t, batch.Config{MaxChildren: 10, PageSize: 4})
	h.putSource(12)
	b := h.submit(t, batch.SubmitRequest{})
	h.tick(t)
	got := h.store.Batch(b.ID)
	if got.Status != batch.StatusFailed || got.Refusal == nil || got.Refusal.Code != batch.CodeBatchTooLarge {
		t.Fatalf("%+v", got)
	}
	if n := len(h.env.Blobs.StartCopyCalls()); n != 0 || len(h.children(b.ID)) != 0 {
		t.Fatalf("%d copies started for a refused batch", n)
	}
	t.Log(got.Refusal.Message)
}

func TestBatchAbortMidBatch(t *testing.T) {
	// A tick budget that fits about one page of starts: enumeration stops part way.
	h := newHarness(t, batch.Config{PageSize: 5})
	h.putSource(15)
	b := h.submit(t, batch.SubmitRequest{})
	// Let the first page start, then crash-free stop: the second page's marker write
	// is refused, as if the tick ran out.
	pages := 0
	h.store.BeforeUpdate = func(x *batch.Batch) error {
		if x.Phase == batch.PhaseStarting && x.Started > 0 {
			pages++
			if pages > 1 {
				return fmt.Errorf("stop here: %w", copyjob.ErrUnavailable)
			}
		}
		return nil
	}
	h.tick(t)
	h.store.BeforeUpdate = nil
	if _, err := h.svc.Abort(context.Background(), b.ID, nil); err != nil {
		t.Fatal(err)
	}
	h.env.Clock.Advance(10 * time.Minute) // the claim of the stopped tick expires
	h.tick(t)
	got := h.store.Batch(b.ID)
	kids := h.children(b.ID)
	if got.Status != batch.StatusAborted || len(kids) == 15 || len(kids) == 0 {
		t.Fatalf("%+v with %d children", got, len(kids))
	}
	for _, k := range kids {
		if k.Status != copyjob.StatusAborted {
			t.Fatalf("child %s is %s", k.ID, k.Status)
		}
	}
	if _, err := h.svc.Abort(context.Background(), b.ID, nil); err != nil {
		t.Fatalf("aborting an aborted batch again: %v", err)
	}
}

func TestBatchCrashMidEnumerationNeverStartsAChildTwice(t *testing.T) {
	h := newHarness(t, batch.Config{PageSize: 5})
	h.putSource(12)
	b := h.submit(t, batch.SubmitRequest{})
	// The tick dies after the second page's children started, before its marker is
	// recorded (the write never lands; the claim is left to expire).
	crashed := false
	h.store.BeforeUpdate = func(x *batch.Batch) error {
		if crashed || (x.Phase == batch.PhaseStarting && x.Started == 10) {
			crashed = true // the process is gone: none of its writes lands
			return errors.New("crash")
		}
		return nil
	}
	h.tick(t)
	if !crashed {
		t.Fatal("the crash point was not reached")
	}
	h.store.BeforeUpdate = nil
	h.tick(t) // the claim is still live: nothing happens
	if got := h.store.Batch(b.ID); got.Started != 5 {
		t.Fatalf("started %d before the takeover", got.Started)
	}
	h.env.Clock.Advance(10 * time.Minute)
	h.tick(t)
	got := h.store.Batch(b.ID)
	if got.Status != batch.StatusRunning || got.Started != 12 {
		t.Fatalf("%+v", got)
	}
	if n := len(h.env.Blobs.StartCopyCalls()); n != 12 {
		t.Fatalf("%d Copy Blob calls for 12 children", n)
	}
}

func TestBatchTakesOverAChildLeftStarting(t *testing.T) {
	h := newHarness(t, batch.Config{})
	h.putSource(3)
	h.env.Blobs.FailAlways(copyjobtest.OpStartCopy, fmt.Errorf("503: %w", copyjob.ErrUnavailable))
	b := h.submit(t, batch.SubmitRequest{})
	h.tick(t)
	h.env.Blobs.Heal(copyjobtest.OpStartCopy)
	starting := 0
	for _, k := range h.children(b.ID) {
		if k.Status == copyjob.StatusStarting {
			starting++
		}
	}
	if starting != 3 {
		t.Fatalf("%d children starting", starting)
	}
	h.env.Clock.Advance(time.Hour)
	r := h.tick(t)
	if r.Resumed != 3 {
		t.Fatalf("report %+v", r)
	}
	for _, k := range h.children(b.ID) {
		if k.Status != copyjob.StatusPending {
			t.Fatalf("child %s is %s", k.ID, k.Status)
		}
	}
}

func TestBatchSubmitIsIdempotent(t *testing.T) {
	h := newHarness(t, batch.Config{})
	req := batch.SubmitRequest{ID: "b1", RequestHash: "h1", Source: "https://" + copyjobtest.DefaultHost + "/src/in/",
		Destination: batch.Location{Container: "dst"}}
	if _, created, err := h.svc.Submit(context.Background(), req); err != nil || !created {
		t.Fatal(created, err)
	}
	if _, created, err := h.svc.Submit(context.Background(), req); err != nil || created {
		t.Fatal(created, err)
	}
	req.RequestHash = "h2"
	if _, _, err := h.svc.Submit(context.Background(), req); copyjob.CodeOf(err) != copyjob.CodeIdempotencyMismatch {
		t.Fatalf("another body under the same key: %v", err)
	}
}

func TestBatchSubmitRefusals(t *testing.T) {
	h := newHarness(t, batch.Config{})
	for _, tc := range []struct {
		name string
		req  batch.SubmitRequest
	}{
		{"caller SAS", batch.SubmitRequest{Source: "https://" + copyjobtest.DefaultHost + "/src/in/?sig=abc", Destination: batch.Location{Container: "d"}}},
		{"external", batch.SubmitRequest{Source: "https://example.com/src/", Destination: batch.Location{Container: "d"}}},
		{"overlap", batch.SubmitRequest{Source: "https://" + copyjobtest.DefaultHost + "/src/in/", Destination: batch.Location{Container: "src", Prefix: "in/copy/"}}},
		{"no container", batch.SubmitRequest{Source: "https://" + copyjobtest.DefaultHost + "/src/in/"}},
	} {
		if _, _, err := h.svc.Submit(context.Background(), tc.req); copyjob.CodeOf(err) != copyjob.CodeInvalidRequest {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

// TestBatchOfTenThousand measures enumeration (children started per second, on the
// in-memory fakes: the batch's own overhead) and the tick cost per pending child.
func TestBatchOfTenThousand(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 children")
	}
	h := newHarness(t, batch.Config{})
	h.putSource(10_000)
	b := h.submit(t, batch.SubmitRequest{})
	began := time.Now()
	for h.store.Batch(b.ID).Status == batch.StatusEnumerating {
		h.tick(t)
	}
	took := time.Since(began)
	got := h.store.Batch(b.ID)
	if got.Started != 10_000 || len(h.children(b.ID)) != 10_000 {
		t.Fatalf("%+v", got)
	}
	t.Logf("10,000 children started in %v: %.0f children/s on the fakes", took, 10_000/took.Seconds())
	gets, copyStates := h.env.Records.Calls(copyjobtest.OpGet), h.env.Blobs.Calls(copyjobtest.OpCopyState)
	writes, sl, cl, bl := h.store.Writes, h.storage.SourceListings, h.storage.CopyListings, h.store.Listings
	r := h.tick(t)
	requests := (h.env.Records.Calls(copyjobtest.OpGet) - gets) + (h.env.Blobs.Calls(copyjobtest.OpCopyState) - copyStates) +
		(h.store.Writes - writes) + (h.storage.SourceListings - sl) + (h.storage.CopyListings - cl) + (h.store.Listings - bl)
	perChild := float64(requests) / 10_000
	t.Logf("a tick over 10,000 pending children: %d storage requests (%.4f per pending child), report %+v", requests, perChild, r)
	if perChild > 0.1 {
		t.Fatalf("%.4f requests per pending child", perChild)
	}
}

// TestBatchChildCallbacks: with childCallbackUrl every child sends its own callback (a
// copy's), and the batch its one; a child callback that failed is handed to a tracking
// message of its own (it backs off for up to a day), which the copy tick follows, and
// the batch does not wait for it. Each callback is delivered once.
func TestBatchChildCallbacks(t *testing.T) {
	h := newHarness(t, batch.Config{})
	h.putSource(3)
	b := h.submit(t, batch.SubmitRequest{CallbackURL: "https://hooks.example/batch", ChildCallbackURL: "https://hooks.example/child"})
	h.tick(t)
	h.completeChildren(t, b.ID)
	h.env.Notifier.FailAlways(copyjobtest.OpNotify, errors.New("receiver down"))
	h.tick(t)
	if n := len(h.env.Queue.Messages()); n != 3 {
		t.Fatalf("%d tracking messages follow the children's failed callbacks, want 3", n)
	}
	h.env.Notifier.Heal(copyjobtest.OpNotify)
	for range 3 {
		h.env.Clock.Advance(10 * time.Second) // a failed callback is attempted again 5 s later
		h.tick(t)
		if _, err := h.copies.Tick(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	got := h.store.Batch(b.ID)
	if got.Status != batch.StatusSuccess {
		t.Fatalf("%+v", got)
	}
	if n := len(h.env.Queue.Messages()); n != 0 {
		t.Fatalf("%d tracking messages left", n)
	}
	byURL := map[string]int{}
	for _, d := range h.env.Notifier.Deliveries() {
		byURL[d.URL]++
	}
	if byURL["https://hooks.example/child"] != 3 || byURL["https://hooks.example/batch"] != 1 {
		t.Fatalf("deliveries %v", byURL)
	}
}

// TestTwoTickRunnersShareABatch: two instances ticking at once work on a batch one at a
// time (its claim): every child starts once, the outcome is counted once, and the
// batch's callback is delivered once.
func TestTwoTickRunnersShareABatch(t *testing.T) {
	h := newHarness(t, batch.Config{PageSize: 7})
	other := batch.NewService(batch.Deps{Copies: h.copies, Records: h.env.Records, Blobs: h.env.Blobs, Store: h.store,
		Storage: h.storage, Notifier: h.env.Notifier}, batch.Config{PageSize: 7, Now: h.env.Clock.Now}, slog.New(slog.DiscardHandler))
	h.putSource(40)
	b := h.submit(t, batch.SubmitRequest{CallbackURL: "https://hooks.example/batch"})
	both := func() {
		done := make(chan error, 2)
		for _, svc := range []*batch.Service{h.svc, other} {
			go func() { _, err := svc.Tick(context.Background()); done <- err }()
		}
		for range 2 {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := 0; h.store.Batch(b.ID).Status == batch.StatusEnumerating; i++ {
		both()
		if i > 20 {
			t.Fatal("still enumerating")
		}
	}
	if n := len(h.env.Blobs.StartCopyCalls()); n != 40 {
		t.Fatalf("%d Copy Blob calls for 40 children", n)
	}
	h.completeChildren(t, b.ID)
	for i := 0; !h.store.Batch(b.ID).Status.Terminal(); i++ {
		both()
		if i > 20 {
			t.Fatal("not finished")
		}
	}
	both()
	got := h.store.Batch(b.ID)
	if got.Status != batch.StatusSuccess || got.Counts[copyjob.StatusSuccess] != 40 {
		t.Fatalf("%+v", got)
	}
	if d := h.env.Notifier.Deliveries(); len(d) != 1 {
		t.Fatalf("%d batch callbacks", len(d))
	}
}

// TestBatchChildWhoseDestinationWasDeleted: a pending child missing from the destination
// listing is read on its own and recorded destinationMissing, as a single copy would be.
func TestBatchChildWhoseDestinationWasDeleted(t *testing.T) {
	h := newHarness(t, batch.Config{})
	h.putSource(3)
	b := h.submit(t, batch.SubmitRequest{})
	h.tick(t)
	kids := h.children(b.ID)
	h.env.Blobs.Delete(kids[0].Destination.BlobRef)
	for _, k := range kids[1:] {
		if err := h.env.Blobs.CompleteCopy(k.Destination.BlobRef); err != nil {
			t.Fatal(err)
		}
	}
	h.tick(t)
	got := h.store.Batch(b.ID)
	if got.Status != batch.StatusFailed || got.Counts[copyjob.StatusDestinationMissing] != 1 || got.Counts[copyjob.StatusSuccess] != 2 ||
		len(got.Failures) != 1 || got.Failures[0].Status != copyjob.StatusDestinationMissing {
		t.Fatalf("%+v", got)
	}
	if c := h.env.Blobs.Calls(copyjobtest.OpCopyState); c != 1 {
		t.Fatalf("%d Get Blob Properties, want 1 (the missing child's own read)", c)
	}
}
