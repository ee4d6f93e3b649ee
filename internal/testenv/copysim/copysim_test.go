package copysim_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/lease"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"

	"github.com/blobcopy/blobcopy/internal/testenv/copysim"
)

const (
	srcAccount = "srcacct"
	dstAccount = "dstacct"
)

var noRetry = policy.RetryOptions{MaxRetries: -1}

func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func credential(t *testing.T, account string) *azblob.SharedKeyCredential {
	t.Helper()
	cred, err := azblob.NewSharedKeyCredential(account, copysim.AccountKey)
	if err != nil {
		t.Fatal(err)
	}
	return cred
}

func blobClient(t *testing.T, sim *copysim.Server, account, cont, name string, retry policy.RetryOptions) *blob.Client {
	t.Helper()
	c, err := blob.NewClientWithSharedKeyCredential(sim.AccountEndpoint(account)+"/"+cont+"/"+name,
		credential(t, account), &blob.ClientOptions{ClientOptions: azcore.ClientOptions{Retry: retry}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// sasURL signs a read SAS for a simulator blob; the simulator only checks se=.
func sasURL(t *testing.T, sim *copysim.Server, account, cont, name string, expiry time.Time) string {
	t.Helper()
	qp, err := sas.BlobSignatureValues{
		Protocol:      sas.ProtocolHTTPSandHTTP,
		ExpiryTime:    expiry,
		Permissions:   (&sas.BlobPermissions{Read: true}).String(),
		ContainerName: cont,
		BlobName:      name,
	}.SignWithSharedKey(credential(t, account))
	if err != nil {
		t.Fatal(err)
	}
	return sim.AccountEndpoint(account) + "/" + cont + "/" + name + "?" + qp.Encode()
}

// fixture: a source blob of 100 bytes in srcacct and a container in dstacct.
func fixture(t *testing.T, opts copysim.Options) (*copysim.Server, []byte) {
	t.Helper()
	sim := copysim.New(opts)
	t.Cleanup(sim.Close)
	data := bytes.Repeat([]byte("0123456789"), 10)
	sim.PutBlob(srcAccount, "src", "a.bin", data, map[string]string{"origin": "src"})
	sim.CreateContainer(dstAccount, "dst")
	return sim, data
}

func startCopy(t *testing.T, sim *copysim.Server, src string) (*blob.Client, blob.StartCopyFromURLResponse) {
	t.Helper()
	dst := blobClient(t, sim, dstAccount, "dst", "b.bin", noRetry)
	resp, err := dst.StartCopyFromURL(ctx(t), src, nil)
	if err != nil {
		t.Fatalf("StartCopyFromURL: %v", err)
	}
	return dst, resp
}

func props(t *testing.T, c *blob.Client) blob.GetPropertiesResponse {
	t.Helper()
	p, err := c.GetProperties(ctx(t), nil)
	if err != nil {
		t.Fatalf("GetProperties: %v", err)
	}
	return p
}

func TestCopyLifecycle(t *testing.T) {
	t.Parallel()
	sim, data := fixture(t, copysim.Options{})
	src := sasURL(t, sim, srcAccount, "src", "a.bin", time.Now().Add(time.Hour))

	dst, resp := startCopy(t, sim, src)
	if *resp.CopyStatus != blob.CopyStatusTypePending || *resp.CopyID == "" {
		t.Fatalf("start: status %s id %q", *resp.CopyStatus, *resp.CopyID)
	}

	p := props(t, dst)
	if *p.CopyStatus != blob.CopyStatusTypePending || *p.ContentLength != 0 || *p.CopyID != *resp.CopyID {
		t.Fatalf("pending props: status %s len %d id %s", *p.CopyStatus, *p.ContentLength, *p.CopyID)
	}
	if *p.CopySource != src {
		t.Fatalf("x-ms-copy-source %q: want the source as started, SAS included, as Azure answers it", *p.CopySource)
	}
	if st, _ := sim.Copy(dstAccount, "dst", "b.bin"); strings.Contains(st.Source, "sig=") {
		t.Fatalf("Copy().Source %q: want the signature removed for tests", st.Source)
	}
	if p.Metadata["Origin"] == nil || *p.Metadata["Origin"] != "src" {
		t.Fatalf("metadata %v: want the source's metadata", p.Metadata)
	}

	if err := sim.SetProgress(dstAccount, "dst", "b.bin", 10); err != nil {
		t.Fatal(err)
	}
	if got := *props(t, dst).CopyProgress; got != "10/100" {
		t.Fatalf("progress %q, want 10/100", got)
	}

	if err := sim.Complete(dstAccount, "dst", "b.bin"); err != nil {
		t.Fatal(err)
	}
	p = props(t, dst)
	if *p.CopyStatus != blob.CopyStatusTypeSuccess || *p.CopyProgress != "100/100" || p.CopyCompletionTime == nil {
		t.Fatalf("completed props: status %s progress %s", *p.CopyStatus, *p.CopyProgress)
	}
	got, err := dst.DownloadStream(ctx(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer got.Body.Close()
	if b, _ := io.ReadAll(got.Body); !bytes.Equal(b, data) {
		t.Fatalf("downloaded %q", b)
	}
	// A ranged read.
	buf := make([]byte, 5)
	if _, err := dst.DownloadBuffer(ctx(t), buf, &blob.DownloadBufferOptions{Range: blob.HTTPRange{Offset: 10, Count: 5}}); err != nil {
		t.Fatal(err)
	}
	if string(buf) != "01234" {
		t.Fatalf("range read %q", buf)
	}
	if st, ok := sim.Copy(dstAccount, "dst", "b.bin"); !ok || st.Status != copysim.StatusSuccess || st.Total != 100 {
		t.Fatalf("Copy() = %+v, %v", st, ok)
	}
}

func TestCopyOutcomes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		expiry    time.Duration // of the source SAS, from now
		advance   time.Duration // clock moves before completion
		end       func(sim *copysim.Server) error
		want      blob.CopyStatusType
		wantDesc  string
		wantBytes int64
	}{
		{
			name: "fail", expiry: time.Hour,
			end: func(sim *copysim.Server) error {
				return sim.Fail(dstAccount, "dst", "b.bin", `500 InternalError "Copy failed."`)
			},
			want: blob.CopyStatusTypeFailed, wantDesc: `500 InternalError "Copy failed."`,
		},
		{
			name: "SAS expires while pending", expiry: time.Minute, advance: 2 * time.Minute,
			end:  func(sim *copysim.Server) error { return sim.Complete(dstAccount, "dst", "b.bin") },
			want: blob.CopyStatusTypeFailed, wantDesc: "403 AuthenticationFailed",
		},
		{
			name: "success", expiry: time.Minute,
			end:  func(sim *copysim.Server) error { return sim.Complete(dstAccount, "dst", "b.bin") },
			want: blob.CopyStatusTypeSuccess, wantBytes: 100,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clock := newClock()
			sim, _ := fixture(t, copysim.Options{Now: clock.Now})
			dst, _ := startCopy(t, sim, sasURL(t, sim, srcAccount, "src", "a.bin", clock.Now().Add(tt.expiry)))
			clock.Advance(tt.advance)
			if err := tt.end(sim); err != nil {
				t.Fatal(err)
			}
			p := props(t, dst)
			if *p.CopyStatus != tt.want || *p.ContentLength != tt.wantBytes {
				t.Fatalf("status %s, length %d; want %s, %d", *p.CopyStatus, *p.ContentLength, tt.want, tt.wantBytes)
			}
			desc := ""
			if p.CopyStatusDescription != nil {
				desc = *p.CopyStatusDescription
			}
			if !strings.HasPrefix(desc, tt.wantDesc) {
				t.Fatalf("description %q, want prefix %q", desc, tt.wantDesc)
			}
		})
	}
}

func TestAbortCopy(t *testing.T) {
	t.Parallel()
	sim, _ := fixture(t, copysim.Options{})
	dst, resp := startCopy(t, sim, sasURL(t, sim, srcAccount, "src", "a.bin", time.Now().Add(time.Hour)))

	_, err := dst.AbortCopyFromURL(ctx(t), "not-the-copy-id", nil)
	if !bloberror.HasCode(err, bloberror.CopyIDMismatch) {
		t.Fatalf("abort with wrong id: %v", err)
	}
	if _, err := dst.AbortCopyFromURL(ctx(t), *resp.CopyID, nil); err != nil {
		t.Fatalf("abort: %v", err)
	}
	p := props(t, dst)
	if *p.CopyStatus != blob.CopyStatusTypeAborted || *p.ContentLength != 0 {
		t.Fatalf("after abort: %s, %d bytes", *p.CopyStatus, *p.ContentLength)
	}
	_, err = dst.AbortCopyFromURL(ctx(t), *resp.CopyID, nil)
	if !bloberror.HasCode(err, bloberror.NoPendingCopyOperation) {
		t.Fatalf("second abort: %v", err)
	}
	if n := sim.RequestCount(copysim.OpAbortCopyBlob); n != 3 {
		t.Fatalf("abort requests = %d, want 3", n)
	}
}

func TestDestinationRules(t *testing.T) {
	t.Parallel()
	sim, _ := fixture(t, copysim.Options{})
	src := sasURL(t, sim, srcAccount, "src", "a.bin", time.Now().Add(time.Hour))
	dst, _ := startCopy(t, sim, src)

	_, err := dst.StartCopyFromURL(ctx(t), src, nil)
	if !bloberror.HasCode(err, bloberror.PendingCopyOperation) {
		t.Fatalf("second copy: %v", err)
	}
	bb, _ := blockblob.NewClientWithSharedKeyCredential(dst.URL(), credential(t, dstAccount),
		&blockblob.ClientOptions{ClientOptions: azcore.ClientOptions{Retry: noRetry}})
	_, err = bb.UploadBuffer(ctx(t), []byte("x"), nil)
	if !bloberror.HasCode(err, bloberror.PendingCopyOperation) {
		t.Fatalf("put blob over pending copy: %v", err)
	}

	if err := sim.Complete(dstAccount, "dst", "b.bin"); err != nil {
		t.Fatal(err)
	}
	_, err = dst.StartCopyFromURL(ctx(t), src, &blob.StartCopyFromURLOptions{
		AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfNoneMatch: to.Ptr(azcore.ETagAny)}},
	})
	if !bloberror.HasCode(err, bloberror.BlobAlreadyExists) {
		t.Fatalf("copy with If-None-Match * over an existing blob: %v", err)
	}

	// Copy options reach the destination.
	other := blobClient(t, sim, dstAccount, "dst", "c.bin", noRetry)
	if _, err := other.StartCopyFromURL(ctx(t), src, &blob.StartCopyFromURLOptions{
		Metadata: map[string]*string{"jobid": to.Ptr("42")},
		BlobTags: map[string]string{"job": "42"},
		Tier:     to.Ptr(blob.AccessTierCool),
	}); err != nil {
		t.Fatal(err)
	}
	p := props(t, other)
	if p.Metadata["Jobid"] == nil || *p.Metadata["Jobid"] != "42" || p.Metadata["Origin"] != nil {
		t.Fatalf("metadata %v", p.Metadata)
	}
	if *p.AccessTier != string(blob.AccessTierCool) || *p.TagCount != 1 {
		t.Fatalf("tier %s tags %d", *p.AccessTier, *p.TagCount)
	}
	tags, err := other.GetTags(ctx(t), nil)
	if err != nil || len(tags.BlobTagSet) != 1 || *tags.BlobTagSet[0].Key != "job" {
		t.Fatalf("tags %+v, %v", tags.BlobTagSet, err)
	}
}

