package azstorage_test

import (
	"strings"
	"testing"

	"github.com/blobcopy/blobcopy/internal/azstorage"
	"github.com/blobcopy/blobcopy/internal/batch"
	"github.com/blobcopy/blobcopy/internal/batch/batchtest"
	"github.com/blobcopy/blobcopy/internal/batch/batchtest/contract"
	"github.com/blobcopy/blobcopy/internal/copyjob/copyjobtest"
	"github.com/blobcopy/blobcopy/internal/testenv/azurite"
)

// TestBatchListPagesHoldTheOwnersMatches: GET /api/batches for a caller without
// Copies.ReadAll lists with ByOwner (api/batches.go handleBatchList). The adapter asked
// List Blobs for `limit` records of every owner and filtered afterwards, so alice, with
// one batch behind bob's three, got an empty page with a nextLink for limit=1 (and,
// with limit=100 among thousands of other owners' batches, a run of empty pages), and
// that nextLink was a List Blobs marker naming bob's next batch record. Now a page is
// cut after the owner filter, as GET /api/copies's are ("no page is empty while matches
// remain", copyjob.ListOptions), and its marker names alice's own last batch only; the
// fake store the API and batch tests run on behaves alike.
func TestBatchListPagesHoldTheOwnersMatches(t *testing.T) {
	az := azurite.Start(t, azurite.Options{})
	a, _, _ := azuriteAccount(t, az, nil)
	name := unique("batchpages")
	if err := azstorage.NewRecords(a, name).EnsureContainer(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	stores := map[string]batch.Store{
		"azstorage (Azurite)": azstorage.NewBatchRecords(a, name),
		"batchtest fake":      batchtest.NewStore(copyjobtest.NewRecords()),
	}
	for label, store := range stores {
		ctx := testCtx(t)
		for _, b := range []*batch.Batch{
			{ID: "b-1", Owner: "oid:bob", Status: batch.StatusRunning},
			{ID: "b-2", Owner: "oid:bob", Status: batch.StatusRunning},
			{ID: "b-3", Owner: "oid:bob", Status: batch.StatusRunning},
			{ID: "b-4", Owner: "oid:alice", Status: batch.StatusRunning},
		} {
			if err := store.Create(ctx, b); err != nil {
				t.Fatal(err)
			}
		}
		page, err := store.List(ctx, batch.ListOptions{ByOwner: true, Owner: "oid:alice", Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, b := range page.Batches {
			ids = append(ids, b.ID)
		}
		t.Logf("%s: alice's first page (limit 1) = %v, next marker %q", label, ids, page.NextMarker)
		if len(page.Batches) == 0 {
			t.Errorf("%s: alice's first page of batches (limit 1) is empty (next marker %q) although her batch b-4 exists", label, page.NextMarker)
		}
		// The marker goes to alice verbatim in nextLink (api/batches.go handleBatchList);
		// a List Blobs marker names the next blob (plainly on Azurite, base64 inside
		// Azure's "2!<n>!<...>" markers): it must never be one, since the next blob may be
		// another owner's batch record, whose id GET /api/batches/{id} does not reveal.
		if strings.Contains(page.NextMarker, "b-1") || strings.Contains(page.NextMarker, "b-2") || strings.Contains(page.NextMarker, "b-3") {
			t.Errorf("%s: alice's next marker %q names one of bob's batches", label, page.NextMarker)
		}
	}
}

// TestContractBatchStoreListOnAzurite: the adapter held to the listing contract the
// fake passes (batchtest/contract).
func TestContractBatchStoreListOnAzurite(t *testing.T) {
	az := azurite.Start(t, azurite.Options{})
	a, _, _ := azuriteAccount(t, az, nil)
	contract.RunStoreList(t, func(t *testing.T) batch.Store {
		name := unique("batchlist")
		if err := azstorage.NewRecords(a, name).EnsureContainer(testCtx(t)); err != nil {
			t.Fatal(err)
		}
		return azstorage.NewBatchRecords(a, name)
	})
}
