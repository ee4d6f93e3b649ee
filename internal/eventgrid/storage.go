package eventgrid

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// StorageBlobCreatedData is the data of a Microsoft.Storage.BlobCreated
// event, as on the wire.
type StorageBlobCreatedData struct {
	// API is the operation that raised the event: PutBlob, PutBlockList,
	// CopyBlob, CreateFile, FlushWithClose, SftpCreate, SftpCommit...
	API string `json:"api"`
	// ClientRequestID is the x-ms-client-request-id of the operation; absent
	// for SFTP.
	ClientRequestID string `json:"clientRequestId,omitempty"`
	RequestID       string `json:"requestId"`
	// ETag is the blob's ETag when the event was raised. Azure's samples show
	// it both with and without the surrounding double quotes.
	ETag          string `json:"eTag"`
	ContentType   string `json:"contentType"`
	ContentLength int64  `json:"contentLength"`
	// ContentOffset is the write offset, present only for accounts with a
	// hierarchical namespace (Data Lake Storage Gen2, SFTP).
	ContentOffset *int64 `json:"contentOffset,omitempty"`
	// BlobType is BlockBlob, PageBlob or AppendBlob.
	BlobType string `json:"blobType"`
	// URL is the blob's URL (a dfs.core.windows.net URL for Data Lake
	// operations).
	URL string `json:"url"`
	// Sequencer orders the events of one blob name: compare as strings.
	Sequencer string `json:"sequencer"`
	// Identity is the identity behind the operation; the local user for SFTP.
	Identity string `json:"identity,omitempty"`
	// StorageDiagnostics is for the storage service only: consumers ignore it.
	StorageDiagnostics json.RawMessage `json:"storageDiagnostics,omitempty"`
}

// BlobCreated is a Microsoft.Storage.BlobCreated event read into the names
// a copy needs.
type BlobCreated struct {
	// Account is the storage account name, from the topic or source
	// ".../providers/Microsoft.Storage/storageAccounts/<name>".
	Account string
	// Container and Blob come from the subject
	// "/blobServices/default/containers/<container>/blobs/<blob>"; Blob may
	// contain '/' and is kept as it appears in the subject (not URL-decoded).
	Container string
	Blob      string
	Data      StorageBlobCreatedData
}

// Errors of ParseBlobCreated and ParseBlobSubject, for errors.Is.
var (
	ErrNotBlobCreated     = errors.New("eventgrid: not a " + TypeBlobCreated + " event")
	ErrInvalidBlobSubject = errors.New("eventgrid: invalid blob subject")
	ErrNotStorageAccount  = errors.New("eventgrid: source is not a storage account")
	ErrInvalidBlobCreated = errors.New("eventgrid: invalid " + TypeBlobCreated + " data")
	ErrNotBlobRenamed     = errors.New("eventgrid: not a " + TypeBlobRenamed + " event")
	ErrInvalidBlobRenamed = errors.New("eventgrid: invalid " + TypeBlobRenamed + " data")
)

const errSubjectShapeExample = "want /blobServices/default/containers/<container>/blobs/<blob>"

// ParseBlobCreated reads a Microsoft.Storage.BlobCreated event of either
// schema. The errors wrap ErrNotBlobCreated, ErrNotStorageAccount,
// ErrInvalidBlobSubject or ErrInvalidBlobCreated.
func ParseBlobCreated(e Event) (BlobCreated, error) {
	if e.Type != TypeBlobCreated {
		return BlobCreated{}, fmt.Errorf("%w: type %q", ErrNotBlobCreated, e.Type)
	}
	account, err := storageAccountName(e.Source)
	if err != nil {
		return BlobCreated{}, err
	}
	container, blob, err := ParseBlobSubject(e.Subject)
	if err != nil {
		return BlobCreated{}, err
	}
	var data StorageBlobCreatedData
	if err := json.Unmarshal(e.Data, &data); err != nil {
		return BlobCreated{}, fmt.Errorf("%w: %v", ErrInvalidBlobCreated, err)
	}
	return BlobCreated{Account: account, Container: container, Blob: blob, Data: data}, nil
}

// ParseBlobSubject splits a blob event subject,
// "/blobServices/default/containers/<container>/blobs/<blob>", into the
// container and the blob name, which may contain '/'. The leading '/' may be
// missing (one of Azure's CloudEvents samples omits it). Errors wrap
// ErrInvalidBlobSubject.
func ParseBlobSubject(subject string) (container, blob string, err error) {
	const prefix = "blobServices/default/containers/"
	rest, ok := strings.CutPrefix(strings.TrimPrefix(subject, "/"), prefix)
	if !ok {
		return "", "", fmt.Errorf("%w: %q: %s", ErrInvalidBlobSubject, subject, errSubjectShapeExample)
	}
	container, blob, ok = strings.Cut(rest, "/blobs/")
	switch {
	case !ok:
		return "", "", fmt.Errorf("%w: %q: %s", ErrInvalidBlobSubject, subject, errSubjectShapeExample)
	case container == "" || strings.Contains(container, "/"):
		return "", "", fmt.Errorf("%w: %q: invalid container name", ErrInvalidBlobSubject, subject)
	case blob == "":
		return "", "", fmt.Errorf("%w: %q: empty blob name", ErrInvalidBlobSubject, subject)
	}
	return container, blob, nil
}

// storageAccountName returns <name> from a resource ID
// "/subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.Storage/storageAccounts/<name>".
// Resource IDs are case-insensitive.
func storageAccountName(source string) (string, error) {
	segs := strings.Split(source, "/")
	for i := 0; i+2 < len(segs); i++ {
		if strings.EqualFold(segs[i], "Microsoft.Storage") && strings.EqualFold(segs[i+1], "storageAccounts") {
			if name := segs[i+2]; name != "" {
				return name, nil
			}
		}
	}
	return "", fmt.Errorf("%w: %q", ErrNotStorageAccount, source)
}
