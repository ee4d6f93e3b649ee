package copyjob

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/blobcopy/blobcopy/internal/faultpoint"
	"github.com/blobcopy/blobcopy/internal/redact"
)

// A batch's children are ordinary jobs: the same records, claims and transitions as a
// single copy. What differs is who visits them: a child has no tracking message (see
// Start), so the batch's tick reads the copy states of many children with one listing
// and hands each child whose state moved to these methods. They are the tick's own
// steps (process, resumeIfAbandoned, finishTerminal) without the message.

// ObserveChild records what a read of the destination (state, or err from it: ErrNotFound
// for a missing destination) says about a pending child: nothing while its copy is
// pending, else its terminal transition under the same guard as the tick's (an abort
// holding the job wins), followed by the transition's effects. It reports whether the
// record changed. job holds the newest record afterwards.
func (s *Service) ObserveChild(ctx context.Context, job *Job, state CopyState, err error) (bool, error) {
	if job.Status != StatusPending {
		return false, nil
	}
	outcome, terminal, err := s.outcome(job, state, err)
	if err != nil || !terminal {
		return false, err
	}
	log := s.log.With("jobId", job.ID, "copyId", job.CopyID, "batch", job.Batch, "operation", "poll")
	if err := s.settle(ctx, job, outcome, ActorTick, s.pendingGuard(job.CopyID), log); err != nil {
		return false, err
	}
	return job.Status.Terminal(), nil
}

// ResumeChild takes over the start of a "starting" child nobody holds once its next
// attempt is due (a start that crashed, or failed transiently): exactly the tick's
// takeover of a single copy, which looks for the child's own copy before anything else.
// It reports whether it attempted the start.
func (s *Service) ResumeChild(ctx context.Context, job *Job) (bool, error) {
	now := s.cfg.Now()
	if job.Status != StatusStarting || s.claimLive(job) || (job.NextAttemptAt != nil && now.Before(*job.NextAttemptAt)) {
		return false, nil
	}
	if job.StartFailures >= 3*s.cfg.MaxFailures {
		return false, newError(CodeStorageUnavailable, "", "the start failed transiently too often; an operator decides", nil)
	}
	return true, s.resumeStart(ctx, job, ActorTick, "", "")
}

// FinishChild performs the leftovers of a terminal child (a lease release, a callback)
// under an effects claim, as the tick does for a single copy. It reports whether any
// are left (being done by a live claim holder counts).
func (s *Service) FinishChild(ctx context.Context, job *Job) (bool, error) {
	if !job.Status.Terminal() {
		return false, nil
	}
	log := s.log.With("jobId", job.ID, "batch", job.Batch, "operation", "effects")
	if err := s.performLeftovers(ctx, job, log); err != nil {
		return true, err
	}
	if s.claimLive(job) || s.leftoversReady(job) {
		return true, nil
	}
	if s.hasLeftovers(job) {
		// What is left backs off (a callback that failed, a lease release storage refused),
		// possibly for a day or more: a message of its own follows it from now on, and the
		// batch need not wait (review R5: a batch whose children's receiver was down stayed
		// running for a day, its own callback held back, every child read at every tick).
		return false, s.followLeftovers(ctx, job, log)
	}
	return false, nil
}

// maxMessageHide is the longest Azure Queue hides a message (7 days), less a margin.
const maxMessageHide = 7*24*time.Hour - time.Hour

// followLeftovers gives a terminal child whose leftovers back off a tracking message of
// its own, visible when the first is due, and records that it has one. Two batch
// runners may both enqueue one: each leftover is still performed once (the effects
// claim), and a message that finds nothing left is deleted.
func (s *Service) followLeftovers(ctx context.Context, job *Job, log *slog.Logger) error {
	if job.LeftoversFollowed {
		return nil
	}
	if _, err := s.queue.Enqueue(ctx, ticketFor(job).encode(), s.leftoverWait(job)); err != nil {
		return fmt.Errorf("cannot give the child's leftovers a tracking message: %w", err)
	}
	err := s.write(ctx, job, func(j *Job) error {
		if j.LeftoversFollowed || !j.Status.Terminal() {
			return errStale
		}
		j.LeftoversFollowed = true
		return nil
	})
	if err != nil && !errors.Is(err, errStale) {
		// The message follows the leftovers all the same; the next batch tick may add one.
		log.WarnContext(ctx, "cannot record that the child's leftovers have a message of their own", "err", err)
	}
	return nil
}

