package copysim_test

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"

	"github.com/blobcopy/blobcopy/internal/testenv/copysim"
)

func autoClient(t *testing.T, sim *copysim.Server, account, cont, name string) *blob.Client {
	t.Helper()
	cred, err := azblob.NewSharedKeyCredential(account, copysim.AccountKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := blob.NewClientWithSharedKeyCredential(sim.AccountEndpoint(account)+"/"+cont+"/"+name, cred, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func waitCopy(t *testing.T, sim *copysim.Server, account, cont, name string, within time.Duration, cond func(copysim.CopyState) bool) copysim.CopyState {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		st, _ := sim.Copy(account, cont, name)
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("copy state %+v did not reach the expected state within %s", st, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAutoProgress drives copies as `make run`'s slowdemo account does: pending with
// growing progress, then success with the source's bytes, for an internal source and for
// an external one (read with a HEAD for its size and fetched at the end); an aborted copy
// stays aborted.
func TestAutoProgress(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789"), 1000)
	external := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("sig") != "secret" {
			http.Error(w, "no SAS", http.StatusForbidden)
			return
		}
		http.ServeContent(w, r, "data.bin", time.Time{}, bytes.NewReader(data))
	}))
	defer external.Close()

	ap := &copysim.AutoProgress{Duration: 1200 * time.Millisecond, Step: 50 * time.Millisecond}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sim, err := copysim.NewOnListener(copysim.Options{FetchSource: true, OnCopyStart: ap.OnCopyStart}, ln)
	if err != nil {
		t.Fatal(err)
	}
	ap.Attach(sim)
	defer sim.Close()
	defer ap.Close()
	if sim.URL() != "http://"+ln.Addr().String() {
		t.Fatalf("URL = %s, want the listener's address %s", sim.URL(), ln.Addr())
	}
	sim.PutBlob("slow", "src", "in.bin", data, nil)

	for _, tt := range []struct{ name, source string }{
		{"internal", sim.AccountEndpoint("slow") + "/src/in.bin"},
		{"external", external.URL + "/data.bin?sig=secret"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dst := autoClient(t, sim, "slow", "dst", tt.name+".bin")
			sim.CreateContainer("slow", "dst")
			if _, err := dst.StartCopyFromURL(context.Background(), tt.source, nil); err != nil {
				t.Fatal(err)
			}
			mid := waitCopy(t, sim, "slow", "dst", tt.name+".bin", time.Second, func(s copysim.CopyState) bool {
				return s.Status == copysim.StatusPending && s.Copied > 0
			})
			if mid.Total != int64(len(data)) || mid.Copied >= mid.Total {
				t.Errorf("mid-copy progress %d/%d, want 0 < copied < %d", mid.Copied, mid.Total, len(data))
			}
			waitCopy(t, sim, "slow", "dst", tt.name+".bin", 3*time.Second, func(s copysim.CopyState) bool { return s.Status == copysim.StatusSuccess })
			if got, _ := sim.BlobData("slow", "dst", tt.name+".bin"); !bytes.Equal(got, data) {
				t.Errorf("destination holds %d bytes, want the source's %d", len(got), len(data))
			}
		})
	}

	t.Run("aborted", func(t *testing.T) {
		dst := autoClient(t, sim, "slow", "dst", "aborted.bin")
		started, err := dst.StartCopyFromURL(context.Background(), sim.AccountEndpoint("slow")+"/src/in.bin", nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := dst.AbortCopyFromURL(context.Background(), *started.CopyID, nil); err != nil {
			t.Fatal(err)
		}
		time.Sleep(ap.Duration + 300*time.Millisecond)
		if st, _ := sim.Copy("slow", "dst", "aborted.bin"); st.Status != copysim.StatusAborted {
			t.Errorf("aborted copy ended %s", st.Status)
		}
	})
}
