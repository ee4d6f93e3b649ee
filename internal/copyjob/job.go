// Package copyjob is the copy domain: a Job tracks one asynchronous Copy Blob from start
// to a terminal outcome. It holds the rules for starting, polling, aborting and recording
// copies, and the small interfaces it needs from storage. It knows nothing of HTTP or of
// the Azure SDK; adapters implement Blobs, Records and Queue.
package copyjob

import "time"

// Status is where a job stands. The copy states use the words of x-ms-copy-status; the
// others are outcomes the service records itself.
type Status string

const (
	// StatusStarting: the record exists but the copy is not known to have started. The
	// actor holding the job's Claim is attempting the start; a start that failed
	// transiently waits here (NextAttemptAt) for the tick or a client retry to attempt it
	// again. See state.go.
	StatusStarting Status = "starting"
	StatusPending  Status = "pending"
	StatusSuccess  Status = "success"
	StatusFailed   Status = "failed"
	StatusAborted  Status = "aborted"
	// StatusDestinationMissing: the destination blob was deleted while the copy ran.
	StatusDestinationMissing Status = "destinationMissing"
	// StatusCopyIDMismatch: the destination now carries another copy (or a plain write):
	// someone overwrote it. Never reported as success (pitfalls #2).
	StatusCopyIDMismatch Status = "copyIdMismatch"
	// StatusStartFailed: storage refused the start for good (Refusal says why), or every
	// attempt failed transiently; nothing is left running, leased or snapshotted.
	StatusStartFailed Status = "startFailed"
)

// Terminal reports whether the job has reached a final outcome.
func (s Status) Terminal() bool {
	switch s {
	case StatusStarting, StatusPending:
		return false
	}
	return true
}

// Valid reports whether s is a known status (used to validate list filters).
func (s Status) Valid() bool {
	switch s {
	case StatusStarting, StatusPending, StatusSuccess, StatusFailed, StatusAborted,
		StatusDestinationMissing, StatusCopyIDMismatch, StatusStartFailed:
		return true
	}
	return false
}

// SourceKind tells how the service reaches the source.
type SourceKind string

const (
	SourceSameAccount  SourceKind = "sameAccount"  // authorized by the destination's own credential (a synchronous copy's: a SAS the adapter signs for the call)
	SourceOtherAccount SourceKind = "otherAccount" // a configured account: the service signs a read-only SAS
	SourceCallerSAS    SourceKind = "callerSas"    // the caller supplied a SAS in the URL
	SourceExternal     SourceKind = "external"     // any URL readable with an anonymous GET
)

// BlobRef names a blob in a configured account. Account is the account's alias as
// configured ("" is the app's own account).
type BlobRef struct {
	Account   string `json:"account,omitempty"`
	Container string `json:"container"`
	Blob      string `json:"blob"`
	Snapshot  string `json:"snapshot,omitempty"`
	VersionID string `json:"versionId,omitempty"`
}

// Source is the job's source as recorded: never with a SAS.
type Source struct {
	URL  string     `json:"url"`
	Kind SourceKind `json:"kind"`
	// Ref is set when the source is a blob in a configured account.
	Ref *BlobRef `json:"blob,omitempty"`
	// SASExpiresAt is when the SAS the copy reads with stops working (pitfalls #3).
	SASExpiresAt *time.Time `json:"sasExpiresAt,omitempty"`
	SASKind      string     `json:"sasKind,omitempty"` // "userDelegation" or "accountKey"
	// QueryDropped is set when the caller's URL had a query URL leaves out (anything
	// but snapshot and versionid: a SAS, a token). Such a query is never stored, so
	// only a replay of the request can attempt the copy again (see resumeStart).
	QueryDropped bool `json:"queryDropped,omitempty"`
}

// Destination is where the copy writes.
type Destination struct {
	BlobRef
	URL string `json:"url"`
}

// Progress is x-ms-copy-progress.
type Progress struct {
	BytesCopied int64 `json:"bytesCopied"`
	BytesTotal  int64 `json:"bytesTotal"`
}

// Percent returns the copied share, 0..100; 0 when the total is unknown.
func (p Progress) Percent() float64 {
	if p.BytesTotal <= 0 {
		return 0
	}
	return float64(p.BytesCopied) * 100 / float64(p.BytesTotal)
}

// LeaseState tracks the source lease so that none is ever left held by nobody.
type LeaseState string

