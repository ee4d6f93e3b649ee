package copyjob

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
)

// AbortOptions tune an abort.
type AbortOptions struct {
	// Restore copies the destination snapshot taken before the copy back over the
	// destination, rolling the aborted copy back.
	Restore bool
	// Allow, when set, is asked with the job as recorded before anything else happens;
	// an error it returns is Abort's answer (the HTTP layer answers JobNotFound for a
	// job the caller may not see). Nil allows every job.
	Allow func(*Job) error
}

// Abort aborts a pending copy with its recorded copy id. It first claims the pending
// job (so the tick does not settle it meanwhile, nor take a restore copy for an
// overwrite), then makes one Abort Copy Blob call, and settles the job as aborted.
func (s *Service) Abort(ctx context.Context, id string, opts AbortOptions) (*Job, error) {
	job, err := s.jobFor(ctx, id, opts.Allow)
	if err != nil {
		return nil, err
	}
	notPending := func(j *Job) error {
		e := newError(CodeCopyNotPending, "id", fmt.Sprintf("the copy is %s, not pending", j.Status), nil)
		e.Job = j
		return e
	}
	if job.Status == StatusStarting && waitingForDestination(job) {
		return s.abortWaiting(ctx, job, opts, notPending)
	}
	if job.Status != StatusPending {
		return job, notPending(job)
	}
	if opts.Restore && job.DestinationSnapshot == "" {
		return job, newError(CodeInvalidRequest, "restore", "the job took no destination snapshot (start it with snapshotDestination: true)", nil)
	}
	log := s.log.With("jobId", job.ID, "copyId", job.CopyID, "operation", "abort")
	ctx = context.WithoutCancel(ctx) // once claimed, finish even if the client hangs up
	token, err := s.takeClaim(ctx, job, ActorAbort, s.cfg.EffectsGrace, StatusPending)
	switch {
	case errors.Is(err, errStale):
		return job, notPending(job)
	case errors.Is(err, errLostClaim):
		e := newError(CodeCopyNotPending, "id", "another request is aborting or settling this copy", nil)
		e.Job = job
		return job, e
	case err != nil:
		return job, storageError("cannot claim the job", err)
	}
	guard := claimGuard(token)

	err = s.blobs.AbortCopy(ctx, job.Destination.BlobRef, job.CopyID)
	switch {
	case err == nil:
	case errors.Is(err, ErrNoPendingCopy), errors.Is(err, ErrCopyIDMismatch), errors.Is(err, ErrNotFound):
		// The copy ended (or was replaced) before the abort: record what happened.
		state, serr := s.blobs.CopyState(ctx, job.Destination.BlobRef)
		if outcome, terminal, oerr := s.outcome(job, state, serr); oerr == nil && terminal {
			if err := s.settle(ctx, job, outcome, ActorAbort, guard, log); err != nil {
				log.WarnContext(ctx, "cannot record the state found at abort; the status tick records it", "err", err)
			}
		} else {
			s.giveBack(ctx, job, token, log)
		}
		return job, notPending(job)
	default:
		s.giveBack(ctx, job, token, log)
		return job, blobError("destination", "cannot abort the copy", err)
	}
	s.reportBehind(ctx, func() { log.InfoContext(ctx, "copy aborted") })
	// The outcome is recorded before the restore copy starts: once the job is terminal
	// nobody polls the destination again, so the restore's copy id can never be taken
	// for an overwrite (copyIdMismatch).
	outcome := CopyState{Status: StatusAborted, Progress: job.Progress, Description: "aborted by request"}
	if cur, err := s.blobs.CopyState(ctx, job.Destination.BlobRef); err == nil && cur.CopyID == job.CopyID {
		// Polls no longer record progress: read how far the copy got.
		outcome.Progress = cur.Progress
	}
	if opts.Restore {
		outcome.Description = "aborted by request; the destination is restored from snapshot " + job.DestinationSnapshot +
			" (restoredFrom names it once the restore copy started)"
	}
	if err := s.settle(ctx, job, outcome, ActorAbort, guard, log); err != nil {
		// The claim expires; the tick then reads storage (aborted) and records it.
		log.WarnContext(ctx, "abort not recorded yet; the status tick records it", "err", err)
		job.Status, job.StatusDescription = StatusAborted, outcome.Description
		return job, nil
	}
	if opts.Restore && job.Status == StatusAborted {
		s.restore(ctx, job, log)
	}
	return job, nil
}

// abortWaiting ends an event's job that waits for the copy pending on its destination
// (see Service.awaitDestination) as aborted: it has no copy of its own, so there is
// nothing to call Abort Copy Blob on. It claims the start first, so the tick does not
// attempt it meanwhile, and checks that no earlier attempt of it started a copy after
// all (its answer lost): that copy would be the job's to follow, not to leave running.
func (s *Service) abortWaiting(ctx context.Context, job *Job, opts AbortOptions, notPending func(*Job) error) (*Job, error) {
	if opts.Restore {
		return job, newError(CodeInvalidRequest, "restore", "the job waits for the destination and started no copy: there is nothing to restore", nil)
	}
	return s.abortStart(ctx, job, "aborted by request while its start waited (for the copy pending on its destination, or for its next attempt after a storage error); no copy of this job was started", notPending)
}

