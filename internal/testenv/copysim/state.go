package copysim

import (
	"maps"
	"net/url"
	"time"
)

// Copy statuses as reported in x-ms-copy-status.
const (
	StatusPending = "pending"
	StatusSuccess = "success"
	StatusAborted = "aborted"
	StatusFailed  = "failed"
)

// Operation names used by Requests, RequestCount and FailNext.
const (
	OpCreateContainer        = "CreateContainer"
	OpGetContainerProperties = "GetContainerProperties"
	OpDeleteContainer        = "DeleteContainer"
	OpPutBlob                = "PutBlob"
	OpGetBlob                = "GetBlob"
	OpGetBlobProperties      = "GetBlobProperties"
	OpDeleteBlob             = "DeleteBlob"
	OpCopyBlob               = "CopyBlob"
	OpAbortCopyBlob          = "AbortCopyBlob"
	OpLeaseBlob              = "LeaseBlob"
	OpSnapshotBlob           = "SnapshotBlob"
	OpGetBlobMetadata        = "GetBlobMetadata"
	OpSetBlobMetadata        = "SetBlobMetadata"
	OpGetBlobTags            = "GetBlobTags"
	OpSetBlobTags            = "SetBlobTags"
	OpUnsupported            = "Unsupported"
)

// CopyState is the copy a destination blob last took part in, as Get Blob
// Properties reports it.
type CopyState struct {
	ID string
	// Destination is "account/container/blob", the blob the copy writes.
	Destination string
	// Source with the SAS signature removed, for tests to print safely. Get Blob
	// Properties answers the full URL in x-ms-copy-source, SAS included, as Azure does.
	Source      string
	Status      string // StatusPending, StatusSuccess, StatusAborted or StatusFailed
	Copied      int64
	Total       int64
	Description string
	CompletedAt time.Time // zero while pending
	// SourceExpiry is the se= of a SAS on the source; zero without one.
	SourceExpiry time.Time
}

// LeaseState is a blob's lease as Get Blob Properties reports it.
type LeaseState struct {
	State    string // available, leased, expired, breaking, broken
	Status   string // locked, unlocked
	Duration string // infinite, fixed, or "" when not leased
	ID       string // "" when no lease was ever taken
}

// CopyStart describes a copy the simulator accepted; see Options.OnCopyStart.
type CopyStart struct {
	Account, Container, Blob string
	ID                       string
	Source                   string // redacted
	Internal                 bool   // the source is a blob of this simulator
}

// RecordedRequest is one request the simulator answered.
type RecordedRequest struct {
	Op        string
	Method    string
	URL       string // SAS signature redacted
	Account   string
	Container string
	Blob      string
	Header    map[string][]string // Authorization and SAS signatures redacted
	Status    int
	ErrorCode string
	Time      time.Time
}

type containerEntry struct {
	created   time.Time
	etag      string
	blobs     map[string]*blobEntry
	snapshots map[string]map[string]*blobEntry // blob -> snapshot time -> frozen copy
}

type blobEntry struct {
	data         []byte
	contentType  string
	metadata     map[string]string
	tags         map[string]string
	tier         string
	etag         string
	created      time.Time
	lastModified time.Time
	copy         *copyRecord
	lease        lease
}

func (b *blobEntry) clone() *blobEntry {
	c := *b
	c.data = append([]byte(nil), b.data...)
	c.metadata = maps.Clone(b.metadata)
	c.tags = maps.Clone(b.tags)
	if b.copy != nil {
		cp := *b.copy
		c.copy = &cp
	}
	c.lease = lease{}
	return &c
}

// copyRecord is the full copy state; source keeps the unredacted URL and
// must never be logged or returned.
type copyRecord struct {
	CopyState
	sourceURL *url.URL
	internal  *blobRef  // nil for an external source
	srcETag   string    // source ETag at start (internal sources)
	started   time.Time // simulator clock at the start (two-week limit)
}

type blobRef struct {
	account, container, blob, snapshot string
}

type lease struct {
	id       string
	state    string // "" means available
	duration int    // -1 infinite, else seconds
	expires  time.Time
	breakAt  time.Time
}

// current resolves time-based transitions (expiry, end of a break period).
func (l *lease) current(now time.Time) {
	switch l.state {
	case "leased":
		if l.duration > 0 && !now.Before(l.expires) {
			l.state = "expired"
		}
	case "breaking":
		if !now.Before(l.breakAt) {
			l.state = "broken"
		}
	}
}

// active reports whether writes need the lease id.
func (l *lease) active(now time.Time) bool {
	l.current(now)
	return l.state == "leased" || l.state == "breaking"
}

func (l *lease) view(now time.Time) LeaseState {
	l.current(now)
	v := LeaseState{State: l.state, Status: "unlocked", ID: l.id}
	if v.State == "" {
		v.State = "available"
	}
	if l.state == "leased" || l.state == "breaking" {
		v.Status = "locked"
	}
	if l.state == "leased" {
		v.Duration = "fixed"
		if l.duration < 0 {
			v.Duration = "infinite"
		}
	}
	return v
}
