package config

import (
	"net/url"
	"testing"
)

func TestBlobPath(t *testing.T) {
	azure := StorageAccount{Name: "myacct", BlobEndpoint: "https://myacct.blob.core.windows.net"}
	azurite := StorageAccount{Name: DevStoreAccountName, BlobEndpoint: DevStoreBlobEndpoint}
	tests := []struct {
		name          string
		acct          StorageAccount
		rawURL        string
		wantOwns      bool
		wantContainer string
		wantBlob      string
		wantOK        bool
	}{
		{name: "simple", acct: azure, rawURL: "https://myacct.blob.core.windows.net/src/file.bin", wantOwns: true, wantContainer: "src", wantBlob: "file.bin", wantOK: true},
		{name: "virtual directories", acct: azure, rawURL: "https://myacct.blob.core.windows.net/src/a/b/c.txt?sv=1&sig=x", wantOwns: true, wantContainer: "src", wantBlob: "a/b/c.txt", wantOK: true},
		{name: "escaped names", acct: azure, rawURL: "https://myacct.blob.core.windows.net/src/my%20file%23%3F.txt", wantOwns: true, wantContainer: "src", wantBlob: "my file#?.txt", wantOK: true},
		{name: "host case and default port", acct: azure, rawURL: "https://MyAcct.Blob.Core.Windows.Net:443/src/x", wantOwns: true, wantContainer: "src", wantBlob: "x", wantOK: true},
		{name: "container only", acct: azure, rawURL: "https://myacct.blob.core.windows.net/src", wantOwns: true},
		{name: "container with slash only", acct: azure, rawURL: "https://myacct.blob.core.windows.net/src/", wantOwns: true},
		{name: "account root", acct: azure, rawURL: "https://myacct.blob.core.windows.net/", wantOwns: true},
		{name: "other account", acct: azure, rawURL: "https://other.blob.core.windows.net/src/x"},
		{name: "other port", acct: azure, rawURL: "https://myacct.blob.core.windows.net:8443/src/x"},
		{name: "queue host", acct: azure, rawURL: "https://myacct.queue.core.windows.net/q/messages"},
		{name: "azurite", acct: azurite, rawURL: "http://127.0.0.1:10000/devstoreaccount1/dst/dir/x.bin", wantOwns: true, wantContainer: "dst", wantBlob: "dir/x.bin", wantOK: true},
		{name: "azurite other account", acct: azurite, rawURL: "http://127.0.0.1:10000/acct2/dst/x.bin"},
		{name: "azurite account prefix is not enough", acct: azurite, rawURL: "http://127.0.0.1:10000/devstoreaccount12/dst/x.bin"},
		{name: "azurite other port", acct: azurite, rawURL: "http://127.0.0.1:10001/devstoreaccount1/dst/x.bin"},
		{name: "dot container", acct: azure, rawURL: "https://myacct.blob.core.windows.net/./src/x", wantOwns: true},
		{name: "escaped dot container", acct: azure, rawURL: "https://myacct.blob.core.windows.net/%2E/src/x", wantOwns: true},
		{name: "dot-dot in the blob name", acct: azure, rawURL: "https://myacct.blob.core.windows.net/x/../src/x", wantOwns: true},
		{name: "empty container", acct: azure, rawURL: "https://myacct.blob.core.windows.net//src/x", wantOwns: true},
		{name: "backslash in the container", acct: azure, rawURL: "https://myacct.blob.core.windows.net/src%5Cx/y", wantOwns: true},
		{name: "root container", acct: azure, rawURL: "https://myacct.blob.core.windows.net/$root/x", wantOwns: true, wantContainer: "$root", wantBlob: "x", wantOK: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := url.Parse(tt.rawURL)
			if err != nil {
				t.Fatal(err)
			}
			if got := tt.acct.OwnsURL(u); got != tt.wantOwns {
				t.Errorf("OwnsURL = %v, want %v", got, tt.wantOwns)
			}
			container, blob, ok := tt.acct.BlobPath(u)
			if container != tt.wantContainer || blob != tt.wantBlob || ok != tt.wantOK {
				t.Errorf("BlobPath = %q, %q, %v; want %q, %q, %v", container, blob, ok, tt.wantContainer, tt.wantBlob, tt.wantOK)
			}
		})
	}
	if azure.OwnsURL(nil) {
		t.Error("OwnsURL(nil) = true")
	}
}

// NamedBy: every URL storage could read as the account's, whatever its host.
func TestNamedBy(t *testing.T) {
	azure := StorageAccount{Name: "myacct", BlobEndpoint: "https://myacct.blob.core.windows.net"}
	azurite := StorageAccount{Name: DevStoreAccountName, BlobEndpoint: DevStoreBlobEndpoint}
	for _, tt := range []struct {
		acct StorageAccount
		raw  string
		want bool
	}{
		{azure, "https://myacct.blob.core.windows.net/c/x", true},
		{azure, "https://myacct.blob.core.windows.net./c/x", true},
		{azure, "https://MYACCT-secondary.blob.core.windows.net/c/x", true},
		{azure, "http://myacct.blob.core.windows.net:80/c/x", true},
		{azure, "https://myacct.dfs.core.windows.net/c/x", true},
		{azure, "https://myacct.example.com/c/x", true},
		{azure, "https://10.0.0.1/myacct/c/x", true},
		{azure, "http://localhost/./myacct/c/x", true},
		{azure, "https://other.blob.core.windows.net/myacct/x", false}, // a container named like it elsewhere
		{azure, "https://myacct2.blob.core.windows.net/c/x", false},
		{azure, "https://example.org/c/x", false},
		{azurite, "http://localhost:10000/devstoreaccount1/c/x", true},
		{azurite, "http://127.0.0.1:10000/x/../devstoreaccount1/c/x", true},
		{azurite, "http://devstoreaccount1.example.com:10000/c/x", true},
		{azurite, "http://host.docker.internal:10000/devstoreaccount1/c/x", true}, // an emulator is reached by any name
		{azurite, "http://127.0.0.1:10000/acct2/c/x", false},
		{azurite, "http://127.0.0.1:10000/devstoreaccount12/c/x", false},
	} {
		u, err := url.Parse(tt.raw)
		if err != nil {
			t.Fatal(err)
		}
		if got := tt.acct.NamedBy(u); got != tt.want {
			t.Errorf("%s.NamedBy(%s) = %v, want %v", tt.acct.Name, tt.raw, got, tt.want)
		}
	}
}
