package batch_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/blobcopy/blobcopy/internal/batch"
	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/copyjob/copyjobtest"
)

// crash makes the process "die" when the k-th child record is about to be created,
// after that child's Copy Blob was answered: from then on none of its requests reaches
// storage (every later call fails), as after a real crash. heal brings the storage back
// for the next process.
type crash struct {
	h       *harness
	mu      sync.Mutex
	crashed bool
}

var errCrash = copyjobtest.ErrCrash

func crashBeforeCreate(h *harness, k int) *crash {
	c := &crash{h: h}
	for i := 1; i < k; i++ {
		h.env.Records.OnNext(copyjobtest.OpCreate, func() {})
	}
	h.env.Records.OnNext(copyjobtest.OpCreate, func() {
		c.mu.Lock()
		c.crashed = true
		c.mu.Unlock()
		for _, op := range []string{copyjobtest.OpCreate, copyjobtest.OpGet, copyjobtest.OpUpdate, copyjobtest.OpList} {
			h.env.Records.FailAlways(op, errCrash)
		}
		for _, op := range []string{copyjobtest.OpStartCopy, copyjobtest.OpCopyState} {
			h.env.Blobs.FailAlways(op, errCrash)
		}
	})
	h.store.BeforeUpdate = func(*batch.Batch) error {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.crashed {
			return errCrash
		}
		return nil
	}
	return c
}

func (c *crash) happened() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.crashed
}

func (c *crash) heal() {
	c.h.env.Records.Heal("")
	c.h.env.Blobs.Heal("")
	c.h.store.BeforeUpdate = nil
}

// crashMidPage submits a batch of 8 source blobs with opts, in pages of 4, and crashes
// its first tick between the 4th child's Copy Blob and its record (f00000..f00002
// recorded; f00003 copied, unrecorded). The storage stays failed until c.heal().
func crashMidPage(t *testing.T, opts copyjob.Options) (*harness, *batch.Batch, *crash) {
	t.Helper()
	h := newHarness(t, batch.Config{Concurrency: 1, PageSize: 4})
	h.putSource(8)
	b := h.submit(t, batch.SubmitRequest{Options: opts})
	c := crashBeforeCreate(h, 4)
	h.tick(t)
	return h, b, c
}

// wantOneCopyPerDestination fails the test for every destination that got more than
// one copy.
func (h *harness) wantOneCopyPerDestination(t *testing.T) {
	t.Helper()
	for dst, n := range h.copiesPerDestination() {
		if n > 1 {
			t.Errorf("%d copies started onto %s", n, dst)
		}
	}
}

// copiesPerDestination counts the Copy Blob calls that started a copy, by destination.
func (h *harness) copiesPerDestination() map[string]int {
	n := map[string]int{}
	for _, c := range h.env.Blobs.StartCopyCalls() {
		if c.CopyID != "" {
			n[c.Dst.Blob]++
		}
	}
	return n
}

// finish completes every pending copy and ticks until the batch is done.
func (h *harness) finish(t *testing.T, id string) *batch.Batch {
	t.Helper()
	for i := 0; !h.store.Batch(id).Status.Terminal(); i++ {
		for _, k := range h.children(id) {
			_ = h.env.Blobs.CompleteCopy(k.Destination.BlobRef)
		}
		h.env.Clock.Advance(time.Minute)
		h.tick(t)
		if i > 10 {
			t.Fatalf("the batch did not finish: %+v", h.store.Batch(id))
		}
	}
	return h.store.Batch(id)
}

