package azstorage_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/blobcopy/blobcopy/internal/azstorage"
	"github.com/blobcopy/blobcopy/internal/config"
	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/testenv/azurite"
)

// readCounter counts the record documents read (GET of a jobs/ blob).
type readCounter struct {
	mu    sync.Mutex
	reads []string
	lists int
}

func (c *readCounter) Do(req *policy.Request) (*http.Response, error) {
	r := req.Raw()
	if r.Method == http.MethodGet && r.URL.Query().Get("comp") == "list" {
		c.mu.Lock()
		c.lists++
		c.mu.Unlock()
	}
	if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/jobs/") {
		c.mu.Lock()
		c.reads = append(c.reads, r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:])
		c.mu.Unlock()
	}
	return req.Next()
}

// countingAccount is the app's account on a fresh Azurite, counting record reads and
// listings.
func countingAccount(t *testing.T) (*readCounter, *azstorage.Account) {
	t.Helper()
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
	return counter, a
}

// TestListByOwnerReadsOnlyTheOwnersRecords: the owner filter runs on the listing's
// metadata; another owner's record document is never downloaded.
func TestListByOwnerReadsOnlyTheOwnersRecords(t *testing.T) {
	counter, a := countingAccount(t)
	r := azstorage.NewRecords(a, unique("owners"))
	if err := r.EnsureContainer(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	owners := []string{"oid:a", "oid:b", ""}
	for i := range 30 {
		job := &copyjob.Job{ID: fmt.Sprintf("job-%02d", i), Status: copyjob.StatusPending, Owner: owners[i%3],
			Destination: copyjob.Destination{BlobRef: copyjob.BlobRef{Container: "dst", Blob: "b"}}}
		if err := r.Create(testCtx(t), job); err != nil {
			t.Fatal(err)
		}
	}
	counter.reads = nil
	page, err := r.List(testCtx(t), copyjob.ListOptions{Limit: 100, ByOwner: true, Owner: "oid:b"})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Jobs) != 10 {
		t.Fatalf("listed %d of oid:b's 10 jobs", len(page.Jobs))
	}
	if len(counter.reads) != 10 {
		t.Errorf("List read %d record documents (%v), want only oid:b's 10", len(counter.reads), counter.reads)
	}
	for _, j := range page.Jobs {
		if j.Owner != "oid:b" {
			t.Errorf("listed %s of %q", j.ID, j.Owner)
		}
	}
}

// TestListPageCostsOneListingAndItsReads (issue 13): a page of 5 pending jobs among 40
// records costs one List Blobs request (metadata of up to 5,000 records) and the 5
// reads of the page: never a read per record, never an empty page while matches remain.
func TestListPageCostsOneListingAndItsReads(t *testing.T) {
	counter, a := countingAccount(t)
	r := azstorage.NewRecords(a, unique("pages"))
	if err := r.EnsureContainer(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for i := range 40 {
		status := copyjob.StatusSuccess
		if i%4 == 0 {
			status = copyjob.StatusPending
		}
		job := &copyjob.Job{ID: fmt.Sprintf("job-%02d", i), Status: status, CreatedAt: base.Add(time.Duration(i) * time.Second),
			Destination: copyjob.Destination{BlobRef: copyjob.BlobRef{Container: "dst", Blob: "b"}}}
		if err := r.Create(testCtx(t), job); err != nil {
			t.Fatal(err)
		}
	}
	counter.reads, counter.lists = nil, 0
	page, err := r.List(testCtx(t), copyjob.ListOptions{Limit: 5, Status: copyjob.StatusPending})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, j := range page.Jobs {
		ids = append(ids, j.ID)
	}
	if strings.Join(ids, ",") != "job-36,job-32,job-28,job-24,job-20" || page.NextMarker == "" {
		t.Fatalf("page = %v next %q, want the 5 newest pending jobs and a marker", ids, page.NextMarker)
	}
	if counter.lists != 1 || len(counter.reads) != 5 {
		t.Errorf("a page cost %d listings and %d reads, want 1 and 5", counter.lists, len(counter.reads))
	}
	page, err = r.List(testCtx(t), copyjob.ListOptions{Limit: 5, Status: copyjob.StatusPending, Marker: page.NextMarker})
	if err != nil || len(page.Jobs) != 5 || page.NextMarker != "" || page.Jobs[4].ID != "job-00" {
		t.Fatalf("page 2 = %d jobs, next %q, %v", len(page.Jobs), page.NextMarker, err)
	}
}
