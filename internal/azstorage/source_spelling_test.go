package azstorage

import (
	"errors"
	"testing"
	"time"

	"github.com/blobcopy/blobcopy/internal/config"
	"github.com/blobcopy/blobcopy/internal/copyjob"
)

// Review 8: a URL storage reads as the app's own account, but written other than on
// its endpoint, is refused rather than taken for an outside URL. Copy Blob authorizes
// a source of the destination's account with the destination's Shared Key, so such a
// URL read the app's records past the check bound to the mapped blob.
func TestSourceNamingAConfiguredAccountElsewhereIsRefused(t *testing.T) {
	const key = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
	own, err := NewAccount("", config.StorageAccount{Name: "prodacct", BlobEndpoint: "https://prodacct.blob.core.windows.net", AccountKey: key}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	b := NewBlobs(own)
	dst := copyjob.BlobRef{Container: "loot", Blob: "x"}
	for _, src := range []string{
		"https://prodacct.blob.core.windows.net./copyjobs/jobs/a.json",
		"https://prodacct-secondary.blob.core.windows.net/copyjobs/jobs/a.json",
		"http://prodacct.blob.core.windows.net/copyjobs/jobs/a.json",
		"https://prodacct.blob.core.windows.net:8443/copyjobs/jobs/a.json",
		"https://prodacct.dfs.core.windows.net/copyjobs/jobs/a.json",
		"https://prodacct.blob.core.windows.net/./copyjobs/jobs/a.json",
		"https://prodacct.blob.core.windows.net/x/../copyjobs/jobs/a.json",
		"https://prodacct.blob.core.windows.net//copyjobs/jobs/a.json",
		"https://prodacct.blob.core.windows.net/copyjobs",
		"https://20.60.1.1/prodacct/copyjobs/jobs/a.json",
	} {
		_, err := b.PrepareSource(t.Context(), src, dst, time.Hour)
		if !errors.Is(err, copyjob.ErrInvalidSource) {
			t.Errorf("PrepareSource(%s) = %v, want ErrInvalidSource", src, err)
		}
	}
	for _, src := range []string{
		"https://other.blob.core.windows.net/prodacct/a.json", // a container named like it, elsewhere
		"https://example.org/copyjobs/jobs/a.json",
	} {
		p, err := b.PrepareSource(t.Context(), src, dst, time.Hour)
		if err != nil || p.Source.Kind != copyjob.SourceExternal {
			t.Errorf("PrepareSource(%s) = %+v, %v, want an external source", src, p.Source, err)
		}
	}
	p, err := b.PrepareSource(t.Context(), "https://prodacct.blob.core.windows.net/copyjobs/jobs/a.json", dst, time.Hour)
	if err != nil || p.Source.Ref == nil || p.Source.Ref.Container != "copyjobs" {
		t.Errorf("PrepareSource on the endpoint = %+v, %v, want the mapped blob (the copy service refuses it as internal)", p.Source, err)
	}
}
