package azstorage

import (
	"errors"
	"strings"
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

// A host spelled outside ASCII, or an IPv4 address written another way, is read as
// storage reads it (the WHATWG URL standard's mapping): the account's blob, checked
// and sent in its ASCII form; a host no HTTP stack reads is refused.
func TestSourceHostIsReadAsStorageReadsIt(t *testing.T) {
	const key = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
	own, err := NewAccount("", config.StorageAccount{Name: "prodacct", BlobEndpoint: "https://prodacct.blob.core.windows.net", AccountKey: key}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	emulator, err := NewAccount("emu", config.StorageAccount{Name: config.DevStoreAccountName, BlobEndpoint: config.DevStoreBlobEndpoint, AccountKey: key}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	b := NewBlobs(own, emulator)
	dst := copyjob.BlobRef{Container: "loot", Blob: "x"}
	for _, tt := range []struct {
		src     string
		account string
		read    string
	}{
		{"https://\uff50rodacct.blob.core.windows.net/copyjobs/jobs/a.json", "", "https://prodacct.blob.core.windows.net/copyjobs/jobs/a.json"},
		{"https://prodacct\u3002blob.core.windows.net/copyjobs/jobs/a.json", "", "https://prodacct.blob.core.windows.net/copyjobs/jobs/a.json"},
		{"https://PROD\u00adACCT.blob.core.windows.net/copyjobs/jobs/a.json", "", "https://prodacct.blob.core.windows.net/copyjobs/jobs/a.json"},
		{"http://0x7f.1:10000/devstoreaccount1/copyjobs/jobs/a.json", "emu", ""},
		{"http://\uff11\uff12\uff17.0.0.1:10000/devstoreaccount1/copyjobs/jobs/a.json", "emu", ""},
	} {
		p, err := b.PrepareSource(t.Context(), tt.src, dst, time.Hour)
		if err != nil || p.Source.Ref == nil || p.Source.Ref.Account != tt.account || p.Source.Ref.Container != "copyjobs" {
			t.Errorf("PrepareSource(%s) = %+v, %v, want the blob of account %q", tt.src, p.Source, err, tt.account)
			continue
		}
		if tt.read != "" && p.ReadURL != tt.read {
			t.Errorf("PrepareSource(%s) reads %s, want %s", tt.src, p.ReadURL, tt.read)
		}
		if strings.ContainsFunc(p.Source.URL, func(r rune) bool { return r > 127 }) || strings.Contains(p.Source.URL, "%") {
			t.Errorf("PrepareSource(%s) records %s, want the ASCII host", tt.src, p.Source.URL)
		}
	}
	for _, src := range []string{"https://256.1.1.1/x/y", "https://a\u200db.example/c/x", "https://1.2.3.4.5/c/x"} {
		if _, err := b.PrepareSource(t.Context(), src, dst, time.Hour); !errors.Is(err, copyjob.ErrInvalidSource) {
			t.Errorf("PrepareSource(%s) = %v, want ErrInvalidSource", src, err)
		}
	}
}