func TestCopySourceErrors(t *testing.T) {
	t.Parallel()
	sim, _ := fixture(t, copysim.Options{})
	tests := []struct {
		name string
		src  string
		code bloberror.Code
	}{
		{"missing source", sim.AccountEndpoint(srcAccount) + "/src/nope", bloberror.CannotVerifyCopySource},
		{"expired SAS", sasURL(t, sim, srcAccount, "src", "a.bin", time.Now().Add(-time.Minute)), bloberror.CannotVerifyCopySource},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := blobClient(t, sim, dstAccount, "dst", "x-"+strings.ReplaceAll(tt.name, " ", "-"), noRetry)
			if _, err := dst.StartCopyFromURL(ctx(t), tt.src, nil); !bloberror.HasCode(err, tt.code) {
				t.Fatalf("err = %v, want %s", err, tt.code)
			}
		})
	}
}

func TestLease(t *testing.T) {
	t.Parallel()
	sim, _ := fixture(t, copysim.Options{})
	src := blobClient(t, sim, srcAccount, "src", "a.bin", noRetry)
	lc, err := lease.NewBlobClient(src, &lease.BlobClientOptions{LeaseID: to.Ptr("11111111-1111-1111-1111-111111111111")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lc.AcquireLease(ctx(t), -1, nil); err != nil {
		t.Fatalf("acquire: %v", err)
	}
	l := sim.Lease(srcAccount, "src", "a.bin")
	if l != (copysim.LeaseState{State: "leased", Status: "locked", Duration: "infinite", ID: "11111111-1111-1111-1111-111111111111"}) {
		t.Fatalf("lease %+v", l)
	}
	p := props(t, src)
	if *p.LeaseState != lease.StateTypeLeased || *p.LeaseStatus != lease.StatusTypeLocked || *p.LeaseDuration != lease.DurationTypeInfinite {
		t.Fatalf("lease props %s %s %s", *p.LeaseState, *p.LeaseStatus, *p.LeaseDuration)
	}

	other, _ := lease.NewBlobClient(src, &lease.BlobClientOptions{LeaseID: to.Ptr("22222222-2222-2222-2222-222222222222")})
	if _, err := other.AcquireLease(ctx(t), 30, nil); !bloberror.HasCode(err, bloberror.LeaseAlreadyPresent) {
		t.Fatalf("second acquire: %v", err)
	}
	if _, err := src.Delete(ctx(t), nil); !bloberror.HasCode(err, bloberror.LeaseIDMissing) {
		t.Fatalf("delete leased blob: %v", err)
	}

	// The source stays copyable while leased, and x-ms-source-lease-id is checked.
	dst := blobClient(t, sim, dstAccount, "dst", "b.bin", noRetry)
	if _, err := dst.StartCopyFromURL(ctx(t), src.URL(), nil); err != nil {
		t.Fatalf("copy from leased source: %v", err)
	}

	if _, err := lc.ReleaseLease(ctx(t), nil); err != nil {
		t.Fatalf("release: %v", err)
	}
	if l := sim.Lease(srcAccount, "src", "a.bin"); l.State != "available" || l.Status != "unlocked" {
		t.Fatalf("after release %+v", l)
	}
	// Lease Blob: a release on an available blob fails with 409; the service names it
	// LeaseIdMismatchWithLeaseOperation, like a release under someone else's lease.
	if _, err := lc.ReleaseLease(ctx(t), nil); !bloberror.HasCode(err, bloberror.LeaseIDMismatchWithLeaseOperation) {
		t.Fatalf("second release: %v", err)
	}
}

func TestSnapshotAsCopySource(t *testing.T) {
	t.Parallel()
	sim, data := fixture(t, copysim.Options{SyncInternalCopies: true})
	src := blobClient(t, sim, srcAccount, "src", "a.bin", noRetry)
	snap, err := src.CreateSnapshot(ctx(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	sim.PutBlob(srcAccount, "src", "a.bin", []byte("changed"), nil) // the snapshot keeps the old bytes
	snapClient, err := src.WithSnapshot(*snap.Snapshot)
	if err != nil {
		t.Fatal(err)
	}
	if n := *props(t, snapClient).ContentLength; n != int64(len(data)) {
		t.Fatalf("snapshot length %d", n)
	}
	dst := blobClient(t, sim, dstAccount, "dst", "b.bin", noRetry)
	resp, err := dst.StartCopyFromURL(ctx(t), snapClient.URL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if *resp.CopyStatus != blob.CopyStatusTypeSuccess {
		t.Fatalf("status %s, want success with SyncInternalCopies", *resp.CopyStatus)
	}
	if got, _ := sim.BlobData(dstAccount, "dst", "b.bin"); !bytes.Equal(got, data) {
		t.Fatalf("copied %q", got)
	}
	if _, err := src.Delete(ctx(t), nil); !bloberror.HasCode(err, bloberror.SnapshotsPresent) {
		t.Fatalf("delete with snapshots: %v", err)
	}
}

func TestExternalSource(t *testing.T) {
	t.Parallel()
	origin := http.NewServeMux()
	origin.HandleFunc("GET /file", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "external bytes") })
	ext := newHTTPServer(t, origin)

	tests := []struct {
		name  string
		fetch bool
		want  string
	}{
		{"not fetched", false, "\x00\x00\x00"},
		{"fetched", true, "external bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var started []copysim.CopyStart
			var mu sync.Mutex
			sim, _ := fixture(t, copysim.Options{FetchSource: tt.fetch, OnCopyStart: func(cs copysim.CopyStart) {
				mu.Lock()
				defer mu.Unlock()
				started = append(started, cs)
			}})
			startCopy(t, sim, ext+"/file?se=2099-01-01T00%3A00%3A00Z&sig=secret")
			if !tt.fetch {
				if err := sim.SetTotal(dstAccount, "dst", "b.bin", 3); err != nil {
					t.Fatal(err)
				}
			}
			if err := sim.Complete(dstAccount, "dst", "b.bin"); err != nil {
				t.Fatal(err)
			}
			if got, _ := sim.BlobData(dstAccount, "dst", "b.bin"); string(got) != tt.want {
				t.Fatalf("content %q, want %q", got, tt.want)
			}
			st, _ := sim.Copy(dstAccount, "dst", "b.bin")
			if st.Status != copysim.StatusSuccess || strings.Contains(st.Source, "secret") || st.SourceExpiry.Year() != 2099 {
				t.Fatalf("copy state %+v", st)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(started) != 1 || started[0].Internal || strings.Contains(started[0].Source, "secret") {
				t.Fatalf("OnCopyStart got %+v", started)
			}
			for _, r := range sim.Requests() {
				if strings.Contains(r.URL, "secret") || strings.Contains(strings.Join(r.Header["X-Ms-Copy-Source"], ""), "secret") {
					t.Fatalf("recorded request leaks the SAS signature: %+v", r)
				}
			}
		})
	}
}

func TestFailNextIsRetried(t *testing.T) {
	t.Parallel()
	sim, _ := fixture(t, copysim.Options{})
	retry := policy.RetryOptions{MaxRetries: 3, RetryDelay: time.Millisecond, MaxRetryDelay: 5 * time.Millisecond}
	src := blobClient(t, sim, srcAccount, "src", "a.bin", retry)

	sim.ResetCounts()
	sim.FailNext(copysim.OpGetBlobProperties, copysim.Fault{Status: http.StatusServiceUnavailable, Code: "ServerBusy", Times: 2})
	if _, err := src.GetProperties(ctx(t), nil); err != nil {
		t.Fatalf("GetProperties after 2 faults: %v", err)
	}
	if n := sim.RequestCount(copysim.OpGetBlobProperties); n != 3 {
		t.Fatalf("requests = %d, want 3 (2 faults + 1 success)", n)
	}

	sim.FailNext(copysim.OpCopyBlob, copysim.Fault{Status: http.StatusConflict, Code: "OperationNotAllowed"})
	dst := blobClient(t, sim, dstAccount, "dst", "b.bin", retry)
	if _, err := dst.StartCopyFromURL(ctx(t), src.URL(), nil); !bloberror.HasCode(err, "OperationNotAllowed") {
		t.Fatalf("injected 409: %v", err)
	}
	reqs := sim.Requests()
	if last := reqs[len(reqs)-1]; last.Op != copysim.OpCopyBlob || last.Status != http.StatusConflict {
		t.Fatalf("last request %+v", last)
	}
}

func TestAuthorization(t *testing.T) {
	t.Parallel()
	sim, _ := fixture(t, copysim.Options{})
	anon, _ := blob.NewClientWithNoCredential(sim.AccountEndpoint(srcAccount)+"/src/a.bin",
		&blob.ClientOptions{ClientOptions: azcore.ClientOptions{Retry: noRetry}})
	if _, err := anon.DownloadStream(ctx(t), nil); !bloberror.HasCode(err, bloberror.AuthenticationFailed) {
		t.Fatalf("anonymous download: %v", err)
	}
	withSAS, _ := blob.NewClientWithNoCredential(sasURL(t, sim, srcAccount, "src", "a.bin", time.Now().Add(time.Hour)),
		&blob.ClientOptions{ClientOptions: azcore.ClientOptions{Retry: noRetry}})
	if _, err := withSAS.GetProperties(ctx(t), nil); err != nil {
		t.Fatalf("SAS: %v", err)
	}
	cc, err := azblob.NewClientFromConnectionString(sim.ConnectionString(dstAccount), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cc.CreateContainer(ctx(t), "fresh", nil); err != nil {
		t.Fatalf("create container via connection string: %v", err)
	}
	if _, err := cc.CreateContainer(ctx(t), "fresh", nil); !bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
		t.Fatalf("second create: %v", err)
	}
	ct, _ := container.NewClientWithSharedKeyCredential(sim.AccountEndpoint(dstAccount)+"/missing", credential(t, dstAccount), nil)
	if _, err := ct.GetProperties(ctx(t), nil); !bloberror.HasCode(err, bloberror.ContainerNotFound) {
		t.Fatalf("missing container: %v", err)
	}
}

func TestLeaseTimeline(t *testing.T) {
	t.Parallel()
	clock := newClock()
	sim, _ := fixture(t, copysim.Options{Now: clock.Now})
	src := blobClient(t, sim, srcAccount, "src", "a.bin", noRetry)
	lc, _ := lease.NewBlobClient(src, nil)

	acq, err := lc.AcquireLease(ctx(t), 15, nil)
	if err != nil {
		t.Fatal(err)
	}
	if *acq.LeaseID == "" || sim.Lease(srcAccount, "src", "a.bin").Duration != "fixed" {
		t.Fatalf("acquire: %+v", sim.Lease(srcAccount, "src", "a.bin"))
	}
	clock.Advance(10 * time.Second)
	if _, err := lc.RenewLease(ctx(t), nil); err != nil {
		t.Fatalf("renew: %v", err)
	}
	clock.Advance(10 * time.Second) // renewed at t=10s, so still leased at t=20s
	if st := sim.Lease(srcAccount, "src", "a.bin").State; st != "leased" {
		t.Fatalf("after renew: %s", st)
	}
	if _, err := lc.ChangeLease(ctx(t), "33333333-3333-3333-3333-333333333333", nil); err != nil {
		t.Fatalf("change: %v", err)
	}
	if id := sim.Lease(srcAccount, "src", "a.bin").ID; id != "33333333-3333-3333-3333-333333333333" || *lc.LeaseID() != id {
		t.Fatalf("changed id %s / client %s", id, *lc.LeaseID())
	}
	br, err := lc.BreakLease(ctx(t), &lease.BlobBreakOptions{BreakPeriod: to.Ptr[int32](5)})
	if err != nil {
		t.Fatalf("break: %v", err)
	}
	if *br.LeaseTime != 5 || sim.Lease(srcAccount, "src", "a.bin").State != "breaking" {
		t.Fatalf("breaking: time %d state %+v", *br.LeaseTime, sim.Lease(srcAccount, "src", "a.bin"))
	}
	clock.Advance(5 * time.Second)
	if l := sim.Lease(srcAccount, "src", "a.bin"); l.State != "broken" || l.Status != "unlocked" {
		t.Fatalf("after break period: %+v", l)
	}
	// A broken lease can be taken again at once; a fixed one expires by itself.
	if _, err := lc.AcquireLease(ctx(t), 15, nil); err != nil {
		t.Fatalf("re-acquire: %v", err)
	}
	clock.Advance(16 * time.Second)
	if st := sim.Lease(srcAccount, "src", "a.bin").State; st != "expired" {
		t.Fatalf("after 16s of a 15s lease: %s", st)
	}
	if _, err := src.SetMetadata(ctx(t), map[string]*string{"k": to.Ptr("v")}, nil); err != nil {
		t.Fatalf("write after expiry: %v", err)
	}
}

// Azure REST reference pages the strictness tests below follow.
const (
	docCopyBlob        = "https://learn.microsoft.com/rest/api/storageservices/copy-blob"
	docCopyBlobFromURL = "https://learn.microsoft.com/rest/api/storageservices/copy-blob-from-url"
	docLeaseBlob       = "https://learn.microsoft.com/rest/api/storageservices/lease-blob"
	docPutBlob         = "https://learn.microsoft.com/rest/api/storageservices/put-blob"
	docAbortCopyBlob   = "https://learn.microsoft.com/rest/api/storageservices/abort-copy-blob"
	docGetBlobProps    = "https://learn.microsoft.com/rest/api/storageservices/get-blob-properties"
	docCommonErrors    = "https://learn.microsoft.com/rest/api/storageservices/common-rest-api-error-codes"
	docBlobErrors      = "https://learn.microsoft.com/rest/api/storageservices/blob-service-error-codes"
)

// TestDocCitations keeps the cited pages well-formed (they are read, not fetched).
func TestDocCitations(t *testing.T) {
	for _, u := range []string{docCopyBlob, docCopyBlobFromURL, docLeaseBlob, docPutBlob, docAbortCopyBlob, docGetBlobProps, docCommonErrors, docBlobErrors} {
		if !strings.HasPrefix(u, "https://learn.microsoft.com/rest/api/storageservices/") {
			t.Errorf("citation %q is not an Azure Storage REST reference page", u)
		}
	}
}

func responseError(t *testing.T, err error) *azcore.ResponseError {
	t.Helper()
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("err = %v, want a storage answer", err)
	}
	return re
}

// TestFaultsBeforeAndAfterTheOperation: a fault either replaces the operation (Before:
// nothing happens) or only its answer (After: the copy starts, then the answer is lost
// or is a 5xx), as a client meets 500 OperationTimedOut / 503 ServerBusy or a reset
// connection (docCommonErrors).
func TestFaultsBeforeAndAfterTheOperation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		fault       copysim.Fault
		wantStarted bool
		wantStatus  int    // 0: no answer at all
		wantCode    string // x-ms-error-code
		retryAfter  string
	}{
		{"before 503 with Retry-After", copysim.Fault{When: copysim.Before, Status: 503, Code: "ServerBusy", RetryAfter: 1500 * time.Millisecond}, false, 503, "ServerBusy", "2"},
		{"before drop", copysim.Fault{When: copysim.Before, Drop: true}, false, 0, "", ""},
		{"after 500 OperationTimedOut", copysim.Fault{When: copysim.After, Status: 500, Code: "OperationTimedOut"}, true, 500, "OperationTimedOut", ""},
		{"after 503 ServerBusy", copysim.Fault{When: copysim.After, Status: 503, Code: "ServerBusy", RetryAfter: time.Second}, true, 503, "ServerBusy", "1"},
		{"after drop", copysim.Fault{When: copysim.After, Drop: true}, true, 0, "", ""},
		{"slow answer", copysim.Fault{When: copysim.After, Delay: 50 * time.Millisecond}, true, 202, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sim, _ := fixture(t, copysim.Options{})
			sim.FailNext(copysim.OpCopyBlob, tt.fault)
			dst := blobClient(t, sim, dstAccount, "dst", "b.bin", noRetry)
			began := time.Now()
			_, err := dst.StartCopyFromURL(ctx(t), sim.AccountEndpoint(srcAccount)+"/src/a.bin", nil)
			switch {
			case tt.wantStatus == 202:
				if err != nil || time.Since(began) < tt.fault.Delay {
					t.Fatalf("slow copy: %v after %s", err, time.Since(began))
				}
			case tt.wantStatus == 0:
				var re *azcore.ResponseError
				if err == nil || errors.As(err, &re) {
					t.Fatalf("err = %v, want no answer", err)
				}
			default:
				re := responseError(t, err)
				if re.StatusCode != tt.wantStatus || re.ErrorCode != tt.wantCode || re.RawResponse.Header.Get("Retry-After") != tt.retryAfter {
					t.Fatalf("answer %d %s Retry-After %q", re.StatusCode, re.ErrorCode, re.RawResponse.Header.Get("Retry-After"))
				}
			}
			if _, started := sim.Copy(dstAccount, "dst", "b.bin"); started != tt.wantStarted {
				t.Fatalf("copy started = %v, want %v", started, tt.wantStarted)
			}
			if n := sim.RequestCount(copysim.OpCopyBlob); n != 1 {
				t.Fatalf("requests = %d", n)
			}
		})
	}
}