// TestBatchCrashBetweenCopyAndRecord: the process dies after a child's Copy Blob and
// before its record exists (first child of the page, or after some were recorded; with
// overwrite true and false). The runner that takes the batch over finds the page begun,
// adopts the copy nobody recorded, recovers the recorded children without a request
// beyond their read, starts the rest: exactly one Copy Blob per destination, and every
// child ends success.
func TestBatchCrashBetweenCopyAndRecord(t *testing.T) {
	for _, tc := range []struct {
		k         int
		overwrite bool
	}{{1, true}, {1, false}, {4, true}, {4, false}} {
		t.Run(fmt.Sprintf("child %d, overwrite %v", tc.k, tc.overwrite), func(t *testing.T) {
			h := newHarness(t, batch.Config{Concurrency: 1})
			const n = 8
			h.putSource(n)
			b := h.submit(t, batch.SubmitRequest{Options: copyjob.Options{Overwrite: tc.overwrite}})
			c := crashBeforeCreate(h, tc.k)
			h.tick(t)
			if !c.happened() {
				t.Fatal("the crash point was not reached")
			}
			c.heal()
			if got := len(h.children(b.ID)); got != tc.k-1 {
				t.Fatalf("%d children recorded before the crash, want %d", got, tc.k-1)
			}
			begun := h.store.Batch(b.ID).PageBegun
			if begun == nil {
				t.Fatal("the page was not recorded begun before its Copy Blob")
			}
			h.tick(t) // the crashed runner's claim is live: nothing happens
			if len(h.children(b.ID)) != tc.k-1 {
				t.Fatal("a runner took the page over while the crashed one's claim was live")
			}
			h.env.Clock.Advance(10 * time.Minute)
			r := h.tick(t)
			got := h.store.Batch(b.ID)
			if got.Status != batch.StatusRunning || got.Started != n || got.PageBegun != nil || r.Started != n {
				t.Fatalf("after the recovery: %+v (report %+v)", got, r)
			}
			h.wantOneCopyPerDestination(t)
			if len(h.copiesPerDestination()) != n {
				t.Errorf("%d destinations copied, want %d", len(h.copiesPerDestination()), n)
			}
			adopted := h.env.Records.Job(batch.ChildID(b.ID, fmt.Sprintf("in/f%05d.dat", tc.k-1)))
			if adopted == nil || adopted.Status != copyjob.StatusPending || adopted.CopyID == "" {
				t.Fatalf("the crashed child: %+v", adopted)
			}
			got = h.finish(t, b.ID)
			if got.Status != batch.StatusSuccess || got.Counts[copyjob.StatusSuccess] != n {
				t.Fatalf("%+v", got)
			}
		})
	}
}

// TestBatchAbortAfterACrashMidPage: a batch aborted after its runner crashed mid-page
// starts nothing new, but still adopts the copy the crash left unrecorded, and aborts
// it: no copy runs that the batch does not know of.
func TestBatchAbortAfterACrashMidPage(t *testing.T) {
	h := newHarness(t, batch.Config{Concurrency: 1})
	h.putSource(8)
	b := h.submit(t, batch.SubmitRequest{})
	c := crashBeforeCreate(h, 3)
	h.tick(t)
	c.heal()
	if _, err := h.svc.Abort(t.Context(), b.ID, nil); err != nil {
		t.Fatal(err)
	}
	h.env.Clock.Advance(10 * time.Minute)
	h.tick(t)
	got := h.store.Batch(b.ID)
	kids := h.children(b.ID)
	if got.Status != batch.StatusAborted || len(kids) != 3 || got.PageBegun != nil {
		t.Fatalf("%+v with %d children", got, len(kids))
	}
	for _, k := range kids {
		if k.Status != copyjob.StatusAborted {
			t.Errorf("child %s is %s", k.Destination.Blob, k.Status)
		}
	}
	if n := len(h.copiesPerDestination()); n != 3 {
		t.Errorf("%d copies started, want the 3 begun before the crash", n)
	}
}

