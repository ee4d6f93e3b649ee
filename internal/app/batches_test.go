package app_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/blobcopy/blobcopy/internal/api"
	"github.com/blobcopy/blobcopy/internal/batch"
	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/testenv/copysim"
)

func (h *harness) getBatch(id string) api.BatchView {
	h.t.Helper()
	r := h.do(http.MethodGet, "/api/batches/"+id, nil, nil)
	if r.status != http.StatusOK {
		h.t.Fatalf("GET batch %s: %d %s", id, r.status, r.body)
	}
	var v api.BatchView
	decodeJSON(h.t, r.body, &v)
	return v
}

func (h *harness) batchChildren(id string) []api.JobView {
	h.t.Helper()
	var all []api.JobView
	path := "/api/copies?limit=1000&batch=" + id
	for path != "" {
		r := h.do(http.MethodGet, path, nil, nil)
		if r.status != http.StatusOK {
			h.t.Fatalf("GET %s: %d %s", path, r.status, r.body)
		}
		var page api.ListView
		decodeJSON(h.t, r.body, &page)
		all = append(all, page.Value...)
		path = page.NextLink
	}
	return all
}

// TestBatchOnAzurite copies a prefix of the app's account through the HTTP API and the
// timer: relative names kept under the destination prefix, the children visible in
// GET /api/copies?batch=, a replayed Idempotency-Key, an empty prefix, a filter.
func TestBatchOnAzurite(t *testing.T) {
	h := newHarness(t, nil)
	var src string
	for i := range 7 {
		src = h.upload("devstoreaccount1", "bsrc", fmt.Sprintf("in/sub%d/f%d.txt", i%2, i), []byte(strings.Repeat("x", 100+i)))
	}
	h.upload("devstoreaccount1", "bsrc", "in/skip.tmp", []byte("tmp"))
	h.upload("devstoreaccount1", "bsrc", "elsewhere/g.txt", []byte("g"))
	_ = src
	body := map[string]any{
		"source":      h.az.BlobEndpoint("devstoreaccount1") + "/bsrc/in/",
		"destination": map[string]any{"container": "bdst", "prefix": "copied/"},
		"filter":      map[string]any{"suffix": ".txt"},
		"metadata":    map[string]string{"batch": "yes"},
	}
	key := map[string]string{"Idempotency-Key": "batch-on-azurite"}
	r := h.do(http.MethodPost, "/api/batches", body, key)
	if r.status != http.StatusAccepted || !strings.HasPrefix(r.header.Get("Location"), "/api/batches/") {
		t.Fatalf("POST /api/batches: %d %s", r.status, r.body)
	}
	var v api.BatchView
	decodeJSON(t, r.body, &v)
	if v.Status != batch.StatusEnumerating || v.ChildrenGetURI != "/api/copies?batch="+v.ID {
		t.Fatalf("%+v", v)
	}
	replay := h.do(http.MethodPost, "/api/batches", body, key)
	var again api.BatchView
	decodeJSON(t, replay.body, &again)
	if replay.header.Get("Idempotent-Replayed") != "true" || again.ID != v.ID {
		t.Fatalf("replay: %d %s", replay.status, replay.body)
	}
	body["tier"] = "Cool"
	if r := h.do(http.MethodPost, "/api/batches", body, key); r.status != http.StatusUnprocessableEntity {
		t.Fatalf("same key, another body: %d %s", r.status, r.body)
	}
	delete(body, "tier")

	h.tickUntil("the batch to finish", func() bool { return h.getBatch(v.ID).Status.Terminal() })
	got := h.getBatch(v.ID)
	if got.Status != batch.StatusSuccess || got.Matched != 7 || got.Counts[copyjob.StatusSuccess] != 7 || got.Percent != 100 {
		t.Fatalf("%+v", got)
	}
	kids := h.batchChildren(v.ID)
	if len(kids) != 7 {
		t.Fatalf("%d children listed", len(kids))
	}
	for _, k := range kids {
		if !strings.HasPrefix(k.Destination.Blob, "copied/sub") || k.Status != copyjob.StatusSuccess || k.Origin != "batch" {
			t.Fatalf("child %+v", k)
		}
	}
	p := h.props("devstoreaccount1", "bdst", "copied/sub1/f3.txt")
	if p.Metadata["batch"] == nil && p.Metadata["Batch"] == nil {
		t.Fatalf("metadata not applied: %v", p.Metadata)
	}
	if h.queueLength("copyjobs") != 0 {
		t.Fatal("children enqueued tracking messages")
	}

	// An empty prefix succeeds with no child.
	r = h.do(http.MethodPost, "/api/batches", map[string]any{
		"source": h.az.BlobEndpoint("devstoreaccount1") + "/bsrc/nothing/", "destination": map[string]any{"container": "bdst"}}, nil)
	decodeJSON(t, r.body, &v)
	h.tickUntil("the empty batch to finish", func() bool { return h.getBatch(v.ID).Status.Terminal() })
	if got := h.getBatch(v.ID); got.Status != batch.StatusSuccess || got.Matched != 0 {
		t.Fatalf("empty: %+v", got)
	}

	// Listing and refusals.
	r = h.do(http.MethodGet, "/api/batches", nil, nil)
	var list api.BatchListView
	decodeJSON(t, r.body, &list)
	if r.status != http.StatusOK || len(list.Value) != 2 {
		t.Fatalf("GET /api/batches: %d %s", r.status, r.body)
	}
	r = h.do(http.MethodPost, "/api/batches", map[string]any{"source": "https://example.com/c/", "destination": map[string]any{"container": "bdst"}}, nil)
	if e := r.errorResponse(t); r.status != http.StatusBadRequest || e.Error.Target != "source" {
		t.Fatalf("external source: %d %s", r.status, r.body)
	}
	r = h.do(http.MethodGet, "/api/batches/no-such-batch", nil, nil)
	if e := r.errorResponse(t); r.status != http.StatusNotFound || e.Error.Code != string(batch.CodeBatchNotFound) {
		t.Fatalf("missing batch: %d %s", r.status, r.body)
	}
	r = h.do(http.MethodPost, "/api/batches/"+v.ID+"/abort", nil, nil)
	if e := r.errorResponse(t); r.status != http.StatusConflict || e.Error.Code != string(batch.CodeBatchFinished) {
		t.Fatalf("abort of a finished batch: %d %s", r.status, r.body)
	}
}