const (
	LeaseAcquiring LeaseState = "acquiring" // id chosen and recorded before the acquire call
	LeaseHeld      LeaseState = "held"
	LeaseReleased  LeaseState = "released"
	LeaseLost      LeaseState = "lost" // someone broke or changed it
	// LeaseNotAcquired: the start ended before the lease was ever ours (the source was
	// leased by someone else, missing, or the start was refused first).
	LeaseNotAcquired LeaseState = "notAcquired"
)

// Lease is the source lease held for the copy's whole life.
type Lease struct {
	ID    string     `json:"id"`
	State LeaseState `json:"state"`
	// Refusals counts releases storage refused for certain (a 403: the app's lease
	// permission removed), in a row. Such a release is attempted again on the callbacks'
	// schedule (COPY_CALLBACK_RETRY_DELAYS) for as long as it takes: a lease is infinite,
	// and giving up would leave the source locked by nobody's lease. It never holds up
	// the job's callback; a batch child's is followed by a message of its own.
	Refusals int `json:"refusals,omitempty"`
	// NextAttemptAt is when a refused release is attempted again.
	NextAttemptAt *time.Time `json:"nextAttemptAt,omitempty"`
	// fresh: named by this process for the attempt it runs, so no earlier attempt can
	// hold it (a lease read from the record may have been acquired by one that died).
	fresh bool
}

// Options are the caller's copy options, kept in the record so a resumed start uses them.
type Options struct {
	Metadata            map[string]string `json:"metadata,omitempty"`
	Tags                map[string]string `json:"tags,omitempty"`
	Tier                string            `json:"tier,omitempty"`
	Overwrite           bool              `json:"overwrite"`
	RequiresSync        bool              `json:"requiresSync,omitempty"`
	LeaseSource         bool              `json:"leaseSource,omitempty"`
	SnapshotDestination bool              `json:"snapshotDestination,omitempty"`
	SASLifetime         Duration          `json:"sasLifetime,omitempty"`
	// ContainerMustExist: a missing destination container is refused
	// (ContainerNotFound), not created (the default, like AzCopy).
	ContainerMustExist bool `json:"containerMustExist,omitempty"`
}

// Callback is an optional completion notification.
type Callback struct {
	URL string `json:"url"`
	// DeliveryID names the one delivery of this job's outcome: every attempt of it
	// carries the same id (webhook-id), so receivers can deduplicate at-least-once
	// deliveries. Set by the transition that makes the job terminal.
	DeliveryID  string     `json:"deliveryId,omitempty"`
	Attempts    int        `json:"attempts,omitempty"`
	DeliveredAt *time.Time `json:"deliveredAt,omitempty"`
	LastError   string     `json:"lastError,omitempty"`
	GaveUp      bool       `json:"gaveUp,omitempty"`
	// NextAttemptAt is when a failed delivery is attempted again (callbackRetryDelay).
	NextAttemptAt *time.Time `json:"nextAttemptAt,omitempty"`
}