// TestBatchTransientRecordFailures: a child's record creation fails transiently after its
// Copy Blob (its copy runs unrecorded), or its answer is lost (the record exists): the
// page is not recorded done; the next tick recovers it at once and adopts the copy;
// never a second Copy Blob.
func TestBatchTransientRecordFailures(t *testing.T) {
	unavailable := fmt.Errorf("503 ServerBusy: %w", copyjob.ErrUnavailable)
	for _, tc := range []struct {
		name   string
		inject func(*copyjobtest.Records)
	}{
		{"create fails", func(r *copyjobtest.Records) { r.FailNext(copyjobtest.OpCreate, unavailable) }},
		{"create's answer lost", func(r *copyjobtest.Records) { r.LoseNextAnswer(copyjobtest.OpCreate, unavailable) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, batch.Config{})
			const n = 6
			h.putSource(n)
			b := h.submit(t, batch.SubmitRequest{})
			tc.inject(h.env.Records)
			h.tick(t)
			h.tick(t)
			got := h.store.Batch(b.ID)
			if got.Status != batch.StatusRunning || got.Started != n || got.PageBegun != nil {
				t.Fatalf("%+v", got)
			}
			h.wantOneCopyPerDestination(t)
			for _, k := range h.children(b.ID) {
				if k.Status != copyjob.StatusPending {
					t.Errorf("child %s is %s", k.Destination.Blob, k.Status)
				}
			}
			if got := h.finish(t, b.ID); got.Status != batch.StatusSuccess {
				t.Fatalf("%+v", got)
			}
		})
	}
}

// TestBatchCopyInDoubtKeepsTheClaim: a Copy Blob whose answer was lost, a destination
// that could not be read to tell, and a record that could not be written: storage may
// still carry the request out, so the runner keeps the batch's claim until it expires
// (nobody recovers the page while the request may be in flight); the recovery then
// adopts the copy that did start.
func TestBatchCopyInDoubtKeepsTheClaim(t *testing.T) {
	h := newHarness(t, batch.Config{Concurrency: 1})
	h.putSource(3)
	b := h.submit(t, batch.SubmitRequest{})
	unavailable := fmt.Errorf("500 OperationTimedOut: %w", copyjob.ErrUnavailable)
	h.env.Blobs.LoseNextAnswer(copyjobtest.OpStartCopy, unavailable)
	h.env.Blobs.FailNext(copyjobtest.OpCopyState, unavailable)
	h.env.Records.FailNext(copyjobtest.OpCreate, unavailable)
	h.tick(t)
	got := h.store.Batch(b.ID)
	if got.Claim == nil || got.PageBegun == nil {
		t.Fatalf("the claim was given back with a Copy Blob in doubt: %+v", got)
	}
	if n := len(h.children(b.ID)); n != 2 {
		t.Fatalf("%d children recorded, want the 2 the page started besides the one in doubt", n)
	}
	h.tick(t)
	if n := len(h.children(b.ID)); n != 2 {
		t.Fatal("the page was taken up while the claim was live")
	}
	h.env.Clock.Advance(10 * time.Minute)
	h.tick(t)
	if got := h.store.Batch(b.ID); got.Started != 3 || got.Status != batch.StatusRunning {
		t.Fatalf("%+v", got)
	}
	h.wantOneCopyPerDestination(t)
	if got := h.finish(t, b.ID); got.Status != batch.StatusSuccess {
		t.Fatalf("%+v", got)
	}
}

// TestBatchChildRefusedOnceRecorded: a child whose Copy Blob is refused for good is
// recorded once, startFailed with the refusal (no second request), and counted.
func TestBatchChildRefusedOnceRecorded(t *testing.T) {
	h := newHarness(t, batch.Config{})
	h.putSource(3)
	h.env.Blobs.Put(copyjob.BlobRef{Container: "dst", Blob: "out/f00001.dat"}, 5, nil) // exists: overwrite is false
	b := h.submit(t, batch.SubmitRequest{})
	h.tick(t)
	refused := h.env.Records.Job(batch.ChildID(b.ID, "in/f00001.dat"))
	if refused == nil || refused.Status != copyjob.StatusStartFailed || refused.Refusal == nil ||
		refused.Refusal.Code != copyjob.CodeDestinationExists {
		t.Fatalf("%+v", refused)
	}
	if c := h.env.Records.Calls(copyjobtest.OpCreate); c != 3 || h.env.Records.Calls(copyjobtest.OpUpdate) != 0 {
		t.Fatalf("%d creates, %d updates", c, h.env.Records.Calls(copyjobtest.OpUpdate))
	}
	got := h.finish(t, b.ID)
	if got.Status != batch.StatusFailed || got.Counts[copyjob.StatusStartFailed] != 1 || len(got.Failures) != 1 {
		t.Fatalf("%+v", got)
	}
}

