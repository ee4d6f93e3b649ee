package copyjob

import (
	"errors"
	"fmt"
)

// Sentinel errors the storage adapters wrap, checked with errors.Is.
var (
	ErrNotFound         = errors.New("not found")
	ErrExists           = errors.New("already exists")
	ErrConflict         = errors.New("concurrent update")
	ErrPendingCopy      = errors.New("a copy is already pending on the destination")
	ErrNoPendingCopy    = errors.New("no copy is pending on the destination")
	ErrCopyIDMismatch   = errors.New("the pending copy has another copy id")
	ErrSourceUnreadable = errors.New("the copy source cannot be read")
	ErrLeaseConflict    = errors.New("the source is leased by someone else")
	ErrLeaseNotHeld     = errors.New("the lease is no longer held")
	ErrForbidden        = errors.New("not authorized")
	ErrInvalidSource    = errors.New("invalid source")
	ErrUnknownAccount   = errors.New("unknown storage account")

	// ErrUnavailable: storage did not carry the request out or its answer was lost
	// (5xx, 408, 429, a timeout, no connection): a retry can succeed. Adapters wrap every
	// such error with it; the domain treats every other error as permanent.
	ErrUnavailable = errors.New("storage unavailable")
	// ErrSourceNotFound: the source blob does not exist.
	ErrSourceNotFound = errors.New("the source blob does not exist")
	// ErrDestinationLeased: the destination holds a lease someone else took (Copy Blob
	// without its lease id answers 412 LeaseIdMissing).
	ErrDestinationLeased = errors.New("the destination is leased by someone else")
	// ErrInvalidValue: storage refused a value of the request (tier, metadata, tags...).
	ErrInvalidValue = errors.New("storage refused a value of the request")
	// ErrRefused: any other permanent refusal by storage (a 4xx not named above).
	ErrRefused = errors.New("storage refused the request")
)

// Code is a stable error code, in the style of bloberror.Code.
type Code string

const (
	CodeInvalidRequest        Code = "InvalidRequest"
	CodeJobNotFound           Code = "JobNotFound"
	CodeCopyNotPending        Code = "CopyNotPending"
	CodeDestinationExists     Code = "DestinationAlreadyExists"
	CodePendingCopyOperation  Code = "PendingCopyOperation"
	CodeSourceNotReadable     Code = "CannotVerifyCopySource"
	CodeSourceLeased          Code = "SourceLeaseConflict"
	CodeIdempotencyMismatch   Code = "IdempotencyKeyReused"
	CodeStorageUnavailable    Code = "StorageUnavailable"
	CodeForbidden             Code = "AuthorizationFailure"
	CodeDestinationNotAllowed Code = "DestinationNotAllowed"
	CodeSourceNotAllowed      Code = "SourceNotAllowed"
	CodeContainerNotFound     Code = "ContainerNotFound"
	// Codes added with the job state machine (issue 10); the list only grows at the end.
	CodeSourceNotFound        Code = "SourceBlobNotFound"
	CodeDestinationLeased     Code = "DestinationLeased"
	CodeStorageRefused        Code = "StorageRequestRefused"
	CodeStartRetriesExhausted Code = "StartRetriesExhausted"
	CodeInternal              Code = "InternalError"
	CodeCopyNotRetryable      Code = "CopyNotRetryable"
	// CodeWaitingForDestination: an event's start met a copy pending on its destination
	// and waits for it to end (see Service.fail); the error names the waiting job.
	CodeWaitingForDestination Code = "WaitingForDestination"
	// CodeSourceQueryNotKept: a start whose source carried the caller's SAS (or another
	// query, such as a token) cannot be attempted again without the request: no such
	// query is ever stored.
	CodeSourceQueryNotKept Code = "SourceQueryNotKept"
)

// Error is a domain error with a stable code; the HTTP layer maps codes to statuses.
type Error struct {
	Code    Code
	Message string
	Target  string
	// Job is the job the error is about, when known (e.g. the owner of a pending copy).
	Job *Job
	Err error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

func newError(code Code, target, msg string, err error) *Error {
	return &Error{Code: code, Target: target, Message: msg, Err: err}
}

// Retryable reports whether a retry of the same request can succeed: only when storage
// was unavailable (throttled, timed out, unreachable). Every other coded error is a
// permanent refusal; an uncoded error is treated as retryable. The HTTP layer answers
// 503 + Retry-After for retryable errors and the event route asks Event Grid to redeliver
// only then.
func Retryable(err error) bool {
	if err == nil {
		return false
	}
	c := CodeOf(err)
	return c == "" || c == CodeStorageUnavailable
}

// CodeOf returns the code of a domain error, or "" for any other error.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}
