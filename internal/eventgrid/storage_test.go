package eventgrid

import (
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"testing"
)

func TestParseBlobCreated(t *testing.T) {
	zero := int64(0)
	diag := `{"batchId": "b68529f3-68cd-4744-baa4-3c0498ec19f0"}`
	tests := []struct {
		name     string
		fixture  string
		header   http.Header
		index    int
		want     BlobCreated
		wantDiag string
	}{
		{
			name: "event grid", fixture: "eventgrid-blob-created.json", header: http.Header{},
			want: BlobCreated{Account: "my-storage-account", Container: "test-container", Blob: "new-file.txt",
				Data: StorageBlobCreatedData{
					API: "PutBlockList", ClientRequestID: "6d79dbfb-0e37-4fc4-981f-442c9ca65760",
					RequestID: "831e1650-001e-001b-66ab-eeb76e000000", ETag: `"0x8D4BCC2E4835CD0"`,
					ContentType: "text/plain", ContentLength: 524288, BlobType: "BlockBlob",
					URL:       "https://my-storage-account.blob.core.windows.net/testcontainer/new-file.txt",
					Sequencer: "00000000000004420000000000028963",
				}},
			wantDiag: diag,
		},
		{
			name: "event grid sftp", fixture: "eventgrid-blob-created-sftp.json", header: http.Header{},
			want: BlobCreated{Account: "my-storage-account", Container: "testcontainer", Blob: "new-file.txt",
				Data: StorageBlobCreatedData{
					API: "SftpCommit", RequestID: "831e1650-001e-001b-66ab-eeb76e000000", ETag: `"0x8D4BCC2E4835CD0"`,
					ContentType: "application/octet-stream", ContentLength: 0, ContentOffset: &zero, BlobType: "BlockBlob",
					URL:       "https://my-storage-account.blob.core.windows.net/testcontainer/new-file.txt",
					Sequencer: "00000000000004420000000000028963", Identity: "localuser",
				}},
			wantDiag: diag,
		},
		{
			name: "cloudevents batch", fixture: "cloudevents-blob-created-batch.json",
			header: header("Content-Type", ContentTypeCloudEventsBatch),
			want: BlobCreated{Account: "my-storage-account", Container: "test-container", Blob: "new-file.txt",
				Data: StorageBlobCreatedData{
					API: "PutBlockList", ClientRequestID: "6d79dbfb-0e37-4fc4-981f-442c9ca65760",
					RequestID: "831e1650-001e-001b-66ab-eeb76e000000", ETag: `"0x8D4BCC2E4835CD0"`,
					ContentType: "text/plain", ContentLength: 524288, BlobType: "BlockBlob",
					URL:       "https://my-storage-account.blob.core.windows.net/testcontainer/new-file.txt",
					Sequencer: "00000000000004420000000000028963",
				}},
			wantDiag: diag,
		},
		{
			name: "cloudevents single, subject without leading slash", fixture: "cloudevents-blob-created.json",
			header: header("Content-Type", ContentTypeCloudEvents),
			want: BlobCreated{Account: "{storage-account}", Container: "{storage-container}", Blob: "{new-file}",
				Data: StorageBlobCreatedData{
					API: "PutBlockList", ClientRequestID: "4c5dd7fb-2c48-4a27-bb30-5361b5de920a",
					RequestID: "9aeb0fdf-c01e-0131-0922-9eb549000000", ETag: "0x8D76C39E4407333",
					ContentType: "image/png", ContentLength: 30699, BlobType: "BlockBlob",
					URL:       "https://gridtesting.blob.core.windows.net/testcontainer/{new-file}",
					Sequencer: "000000000000000000000000000099240000000000c41c18",
				}},
			wantDiag: `{"batchId": "681fe319-3006-00a8-0022-9e7cde000000"}`,
		},
		{
			name: "nested blob path (mixed batch, event 2)", fixture: "composed/eventgrid-mixed-batch.json",
			header: http.Header{}, index: 2,
			want: BlobCreated{Account: "my-storage-account", Container: "incoming", Blob: "2024/05/report final.csv",
				Data: StorageBlobCreatedData{
					API: "CopyBlob", ClientRequestID: "00000000-0000-0000-0000-000000000003",
					RequestID: "b1f0c2d4-0000-0000-0000-000000000000", ETag: `"0x8DC69B5A1B2C3D4"`,
					ContentType: "text/csv", ContentLength: 1048576, BlobType: "BlockBlob",
					URL:       "https://my-storage-account.blob.core.windows.net/incoming/2024/05/report%20final.csv",
					Sequencer: "0000000000000000000000000000A1B2000000000000C3D4",
				}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := ParseDelivery(tt.header, readFixture(t, tt.fixture))
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseBlobCreated(d.Events[tt.index])
			if err != nil {
				t.Fatalf("ParseBlobCreated: %v", err)
			}
			if tt.wantDiag == "" {
				if got.Data.StorageDiagnostics != nil {
					t.Errorf("StorageDiagnostics = %s, want none", got.Data.StorageDiagnostics)
				}
			} else {
				assertJSONEqual(t, got.Data.StorageDiagnostics, []byte(tt.wantDiag))
			}
			got.Data.StorageDiagnostics = nil
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseBlobCreatedErrors(t *testing.T) {
	deliver := func(fixture string) Event {
		d, err := ParseDelivery(http.Header{}, readFixture(t, fixture))
		if err != nil {
			t.Fatal(err)
		}
		return d.Events[0]
	}
	created := deliver("eventgrid-blob-created.json")
	otherSource := created
	otherSource.Source = "/subscriptions/xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"
	badData := created
	badData.Data = json.RawMessage(`{"contentLength":"big"}`)
	noData := created
	noData.Data = nil

	tests := []struct {
		name  string
		event Event
		want  error
	}{
		{"blob deleted", deliver("eventgrid-blob-deleted.json"), ErrNotBlobCreated},
		{"bad subject", deliver("composed/eventgrid-bad-subject.json"), ErrInvalidBlobSubject},
		{"source is not a storage account", otherSource, ErrNotStorageAccount},
		{"data of the wrong shape", badData, ErrInvalidBlobCreated},
		{"no data", noData, ErrInvalidBlobCreated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseBlobCreated(tt.event)
			if !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestParseBlobSubject(t *testing.T) {
	tests := []struct {
		subject         string
		container, blob string
		ok              bool
	}{
		{"/blobServices/default/containers/test-container/blobs/new-file.txt", "test-container", "new-file.txt", true},
		{"/blobServices/default/containers/c/blobs/a/b/c.txt", "c", "a/b/c.txt", true},
		{"/blobServices/default/containers/c/blobs/dir/", "c", "dir/", true},
		{"/blobServices/default/containers/c/blobs/a/blobs/b", "c", "a/blobs/b", true},
		{"/blobServices/default/containers/$root/blobs/x", "$root", "x", true},
		{"blobServices/default/containers/c/blobs/x", "c", "x", true},
		{"/blobServices/default/containers/c/blobs/", "", "", false},
		{"/blobServices/default/containers//blobs/x", "", "", false},
		{"/blobServices/default/containers/a/b/blobs/x", "", "", false},
		{"/blobServices/default/containers/test-container", "", "", false},
		{"BlobDataManagement/LifeCycleManagement/SummaryReport", "", "", false},
		{"/fileServices/default/shares/s/files/x", "", "", false},
		{"", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.subject, func(t *testing.T) {
			c, b, err := ParseBlobSubject(tt.subject)
			if tt.ok {
				if err != nil || c != tt.container || b != tt.blob {
					t.Errorf("= %q, %q, %v; want %q, %q", c, b, err, tt.container, tt.blob)
				}
				return
			}
			if !errors.Is(err, ErrInvalidBlobSubject) {
				t.Errorf("err = %v, want ErrInvalidBlobSubject", err)
			}
			if c != "" || b != "" {
				t.Errorf("returned %q, %q with an error", c, b)
			}
		})
	}
}

// StorageBlobCreatedData round-trips the data of every BlobCreated sample.
func TestStorageBlobCreatedDataRoundTrip(t *testing.T) {
	for _, name := range []string{
		"eventgrid-blob-created.json",
		"eventgrid-blob-created-sftp.json",
		"cloudevents-blob-created-batch.json",
		"cloudevents-blob-created-sftp-batch.json",
		"cloudevents-blob-created.json",
	} {
		t.Run(name, func(t *testing.T) {
			in := readFixture(t, name)
			var elems []struct {
				Data json.RawMessage `json:"data"`
			}
			if in[0] == '{' {
				in = append(append([]byte("["), in...), ']')
			}
			if err := json.Unmarshal(in, &elems); err != nil {
				t.Fatal(err)
			}
			var data StorageBlobCreatedData
			if err := json.Unmarshal(elems[0].Data, &data); err != nil {
				t.Fatal(err)
			}
			out, err := json.Marshal(data)
			if err != nil {
				t.Fatal(err)
			}
			assertJSONEqual(t, out, elems[0].Data)
		})
	}
}