// ErrCopyUnrecorded: a child's copy was started (storage answered) but its record could
// not be created: the copy runs without a record. The batch retries the page, whose
// recovery adopts the copy (RecoverChild).
var ErrCopyUnrecorded = errors.New("the child's copy started but its record could not be created")

// ErrCopyInDoubt: a child's Copy Blob got no answer and no record could say so: storage
// may still carry the request out. The batch keeps its claim until it expires (its TTL
// outlasts the request) before its page is recovered, so the recovery's read of the
// destination sees the copy if it ran.
var ErrCopyInDoubt = errors.New("the child's Copy Blob got no answer and its record could not be created")

// StartChild starts one child of a batch (req.Batch, req.JobID set). A child without
// leaseSource is recorded once, after its Copy Blob (copy-then-create): the record is
// created in its real state, "pending" with the copy id, the outcome of a copy that
// ended at once, "startFailed" with the refusal, or, when Copy Blob's outcome is
// unknown, "starting" with CopyUncertain and NextAttemptAt, which ResumeChild takes over
// (looking for the child's own copy first). So a child costs its Copy Blob and one
// record write to start, against the three of Start (create, copy, pending write).
//
// What makes a second Copy Blob for the child impossible is not the record (Start's
// idempotency lock) but the batch's claim: one tick runner works on a batch at a time,
// its calls end before its claim can be taken over, and a runner that takes over a page
// an earlier runner began calls RecoverChild, never StartChild. The caller passes a
// context whose deadline ends the Copy Blob in time (the tick's budget).
//
// A child with leaseSource (or snapshotDestination) takes Start's record-first path:
// the lease id (the snapshot id) must be recorded before the lease is acquired (the
// snapshot taken), so that nothing is ever left held by nobody.
//
// It returns the job as recorded, with the refusal or transient failure as a *Error
// (e.Job set) like Start; without a job when nothing was recorded: the source could not
// be prepared (nothing started), or the copy runs unrecorded (ErrCopyUnrecorded,
// ErrCopyInDoubt; both retryable).
func (s *Service) StartChild(ctx context.Context, req StartRequest) (*Job, error) {
	if req.Options.LeaseSource || req.Options.SnapshotDestination {
		job, _, err := s.Start(ctx, req)
		var ce *Error
		if job == nil && errors.As(err, &ce) {
			job = ce.Job
		}
		return job, err
	}
	job, readURL, err := s.childJob(ctx, req)
	if err != nil {
		return nil, err
	}
	return s.copyThenRecord(ctx, job, readURL)
}