// TestRetryAfterLostAnswerMeetsOwnCopy: the case 7. Copy Blob is carried out,
// its answer is a 500; azcore retries and meets 409 PendingCopyOperation on its own copy
// (docCopyBlob: one pending copy per destination).
func TestRetryAfterLostAnswerMeetsOwnCopy(t *testing.T) {
	t.Parallel()
	sim, _ := fixture(t, copysim.Options{})
	sim.FailNext(copysim.OpCopyBlob, copysim.Fault{When: copysim.After, Status: 500, Code: "OperationTimedOut"})
	retry := policy.RetryOptions{MaxRetries: 2, RetryDelay: time.Millisecond, MaxRetryDelay: 5 * time.Millisecond}
	dst := blobClient(t, sim, dstAccount, "dst", "b.bin", retry)
	_, err := dst.StartCopyFromURL(ctx(t), sim.AccountEndpoint(srcAccount)+"/src/a.bin", nil)
	if !bloberror.HasCode(err, bloberror.PendingCopyOperation) {
		t.Fatalf("retried start: %v, want 409 PendingCopyOperation", err)
	}
	if st, ok := sim.Copy(dstAccount, "dst", "b.bin"); !ok || st.Status != copysim.StatusPending {
		t.Fatalf("copy = %+v %v: the first attempt's copy should be pending", st, ok)
	}
}

