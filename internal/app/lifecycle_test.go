package app_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/lease"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"

	"github.com/blobcopy/blobcopy/internal/api"
	"github.com/blobcopy/blobcopy/internal/copyjob"
)

// TestAzuriteCopies covers the copies Azurite can do for real: within the app's
// account and across two accounts with a generated account-key SAS.
func TestAzuriteCopies(t *testing.T) {
	h := newHarness(t, nil)
	data := []byte(strings.Repeat("blobcopy ", 1000))
	same := h.upload("devstoreaccount1", "src", "dir/same.txt", data)
	other := h.upload("acct2", "src", "other.txt", data)

	// A SAS the caller signed itself (read-only, one hour).
	callerSAS, err := h.blobClient("acct2").ServiceClient().NewContainerClient("src").NewBlobClient("other.txt").
		GetSASURL(sas.BlobPermissions{Read: true}, time.Now().Add(time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		req      map[string]any
		kind     copyjob.SourceKind
		sasKind  string
		dstBlob  string
		metadata map[string]string
		tags     map[string]string
	}{
		{
			name:    "same account with lease, metadata, tags and tier",
			req:     map[string]any{"source": same, "destination": map[string]any{"container": "dst", "blob": "same.txt"}, "leaseSource": true, "metadata": map[string]string{"origin": "test"}, "tags": map[string]string{"project": "blobcopy"}, "tier": "cool"},
			kind:    copyjob.SourceSameAccount,
			dstBlob: "same.txt", metadata: map[string]string{"origin": "test"}, tags: map[string]string{"project": "blobcopy"},
		},
		{
			name: "other account with a generated account-key SAS",
			req:  map[string]any{"source": other, "destination": map[string]any{"container": "dst", "blob": "other.txt"}, "leaseSource": true},
			kind: copyjob.SourceOtherAccount, sasKind: "accountKey",
			dstBlob: "other.txt",
		},
		{
			name: "synchronous Copy Blob From URL (requiresSync)",
			req:  map[string]any{"source": other, "destination": map[string]any{"container": "dst", "blob": "sync.txt"}, "requiresSync": true},
			kind: copyjob.SourceOtherAccount, sasKind: "accountKey",
			dstBlob: "sync.txt",
		},
		{
			name:    "a SAS the caller supplies",
			req:     map[string]any{"source": callerSAS, "destination": map[string]any{"container": "dst", "blob": "caller.txt"}},
			kind:    copyjob.SourceCallerSAS,
			dstBlob: "caller.txt",
		},
		{
			name: "into the other account",
			req:  map[string]any{"source": same, "destination": map[string]any{"account": "acct2", "container": "dst", "blob": "into.txt"}},
			kind: copyjob.SourceOtherAccount, sasKind: "accountKey",
			dstBlob: "into.txt",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.startCopy(tt.req)
			if r.status != http.StatusOK {
				t.Fatalf("start: %d %s", r.status, r.body)
			}
			j := r.job(t)
			if j.Status != copyjob.StatusSuccess || j.CopyID == "" || j.Source.Kind != tt.kind || j.Source.SASKind != tt.sasKind {
				t.Fatalf("job = status %s copyId %q kind %s sasKind %q", j.Status, j.CopyID, j.Source.Kind, j.Source.SASKind)
			}
			// Copy Blob's answer carries no length: the start answers without it (percent
			// 100), a status read fills it in from the destination.
			if j.Progress != (api.ProgressView{}) || j.Percent != 100 {
				t.Errorf("answered progress = %+v percent %v, want none (Copy Blob's answer has no length) and 100", j.Progress, j.Percent)
			}
			if g := h.getJob(j.ID); g.Progress.BytesCopied != int64(len(data)) || g.Progress.BytesTotal != int64(len(data)) || g.Percent != 100 {
				t.Errorf("status read: progress = %+v percent %v", g.Progress, g.Percent)
			}
			if tt.sasKind != "" && (j.Source.SASExpiresAt == nil || time.Until(*j.Source.SASExpiresAt) < 23*time.Hour) {
				t.Errorf("SAS expiry not recorded or too short: %v", j.Source.SASExpiresAt)
			}
			if tt.kind == copyjob.SourceCallerSAS && (j.Source.SASExpiresAt == nil || time.Until(*j.Source.SASExpiresAt) > time.Hour+time.Minute) {
				t.Errorf("the caller's SAS expiry is not recorded: %v", j.Source.SASExpiresAt)
			}
			if strings.Contains(string(r.body), "sig=") || strings.Contains(j.Source.URL, "?") {
				t.Errorf("the answer carries a SAS: %s", r.body)
			}
			if r.header.Get("Location") != "/api/copies/"+j.ID {
				t.Errorf("Location = %q", r.header.Get("Location"))
			}
			dstAccount := "devstoreaccount1"
			if tt.req["destination"].(map[string]any)["account"] == "acct2" {
				dstAccount = "acct2"
			}
			p := h.props(dstAccount, "dst", tt.dstBlob)
			if p.CopyID == nil || *p.CopyID != j.CopyID || *p.CopyStatus != blob.CopyStatusTypeSuccess {
				t.Errorf("destination copy id %v status %v, job copy id %s", p.CopyID, p.CopyStatus, j.CopyID)
			}
			for k, v := range tt.metadata {
				// Go's HTTP client canonicalizes header names: metadata keys come back
				// capitalized, so compare without case.
				var got *string
				for mk, mv := range p.Metadata {
					if strings.EqualFold(mk, k) {
						got = mv
					}
				}
				if got == nil || *got != v {
					t.Errorf("metadata %s = %v, want %s", k, got, v)
				}
			}
			if len(tt.tags) > 0 {
				tags, err := h.blobClient(dstAccount).ServiceClient().NewContainerClient("dst").NewBlobClient(tt.dstBlob).GetTags(context.Background(), nil)
				if err != nil {
					t.Fatal(err)
				}
				if len(tags.BlobTagSet) != 1 || *tags.BlobTagSet[0].Key != "project" || *tags.BlobTagSet[0].Value != "blobcopy" {
					t.Errorf("tags = %v", tags.BlobTagSet)
				}
			}
			if tt.req["leaseSource"] == true {
				if j.Lease == nil || j.Lease.State != copyjob.LeaseReleased {
					t.Errorf("lease = %+v, want released", j.Lease)
				}
			}
		})
	}
	// No source is left leased.
	for _, src := range []struct{ account, container, blob string }{{"devstoreaccount1", "src", "dir/same.txt"}, {"acct2", "src", "other.txt"}} {
		if p := h.props(src.account, src.container, src.blob); *p.LeaseState != lease.StateTypeAvailable {
			t.Errorf("%s/%s lease state %s, want available", src.account, src.blob, *p.LeaseState)
		}
	}
}

