package azstorage_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

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
}

func (c *readCounter) Do(req *policy.Request) (*http.Response, error) {
	r := req.Raw()
	if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/jobs/") {
		c.mu.Lock()
		c.reads = append(c.reads, r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:])
		c.mu.Unlock()
	}
	return req.Next()
}

// TestListByOwnerReadsOnlyTheOwnersRecords: the owner filter runs on the listing's
// metadata; another owner's record document is never downloaded.
func TestListByOwnerReadsOnlyTheOwnersRecords(t *testing.T) {
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