// TestFaultsTargetOneBlobAndCount: Times and Blob narrow a fault; ClearFaults drops it.
func TestFaultsTargetOneBlobAndCount(t *testing.T) {
	t.Parallel()
	sim, _ := fixture(t, copysim.Options{})
	sim.FailNext(copysim.OpGetBlobProperties, copysim.Fault{Status: 503, Code: "ServerBusy", Times: 2, Blob: "a.bin"})
	sim.PutBlob(srcAccount, "src", "other.bin", []byte("x"), nil)
	if _, err := blobClient(t, sim, srcAccount, "src", "other.bin", noRetry).GetProperties(ctx(t), nil); err != nil {
		t.Fatalf("other blob: %v", err)
	}
	a := blobClient(t, sim, srcAccount, "src", "a.bin", noRetry)
	for i := range 2 {
		if _, err := a.GetProperties(ctx(t), nil); responseError(t, err).StatusCode != 503 {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	if _, err := a.GetProperties(ctx(t), nil); err != nil {
		t.Fatalf("third: %v", err)
	}
	sim.FailNext(copysim.OpGetBlobProperties, copysim.Fault{Status: 503, Code: "ServerBusy"})
	sim.ClearFaults()
	if _, err := a.GetProperties(ctx(t), nil); err != nil {
		t.Fatalf("after ClearFaults: %v", err)
	}
}

// TestPendingDestinationRefusesChanges: while a copy is pending, Copy Blob and writes
// are refused with 409 PendingCopyOperation (docCopyBlob, docPutBlob, docBlobErrors);
// snapshots, tags and new leases too (the docs are silent: conservative); reads and
// Delete Blob work.
func TestPendingDestinationRefusesChanges(t *testing.T) {
	t.Parallel()
	sim, _ := fixture(t, copysim.Options{})
	src := sim.AccountEndpoint(srcAccount) + "/src/a.bin"
	dst, _ := startCopy(t, sim, src)
	bb, _ := blockblob.NewClientWithSharedKeyCredential(dst.URL(), credential(t, dstAccount),
		&blockblob.ClientOptions{ClientOptions: azcore.ClientOptions{Retry: noRetry}})
	lc, _ := lease.NewBlobClient(dst, nil)
	refused := map[string]func() error{
		"Copy Blob":          func() error { _, err := dst.StartCopyFromURL(ctx(t), src, nil); return err },
		"Copy Blob From URL": func() error { _, err := dst.CopyFromURL(ctx(t), src, nil); return err },
		"Put Blob":           func() error { _, err := bb.UploadBuffer(ctx(t), []byte("x"), nil); return err },
		"Set Blob Metadata":  func() error { _, err := dst.SetMetadata(ctx(t), map[string]*string{"k": to.Ptr("v")}, nil); return err },
		"Snapshot Blob":      func() error { _, err := dst.CreateSnapshot(ctx(t), nil); return err },
		"Set Blob Tags":      func() error { _, err := dst.SetTags(ctx(t), map[string]string{"k": "v"}, nil); return err },
		"Lease Blob acquire": func() error { _, err := lc.AcquireLease(ctx(t), -1, nil); return err },
	}
	for name, op := range refused {
		if err := op(); !bloberror.HasCode(err, bloberror.PendingCopyOperation) || responseError(t, err).StatusCode != 409 {
			t.Errorf("%s on a pending destination: %v, want 409 PendingCopyOperation", name, err)
		}
	}
	if st, _ := sim.Copy(dstAccount, "dst", "b.bin"); st.Status != copysim.StatusPending {
		t.Fatalf("copy %+v changed by refused requests", st)
	}
	if _, err := dst.GetProperties(ctx(t), nil); err != nil {
		t.Fatalf("read: %v", err)
	}
	if _, err := dst.Delete(ctx(t), nil); err != nil {
		t.Fatalf("delete of a pending destination: %v", err)
	}
}

// TestLeasedBlobNeedsLeaseID: writes to a leased blob without the lease id answer 412
// LeaseIdMissing (docLeaseBlob, docBlobErrors).
func TestLeasedBlobNeedsLeaseID(t *testing.T) {
	t.Parallel()
	sim, _ := fixture(t, copysim.Options{})
	sim.PutBlob(dstAccount, "dst", "b.bin", []byte("old"), nil)
	dst := blobClient(t, sim, dstAccount, "dst", "b.bin", noRetry)
	lc, _ := lease.NewBlobClient(dst, nil)
	if _, err := lc.AcquireLease(ctx(t), -1, nil); err != nil {
		t.Fatal(err)
	}
	bb, _ := blockblob.NewClientWithSharedKeyCredential(dst.URL(), credential(t, dstAccount),
		&blockblob.ClientOptions{ClientOptions: azcore.ClientOptions{Retry: noRetry}})
	for name, op := range map[string]func() error{
		"Copy Blob": func() error {
			_, err := dst.StartCopyFromURL(ctx(t), sim.AccountEndpoint(srcAccount)+"/src/a.bin", nil)
			return err
		},
		"Put Blob":          func() error { _, err := bb.UploadBuffer(ctx(t), []byte("x"), nil); return err },
		"Set Blob Metadata": func() error { _, err := dst.SetMetadata(ctx(t), map[string]*string{"k": to.Ptr("v")}, nil); return err },
		"Delete Blob":       func() error { _, err := dst.Delete(ctx(t), nil); return err },
	} {
		if err := op(); !bloberror.HasCode(err, bloberror.LeaseIDMissing) || responseError(t, err).StatusCode != 412 {
			t.Errorf("%s without the lease id: %v, want 412 LeaseIdMissing", name, err)
		}
	}
}

// TestNonFatalStatusDescription: a pending copy may carry a description of an
// intermittent error and stay pending (docCopyBlob, docGetBlobProps); success clears it.
func TestNonFatalStatusDescription(t *testing.T) {
	t.Parallel()
	sim, _ := fixture(t, copysim.Options{})
	dst, _ := startCopy(t, sim, sim.AccountEndpoint(srcAccount)+"/src/a.bin")
	const desc = `502 BadGateway "Encountered a retryable error when reading the source. Will retry..."`
	if err := sim.SetStatusDescription(dstAccount, "dst", "b.bin", desc); err != nil {
		t.Fatal(err)
	}
	p := props(t, dst)
	if *p.CopyStatus != blob.CopyStatusTypePending || p.CopyStatusDescription == nil || *p.CopyStatusDescription != desc {
		t.Fatalf("pending with description: %s %v", *p.CopyStatus, p.CopyStatusDescription)
	}
	if err := sim.Complete(dstAccount, "dst", "b.bin"); err != nil {
		t.Fatal(err)
	}
	if p := props(t, dst); *p.CopyStatus != blob.CopyStatusTypeSuccess || p.CopyStatusDescription != nil {
		t.Fatalf("after success: %s %v", *p.CopyStatus, p.CopyStatusDescription)
	}
}

// TestTwoWeekLimit: a copy pending for two weeks (simulator clock) fails, leaving an
// empty blob with the description 500 OperationCancelled (docCopyBlob, Remarks).
func TestTwoWeekLimit(t *testing.T) {
	t.Parallel()
	clock := newClock()
	sim, _ := fixture(t, copysim.Options{Now: clock.Now})
	dst, _ := startCopy(t, sim, sim.AccountEndpoint(srcAccount)+"/src/a.bin")
	clock.Advance(14*24*time.Hour - time.Second)
	if p := props(t, dst); *p.CopyStatus != blob.CopyStatusTypePending {
		t.Fatalf("just under two weeks: %s", *p.CopyStatus)
	}
	clock.Advance(time.Second)
	p := props(t, dst)
	if *p.CopyStatus != blob.CopyStatusTypeFailed || *p.ContentLength != 0 || p.CopyCompletionTime == nil ||
		p.CopyStatusDescription == nil || !strings.HasPrefix(*p.CopyStatusDescription, "500 OperationCancelled") {
		t.Fatalf("after two weeks: %s, %d bytes, %v", *p.CopyStatus, *p.ContentLength, p.CopyStatusDescription)
	}
	if err := sim.Complete(dstAccount, "dst", "b.bin"); !errors.Is(err, copysim.ErrNoPendingCopy) {
		t.Fatalf("Complete after the limit: %v", err)
	}
}

// TestDeadExternalSourceRefusedAtStart: with FetchSource, Copy Blob verifies an
// external source at the start and refuses a dead one with CannotVerifyCopySource and
// the source's status (docCopyBlob, docBlobErrors: 500 when it does not answer).
func TestDeadExternalSourceRefusedAtStart(t *testing.T) {
	t.Parallel()
	origin := http.NewServeMux()
	origin.HandleFunc("GET /gone", func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) })
	origin.HandleFunc("GET /forbidden", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("x-ms-error-code", "AuthenticationFailed")
		w.WriteHeader(http.StatusForbidden)
	})
	ext := newHTTPServer(t, origin)
	closed := httptest.NewServer(http.NotFoundHandler())
	unreachable := closed.URL + "/file"
	closed.Close()

	tests := []struct {
		name, src, srcCode string
		status             int
	}{
		{"not found", ext + "/gone", "NotFound", 404},
		{"forbidden", ext + "/forbidden?sig=secret", "AuthenticationFailed", 403},
		{"unreachable", unreachable, "", 500},
	}
	sim, _ := fixture(t, copysim.Options{FetchSource: true})
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := fmt.Sprintf("dead-%d.bin", i)
			dst := blobClient(t, sim, dstAccount, "dst", name, noRetry)
			_, err := dst.StartCopyFromURL(ctx(t), tt.src, nil)
			re := responseError(t, err)
			if re.ErrorCode != string(bloberror.CannotVerifyCopySource) || re.StatusCode != tt.status {
				t.Fatalf("answer %d %s, want %d CannotVerifyCopySource", re.StatusCode, re.ErrorCode, tt.status)
			}
			if tt.srcCode != "" && re.RawResponse.Header.Get("x-ms-copy-source-error-code") != tt.srcCode {
				t.Fatalf("x-ms-copy-source-error-code %q", re.RawResponse.Header.Get("x-ms-copy-source-error-code"))
			}
			if strings.Contains(err.Error(), "secret") {
				t.Fatalf("the answer quotes the SAS: %v", err)
			}
			if _, ok := sim.Copy(dstAccount, "dst", name); ok {
				t.Fatal("a refused copy left copy state")
			}
		})
	}
}