func TestOverwriteRefusalAndSnapshotDestination(t *testing.T) {
	h := newHarness(t, nil)
	src := h.upload("devstoreaccount1", "src", "new.txt", []byte("new content"))
	h.upload("devstoreaccount1", "dst", "existing.txt", []byte("old content"))

	r := h.startCopy(map[string]any{"source": src, "destination": map[string]any{"container": "dst", "blob": "existing.txt"}, "overwrite": false})
	if r.status != http.StatusConflict {
		t.Fatalf("overwrite=false on an existing destination: %d %s", r.status, r.body)
	}
	if e := r.errorResponse(t); e.Error.Code != string(copyjob.CodeDestinationExists) || r.header.Get("x-ms-error-code") != e.Error.Code {
		t.Errorf("error = %+v header %q", e.Error, r.header.Get("x-ms-error-code"))
	}
	if got := h.download("devstoreaccount1", "dst", "existing.txt"); got != "old content" {
		t.Errorf("destination changed to %q", got)
	}

	r = h.startCopy(map[string]any{"source": src, "destination": map[string]any{"container": "dst", "blob": "existing.txt"}, "snapshotDestination": true})
	if r.status != http.StatusOK {
		t.Fatalf("start: %d %s", r.status, r.body)
	}
	j := r.job(t)
	if j.DestinationSnapshot == "" {
		t.Fatal("no destination snapshot recorded")
	}
	if got := h.downloadSnapshot("devstoreaccount1", "dst", "existing.txt", j.DestinationSnapshot); got != "old content" {
		t.Errorf("snapshot holds %q, want the old content", got)
	}
	if got := h.download("devstoreaccount1", "dst", "existing.txt"); got != "new content" {
		t.Errorf("destination holds %q", got)
	}

	// A snapshot as the source: promote the old content back over its base blob.
	snapURL := h.az.BlobEndpoint("devstoreaccount1") + "/dst/existing.txt?snapshot=" + j.DestinationSnapshot
	r = h.startCopy(map[string]any{"source": snapURL, "destination": map[string]any{"container": "dst", "blob": "existing.txt"}})
	if r.status != http.StatusOK {
		t.Fatalf("promote snapshot: %d %s", r.status, r.body)
	}
	if got := h.download("devstoreaccount1", "dst", "existing.txt"); got != "old content" {
		t.Errorf("after promoting the snapshot the blob holds %q", got)
	}
}

func (h *harness) download(account, container, name string) string {
	return h.downloadSnapshot(account, container, name, "")
}

func (h *harness) downloadSnapshot(account, container, name, snapshot string) string {
	h.t.Helper()
	bc := h.blobClient(account).ServiceClient().NewContainerClient(container).NewBlobClient(name)
	if snapshot != "" {
		var err error
		if bc, err = bc.WithSnapshot(snapshot); err != nil {
			h.t.Fatal(err)
		}
	}
	r, err := bc.DownloadStream(context.Background(), nil)
	if err != nil {
		h.t.Fatalf("download %s/%s: %v", container, name, err)
	}
	defer r.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := r.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return b.String()
}