// RecoverChild is StartChild for a page an earlier runner began and did not finish (it
// crashed, lost the batch's claim, or met a transient failure): that runner may have
// started the child's copy without recording it. A child with a record counts as
// started, with nothing else done. Otherwise the destination is read: a copy of the
// child's source (compared without query), begun since the page was (since, less the
// clock skew), that no other job records, is the child's own and is adopted (its record
// created pending, or with its outcome): with overwrite false too, where starting it
// again would be refused as DestinationExists. Any other destination is started as
// StartChild would, unless adoptOnly (an aborted batch starts nothing new; the result is
// then nil, nil). Only recovered pages pay these reads.
func (s *Service) RecoverChild(ctx context.Context, req StartRequest, since time.Time, adoptOnly bool) (*Job, error) {
	existing, err := s.records.Get(ctx, req.JobID)
	switch {
	case err == nil:
		return existing, nil
	case !errors.Is(err, ErrNotFound):
		return nil, storageError("cannot read the child's record", err)
	case adoptOnly && (req.Options.LeaseSource || req.Options.SnapshotDestination):
		return nil, nil // recorded before anything starts: no record, nothing started
	case req.Options.LeaseSource || req.Options.SnapshotDestination:
		return s.StartChild(ctx, req)
	}
	job, readURL, err := s.childJob(ctx, req)
	if err != nil {
		return nil, err
	}
	created := job.CreatedAt
	job.CreatedAt = since // ownCopy takes a copy begun since then (less the clock skew)
	cur, verdict := s.ownCopy(ctx, job)
	job.CreatedAt = created
	log := s.log.With("jobId", job.ID, "batch", job.Batch, "operation", "recover")
	switch verdict {
	case copyOurs:
		log.InfoContext(ctx, "adopted the copy an earlier run of the page started without recording it", "copyId", cur.CopyID)
		job.Attempts = 1
		s.recordCopy(job, cur)
		return s.createChild(ctx, job, log)
	case copyUnknown:
		return nil, newError(CodeStorageUnavailable, "destination",
			"cannot read the destination to tell whether an earlier run started the child's copy", nil)
	}
	if adoptOnly {
		return nil, nil
	}
	return s.copyThenRecord(ctx, job, readURL)
}

// childJob prepares a child's source and builds its job, "starting" and in memory.
func (s *Service) childJob(ctx context.Context, req StartRequest) (*Job, string, error) {
	if req.Source == "" || req.JobID == "" || req.Batch == "" {
		return nil, "", newError(CodeInvalidRequest, "source", "a batch child needs a source, a job id and its batch", nil)
	}
	lifetime, err := s.sasLifetime(req.Options.SASLifetime)
	if err != nil {
		return nil, "", err
	}
	prepared, err := s.blobs.PrepareSource(ctx, req.Source, req.Destination, lifetime)
	if err != nil {
		return nil, "", sourceError(err)
	}
	if refused := s.internalSource(prepared.Source); refused != nil {
		return nil, "", refused // a batch submitted before its source was checked
	}
	dstURL, err := s.blobs.URL(req.Destination)
	if err != nil {
		return nil, "", newError(CodeInvalidRequest, "destination.account", "unknown destination account", err)
	}
	now := s.cfg.Now().UTC()
	job := &Job{ID: req.JobID, Origin: req.Origin, EventID: req.EventID, Owner: req.Owner, Batch: req.Batch,
		Source: prepared.Source, Destination: Destination{BlobRef: req.Destination, URL: dstURL}, Options: req.Options,
		Status: StatusStarting, CreatedAt: now, UpdatedAt: now, RequestHash: req.RequestHash,
		// Its batch follows a child: no tracking message, and never the sweep's.
		Tracked: true}
	if req.CallbackURL != "" {
		job.Callback = &Callback{URL: req.CallbackURL}
	}
	return job, prepared.ReadURL, nil
}