// TestCopyFromURLSizeLimit: Copy Blob From URL takes sources up to 256 MiB
// (docCopyBlobFromURL); a larger one is refused with 409 CannotVerifyCopySource
// (Azure/azure-sdk-for-go#19880), while the asynchronous Copy Blob accepts it.
func TestCopyFromURLSizeLimit(t *testing.T) {
	t.Parallel()
	origin := http.NewServeMux()
	origin.HandleFunc("GET /big", func(w http.ResponseWriter, r *http.Request) {
		// Announce 256 MiB + 1 without sending it: the probe reads headers only.
		w.Header().Set("Content-Length", strconv.Itoa(256<<20+1))
		w.WriteHeader(http.StatusOK)
	})
	origin.HandleFunc("GET /small", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "small") })
	ext := newHTTPServer(t, origin)
	sim, _ := fixture(t, copysim.Options{FetchSource: true})

	big := blobClient(t, sim, dstAccount, "dst", "big.bin", noRetry)
	_, err := big.CopyFromURL(ctx(t), ext+"/big", nil)
	if re := responseError(t, err); re.StatusCode != 409 || re.ErrorCode != string(bloberror.CannotVerifyCopySource) {
		t.Fatalf("sync copy of 256 MiB + 1: %d %s", re.StatusCode, re.ErrorCode)
	}
	if _, err := big.StartCopyFromURL(ctx(t), ext+"/big", nil); err != nil {
		t.Fatalf("async copy of the same source: %v", err)
	}
	if st, _ := sim.Copy(dstAccount, "dst", "big.bin"); st.Total != 256<<20+1 {
		t.Fatalf("total %d, want the source's length", st.Total)
	}
	small := blobClient(t, sim, dstAccount, "dst", "small.bin", noRetry)
	if resp, err := small.CopyFromURL(ctx(t), ext+"/small", nil); err != nil || *resp.CopyStatus != "success" {
		t.Fatalf("small sync copy: %v", err)
	}
}

