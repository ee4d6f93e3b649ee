package azstorage

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2/queueerror"

	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/redact"
)

// This file classifies storage errors once, for every adapter: each error leaving the
// package wraps exactly one copyjob sentinel, and its text is one redacted line.
//
// Transient (copyjob.ErrUnavailable, a retry can succeed): any 5xx (500 InternalError
// and OperationTimedOut, 503 ServerBusy: the service may or may not have carried the
// operation out), 408, 429, and errors with no answer at all (connection refused or
// reset, client timeout, context deadline). azcore has already retried these with
// backoff when they reach us.
//
// Permanent: everything else, mapped onto the sentinel that names the cause, so the
// HTTP layer can answer a precise 4xx. A 4xx this table does not name is
// copyjob.ErrRefused (permanent, storage's own code kept in the text).

// blobCodes maps storage error codes onto sentinels. Codes are those of the Blob
// service error code reference (bloberror); the first match wins.
var blobCodes = []struct {
	codes    []bloberror.Code
	sentinel error
}{
	{[]bloberror.Code{bloberror.BlobNotFound, bloberror.ContainerNotFound, bloberror.ResourceNotFound}, copyjob.ErrNotFound},
	{[]bloberror.Code{bloberror.PendingCopyOperation}, copyjob.ErrPendingCopy},
	{[]bloberror.Code{bloberror.NoPendingCopyOperation}, copyjob.ErrNoPendingCopy},
	{[]bloberror.Code{bloberror.CopyIDMismatch}, copyjob.ErrCopyIDMismatch},
	{[]bloberror.Code{bloberror.BlobAlreadyExists}, copyjob.ErrExists},
	// Lease operations (Lease Blob): someone else's lease.
	{[]bloberror.Code{bloberror.LeaseAlreadyPresent, bloberror.LeaseIDMismatchWithLeaseOperation,
		bloberror.LeaseIsBreakingAndCannotBeAcquired, bloberror.LeaseIsBreakingAndCannotBeChanged}, copyjob.ErrLeaseConflict},
	{[]bloberror.Code{bloberror.LeaseNotPresentWithLeaseOperation, bloberror.LeaseLost, bloberror.LeaseIsBrokenAndCannotBeRenewed}, copyjob.ErrLeaseNotHeld},
	// Writes to a blob someone else leased (Copy Blob onto a leased destination: 412).
	{[]bloberror.Code{bloberror.LeaseIDMissing, bloberror.LeaseIDMismatchWithBlobOperation, bloberror.LeaseNotPresentWithBlobOperation}, copyjob.ErrDestinationLeased},
	{[]bloberror.Code{bloberror.AuthorizationFailure, bloberror.AuthorizationPermissionMismatch, bloberror.AuthenticationFailed,
		bloberror.AuthorizationSourceIPMismatch, bloberror.AuthorizationProtocolMismatch, bloberror.AuthorizationResourceTypeMismatch,
		bloberror.AuthorizationServiceMismatch, bloberror.InsufficientAccountPermissions, bloberror.NoAuthenticationInformation}, copyjob.ErrForbidden},
	{[]bloberror.Code{bloberror.InvalidHeaderValue, bloberror.InvalidMetadata, bloberror.InvalidBlobTier, bloberror.InvalidInput,
		bloberror.InvalidQueryParameterValue, bloberror.OutOfRangeInput, bloberror.OutOfRangeQueryParameterValue,
		bloberror.MetadataTooLarge, bloberror.InvalidBlobOrBlock, bloberror.InvalidSourceBlobType, bloberror.InvalidBlobType,
		bloberror.UnsupportedHeader, bloberror.InvalidResourceName, bloberror.InvalidURI, "InvalidTag", "InvalidXmlDocument"}, copyjob.ErrInvalidValue},
}

// mapBlobErr wraps a storage error with the domain sentinel it means, keeping the
// original (for bloberror.HasCode) behind a one-line, redacted text.
func mapBlobErr(err error) error {
	if err == nil {
		return nil
	}
	for _, row := range blobCodes {
		if bloberror.HasCode(err, row.codes...) {
			return fmt.Errorf("%w: %w", row.sentinel, concise(err))
		}
	}
	return fmt.Errorf("%w: %w", classifyStatus(err), concise(err))
}

// classifyStatus is the fallback for codes the tables do not name: transient by HTTP
// status (or by the absence of any answer), permanent otherwise.
func classifyStatus(err error) error {
	switch status := statusCode(err); {
	case status == 0:
		// No answer (connection refused or reset, DNS, client timeout, context deadline
		// or cancellation): storage gave no verdict, the operation may or may not have
		// happened.
		return copyjob.ErrUnavailable
	case status >= 500, status == http.StatusRequestTimeout, status == http.StatusTooManyRequests:
		return copyjob.ErrUnavailable
	case status == http.StatusForbidden || status == http.StatusUnauthorized:
		return copyjob.ErrForbidden
	case status == http.StatusNotFound:
		return copyjob.ErrNotFound
	}
	return copyjob.ErrRefused
}

// Transient reports whether err (from this package) may succeed when retried.
func Transient(err error) bool { return errors.Is(err, copyjob.ErrUnavailable) }

// ResponseError is a storage error told in one line (the SDK's own text spans the
// whole response and may quote a URL); it unwraps to the SDK error so bloberror.HasCode
// still works.
type ResponseError struct {
	StatusCode int
	Code       string
	err        *azcore.ResponseError
}

func (e *ResponseError) Error() string {
	return fmt.Sprintf("storage answered %d %s", e.StatusCode, e.Code)
}

func (e *ResponseError) Unwrap() error { return e.err }

// redactedError keeps an error's chain but shows its text redacted: transport errors
// (*url.Error) quote the request URL, which may carry a SAS.
type redactedError struct {
	text string
	err  error
}

func (e *redactedError) Error() string { return e.text }
func (e *redactedError) Unwrap() error { return e.err }

func concise(err error) error {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		code := re.ErrorCode
		if code == "" {
			code = "(no error code)"
		}
		return &ResponseError{StatusCode: re.StatusCode, Code: code, err: re}
	}
	return &redactedError{text: redact.Text(err.Error()), err: err}
}

func mapQueueErr(err error) error {
	if err == nil {
		return nil
	}
	if queueerror.HasCode(err, queueerror.MessageNotFound, queueerror.QueueNotFound) {
		return fmt.Errorf("%w: %w", copyjob.ErrNotFound, concise(err))
	}
	if queueerror.HasCode(err, queueerror.PopReceiptMismatch) {
		return fmt.Errorf("%w: %w", copyjob.ErrConflict, concise(err))
	}
	return fmt.Errorf("%w: %w", classifyStatus(err), concise(err))
}

// statusCode returns the HTTP status of a storage error, 0 when there is none.
func statusCode(err error) int {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}