// TestBatchTooLargeOnAzurite: a prefix with more blobs than BATCH_MAX_CHILDREN fails
// before any child starts, and says why.
func TestBatchTooLargeOnAzurite(t *testing.T) {
	h := newHarness(t, map[string]string{"BATCH_MAX_CHILDREN": "3"})
	for i := range 4 {
		h.upload("devstoreaccount1", "big", fmt.Sprintf("f%d", i), []byte("x"))
	}
	r := h.do(http.MethodPost, "/api/batches", map[string]any{
		"source": h.az.BlobEndpoint("devstoreaccount1") + "/big", "destination": map[string]any{"container": "bigcopy"}}, nil)
	var v api.BatchView
	decodeJSON(t, r.body, &v)
	h.tickUntil("the batch to be refused", func() bool { return h.getBatch(v.ID).Status.Terminal() })
	got := h.getBatch(v.ID)
	if got.Status != batch.StatusFailed || got.Error == nil || got.Error.Code != string(batch.CodeBatchTooLarge) ||
		!strings.Contains(got.Error.Message, "AzCopy") || len(h.batchChildren(v.ID)) != 0 {
		b, _ := json.Marshal(got)
		t.Fatalf("%s", b)
	}
}

// TestBatchPendingOnSimulator: a batch whose children's copies stay pending in the copy
// simulator, with source leases: a tick over pending children costs listings only (no
// Get Blob Properties per child); failures are counted and named; an abort mid-batch
// aborts the pending child through Abort Copy Blob; every source lease is released.
func TestBatchPendingOnSimulator(t *testing.T) {
	h := newHarness(t, nil)
	h.sim.CreateContainer(simAccount, "src")
	for i := range 6 {
		if err := h.sim.PutBlob(simAccount, "src", fmt.Sprintf("in/f%d.bin", i), []byte(strings.Repeat("d", 50)), nil); err != nil {
			t.Fatal(err)
		}
	}
	r := h.do(http.MethodPost, "/api/batches", map[string]any{
		"source":      h.sim.AccountEndpoint(simAccount) + "/src/in/",
		"destination": map[string]any{"account": "sim", "container": "dst", "prefix": "out/"},
		"leaseSource": true,
	}, nil)
	if r.status != http.StatusAccepted {
		t.Fatalf("POST: %d %s", r.status, r.body)
	}
	var v api.BatchView
	decodeJSON(t, r.body, &v)
	h.tickUntil("the children to start", func() bool { return h.getBatch(v.ID).Status == batch.StatusRunning })
	h.invokeTimer() // a tracking pass records the counts
	got := h.getBatch(v.ID)
	if got.Started != 6 || got.Counts[copyjob.StatusPending] != 6 {
		t.Fatalf("%+v", got)
	}
	for i := range 6 {
		if l := h.sim.Lease(simAccount, "src", fmt.Sprintf("in/f%d.bin", i)); l.State != "leased" {
			t.Fatalf("source f%d not leased while its copy is pending: %+v", i, l)
		}
	}
	props, lists := h.sim.RequestCount(copysim.OpGetBlobProperties), h.sim.RequestCount(copysim.OpListBlobs)
	h.invokeTimer()
	if n := h.sim.RequestCount(copysim.OpGetBlobProperties) - props; n != 0 {
		t.Fatalf("a tick over 6 pending children made %d Get Blob Properties", n)
	}
	if n := h.sim.RequestCount(copysim.OpListBlobs) - lists; n != 1 {
		t.Fatalf("a tick made %d destination listings, want 1", n)
	}

	for i := range 4 {
		if err := h.sim.Complete(simAccount, "dst", fmt.Sprintf("out/f%d.bin", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.sim.Fail(simAccount, "dst", "out/f4.bin", `500 InternalError "Copy failed."`); err != nil {
		t.Fatal(err)
	}
	h.invokeTimer()
	got = h.getBatch(v.ID)
	if got.Status != batch.StatusRunning || got.Counts[copyjob.StatusSuccess] != 4 || got.Counts[copyjob.StatusFailed] != 1 ||
		got.Counts[copyjob.StatusPending] != 1 || len(got.Failures) != 1 || got.Failures[0].Blob != "in/f4.bin" {
		t.Fatalf("%+v", got)
	}
	if r := h.do(http.MethodPost, "/api/batches/"+v.ID+"/abort", nil, nil); r.status != http.StatusAccepted {
		t.Fatalf("abort: %d %s", r.status, r.body)
	}
	h.tickUntil("the batch to be aborted", func() bool { return h.getBatch(v.ID).Status.Terminal() })
	got = h.getBatch(v.ID)
	if got.Status != batch.StatusAborted || got.Counts[copyjob.StatusAborted] != 1 || got.Counts[copyjob.StatusSuccess] != 4 {
		t.Fatalf("%+v", got)
	}
	if cs, _ := h.sim.Copy(simAccount, "dst", "out/f5.bin"); cs.Status != copysim.StatusAborted {
		t.Fatalf("the pending child's copy is %s", cs.Status)
	}
	for i := range 6 {
		if l := h.sim.Lease(simAccount, "src", fmt.Sprintf("in/f%d.bin", i)); l.State == "leased" {
			t.Fatalf("source f%d still leased after the batch ended: %+v", i, l)
		}
	}
}

// TestBatchOfAMissingContainerFails: a source container that does not exist fails the
// batch with ContainerNotFound, nothing started.
func TestBatchOfAMissingContainerFails(t *testing.T) {
	h := newHarness(t, nil)
	r := h.do(http.MethodPost, "/api/batches", map[string]any{
		"source": h.az.BlobEndpoint("devstoreaccount1") + "/no-such-container", "destination": map[string]any{"container": "bdst"}}, nil)
	var v api.BatchView
	decodeJSON(t, r.body, &v)
	h.tickUntil("the batch to fail", func() bool { return h.getBatch(v.ID).Status.Terminal() })
	if got := h.getBatch(v.ID); got.Status != batch.StatusFailed || got.Error == nil || got.Error.Code != string(copyjob.CodeContainerNotFound) {
		t.Fatalf("%+v", got)
	}
}

// Review 12: source and destination prefixes may not overlap in one container, whatever
// alias names the account: with a second alias of the app's own account
// (COPY_ACCOUNT_SASACCT here), a batch copied a prefix into itself, and with more than
// one listing page would list and copy its own copies again.
func TestBatchPrefixesMayNotOverlapThroughAnotherAliasOfTheAccount(t *testing.T) {
	h := newHarness(t, nil)
	sh := h.withSASAccount(t, h.az.ConnectionString("devstoreaccount1")) // alias "sasacct" = the app's own account
	if err := sh.app.EnsureStorage(t.Context()); err != nil {
		t.Fatal(err)
	}
	h.upload("devstoreaccount1", "ovl", "in/f0.txt", []byte("data"))
	r := h.doAt(sh.srv.URL, http.MethodPost, "/api/batches", map[string]any{
		"source":      h.az.BlobEndpoint("devstoreaccount1") + "/ovl/in/",
		"destination": map[string]any{"account": "sasacct", "container": "ovl", "prefix": "in/copy/"},
	}, nil)
	if r.status != http.StatusBadRequest || !strings.Contains(string(r.body), "overlap") {
		t.Fatalf("answered %d %s, want 400: the prefixes overlap in one container of one account", r.status, r.body)
	}
}