// TestDestinationOverwrittenOnlyAsAzureAllows: the PutBlob helper refuses a pending
// destination like Put Blob does (docPutBlob); a pending destination changes hands only
// when another client aborts the copy and starts its own (docAbortCopyBlob, docCopyBlob),
// and a finished one may be overwritten, which clears its copy properties.
func TestDestinationOverwrittenOnlyAsAzureAllows(t *testing.T) {
	t.Parallel()
	sim, _ := fixture(t, copysim.Options{})
	dst, resp := startCopy(t, sim, sim.AccountEndpoint(srcAccount)+"/src/a.bin")
	if err := sim.PutBlob(dstAccount, "dst", "b.bin", []byte("someone else"), nil); !errors.Is(err, copysim.ErrPendingCopy) {
		t.Fatalf("PutBlob over a pending copy: %v", err)
	}
	newID, err := sim.RestartCopy(dstAccount, "dst", "b.bin")
	if err != nil || newID == *resp.CopyID {
		t.Fatalf("RestartCopy = %q, %v", newID, err)
	}
	p := props(t, dst)
	if *p.CopyID != newID || *p.CopyStatus != blob.CopyStatusTypePending {
		t.Fatalf("after restart: %s %s", *p.CopyID, *p.CopyStatus)
	}
	if _, err := dst.AbortCopyFromURL(ctx(t), *resp.CopyID, nil); !bloberror.HasCode(err, bloberror.CopyIDMismatch) {
		t.Fatalf("abort with the first copy id: %v", err)
	}
	if err := sim.Complete(dstAccount, "dst", "b.bin"); err != nil {
		t.Fatal(err)
	}
	if err := sim.PutBlob(dstAccount, "dst", "b.bin", []byte("someone else"), nil); err != nil {
		t.Fatalf("PutBlob after the copy ended: %v", err)
	}
	if _, ok := sim.Copy(dstAccount, "dst", "b.bin"); ok {
		t.Fatal("Put Blob kept the copy properties")
	}
}