// Job is the tracking record of one copy.
type Job struct {
	ID          string      `json:"id"`
	Origin      string      `json:"origin,omitempty"` // "api", "eventgrid", "webhook"
	EventID     string      `json:"eventId,omitempty"`
	Source      Source      `json:"source"`
	Destination Destination `json:"destination"`
	Options     Options     `json:"options"`

	CopyID            string   `json:"copyId,omitempty"`
	Status            Status   `json:"status"`
	StatusDescription string   `json:"statusDescription,omitempty"`
	Progress          Progress `json:"progress"`
	Lease             *Lease   `json:"lease,omitempty"`
	// DestinationSnapshot is the snapshot of the previous destination taken before the
	// copy, so an aborted copy can be rolled back.
	DestinationSnapshot string    `json:"destinationSnapshot,omitempty"`
	RestoredFrom        string    `json:"restoredFrom,omitempty"`
	Callback            *Callback `json:"callback,omitempty"`

	CreatedAt   time.Time  `json:"createdAt"`
	UpdatedAt   time.Time  `json:"updatedAt"`
	StartedAt   *time.Time `json:"startedAt,omitempty"`
	CompletedAt *time.Time `json:"completedAt,omitempty"`
	LastPolled  *time.Time `json:"lastPolledAt,omitempty"`
	Polls       int        `json:"polls"`
	// Attempts counts start attempts (more than one after a crash-recovery resume).
	Attempts     int    `json:"attempts"`
	PoisonReason string `json:"poisonReason,omitempty"`

	// Claim names the actor that may perform the job's side effects right now (see
	// state.go); nil when nobody does.
	Claim *Claim `json:"claim,omitempty"`
	// StartFailures counts transient start failures in a row; NextAttemptAt is when the
	// tick may attempt the start again.
	StartFailures int `json:"startFailures,omitempty"`
	// CopyUncertain: a Copy Blob call of this job got no answer that says whether storage
	// carried it out, and the destination could not be read to tell. Later attempts look
	// for the copy first; a refusal says the earlier outcome stayed unknown.
	CopyUncertain bool       `json:"copyUncertain,omitempty"`
	NextAttemptAt *time.Time `json:"nextAttemptAt,omitempty"`
	// WaitingSince is when an event's start began waiting for the copy pending on its
	// destination (see Service.awaitDestination); Waits counts its attempts since, for
	// their backoff. Both stay once set, until a retry.
	WaitingSince *time.Time `json:"waitingSince,omitempty"`
	Waits        int        `json:"waits,omitempty"`
	// Tracked: a tracking message follows this attempt. Start enqueues one only when work
	// is left to the tick; the tick's sweep gives one to a "starting" record without it
	// (a start that crashed before its message), see Service.sweep.
	Tracked bool `json:"tracked,omitempty"`
	// LeftoversFollowed: a batch child's leftovers that back off (a callback or a lease
	// release storage refused) are followed by a tracking message of its own, so its
	// batch need not wait for them (FinishChild).
	LeftoversFollowed bool `json:"leftoversFollowed,omitempty"`
	// Refusal is the error a permanently refused start answered; a replay of the same
	// request answers it again, with the same status and body.
	Refusal *Refusal `json:"refusal,omitempty"`
	// History holds the outcomes of earlier attempts, oldest first, when the job was
	// retried (POST .../retry): a recorded outcome is never changed, a retry appends.
	History []Outcome `json:"history,omitempty"`

	// RequestHash identifies the request that created the job, so a retry with the same
	// idempotency key but another body is refused.
	RequestHash string `json:"requestHash,omitempty"`

	// Owner is the stable identity of the caller who started the job (see
	// api/principal.go); "" for jobs started with a function key alone, by Event Grid or
	// by the webhook form. It never changes after the start.
	Owner string `json:"owner,omitempty"`

	// Batch is the id of the batch that started the job ("" for a single copy). A
	// batch's children have no tracking message of their own: the batch tracks them.
	Batch string `json:"batch,omitempty"`

	// ETag is the record's concurrency token; not part of the document.
	ETag string `json:"-"`

	// unrecorded: the job's record does not exist yet. A start whose tracking message is
	// its crash trail (see startWithMessage) writes the record once, after Copy Blob:
	// its first write creates the record (see Service.write).
	unrecorded bool
	// snapshotChecked: this attempt has taken the destination's snapshot already (or
	// found no destination to snapshot), before its tracking message named it.
	snapshotChecked bool
	// ended: the outcome of a copy that ended at once, as this attempt learnt it from Copy
	// Blob, kept for a start whose record could not be written (see unrecordedStart).
	ended *CopyState
}

// Claim is an actor's exclusive right to perform a job's side effects (Copy Blob during
// a start; the lease release and the callback after the terminal transition) until
// Until. It is taken and given back with compare-and-swap record writes; a claim past
// Until may be taken over.
type Claim struct {
	Token string    `json:"token"`
	Actor Actor     `json:"actor"`
	Until time.Time `json:"until"`
}

// Outcome is one attempt's terminal state, kept in History when the job is retried.
type Outcome struct {
	Status            Status     `json:"status"`
	StatusDescription string     `json:"statusDescription,omitempty"`
	CopyID            string     `json:"copyId,omitempty"`
	Progress          Progress   `json:"progress"`
	StartedAt         *time.Time `json:"startedAt,omitempty"`
	CompletedAt       *time.Time `json:"completedAt,omitempty"`
	Refusal           *Refusal   `json:"refusal,omitempty"`
	Callback          *Callback  `json:"callback,omitempty"`
}

// Refusal is a permanent start refusal as the API answered it.
type Refusal struct {
	Code    Code   `json:"code"`
	Target  string `json:"target,omitempty"`
	Message string `json:"message"`
}

// Duration is a time.Duration that encodes as a Go duration string ("36h").
type Duration time.Duration

func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}
