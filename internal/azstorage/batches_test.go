package azstorage_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/blobcopy/blobcopy/internal/azstorage"
	"github.com/blobcopy/blobcopy/internal/batch"
	"github.com/blobcopy/blobcopy/internal/config"
	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/testenv/azurite"
)

// TestBatchRecordsOnAzurite: batch records are written with compare-and-swap, the active
// filter and the owner filter run on metadata, a batch's children are listed with their
// statuses from the job records' metadata (and only that batch's), and ListChildren
// reads no document; a job record's "batch" metadata filters GET /api/copies?batch=.
func TestBatchRecordsOnAzurite(t *testing.T) {
	az := azurite.Start(t, azurite.Options{})
	counter := &readCounter{}
	cfg := config.StorageAccount{Name: azurite.DevAccountName, BlobEndpoint: az.BlobEndpoint(azurite.DevAccountName),
		QueueEndpoint: az.QueueEndpoint(azurite.DevAccountName), AccountKey: az.Key(azurite.DevAccountName)}
	copts := az.ClientOptions()
	copts.PerCallPolicies = append(copts.PerCallPolicies, counter)
	a, err := azstorage.NewAccount("", cfg, azstorage.Options{ClientOptions: copts})
	if err != nil {
		t.Fatal(err)
	}
	name := unique("batches")
	records := azstorage.NewRecords(a, name)
	if err := records.EnsureContainer(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	store := azstorage.NewBatchRecords(a, name)
	ctx := testCtx(t)

	b := &batch.Batch{ID: "b-1", Owner: "oid:a", Status: batch.StatusEnumerating}
	if err := store.Create(ctx, b); err != nil {
		t.Fatal(err)
	}
	if err := store.Create(ctx, &batch.Batch{ID: "b-1"}); !errors.Is(err, copyjob.ErrExists) {
		t.Fatalf("second Create: %v", err)
	}
	stale := *b
	b.Status = batch.StatusRunning
	if err := store.Update(ctx, b); err != nil {
		t.Fatal(err)
	}
	if err := store.Update(ctx, &stale); !errors.Is(err, copyjob.ErrConflict) {
		t.Fatalf("stale Update: %v", err)
	}
	done := &batch.Batch{ID: "b-2", Status: batch.StatusSuccess}
	if err := store.Create(ctx, done); err != nil {
		t.Fatal(err)
	}
	got, err := store.Get(ctx, "b-1")
	if err != nil || got.Status != batch.StatusRunning || got.ETag != b.ETag {
		t.Fatalf("Get: %+v, %v", got, err)
	}
	if _, err := store.Get(ctx, "nope"); !errors.Is(err, copyjob.ErrNotFound) {
		t.Fatalf("Get of a missing batch: %v", err)
	}
	for _, tc := range []struct {
		opts batch.ListOptions
		want int
	}{
		{batch.ListOptions{}, 2},
		{batch.ListOptions{Active: true}, 1},
		{batch.ListOptions{ByOwner: true, Owner: "oid:a"}, 1},
		{batch.ListOptions{ByOwner: true, Owner: ""}, 1},
	} {
		page, err := store.List(ctx, tc.opts)
		if err != nil || len(page.Batches) != tc.want {
			t.Errorf("List(%+v): %d batches, %v", tc.opts, len(page.Batches), err)
		}
	}

	etags := map[string]string{}
	for i := range 5 {
		st := copyjob.StatusPending
		if i%2 == 0 {
			st = copyjob.StatusSuccess
		}
		job := &copyjob.Job{ID: batch.ChildID("b-1", fmt.Sprintf("in/%d", i)), Batch: "b-1", Status: st,
			Destination: copyjob.Destination{BlobRef: copyjob.BlobRef{Container: "dst", Blob: fmt.Sprintf("out/%d", i)}}}
		if err := records.Create(ctx, job); err != nil {
			t.Fatal(err)
		}
		etags[job.ID] = job.ETag
	}
	if err := records.Create(ctx, &copyjob.Job{ID: "b-1", Status: copyjob.StatusPending}); err != nil { // a job id equal to the batch id is no child
		t.Fatal(err)
	}
	if err := records.Create(ctx, &copyjob.Job{ID: batch.ChildID("b-2", "x"), Batch: "b-2", Status: copyjob.StatusPending}); err != nil {
		t.Fatal(err)
	}
	counter.reads = nil
	children, err := store.ListChildren(ctx, "b-1", "")
	if err != nil {
		t.Fatal(err)
	}
	pending := 0
	for _, c := range children.Children {
		if c.Status == copyjob.StatusPending {
			pending++
		}
		// The listing's ETag is the one the record's write answered (the batch tick
		// trusts a record it holds with that ETag and skips reading it); a listing
		// may give it without the quotes of the response header.
		if strings.Trim(c.ETag, `"`) != strings.Trim(etags[c.ID], `"`) || c.ETag == "" {
			t.Errorf("child %s listed with ETag %q, created with %q", c.ID, c.ETag, etags[c.ID])
		}
	}
	if len(children.Children) != 5 || pending != 2 || children.NextMarker != "" {
		t.Fatalf("children %+v", children)
	}
	if len(counter.reads) != 0 {
		t.Errorf("ListChildren read documents: %v", counter.reads)
	}
	page, err := records.List(ctx, copyjob.ListOptions{Limit: 100, Batch: "b-2"})
	if err != nil || len(page.Jobs) != 1 || page.Jobs[0].Batch != "b-2" {
		t.Fatalf("List by batch: %+v, %v", page, err)
	}
}
