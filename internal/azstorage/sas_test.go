package azstorage

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/blobcopy/blobcopy/internal/config"
)

// Generated source SAS: read-only, one blob, HTTPS-only except for a loopback emulator.
func TestSignReadIsReadOnlyAndHTTPSOutsideLoopback(t *testing.T) {
	const key = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
	tests := []struct {
		endpoint, wantProtocol string
	}{
		{"https://prod.blob.core.windows.net", "https"},
		{"http://prod.blob.core.windows.net", "https"},
		{"http://10.1.2.3:10000/devacct", "https"},
		{"http://127.0.0.1:10000/devacct", "https,http"},
		{"http://localhost:10000/devacct", "https,http"},
	}
	for _, tt := range tests {
		a, err := NewAccount("x", config.StorageAccount{Name: "devacct", BlobEndpoint: tt.endpoint, AccountKey: key}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		q, kind, _, err := a.signRead(context.Background(), "c", "dir/b.txt", "", "", time.Now(), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		v, err := url.ParseQuery(q)
		if err != nil {
			t.Fatal(err)
		}
		if kind != "accountKey" || v.Get("sp") != "r" || v.Get("sr") != "b" || v.Get("spr") != tt.wantProtocol || v.Get("sig") == "" || v.Get("se") == "" {
			t.Errorf("%s: kind %s SAS %v", tt.endpoint, kind, v)
		}
	}
}