// copyThenRecord makes the child's Copy Blob (copyOnce: a lost answer is adopted, never
// repeated blindly) and creates its record in the state it learnt.
func (s *Service) copyThenRecord(ctx context.Context, job *Job, readURL string) (*Job, error) {
	log := s.log.With("jobId", job.ID, "batch", job.Batch, "operation", "start")
	// copyOnce times its retries by the start's claim: an in-memory one (never recorded:
	// the batch's claim is what excludes other runners), ending its calls StartDeadline
	// from now, as Start's do.
	job.Claim = s.newClaim(ActorStart, s.cfg.StartGrace)
	actx, cancel := context.WithTimeout(ctx, s.cfg.StartDeadline)
	job.Attempts = 1
	state, err := s.copyOnce(actx, job, readURL, log)
	cancel()
	job.Claim = nil
	faultpoint.Hit("child:copied")
	if err == nil {
		s.recordCopy(job, state)
		return s.createChild(ctx, job, log)
	}
	cause := s.startCopyError(ctx, job, err)
	now := s.cfg.Now().UTC()
	if Retryable(cause) {
		// Storage gave no verdict: "starting", for ResumeChild from NextAttemptAt; it looks
		// for this child's copy before anything else (Attempts > 0).
		next := now.Add(s.backoff(1))
		job.StartFailures, job.NextAttemptAt, job.StatusDescription = 1, &next, redact.Text(cause.Error())
		job.CopyUncertain = true
	} else {
		job.Status, job.StatusDescription, job.CompletedAt = StatusStartFailed, redact.Text(cause.Error()), &now
		job.Refusal = &Refusal{Code: cause.Code, Target: cause.Target, Message: redact.Text(cause.Message)}
		if job.Callback != nil {
			job.Callback.DeliveryID = uuid.NewString()
		}
	}
	recorded, rerr := s.createChild(ctx, job, log)
	if rerr != nil {
		return nil, rerr
	}
	if recorded.Status == StatusStartFailed && recorded.Refusal != nil {
		return recorded, refusalError(recorded)
	}
	if recorded.Status == StatusStarting {
		cause.Job = recorded
		return recorded, cause
	}
	return recorded, nil
}

// recordCopy sets the job to what a read of its copy says: pending, or the outcome of a
// copy that ended at once (its effects, only a child callback here, are the batch's
// leftovers pass's: see FinishChild).
func (s *Service) recordCopy(job *Job, state CopyState) {
	now := s.cfg.Now().UTC()
	job.CopyID, job.StartedAt, job.Progress = state.CopyID, &now, state.Progress
	job.StartFailures, job.NextAttemptAt, job.StatusDescription = 0, nil, ""
	if state.Status == StatusPending {
		job.Status = StatusPending
		return
	}
	job.Status, job.StatusDescription, job.CompletedAt = state.Status, redact.Text(state.Description), state.CompletedAt
	if job.CompletedAt == nil {
		job.CompletedAt = &now
	}
	if job.Callback != nil {
		job.Callback.DeliveryID = uuid.NewString()
	}
}

// createChild creates the child's record after its Copy Blob. A record that exists
// already is the child's own (a Create whose answer was lost, or a runner that took the
// page over): it is the answer. When no record could be written, the error says whether
// the copy runs unrecorded (ErrCopyUnrecorded) or may (ErrCopyInDoubt).
func (s *Service) createChild(ctx context.Context, job *Job, log *slog.Logger) (*Job, error) {
	bctx, cancel := bookkeeping(ctx)
	defer cancel()
	job.UpdatedAt = s.cfg.Now().UTC()
	err := s.records.Create(bctx, job)
	if err == nil {
		log.InfoContext(ctx, "child recorded after its Copy Blob", "status", job.Status, "copyId", job.CopyID)
		return job, nil
	}
	existing, gerr := s.records.Get(bctx, job.ID)
	if gerr == nil {
		if existing.CopyID != job.CopyID {
			log.WarnContext(ctx, "the child was recorded by another run; keeping that record", "copyId", job.CopyID,
				"recordedCopyId", existing.CopyID, "status", existing.Status)
		}
		return existing, nil
	}
	why := ErrCopyUnrecorded
	if job.CopyUncertain && job.CopyID == "" {
		why = ErrCopyInDoubt
	} else if job.CopyID == "" {
		// A refusal that could not be recorded: nothing runs; the page's retry decides
		// again.
		why = nil
	}
	log.WarnContext(ctx, "cannot create the child's record; its page is taken up again", "copyId", job.CopyID, "err", err, "reason", why)
	if why == nil {
		return nil, newError(CodeStorageUnavailable, "", "cannot write the child's record", err)
	}
	return nil, newError(CodeStorageUnavailable, "", "cannot write the child's record", fmt.Errorf("%w: %w", why, err))
}