// errChildCopyFound: AbortChildStart found a copy of the child's earlier attempt.
var errChildCopyFound = errors.New("an earlier attempt of the child started its copy")

// AbortChildStart ends a child left "starting" (a start that crashed or failed
// transiently) whose batch was aborted, as aborted: its start is not attempted again
// (review 12: the batch's tracking took such children over after the abort and started
// their copies). When an earlier attempt started a copy after all (its answer lost), it
// reports false, and ResumeChild adopts that copy (never starting another) so that the
// batch aborts it like any pending child's.
func (s *Service) AbortChildStart(ctx context.Context, job *Job) (bool, error) {
	_, err := s.abortStart(ctx, job, "aborted with its batch before its copy started; no copy of this job was started",
		func(*Job) error { return errChildCopyFound })
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, errChildCopyFound):
		return false, nil
	}
	return false, err
}

// abortStart ends a "starting" job that holds no copy as aborted (description says
// why): abortWaiting and AbortChildStart.
func (s *Service) abortStart(ctx context.Context, job *Job, description string, notPending func(*Job) error) (*Job, error) {
	log := s.log.With("jobId", job.ID, "operation", "abort")
	ctx = context.WithoutCancel(ctx)
	token, err := s.takeClaim(ctx, job, ActorAbort, s.cfg.StartGrace, StatusStarting)
	switch {
	case errors.Is(err, errStale):
		return job, notPending(job)
	case errors.Is(err, errLostClaim):
		e := newError(CodeCopyNotPending, "id", "the start is being attempted right now; read the job and abort again if it is pending", nil)
		e.Job = job
		return job, e
	case err != nil:
		return job, storageError("cannot claim the job", err)
	}
	if job.CopyUncertain || job.Attempts > 0 { // as resumeStart looks first
		switch _, v := s.ownCopy(ctx, job); v {
		case copyOurs:
			s.giveBack(ctx, job, token, log) // the tick adopts it; it can be aborted once pending
			return job, notPending(job)
		case copyUnknown:
			s.giveBack(ctx, job, token, log)
			return job, storageError("cannot read the destination to tell whether an earlier attempt started the copy", nil)
		}
	}
	if !job.Tracked && job.Batch == "" && s.effectsDue(job) {
		// No message follows this start (its enqueue failed; the sweep gives one only to a
		// record still starting): the abort's leftovers (a callback that fails and backs
		// off, a lease, a snapshot) would have none to finish them.
		if _, err := s.queue.Enqueue(ctx, ticketFor(job).encode(), s.cfg.FirstPoll); err != nil {
			s.giveBack(ctx, job, token, log)
			return job, storageError("cannot enqueue the tracking message the abort's leftovers need", err)
		}
		job.Tracked = true
	}
	outcome := CopyState{Status: StatusAborted, Description: description}
	tracked := job.Tracked
	if err := s.settle(ctx, job, outcome, ActorAbort, func(j *Job) error {
		if err := claimGuard(token)(j); err != nil {
			return err
		}
		j.Tracked = j.Tracked || tracked
		return nil
	}, log); err != nil {
		s.giveBack(ctx, job, token, log)
		return job, storageError("cannot record the abort", err)
	}
	log.InfoContext(ctx, "start aborted before its copy started")
	return job, nil
}

// restore copies the destination snapshot taken before the copy back over the
// destination of an aborted job, and records that it did (RestoredFrom).
func (s *Service) restore(ctx context.Context, job *Job, log *slog.Logger) {
	snapRef := job.Destination.BlobRef
	snapRef.Snapshot = job.DestinationSnapshot
	snapURL, err := s.blobs.URL(snapRef)
	if err == nil {
		_, err = s.blobs.StartCopy(ctx, job.Destination.BlobRef, snapURL, StartCopyOptions{})
	}
	if err != nil {
		log.ErrorContext(ctx, "cannot restore the destination snapshot", "snapshot", job.DestinationSnapshot, "err", err)
		return
	}
	snapshot := job.DestinationSnapshot
	werr := s.write(ctx, job, func(j *Job) error {
		if j.Status != StatusAborted || j.RestoredFrom != "" {
			return errStale
		}
		j.RestoredFrom = snapshot
		return nil
	})
	if werr != nil {
		log.WarnContext(ctx, "the destination was restored but the record does not say so yet", "snapshot", snapshot, "err", werr)
		job.RestoredFrom = snapshot
	}
	log.InfoContext(ctx, "destination restored from its snapshot", "snapshot", snapshot)
}

// giveBack releases a claim this actor holds without changing anything else.
func (s *Service) giveBack(ctx context.Context, job *Job, token string, log *slog.Logger) {
	err := s.write(ctx, job, func(j *Job) error {
		if !holds(j, token) {
			return errLostClaim
		}
		j.Claim = nil
		return nil
	})
	if err != nil && !errors.Is(err, errLostClaim) {
		log.WarnContext(ctx, "cannot give the claim back; it expires by itself", "err", err)
	}
}
