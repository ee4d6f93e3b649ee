package eventgrid

import (
	"errors"
	"net/http"
	"strings"
	"testing"
)

// TestBlobCreatedAPIValues reads a fixture for each api value Azure documents on
// BlobCreated and checks how it is classified.
func TestBlobCreatedAPIValues(t *testing.T) {
	tests := []struct {
		fixture, header string
		api             string
		commit          Commit
		url             string
	}{
		{"eventgrid-blob-created.json", "", APIPutBlockList, Committed, "https://my-storage-account.blob.core.windows.net/testcontainer/new-file.txt"},
		{"eventgrid-blob-created-dls.json", "", APICreateFile, Opened, "https://my-storage-account.dfs.core.windows.net/my-file-system/new-file.txt"},
		{"composed/eventgrid-blob-created-dls-flush.json", "", APIFlushWithClose, Committed, "https://my-storage-account.dfs.core.windows.net/my-file-system/new-file.txt"},
		{"eventgrid-blob-created-sftp.json", "", APISftpCommit, Committed, "https://my-storage-account.blob.core.windows.net/testcontainer/new-file.txt"},
		{"composed/eventgrid-blob-created-sftp-create.json", "", APISftpCreate, Opened, "https://my-storage-account.blob.core.windows.net/testcontainer/new-file.txt"},
		{"cloudevents-blob-created-sftp-batch.json", ContentTypeCloudEventsBatch, APISftpCommit, Committed, "https://my-storage-account.blob.core.windows.net/testcontainer/new-file.txt"},
		{"cloudevents-blob-created-dls-batch.json", ContentTypeCloudEventsBatch, APICreateFile, Opened, "https://my-storage-account.dfs.core.windows.net/my-file-system/new-file.txt"},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			h := http.Header{}
			if tt.header != "" {
				h.Set("Content-Type", tt.header)
			}
			d, err := ParseDelivery(h, readFixture(t, tt.fixture))
			if err != nil {
				t.Fatal(err)
			}
			bc, err := ParseBlobCreated(d.Events[0])
			if err != nil {
				t.Fatal(err)
			}
			if bc.Data.API != tt.api || CommitOf(bc.Data.API) != tt.commit || bc.Data.URL != tt.url {
				t.Errorf("api %q commit %v url %q", bc.Data.API, CommitOf(bc.Data.API), bc.Data.URL)
			}
		})
	}
	for api, want := range map[string]Commit{"PutBlob": Committed, "putblob": Committed, "CopyBlob": CopyStarted, "SetBlobTier": CommitUnknown, "": CommitUnknown} {
		if got := CommitOf(api); got != want {
			t.Errorf("CommitOf(%q) = %v, want %v", api, got, want)
		}
	}
}

func TestParseBlobRenamed(t *testing.T) {
	tests := []struct {
		fixture                   string
		api, container, blob, dst string
	}{
		{"eventgrid-blob-renamed-dls.json", APIRenameFile, "my-file-system", "my-renamed-file.txt",
			"https://my-storage-account.dfs.core.windows.net/my-file-system/my-renamed-file.txt"},
		{"eventgrid-blob-renamed-sftp.json", APISftpRename, "testcontainer", "my-renamed-file.txt",
			"https://my-storage-account.blob.core.windows.net/testcontainer/my-renamed-file.txt"},
		{"cloudevents-blob-renamed-dls-batch.json", APIRenameFile, "my-file-system", "my-renamed-file.txt",
			"https://my-storage-account.dfs.core.windows.net/my-file-system/my-renamed-file.txt"},
	}
	for _, tt := range tests {
		h := http.Header{}
		if strings.HasPrefix(tt.fixture, "cloudevents") {
			h.Set("Content-Type", ContentTypeCloudEventsBatch)
		}
		d, err := ParseDelivery(h, readFixture(t, tt.fixture))
		if err != nil {
			t.Fatal(err)
		}
		br, err := ParseBlobRenamed(d.Events[0])
		if err != nil {
			t.Fatalf("%s: %v", tt.fixture, err)
		}
		if br.Account != "my-storage-account" || br.Container != tt.container || br.Blob != tt.blob ||
			br.Data.API != tt.api || br.Data.DestinationURL != tt.dst || br.Data.SourceURL == "" {
			t.Errorf("%s: %+v", tt.fixture, br)
		}
		if _, err := ParseBlobCreated(d.Events[0]); !errors.Is(err, ErrNotBlobCreated) {
			t.Errorf("%s: ParseBlobCreated err = %v", tt.fixture, err)
		}
	}
	d, _ := ParseDelivery(http.Header{}, readFixture(t, "eventgrid-blob-created.json"))
	if _, err := ParseBlobRenamed(d.Events[0]); !errors.Is(err, ErrNotBlobRenamed) {
		t.Errorf("BlobCreated as renamed: %v", err)
	}
}

func TestBlobEndpointURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://acct.dfs.core.windows.net/fs/dir/a%20b.txt", "https://acct.blob.core.windows.net/fs/dir/a%20b.txt"},
		{"https://acct.DFS.core.chinacloudapi.cn/fs/a", "https://acct.blob.core.chinacloudapi.cn/fs/a"},
		{"https://acct.blob.core.windows.net/c/a", "https://acct.blob.core.windows.net/c/a"},
		{"http://127.0.0.1:10000/devstoreaccount1/c/a", "http://127.0.0.1:10000/devstoreaccount1/c/a"},
	}
	for _, tt := range tests {
		u, err := BlobEndpointURL(tt.in)
		if err != nil || u.String() != tt.want {
			t.Errorf("BlobEndpointURL(%q) = %v, %v; want %q", tt.in, u, err, tt.want)
		}
	}
	if _, err := BlobEndpointURL("/relative"); err == nil {
		t.Error("relative URL accepted")
	}
	if got := DecodedName("dir/a%20b.txt"); got != "dir/a b.txt" {
		t.Errorf("DecodedName = %q", got)
	}
	if got := DecodedName("100%"); got != "100%" {
		t.Errorf("DecodedName(bad) = %q", got)
	}
}
