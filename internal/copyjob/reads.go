package copyjob

import (
	"context"
	"errors"
	"fmt"
)

// Get returns a job. For a pending job it reads the destination's copy properties live,
// so a status read never shows stale progress (pitfalls #8), and shows the outcome it
// finds. It never writes: a GET is safe, and a reader that settled jobs would be one
// more concurrent settle path. The record (and the callback, the lease release) follow
// at the job's next poll by the tick.
func (s *Service) Get(ctx context.Context, id string) (*Job, error) {
	job, err := s.records.Get(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil, newError(CodeJobNotFound, "id", "no copy job with id "+id, err)
	}
	if err != nil {
		return nil, storageError("cannot read the job record", err)
	}
	if job.Status == StatusSuccess && job.Progress == (Progress{}) && job.CopyID != "" {
		return s.withRecordedLength(ctx, job), nil
	}
	if job.Status != StatusPending {
		return job, nil
	}
	state, err := s.blobs.CopyState(ctx, job.Destination.BlobRef)
	outcome, terminal, err := s.outcome(job, state, err)
	if err != nil {
		s.log.WarnContext(ctx, "live copy status read failed; answering from the record", "jobId", id, "err", err)
		return job, nil
	}
	view := cloneJob(job)
	view.Progress = outcome.Progress
	if terminal {
		view.Status, view.StatusDescription, view.CompletedAt = outcome.Status, outcome.Description, outcome.CompletedAt
		if outcome.Progress == (Progress{}) {
			view.Progress = job.Progress
		}
	}
	return view, nil
}

// withRecordedLength answers a copy recorded without its length (it finished at once,
// and Copy Blob's answer has none: see withLength) with the length the destination
// shows while it still carries that copy.
func (s *Service) withRecordedLength(ctx context.Context, job *Job) *Job {
	cur, ok := s.carriedCopy(ctx, job.Destination.BlobRef, job.CopyID)
	if !ok || cur.Progress == (Progress{}) {
		return job
	}
	view := cloneJob(job)
	view.Progress = cur.Progress
	return view
}

// jobFor reads the job an action (abort, retry) is about and asks allow (the caller's
// scope; nil allows all) before anything else happens.
func (s *Service) jobFor(ctx context.Context, id string, allow func(*Job) error) (*Job, error) {
	job, err := s.records.Get(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil, newError(CodeJobNotFound, "id", "no copy job with id "+id, err)
	}
	if err != nil {
		return nil, storageError("cannot read the job record", err)
	}
	if allow != nil {
		if err := allow(job); err != nil {
			return nil, err
		}
	}
	return job, nil
}

// outcome interprets a read of the destination's copy properties for a pending job:
// the state to record, and whether it is terminal.
func (s *Service) outcome(job *Job, state CopyState, err error) (CopyState, bool, error) {
	switch {
	case errors.Is(err, ErrNotFound):
		return CopyState{Status: StatusDestinationMissing, Progress: job.Progress,
			Description: "the destination blob was deleted while the copy was pending"}, true, nil
	case err != nil:
		return CopyState{}, false, err
	case state.CopyID == "" && job.CopyID != "":
		// Azure drops a blob's copy properties when it is written after its copy ended
		// (Set Blob Properties, Put Blob, Put Block List): a copy that succeeded and then
		// had its content type set reads like an overwrite, so the record says both.
		return CopyState{Status: StatusCopyIDMismatch, Progress: job.Progress,
			Description: fmt.Sprintf("the destination shows no copy properties: it was overwritten, or written after copy %q ended "+
				"(Set Blob Properties, Put Blob and Put Block List drop them), so whether this copy succeeded cannot be read", job.CopyID)}, true, nil
	case state.CopyID != job.CopyID:
		return CopyState{Status: StatusCopyIDMismatch, Progress: job.Progress,
			Description: fmt.Sprintf("the destination now carries copy %q (or was overwritten); this job's copy %q is gone", state.CopyID, job.CopyID)}, true, nil
	case state.Status == StatusPending:
		return state, false, nil
	}
	return state, true, nil
}

// List pages through jobs.
func (s *Service) List(ctx context.Context, opts ListOptions) (ListPage, error) {
	if opts.Status != "" && !opts.Status.Valid() {
		return ListPage{}, newError(CodeInvalidRequest, "status", "unknown status "+string(opts.Status), nil)
	}
	if opts.Limit <= 0 || opts.Limit > 1000 {
		opts.Limit = 100
	}
	page, err := s.records.List(ctx, opts)
	if errors.Is(err, ErrInvalidMarker) {
		return ListPage{}, newError(CodeInvalidRequest, "marker", "the marker is not one a listing of this service returned", err)
	}
	if err != nil {
		return ListPage{}, storageError("cannot list jobs", err)
	}
	return page, nil
}
