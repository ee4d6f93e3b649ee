package eventgrid

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
)

// Values of data.api on Microsoft.Storage.BlobCreated and BlobRenamed events
// (see testdata/README.md for the documentation pages).
const (
	APIPutBlob        = "PutBlob"
	APIPutBlockList   = "PutBlockList"
	APICopyBlob       = "CopyBlob"
	APICreateFile     = "CreateFile"     // Data Lake: an empty file is created
	APIFlushWithClose = "FlushWithClose" // Data Lake: the data is committed
	APISftpCreate     = "SftpCreate"     // SFTP: an empty blob when the file is opened
	APISftpCommit     = "SftpCommit"     // SFTP: the contents are committed
	APIRenameFile     = "RenameFile"     // Data Lake rename
	APISftpRename     = "SftpRename"     // SFTP rename
)

// Commit says what a BlobCreated event's api tells about the blob's content.
type Commit int

const (
	// CommitUnknown: an api this package does not know; the blob's state is unknown.
	CommitUnknown Commit = iota
	// Committed: the content is complete (PutBlob, PutBlockList, FlushWithClose,
	// SftpCommit).
	Committed
	// Opened: an empty file was created and its data will follow in another event
	// (CreateFile, SftpCreate). Copying it would copy an empty blob.
	Opened
	// CopyStarted: raised by Copy Blob when the copy starts, not when it ends.
	CopyStarted
)

// CommitOf classifies a BlobCreated event's api value (compared case-insensitively).
func CommitOf(api string) Commit {
	switch strings.ToLower(api) {
	case "putblob", "putblocklist", "flushwithclose", "sftpcommit":
		return Committed
	case "createfile", "sftpcreate":
		return Opened
	case "copyblob":
		return CopyStarted
	}
	return CommitUnknown
}

// StorageBlobRenamedData is the data of a Microsoft.Storage.BlobRenamed event
// (Data Lake RenameFile, SFTP SftpRename), as on the wire.
type StorageBlobRenamedData struct {
	API             string `json:"api"`
	ClientRequestID string `json:"clientRequestId,omitempty"`
	RequestID       string `json:"requestId"`
	// SourceURL is the blob's old name, DestinationURL its new one (the subject).
	// Data Lake renames give dfs.core.windows.net URLs.
	SourceURL          string          `json:"sourceUrl"`
	DestinationURL     string          `json:"destinationUrl"`
	Sequencer          string          `json:"sequencer"`
	Identity           string          `json:"identity,omitempty"`
	StorageDiagnostics json.RawMessage `json:"storageDiagnostics,omitempty"`
}

// BlobRenamed is a Microsoft.Storage.BlobRenamed event read into the names a copy
// needs: Container and Blob are the new name, from the subject.
type BlobRenamed struct {
	Account   string
	Container string
	Blob      string
	Data      StorageBlobRenamedData
}

// ParseBlobRenamed reads a Microsoft.Storage.BlobRenamed event of either schema.
func ParseBlobRenamed(e Event) (BlobRenamed, error) {
	if e.Type != TypeBlobRenamed {
		return BlobRenamed{}, fmt.Errorf("%w: type %q", ErrNotBlobRenamed, e.Type)
	}
	account, err := storageAccountName(e.Source)
	if err != nil {
		return BlobRenamed{}, err
	}
	container, blob, err := ParseBlobSubject(e.Subject)
	if err != nil {
		return BlobRenamed{}, err
	}
	var data StorageBlobRenamedData
	if err := json.Unmarshal(e.Data, &data); err != nil {
		return BlobRenamed{}, fmt.Errorf("%w: %v", ErrInvalidBlobRenamed, err)
	}
	return BlobRenamed{Account: account, Container: container, Blob: blob, Data: data}, nil
}

// DecodedName returns a subject's blob name percent-decoded, as the service reads a
// URL path; a name that is not valid percent-encoding is returned as it is.
func DecodedName(blob string) string {
	if d, err := url.PathUnescape(blob); err == nil {
		return d
	}
	return blob
}

// BlobEndpointURL parses a blob URL from an event and, for a Data Lake URL
// (<account>.dfs.<suffix>), returns it on the account's blob endpoint
// (<account>.blob.<suffix>): Copy Blob reads only blob endpoint URLs. Other URLs
// are returned parsed, unchanged.
func BlobEndpointURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	if u.Host == "" {
		return nil, fmt.Errorf("eventgrid: %q is not an absolute URL", raw)
	}
	host := u.Hostname()
	if account, rest, ok := strings.Cut(host, "."); ok {
		if suffix, isDFS := strings.CutPrefix(strings.ToLower(rest), "dfs."); isDFS && account != "" {
			c := *u
			c.Host = account + ".blob." + suffix
			if p := u.Port(); p != "" {
				c.Host += ":" + p
			}
			return &c, nil
		}
	}
	return u, nil
}
