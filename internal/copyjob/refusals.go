package copyjob

import (
	"context"
	"errors"
	"fmt"
)

// This file turns storage errors into the domain's coded errors, once: the HTTP layer
// maps codes to statuses (api/errors.go) and Retryable tells retries from refusals.
// Every storage error reaching here wraps one sentinel (see the Blobs contract).

// storageError is a failure of the app's own storage (queue, records): 503 when a
// retry can succeed, otherwise an internal error (a misconfiguration a retry will not fix).
func storageError(msg string, err error) *Error {
	if err == nil || errors.Is(err, ErrUnavailable) || isUnclassified(err) {
		return newError(CodeStorageUnavailable, "", msg, err)
	}
	return newError(CodeInternal, "", msg, err)
}

// isUnclassified reports an error that wraps none of the storage sentinels (a bug in an
// adapter, or a fake): treated as transient, as the contract's absence of a verdict.
func isUnclassified(err error) bool {
	for _, s := range []error{ErrNotFound, ErrExists, ErrConflict, ErrPendingCopy, ErrNoPendingCopy, ErrCopyIDMismatch,
		ErrSourceUnreadable, ErrLeaseConflict, ErrLeaseNotHeld, ErrForbidden, ErrInvalidSource, ErrUnknownAccount,
		ErrSourceNotFound, ErrDestinationLeased, ErrInvalidValue, ErrRefused} {
		if errors.Is(err, s) {
			return false
		}
	}
	return true
}

// refusedForCertain reports an error storage answered with a verdict on the request
// itself (403, 404, 409, 400...): the operation certainly did not take place, and asking
// again changes nothing until someone changes the resource or the app's permissions.
// Storage being unavailable, a lost answer or an error nobody classified are not: the
// operation may have taken place.
func refusedForCertain(err error) bool {
	return err != nil && !errors.Is(err, ErrUnavailable) && !isUnclassified(err)
}

// blobError classifies an error of a blob operation on target ("source", "destination").
func blobError(target, msg string, err error) *Error {
	switch {
	case errors.Is(err, ErrUnavailable), isUnclassified(err):
		return newError(CodeStorageUnavailable, target, msg, err)
	case errors.Is(err, ErrForbidden):
		return newError(CodeForbidden, target, msg+": the app is not authorized", err)
	case errors.Is(err, ErrDestinationLeased):
		return newError(CodeDestinationLeased, "destination", "the destination holds a lease taken by someone else", err)
	case errors.Is(err, ErrInvalidValue):
		return newError(CodeInvalidRequest, "", msg+": storage refused a value of the request", err)
	case errors.Is(err, ErrNotFound):
		return newError(CodeContainerNotFound, target, msg+": not found", err)
	}
	return newError(CodeStorageRefused, target, msg+": storage refused the request", err)
}

func sourceError(err error) *Error {
	switch {
	case errors.Is(err, ErrForbidden):
		return newError(CodeSourceNotAllowed, "source", "the source is not allowed", err)
	case errors.Is(err, ErrInvalidSource), errors.Is(err, ErrUnknownAccount):
		return newError(CodeInvalidRequest, "source", "invalid source", err)
	}
	return blobError("source", "cannot prepare the source", err)
}

func leaseError(err error) *Error {
	switch {
	case errors.Is(err, ErrLeaseConflict):
		return newError(CodeSourceLeased, "source", "the source holds another lease", err)
	case errors.Is(err, ErrNotFound):
		return newError(CodeSourceNotFound, "source", "the source blob does not exist", err)
	}
	return blobError("source", "cannot lease the source", err)
}

func (s *Service) startCopyError(ctx context.Context, job *Job, err error) *Error {
	switch {
	case errors.Is(err, ErrPendingCopy):
		return s.pendingCopyError(ctx, job, err)
	case errors.Is(err, ErrExists):
		return newError(CodeDestinationExists, "destination", "the destination exists and overwrite is false", err)
	case errors.Is(err, ErrSourceNotFound):
		return newError(CodeSourceNotFound, "source", "the source blob does not exist", err)
	case errors.Is(err, ErrSourceUnreadable):
		return newError(CodeSourceNotReadable, "source", "storage cannot read the source (a SAS that expired or lacks read, "+
			"or the source account's firewall or private endpoints keeping the destination's service out: see docs/network.md)", err)
	case errors.Is(err, ErrNotFound):
		return newError(CodeContainerNotFound, "destination.container", "the destination container does not exist", err)
	case errors.Is(err, ErrForbidden):
		return newError(CodeForbidden, "destination", "the app is not authorized to write the destination (its role, the "+
			"destination account's firewall, or its permitted scope for copy operations: see docs/network.md)", err)
	}
	return blobError("destination", "cannot start the copy", err)
}

// pendingCopyError names the job that owns the copy pending on the destination, or
// says that no job records it.
func (s *Service) pendingCopyError(ctx context.Context, job *Job, err error) *Error {
	cur, cerr := s.blobs.CopyState(ctx, job.Destination.BlobRef)
	if cerr == nil && cur.CopyID != "" {
		if owner, _ := s.findOwner(ctx, job.Destination.BlobRef, cur.CopyID); owner != nil {
			// The owner is named by the error's job (which the HTTP layer shows only to
			// callers who may see it), never in the text: the text is recorded.
			e := newError(CodePendingCopyOperation, "destination",
				fmt.Sprintf("another job of this app has a copy pending on the destination (copy %s)", cur.CopyID), err)
			e.Job = owner
			return e
		}
		return newError(CodePendingCopyOperation, "destination",
			fmt.Sprintf("copy %s is pending on the destination and no job of this app records it (another client's copy, or one another request is starting right now)", cur.CopyID), err)
	}
	return newError(CodePendingCopyOperation, "destination", "a copy is already pending on the destination", err)
}

// findOwner returns the job whose copy copyID runs on dst, if a job of this app records
// it: one listing filtered on the copy id each record is written with (a store keeps it
// beside the record). An error means the owner could not be looked up.
func (s *Service) findOwner(ctx context.Context, dst BlobRef, copyID string) (*Job, error) {
	page, err := s.records.List(ctx, ListOptions{CopyID: copyID, Limit: 10})
	if err != nil {
		return nil, err
	}
	for _, j := range page.Jobs {
		if j.CopyID == copyID && sameBlob(j.Destination.BlobRef, dst) {
			return j, nil
		}
	}
	return nil, nil
}
