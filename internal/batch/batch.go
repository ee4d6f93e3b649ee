// Package batch copies every blob under a source prefix (or a whole container) with one
// request. A Batch record tracks the enumeration of the source and counts its
// children; every child is an ordinary copyjob job (record, claims, outcome, lease),
// started through copyjob.Service.StartChild with the batch's id, so every guarantee of
// a single copy holds for each child. A child without leaseSource is recorded once,
// after its Copy Blob: the batch's claim, not the record, keeps a second runner from
// starting it, and a page begun and not done is recovered (PageBegun, RecoverChild).
// What is batch-wide is the tracking: a child has no tracking message; the status tick
// lists the destination prefix with copy details and hands the children whose copy
// state moved to copyjob (children.go there).
//
// The package knows neither HTTP nor the SDK: Store and Storage are its ports.
package batch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"time"

	"github.com/blobcopy/blobcopy/internal/copyjob"
)

// Status is where a batch stands.
type Status string

const (
	// StatusEnumerating: the source is being listed (first counted, then its children
	// started page by page); children already started run meanwhile.
	StatusEnumerating Status = "enumerating"
	// StatusRunning: every child is started; some are not finished.
	StatusRunning Status = "running"
	// StatusSuccess: every child copied.
	StatusSuccess Status = "success"
	// StatusFailed: every child finished and at least one did not copy (Counts and
	// Failures say which: a partial failure), or the batch was refused before any child
	// started (Error says why).
	StatusFailed  Status = "failed"
	StatusAborted Status = "aborted"
)

// Terminal reports whether the batch is finished.
func (s Status) Terminal() bool {
	return s == StatusSuccess || s == StatusFailed || s == StatusAborted
}

// Valid reports whether s is a known status.
func (s Status) Valid() bool {
	switch s {
	case StatusEnumerating, StatusRunning, StatusSuccess, StatusFailed, StatusAborted:
		return true
	}
	return false
}

// Phase is the enumeration's step.
type Phase string

const (
	// PhaseCounting lists the source to count its matching blobs: the limit is checked
	// before any child starts.
	PhaseCounting Phase = "counting"
	// PhaseStarting lists the source again and starts a child per matching blob.
	PhaseStarting Phase = "starting"
	// PhaseDone: every page was listed.
	PhaseDone Phase = "done"
)

// Location is a container and a name prefix in a configured account.
type Location struct {
	Account   string `json:"account,omitempty"`
	Container string `json:"container"`
	Prefix    string `json:"prefix,omitempty"`
}

// Filter selects the source blobs to copy.
type Filter struct {
	// Suffix keeps blobs whose name ends with it (".csv").
	Suffix string `json:"suffix,omitempty"`
	// ModifiedSince keeps blobs last modified at or after it.
	ModifiedSince *time.Time `json:"modifiedSince,omitempty"`
}

// Matches reports whether a listed blob passes the filter.
func (f Filter) Matches(b SourceBlob) bool {
	if f.Suffix != "" && !hasSuffix(b.Name, f.Suffix) {
		return false
	}
	// Listings give last-modified times to the second (RFC 1123): a blob modified in the
	// same second as ModifiedSince is kept, never dropped for the fraction it lost.
	if f.ModifiedSince != nil && b.LastModified.Before(f.ModifiedSince.Truncate(time.Second)) {
		return false
	}
	return true
}

func hasSuffix(s, suffix string) bool {
	return len(s) >= len(suffix) && s[len(s)-len(suffix):] == suffix
}

// Failure is one child that did not copy.
type Failure struct {
	Blob        string         `json:"blob"` // the source blob's name
	JobID       string         `json:"jobId"`
	Status      copyjob.Status `json:"status"`
	Description string         `json:"description,omitempty"`
}

// maxFailures is how many failures a batch record keeps (the first ones); the others
// are counted, and listed with GET /api/copies?batch=<id>.
const maxFailures = 20

// Refusal is why a batch was refused as a whole (before any child started).
type Refusal struct {
	Code    copyjob.Code `json:"code"`
	Message string       `json:"message"`
}

