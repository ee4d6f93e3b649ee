package azstorage_test

import (
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/blobcopy/blobcopy/internal/azstorage"
	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/testenv/azurite"
)

// The records' blob index (see Records.Untracked) on accounts and identities that do not
// allow all of it. Found by review: a search refused after the first page, and a store
// nobody probed writing tags an account refuses.

// refuseSearch answers Find Blobs by Tags 403, as for an identity with tags/write but
// without blobs/filter/action (the destination-writer role, for one).
type refuseSearch struct{}

func (refuseSearch) Do(req *policy.Request) (*http.Response, error) {
	if req.Raw().URL.Query().Get("comp") != "blobs" {
		return req.Next()
	}
	h := http.Header{}
	h.Set("x-ms-error-code", "AuthorizationPermissionMismatch")
	return &http.Response{StatusCode: http.StatusForbidden, Status: "403 Forbidden", Header: h,
		Body: io.NopCloser(strings.NewReader("")), Request: req.Raw()}, nil
}

func startingJob(id string) *copyjob.Job {
	created := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	return &copyjob.Job{ID: id, Status: copyjob.StatusStarting, CreatedAt: created, UpdatedAt: created,
		Source:      copyjob.Source{URL: "https://src.example/c/b.bin", Kind: copyjob.SourceExternal},
		Destination: copyjob.Destination{BlobRef: copyjob.BlobRef{Container: "dst", Blob: id + ".bin"}}}
}

// TestUntrackedWhenTheSearchIsRefused: the probe notices that the identity may not
// search (IndexRefusal says so, for the start-up log) and Untracked lists instead, page
// after page: a listing's marker goes back to the listing.
func TestUntrackedWhenTheSearchIsRefused(t *testing.T) {
	az := azurite.Start(t, azurite.Options{})
	a, _, _ := azuriteAccount(t, az, nil, refuseSearch{})
	name := unique("records")
	r := azstorage.NewRecords(a, name)
	if err := r.EnsureContainer(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(r.IndexRefusal(), "403") {
		t.Fatalf("IndexRefusal = %q: want the refused search named", r.IndexRefusal())
	}
	for _, id := range []string{"job-a", "job-b", "job-c"} {
		if err := r.Create(testCtx(t), startingJob(id)); err != nil {
			t.Fatal(err)
		}
	}
	ids, _, err := r.Untracked(testCtx(t), "")
	if err != nil || len(ids) != 3 {
		t.Fatalf("first page: %v %v", ids, err)
	}
	// A later page of the listing (5,000 records a page in production): its marker is a
	// List Blobs marker, and it must go back to List Blobs.
	page, err := a.Service.NewContainerClient(name).NewListBlobsFlatPager(&container.ListBlobsFlatOptions{
		Prefix: to.Ptr("jobs/"), MaxResults: to.Ptr(int32(1))}).NextPage(testCtx(t))
	if err != nil || page.NextMarker == nil || *page.NextMarker == "" {
		t.Fatalf("listing marker: %v", err)
	}
	ids, _, err = r.Untracked(testCtx(t), *page.NextMarker)
	if err != nil || !slices.Equal(ids, []string{"job-b", "job-c"}) {
		t.Fatalf("second page: %v, %v: want job-b and job-c", ids, err)
	}
}

// TestProbeBeforeWritingWhereTagsAreRefused: a store built outside the app (the
// operator CLI's requeue-poison) probes the index before writing, so its writes carry
// no tag an account without the blob index would refuse.
func TestProbeBeforeWritingWhereTagsAreRefused(t *testing.T) {
	az := azurite.Start(t, azurite.Options{})
	name := unique("records")
	a, _, _ := azuriteAccount(t, az, nil, refuseTags{})
	app := azstorage.NewRecords(a, name)
	if err := app.EnsureContainer(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	job := startingJob("job-poisoned")
	job.Status, job.PoisonReason = copyjob.StatusPending, "5 attempts in a row failed"
	if err := app.Create(testCtx(t), job); err != nil {
		t.Fatal(err)
	}
	cli := azstorage.NewRecords(a, name) // as cmd/blobcopy builds it: no EnsureContainer
	if err := cli.ProbeIndex(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	got, err := cli.Get(testCtx(t), job.ID)
	if err != nil {
		t.Fatal(err)
	}
	got.PoisonReason = ""
	if err := cli.Update(testCtx(t), got); err != nil {
		t.Fatalf("a record write after the probe, on an account that refuses tags: %v", err)
	}
}