// TestBatchBudgetBetweenPagesNeedsNoRecovery: a runner whose budget ends between pages
// leaves no page begun (the next page was begun by its page-end write and not started):
// the next tick starts that page as a fresh one, with no read of a record or a
// destination.
func TestBatchBudgetBetweenPagesNeedsNoRecovery(t *testing.T) {
	h := newHarness(t, batch.Config{PageSize: 5, TickBudget: 400 * time.Millisecond})
	h.putSource(15)
	b := h.submit(t, batch.SubmitRequest{})
	for range 3 { // the counting pages
		h.env.Blobs.OnNext(copyjobtest.OpListBlobs, func() {})
	}
	// The first page of starts takes most of the budget: no page begins after it.
	h.env.Blobs.OnNext(copyjobtest.OpListBlobs, func() { time.Sleep(350 * time.Millisecond) })
	r := h.tick(t)
	got := h.store.Batch(b.ID)
	if got.Started != 5 || got.PageBegun != nil || got.Status != batch.StatusEnumerating {
		t.Fatalf("after the first tick: %+v (report %+v)", got, r)
	}
	gets, reads := h.env.Records.Calls(copyjobtest.OpGet), h.env.Blobs.Calls(copyjobtest.OpCopyState)
	for i := 0; h.store.Batch(b.ID).Status == batch.StatusEnumerating; i++ {
		h.tick(t)
		if i > 5 {
			t.Fatal("still enumerating")
		}
	}
	if got := h.store.Batch(b.ID); got.Started != 15 {
		t.Fatalf("%+v", got)
	}
	if g, c := h.env.Records.Calls(copyjobtest.OpGet)-gets, h.env.Blobs.Calls(copyjobtest.OpCopyState)-reads; g != 0 || c != 0 {
		t.Fatalf("the next pages cost %d record reads and %d destination reads: recovered as if half-started", g, c)
	}
}

// TestBatchFromBeforePagesWereRecordedBegun: a batch an earlier version of the app
// submitted, whose runner crashed mid-page after recording (record first) and starting
// some children: nothing says the page is half-started. The first page this version
// starts for it is recovered: the children with records are left alone, never copied
// twice.
func TestBatchFromBeforePagesWereRecordedBegun(t *testing.T) {
	h := newHarness(t, batch.Config{})
	h.putSource(6)
	b := h.submit(t, batch.SubmitRequest{Options: copyjob.Options{Overwrite: true}})
	h.tick(t)
	if got := h.store.Batch(b.ID); got.Started != 6 {
		t.Fatalf("%+v", got)
	}
	for _, k := range h.children(b.ID) { // copies that ended can be overwritten by a second
		if err := h.env.Blobs.CompleteCopy(k.Destination.BlobRef); err != nil {
			t.Fatal(err)
		}
	}
	// As the earlier version left it: the page's marker not recorded, no word of pages.
	h.store.Modify(b.ID, func(x *batch.Batch) {
		x.Status, x.Phase, x.Marker, x.Started, x.PageBegun, x.PagesBegun, x.Claim = batch.StatusEnumerating, batch.PhaseStarting, "", 0, nil, false, nil
	})
	h.tick(t)
	got := h.store.Batch(b.ID)
	if got.Started != 6 || got.Status != batch.StatusSuccess || !got.PagesBegun {
		t.Fatalf("%+v", got)
	}
	h.wantOneCopyPerDestination(t)
	if got := h.finish(t, b.ID); got.Status != batch.StatusSuccess {
		t.Fatalf("%+v", got)
	}
}