// PageBegun is a page of the source whose children a runner began starting.
type PageBegun struct {
	Marker string    `json:"marker"` // the List Blobs marker the page was listed from
	At     time.Time `json:"at"`     // before the page's first Copy Blob
	// Token is the claim of the runner that began it: a runner that finds a page begun
	// under another claim recovers it.
	Token string `json:"token"`
}

// Recovered is what a recovery of a begun page found in the destination.
type Recovered struct {
	// Until is the last source name (in listing order) of a copy begun since Since.
	Until string    `json:"until"`
	Since time.Time `json:"since"`
}

// Claim is a tick runner's exclusive right to work on a batch until Until.
type Claim struct {
	Token string    `json:"token"`
	Until time.Time `json:"until"`
}

// Batch is the record of one batch.
type Batch struct {
	ID          string            `json:"id"`
	Owner       string            `json:"owner,omitempty"`
	RequestHash string            `json:"requestHash,omitempty"`
	Source      Location          `json:"source"`
	SourceURL   string            `json:"sourceUrl"` // as requested, without any query or user info
	Destination Location          `json:"destination"`
	Options     copyjob.Options   `json:"options"`
	Filter      Filter            `json:"filter"`
	Callback    *copyjob.Callback `json:"callback,omitempty"`
	// ChildCallbackURL, when set, is every child's own completion callback (beside the
	// batch's one).
	ChildCallbackURL string `json:"childCallbackUrl,omitempty"`

	Status Status `json:"status"`
	Phase  Phase  `json:"phase"`
	// Marker is the List Blobs continuation of the current phase: written after every
	// page (counted, or its children started), so a crash repeats one page at most.
	Marker string `json:"marker,omitempty"`
	// PageBegun names the page of children a runner has begun starting: written before
	// its first Copy Blob by a write the runner makes anyway (its claim, the end of
	// counting, the end of the page before), and cleared by the runner's last write of
	// the tick once no page of its own is half-started. Children without leaseSource are
	// recorded after their Copy Blob, so a runner that finds a page begun under another
	// claim (a crash, a lost claim, a transient failure mid-page) recovers it: it adopts
	// the copies started since At that were never recorded (copyjob.RecoverChild)
	// instead of starting them again.
	PageBegun *PageBegun `json:"pageBegun,omitempty"`
	// PagesBegun: this batch records its pages begun (PageBegun). False only for a batch
	// submitted before that was so: its current page may be half-started with nothing
	// saying so, and is recovered once (its children were recorded first then, so
	// recovering finds their records).
	PagesBegun bool `json:"pagesBegun,omitempty"`
	// Recovered bounds the children a recovery adopted from the destination (see
	// Service.adoptUnrecorded): a child whose name is not after Until may have a record
	// already, so it is started by reading its record first (copyjob.RecoverChild), never
	// by a Copy Blob straight away, whichever page of a later listing it falls in.
	Recovered *Recovered `json:"recovered,omitempty"`
	// Matched counts the source blobs that pass the filter: as counted, then, once the
	// last page is started, the children started and refused (blobs may have been
	// uploaded or deleted between the two listings).
	Matched int `json:"matched"`
	// Started counts the children started (or found started) so far.
	Started int `json:"started"`
	// Refused counts matching blobs whose child was refused before its record existed
	// (each named in Failures while there is room); they have no job.
	Refused int `json:"refused,omitempty"`
	// Counts holds the children per job status, as of the last tracking pass.
	Counts      map[copyjob.Status]int `json:"counts,omitempty"`
	BytesCopied int64                  `json:"bytesCopied"`
	BytesTotal  int64                  `json:"bytesTotal"`
	Failures    []Failure              `json:"failures,omitempty"`
	// AbortRequested: POST .../abort was accepted; the tick stops enumerating and
	// aborts the pending children.
	AbortRequested bool     `json:"abortRequested,omitempty"`
	Refusal        *Refusal `json:"refusal,omitempty"`
	Claim          *Claim   `json:"claim,omitempty"`

	CreatedAt   time.Time  `json:"createdAt"`
	UpdatedAt   time.Time  `json:"updatedAt"`
	CompletedAt *time.Time `json:"completedAt,omitempty"`

	ETag string `json:"-"`
}