// TestRenewOrReleaseOfAFreeBlob: renew and release on a blob without a lease fail with
// 409 LeaseIdMismatchWithLeaseOperation (docLeaseBlob, outcome table), even with the id
// of the lease released before.
func TestRenewOrReleaseOfAFreeBlob(t *testing.T) {
	t.Parallel()
	sim, _ := fixture(t, copysim.Options{})
	src := blobClient(t, sim, srcAccount, "src", "a.bin", noRetry)
	lc, _ := lease.NewBlobClient(src, nil)
	if _, err := lc.ReleaseLease(ctx(t), nil); !bloberror.HasCode(err, bloberror.LeaseIDMismatchWithLeaseOperation) {
		t.Fatalf("release, never leased: %v", err)
	}
	if _, err := lc.AcquireLease(ctx(t), -1, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := lc.AcquireLease(ctx(t), -1, nil); err != nil {
		t.Fatalf("acquire again with the same id: %v", err)
	}
	if _, err := lc.ReleaseLease(ctx(t), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := lc.RenewLease(ctx(t), nil); !bloberror.HasCode(err, bloberror.LeaseIDMismatchWithLeaseOperation) {
		t.Fatalf("renew after release: %v", err)
	}
	if _, err := lc.ReleaseLease(ctx(t), nil); responseError(t, err).StatusCode != 409 {
		t.Fatalf("release after release: %v", err)
	}
}
