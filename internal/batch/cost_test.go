package batch_test

import (
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"testing"

	"github.com/blobcopy/blobcopy/internal/batch"
	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/copyjob/copyjobtest"
)

// requestCounts counts the storage requests the fakes saw, by operation: every Blobs,
// Records and Queue operation that is a request to storage, and the batch store's and
// listings'. PrepareSource and URL make none for a source in the app's account.
type requestCounts map[string]int

func (h *harness) requests() requestCounts {
	c := requestCounts{}
	for _, op := range []string{copyjobtest.OpStartCopy, copyjobtest.OpCopyState, copyjobtest.OpAbortCopy, copyjobtest.OpAcquireLease,
		copyjobtest.OpReleaseLease, copyjobtest.OpSnapshot, copyjobtest.OpDeleteSnapshot} {
		c["blob "+op] = h.env.Blobs.Calls(op)
	}
	for _, op := range []string{copyjobtest.OpCreate, copyjobtest.OpGet, copyjobtest.OpUpdate, copyjobtest.OpList} {
		c["record "+op] = h.env.Records.Calls(op)
	}
	for _, op := range []string{copyjobtest.OpEnqueue, copyjobtest.OpDequeue, copyjobtest.OpUpdateMessage, copyjobtest.OpDelete} {
		c["queue "+op] = h.env.Queue.Calls(op)
	}
	c["batch write"], c["batch read"], c["batch listing"] = h.store.Writes, h.store.Reads, h.store.Listings
	c["source listing"], c["destination listing"] = h.storage.SourceListings, h.storage.CopyListings
	return c
}

func (c requestCounts) minus(o requestCounts) requestCounts {
	d := requestCounts{}
	for k, v := range c {
		if v-o[k] != 0 {
			d[k] = v - o[k]
		}
	}
	return d
}

func (c requestCounts) total() int {
	n := 0
	for _, v := range c {
		n += v
	}
	return n
}

func (c requestCounts) String() string {
	var parts []string
	for k, v := range c {
		if v != 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, v))
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

// TestBatchCostPerChild: from submit to success, a batch without source leases whose
// children stay pending for a tick and then complete costs at most 3.5 storage requests
// per child (issue 15): its Copy Blob, its record's creation and final write, and its
// share of listings and batch-record writes. The instance that created the records
// settles them without reading them (their ETags match the listing); another instance
// reads each record once before its final write.
func TestBatchCostPerChild(t *testing.T) {
	for _, tc := range []struct {
		name        string
		n, pageSize int
	}{{"60 children", 60, 0}, {"1,000 children in pages of 300", 1000, 300}} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, batch.Config{PageSize: tc.pageSize})
			h.putSource(tc.n)
			before := h.requests()
			b := h.submit(t, batch.SubmitRequest{})
			h.tick(t)
			if got := h.store.Batch(b.ID); got.Status != batch.StatusRunning || got.Started != tc.n {
				t.Fatalf("after the first tick: %+v", got)
			}
			h.tick(t) // every child pending: listings only
			for _, k := range h.children(b.ID) {
				if k.Status != copyjob.StatusPending {
					t.Fatalf("child %s is %s", k.ID, k.Status)
				}
				if err := h.env.Blobs.CompleteCopy(k.Destination.BlobRef); err != nil {
					t.Fatal(err)
				}
			}
			h.tick(t)
			if got := h.store.Batch(b.ID); got.Status != batch.StatusSuccess || got.Counts[copyjob.StatusSuccess] != tc.n {
				t.Fatalf("after the copies ended: %+v", got)
			}
			spent := h.requests().minus(before)
			perChild := float64(spent.total()) / float64(tc.n)
			t.Logf("%d children: %d requests, %.3f per child (%s)", tc.n, spent.total(), perChild, spent)
			if perChild > 3.5 {
				t.Errorf("%.3f storage requests per child, want at most 3.5", perChild)
			}
			if spent["blob StartCopy"] != tc.n || spent["record Create"] != tc.n || spent["record Update"] != tc.n || spent["record Get"] != 0 {
				t.Errorf("per child: want one Copy Blob, one record creation, one final write and no read; got %s", spent)
			}
		})
	}
}

// TestBatchOtherInstanceReadsBeforeTheFinalWrite: an instance that did not create the
// children's records (a cold cache) reads each one before its final write: 4 requests
// per pending child instead of 3, and the same outcome.
func TestBatchOtherInstanceReadsBeforeTheFinalWrite(t *testing.T) {
	h := newHarness(t, batch.Config{})
	h.putSource(20)
	b := h.submit(t, batch.SubmitRequest{})
	h.tick(t)
	h.completeChildren(t, b.ID)
	other := batch.NewService(batch.Deps{Copies: h.copies, Records: h.env.Records, Blobs: h.env.Blobs, Store: h.store,
		Storage: h.storage, Notifier: h.env.Notifier}, batch.Config{Now: h.env.Clock.Now}, slog.New(slog.DiscardHandler))
	before := h.requests()
	if _, err := other.Tick(t.Context()); err != nil {
		t.Fatal(err)
	}
	spent := h.requests().minus(before)
	if got := h.store.Batch(b.ID); got.Status != batch.StatusSuccess {
		t.Fatalf("%+v", got)
	}
	if spent["record Get"] != 20 || spent["record Update"] != 20 {
		t.Fatalf("another instance: %s, want a read and a write per child", spent)
	}
}

// TestBatchWithoutRecordCache: with the cache off (RecordCache < 0), the tick reads each
// child's record before its final write, and the outcome is the same.
func TestBatchWithoutRecordCache(t *testing.T) {
	h := newHarness(t, batch.Config{RecordCache: -1})
	h.putSource(10)
	b := h.submit(t, batch.SubmitRequest{})
	h.tick(t)
	before := h.requests()
	got := h.finish(t, b.ID)
	spent := h.requests().minus(before)
	if got.Status != batch.StatusSuccess || spent["record Get"] != 10 || spent["record Update"] != 10 {
		t.Fatalf("%+v: %s", got, spent)
	}
}