// Active tells whether the tick has work on the batch: unfinished, or its one callback
// still to be delivered. Stores keep it beside the record for ListOptions.Active.
func (b *Batch) Active() bool {
	return !b.Status.Terminal() || (b.Callback != nil && b.Callback.DeliveredAt == nil && !b.Callback.GaveUp)
}

// ChildID is the job id of the child copying the source blob named name: the batch id
// and a digest of the name, so a page listed again after a crash (or a redelivered
// tick) maps every blob onto the same job, never a second one. Ids stay within the
// API's 64 characters and begin with the batch id (stores list a batch's children by
// that prefix).
func ChildID(batchID, name string) string {
	sum := sha256.Sum256([]byte(name))
	return batchID + "-" + hex.EncodeToString(sum[:12])
}

// ListOptions filter and page batch listings.
type ListOptions struct {
	Marker  string
	Limit   int
	ByOwner bool
	Owner   string
	// Active lists only batches that are not terminal (the tick's work list).
	Active bool
}

// Page is one page of batches.
type Page struct {
	Batches    []*Batch
	NextMarker string
}

// Store keeps batch records with compare-and-swap writes. Errors wrap copyjob's
// sentinels: ErrExists, ErrNotFound, ErrConflict, ErrUnavailable, and the other storage
// refusals (ErrForbidden, ErrInvalidValue, ErrRefused...); List answers a marker it did
// not write with copyjob.ErrInvalidMarker.
type Store interface {
	Create(ctx context.Context, b *Batch) error
	Get(ctx context.Context, id string) (*Batch, error)
	Update(ctx context.Context, b *Batch) error
	List(ctx context.Context, opts ListOptions) (Page, error)
	// ListChildren lists one page of the batch's child job records as the store keeps
	// them beside the record (id, status and ETag), without reading the documents.
	ListChildren(ctx context.Context, batchID, marker string) (ChildPage, error)
}

// Child is a child job as a listing names it.
type Child struct {
	ID     string
	Status copyjob.Status
	// ETag is the record's, as listed: a record held in memory with the same ETag is the
	// stored one, and need not be read again.
	ETag string
}

// ChildPage is one page of a batch's children.
type ChildPage struct {
	Children   []Child
	NextMarker string
}

// SourceBlob is one blob of a source listing.
type SourceBlob struct {
	Name         string
	Size         int64
	LastModified time.Time
}

// SourcePage is one List Blobs page of the source.
type SourcePage struct {
	Blobs      []SourceBlob
	NextMarker string
}

// ListedCopy is one destination blob with its copy properties.
type ListedCopy struct {
	Name  string
	State copyjob.CopyState
}

// CopyPage is one List Blobs page (include=copy) of the destination.
type CopyPage struct {
	Blobs      []ListedCopy
	NextMarker string
}

// Storage is what batches need from blob storage beyond copyjob.Blobs.
type Storage interface {
	// Locate maps a container URL (with an optional prefix path) onto a configured
	// account; ok is false for any other URL, and for one with user info.
	Locate(rawURL string) (Location, bool)
	// URL is a blob's URL without any SAS (what a child's start reads).
	URL(ref copyjob.BlobRef) (string, error)
	// SameAccount tells whether two configured aliases name one storage account (the
	// app's own account may be configured again under another alias).
	SameAccount(a, b string) bool
	// ListSource lists one page (at most max blobs) under the location's prefix.
	ListSource(ctx context.Context, loc Location, marker string, max int) (SourcePage, error)
	// ListCopies lists one page of the blobs under the location's prefix with their
	// copy properties (List Blobs include=copy).
	ListCopies(ctx context.Context, loc Location, marker string) (CopyPage, error)
}
