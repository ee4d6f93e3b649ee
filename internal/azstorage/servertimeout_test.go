package azstorage_test

import (
	"context"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/blobcopy/blobcopy/internal/azstorage"
	"github.com/blobcopy/blobcopy/internal/config"
	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/testenv/copysim"
)

// Copy Blob From URL (requiresSync) copies before it answers, and Azure lets a blob
// write run 10 minutes per MiB at the server unless the request's timeout parameter
// says otherwise ("Setting timeouts for Blob service operations"). A start that gave up
// at its deadline, or crashed, could then see its copy land long after the tick decided
// that nothing had started (issue 13, the caveat the second session left). The adapter
// sends the server timeout that ends with the caller's deadline (the try timeout when
// there is none), so storage has finished or abandoned the copy by then. Copy Blob
// (asynchronous) keeps storage's default: 30 s.
func TestSyncCopyCarriesItsDeadlineAsServerTimeout(t *testing.T) {
	sim := copysim.New(copysim.Options{})
	t.Cleanup(sim.Close)
	cfg := config.StorageAccount{Name: "simacct", BlobEndpoint: sim.AccountEndpoint("simacct"), AccountKey: copysim.AccountKey}
	a, err := azstorage.NewAccount("", cfg, azstorage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	blobs := azstorage.NewBlobs(a)
	sim.CreateContainer("simacct", "c")
	if err := sim.PutBlob("simacct", "c", "src.bin", []byte("sync"), nil); err != nil {
		t.Fatal(err)
	}
	for i, tt := range []struct {
		name       string
		deadline   time.Duration // 0: none
		sync       bool
		serverTime time.Duration // StartCopyOptions.MaxServerTime
		min, max   int           // the timeout parameter's bounds; 0, 0: absent
	}{
		{"sync, 20 s to the deadline", 20 * time.Second, true, 0, 19, 20},
		{"sync, 300 ms to the deadline", 300 * time.Millisecond, true, 0, 1, 1},
		{"sync, no deadline: the try timeout", 0, true, 0, 300, 300},
		{"sync, 20 s to the deadline, at most 8 s at the server", 20 * time.Second, true, 8 * time.Second, 8, 8},
		{"sync, 5 s to the deadline, at most 8 s at the server", 5 * time.Second, true, 8 * time.Second, 4, 5},
		{"async Copy Blob: storage's default", 20 * time.Second, false, 8 * time.Second, 0, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			if tt.deadline > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.deadline)
				defer cancel()
			}
			dst := copyjob.BlobRef{Container: "c", Blob: "dst" + strconv.Itoa(i)}
			src, err := blobs.PrepareSource(ctx, sim.AccountEndpoint("simacct")+"/c/src.bin", dst, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := blobs.StartCopy(ctx, dst, src.ReadURL, copyjob.StartCopyOptions{RequiresSync: tt.sync, MaxServerTime: tt.serverTime}); err != nil {
				t.Fatal(err)
			}
			reqs := sim.Requests()
			last := reqs[len(reqs)-1]
			if last.Op != copysim.OpCopyBlob || last.Blob != dst.Blob {
				t.Fatalf("last request %s %s, want Copy Blob onto %s", last.Op, last.URL, dst.Blob)
			}
			u, err := url.Parse(last.URL)
			if err != nil {
				t.Fatal(err)
			}
			got := u.Query().Get("timeout")
			if tt.max == 0 {
				if got != "" {
					t.Fatalf("timeout=%s on %s, want none", got, last.URL)
				}
				return
			}
			n, err := strconv.Atoi(got)
			if err != nil || n < tt.min || n > tt.max {
				t.Fatalf("timeout=%q on %s, want %d..%d", got, last.URL, tt.min, tt.max)
			}
		})
	}
}
