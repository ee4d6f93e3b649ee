package azstorage

import (
	"errors"
	"fmt"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2/queueerror"

	"github.com/blobcopy/blobcopy/internal/copyjob"
)

// mapBlobErr wraps a storage error with the domain sentinel it means, keeping the
// original for its code and message.
func mapBlobErr(err error) error {
	if err == nil {
		return nil
	}
	var sentinel error
	switch {
	case bloberror.HasCode(err, bloberror.BlobNotFound, bloberror.ContainerNotFound, bloberror.ResourceNotFound):
		sentinel = copyjob.ErrNotFound
	case bloberror.HasCode(err, bloberror.PendingCopyOperation):
		sentinel = copyjob.ErrPendingCopy
	case bloberror.HasCode(err, bloberror.NoPendingCopyOperation):
		sentinel = copyjob.ErrNoPendingCopy
	case bloberror.HasCode(err, bloberror.CopyIDMismatch):
		sentinel = copyjob.ErrCopyIDMismatch
	case bloberror.HasCode(err, bloberror.CannotVerifyCopySource):
		sentinel = copyjob.ErrSourceUnreadable
	case bloberror.HasCode(err, bloberror.BlobAlreadyExists):
		sentinel = copyjob.ErrExists
	case bloberror.HasCode(err, bloberror.LeaseAlreadyPresent, bloberror.LeaseIDMismatchWithLeaseOperation):
		sentinel = copyjob.ErrLeaseConflict
	case bloberror.HasCode(err, bloberror.LeaseNotPresentWithLeaseOperation, bloberror.LeaseLost, bloberror.LeaseIsBrokenAndCannotBeRenewed):
		sentinel = copyjob.ErrLeaseNotHeld
	case bloberror.HasCode(err, bloberror.AuthorizationFailure, bloberror.AuthorizationPermissionMismatch,
		bloberror.AuthenticationFailed, bloberror.AuthorizationSourceIPMismatch, bloberror.AuthorizationProtocolMismatch):
		sentinel = copyjob.ErrForbidden
	default:
		return concise(err)
	}
	return fmt.Errorf("%w: %w", sentinel, concise(err))
}

// ResponseError is a storage error told in one line (the SDK's own text spans the
// whole response); it unwraps to the SDK error so bloberror.HasCode still works.
type ResponseError struct {
	StatusCode int
	Code       string
	err        *azcore.ResponseError
}

func (e *ResponseError) Error() string {
	return fmt.Sprintf("storage answered %d %s", e.StatusCode, e.Code)
}

func (e *ResponseError) Unwrap() error { return e.err }

func concise(err error) error {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		code := re.ErrorCode
		if code == "" {
			code = "(no error code)"
		}
		return &ResponseError{StatusCode: re.StatusCode, Code: code, err: re}
	}
	return err
}

func mapQueueErr(err error) error {
	if err == nil {
		return nil
	}
	if queueerror.HasCode(err, queueerror.MessageNotFound, queueerror.QueueNotFound) {
		return fmt.Errorf("%w: %w", copyjob.ErrNotFound, err)
	}
	if queueerror.HasCode(err, queueerror.PopReceiptMismatch) {
		return fmt.Errorf("%w: %w", copyjob.ErrConflict, err)
	}
	return concise(err)
}

// statusCode returns the HTTP status of a storage error, 0 when there is none.
func statusCode(err error) int {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}
