package copyjob

import (
	"context"
	"errors"
	"sort"
	"strings"
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
	// MaxServerTime bounds, with RequiresSync, how long storage may work on the copy
	// after receiving it (the REST timeout; 0: until ctx's deadline). The request is sent
	// before ctx's deadline, so storage has finished or abandoned it by the deadline
	// plus this, whatever the request met on its way (a token fetched, a slow connect).
	MaxServerTime time.Duration
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
//
// Contract: jobs come newest first (CreatedAt, then id, both descending); a page holds
// up to Limit matches and NextMarker is set only when more matches follow it, so no
// page is empty while matches remain (a job whose record changes between the listing
// and its read may still be left out of that page). Stores filter on what they keep
// beside each record (azstorage: blob metadata written with it, consistent at once),
// never by reading every record.
type ListOptions struct {
	Status Status
	Marker string
	Limit  int
	// ByOwner lists only the jobs whose Owner equals Owner ("" selects the jobs without
	// an owner); otherwise every owner's jobs are listed.
	ByOwner bool
	Owner   string
	// Origin ("api", "eventgrid", "webhook", "batch") when set.
	Origin string
	// CreatedAfter / CreatedBefore bound CreatedAt (exclusive) when not zero.
	CreatedAfter, CreatedBefore time.Time
	// CopyID selects the jobs recording that copy id (finding a copy's owner).
	CopyID string
	// Batch lists only the children of that batch ("" lists every job).
	Batch string
}

// ListEntry is what a store keeps beside a record for listing it.
type ListEntry struct {
	ID        string
	CreatedAt time.Time
	Status    Status
	Owner     string
	Origin    string
	CopyID    string
	Batch     string
}

// Matches reports whether an entry passes the options' filters.
func (o ListOptions) Matches(e ListEntry) bool {
	return (o.Status == "" || e.Status == o.Status) && (!o.ByOwner || e.Owner == o.Owner) &&
		(o.Origin == "" || e.Origin == o.Origin) && (o.CopyID == "" || e.CopyID == o.CopyID) &&
		(o.Batch == "" || e.Batch == o.Batch) &&
		(o.CreatedAfter.IsZero() || e.CreatedAt.After(o.CreatedAfter)) &&
		(o.CreatedBefore.IsZero() || e.CreatedAt.Before(o.CreatedBefore))
}

// ErrInvalidMarker: a list marker this service did not write.
var ErrInvalidMarker = errors.New("invalid list marker")

// PageOf sorts the matching entries newest first and cuts the page after the marker:
// the shared paging rule of every store. It returns the page's ids and the marker of
// the next page ("" when no match follows).
func PageOf(entries []ListEntry, opts ListOptions) ([]string, string, error) {
	matches := make([]ListEntry, 0, len(entries))
	for _, e := range entries {
		if opts.Matches(e) {
			matches = append(matches, e)
		}
	}
	sort.Slice(matches, func(i, j int) bool { return newer(matches[i], matches[j]) })
	start := 0
	if opts.Marker != "" {
		at, id, ok := parseListMarker(opts.Marker)
		if !ok {
			return nil, "", ErrInvalidMarker
		}
		last := ListEntry{ID: id, CreatedAt: at}
		start = sort.Search(len(matches), func(i int) bool { return newer(last, matches[i]) })
	}
	limit := opts.Limit
	if limit <= 0 {
		limit = 100
	}
	end := min(start+limit, len(matches))
	ids := make([]string, 0, end-start)
	for _, e := range matches[start:end] {
		ids = append(ids, e.ID)
	}
	next := ""
	if end < len(matches) {
		last := matches[end-1]
		next = last.CreatedAt.UTC().Format(time.RFC3339Nano) + "|" + last.ID
	}
	return ids, next, nil
}

func newer(a, b ListEntry) bool {
	if !a.CreatedAt.Equal(b.CreatedAt) {
		return a.CreatedAt.After(b.CreatedAt)
	}
	return a.ID > b.ID
}

func parseListMarker(m string) (time.Time, string, bool) {
	ts, id, ok := strings.Cut(m, "|")
	if !ok {
		return time.Time{}, "", false
	}
	at, err := time.Parse(time.RFC3339Nano, ts)
	return at, id, err == nil
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
	// Untracked returns a page of the ids of the records for which NeedsSweep holds:
	// the sweep's candidates (see Service.sweep), so the sweep costs what there is to
	// find, not a listing of every record. A store may answer from an index that lags
	// its writes (azstorage: Azure's blob index tags, updated asynchronously), so a page
	// may name a record that no longer needs sweeping and, for a while after a write,
	// miss one that does: callers read each record and decide again, and a later sweep
	// finds a late one. next is "" after the last page.
	Untracked(ctx context.Context, marker string) (ids []string, next string, err error)
	// ClaimFullSweep reports whether the caller should make the sweep's backstop now (a
	// listing of every "starting" record, for records the index does not know): true for
	// one caller per interval among every instance that shares the store, whose claim
	// it records (at now). Stores keep the claim beside the records.
	ClaimFullSweep(ctx context.Context, interval time.Duration, now time.Time) (bool, error)
}

// NeedsSweep tells whether a record may be a start left without a tracking message: it
// is "starting", no message follows it (Tracked is false), and it is not a batch's child
// (the batch tick takes those over). Stores index records on it (see Records.Untracked).
func NeedsSweep(job *Job) bool {
	return job.Status == StatusStarting && !job.Tracked && job.Batch == ""
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
