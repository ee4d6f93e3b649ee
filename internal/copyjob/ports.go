package copyjob

import (
	"context"
	"time"
)

// CopyState is what Get Blob Properties tells about the last copy into a blob.
type CopyState struct {
	CopyID       string
	Status       Status // pending, success, failed or aborted
	Progress     Progress
	Description  string
	CompletedAt  *time.Time
	SourceURL    string // redacted
	LastModified time.Time
}

// PreparedSource is a source made ready for storage to read.
type PreparedSource struct {
	// ReadURL is what Copy Blob reads, possibly carrying a SAS: never log or store it.
	ReadURL string
	Source  Source // the recorded, SAS-free form
}

// StartCopyOptions are the storage-level options of one Copy Blob call.
type StartCopyOptions struct {
	Metadata     map[string]string
	Tags         map[string]string
	Tier         string
	IfNotExists  bool // If-None-Match: * on the destination: atomic "don't overwrite"
	RequiresSync bool // Copy Blob From URL: answers when done
	// CreateContainer creates a missing destination container and tries again.
	CreateContainer bool
}

// Blobs is what the domain needs from blob storage, across every configured account.
//
// Error contract (checked by the shared contract suite in copyjobtest/contract, run on
// the in-memory fakes and on the azstorage adapter): implementations wrap every error
// with exactly one sentinel of this package. ErrUnavailable means a retry can succeed
// (5xx, 408, 429, timeouts, no connection, a lost answer); every other sentinel is a
// permanent answer. Error texts never carry a SAS, key or token.
type Blobs interface {
	// PrepareSource turns a caller's source URL into what storage should read, signing a
	// read-only SAS valid for lifetime when the source is in another configured account.
	PrepareSource(ctx context.Context, source string, dst BlobRef, lifetime time.Duration) (PreparedSource, error)
	// URL is the blob's URL, without any SAS.
	URL(ref BlobRef) (string, error)
	// StartCopy makes one Copy Blob call and does not retry it: after ErrUnavailable the
	// copy may or may not have started, and only the caller can tell (by reading the
	// destination) whether a retry would start a second copy.
	StartCopy(ctx context.Context, dst BlobRef, readURL string, opts StartCopyOptions) (CopyState, error)
	CopyState(ctx context.Context, dst BlobRef) (CopyState, error)
	AbortCopy(ctx context.Context, dst BlobRef, copyID string) error
	// AcquireLease takes an infinite lease with the proposed id; acquiring again with the
	// same id while it is held succeeds (the crash-recovery path relies on it).
	AcquireLease(ctx context.Context, ref BlobRef, leaseID string) error
	// ReleaseLease releases it. ErrLeaseNotHeld: the blob holds no lease (released
	// already, e.g. before a crash). ErrLeaseConflict: someone else holds, broke or
	// replaced it. Storage answers a release on a free blob with the same code as one on a
	// blob leased by someone else, so implementations read the lease state to tell them apart.
	ReleaseLease(ctx context.Context, ref BlobRef, leaseID string) error
	// Snapshot snapshots a blob and returns the snapshot id; ErrNotFound when absent.
	Snapshot(ctx context.Context, ref BlobRef) (string, error)
	// DeleteSnapshot deletes one snapshot of ref (taken for a start that was then
	// refused); ErrNotFound when it is gone already.
	DeleteSnapshot(ctx context.Context, ref BlobRef, snapshot string) error
}

// ListOptions filter and page job listings.
type ListOptions struct {
	Status Status
	Marker string
	Limit  int
	// ByOwner lists only the jobs whose Owner equals Owner ("" selects the jobs without
	// an owner); otherwise every owner's jobs are listed. Stores filter on what they
	// keep beside the record (azstorage: blob metadata), not by reading every record.
	ByOwner bool
	Owner   string
	// Batch lists only the children of that batch ("" lists every job), filtered on
	// what stores keep beside the record (azstorage: the "batch" metadata entry).
	Batch string
}

// ListPage is one page of jobs.
type ListPage struct {
	Jobs       []*Job
	NextMarker string
}

// Records stores job records with optimistic concurrency.
type Records interface {
	// Create stores a new record; ErrExists when the id is taken. Sets job.ETag.
	Create(ctx context.Context, job *Job) error
	// Get returns the record; ErrNotFound when absent.
	Get(ctx context.Context, id string) (*Job, error)
	// Update replaces the record if job.ETag still matches (ErrConflict otherwise) and
	// sets job.ETag to the new one.
	Update(ctx context.Context, job *Job) error
	List(ctx context.Context, opts ListOptions) (ListPage, error)
}

// Message is a tracking message as dequeued.
type Message struct {
	ID           string
	PopReceipt   string
	DequeueCount int64
	Text         string
}

// Queue carries one tracking message per job until it reaches a terminal state.
type Queue interface {
	Enqueue(ctx context.Context, text string, visibleAfter time.Duration) (Message, error)
	Dequeue(ctx context.Context, max int, visibility time.Duration) ([]Message, error)
	// Update rewrites the message text and hides it for visibleAfter; returns the new pop receipt.
	Update(ctx context.Context, m Message, text string, visibleAfter time.Duration) (Message, error)
	Delete(ctx context.Context, m Message) error
	// Poison moves a message that cannot be processed to the poison queue.
	Poison(ctx context.Context, text, reason string) error
}

// Notifier delivers completion callbacks (optional).
type Notifier interface {
	Notify(ctx context.Context, callbackURL string, job *Job) error
}
