package copyjob

import (
	"context"
	"errors"
	"log/slog"

	"github.com/blobcopy/blobcopy/internal/faultpoint"
)

// A start that nothing can replay (no idempotency key, no event id: its id is new, and
// not a batch's child) needs no record before its Copy Blob: a record made first is the
// lock that stops a second delivery of the same request, and there is no second
// delivery. Its tracking message, which a pending copy needs anyway, is then its crash
// trail, and its record is written once, after Copy Blob, in the state Copy Blob left
// (issue 13): Put Message, Copy Blob, Put Blob, 3 storage requests for a copy that stays
// pending (the record-first start makes 4: record, Copy Blob, message, "pending"), and 4
// for one that completes at once (its message is deleted).

// maxTrailText bounds the text of a ticket carrying its whole job: a queue message holds
// 64 KiB. A job over it (large metadata or tags, long URLs) starts record-first.
const maxTrailText = 32 << 10

// trailFits tells whether the job fits in its tracking message, without encoding it:
// the fields a request sizes (the rest of a job is well under 2 KiB).
func trailFits(job *Job) bool {
	n := len(job.Source.URL) + len(job.Destination.URL) + 2*len(job.Destination.Blob)
	if job.Callback != nil {
		n += len(job.Callback.URL)
	}
	for k, v := range job.Options.Metadata {
		n += len(k) + len(v) + 8
	}
	for k, v := range job.Options.Tags {
		n += len(k) + len(v) + 8
	}
	return n+4096 < maxTrailText
}

// startWithMessage is Start for a start nothing can replay. The order is what makes a
// crash anywhere harmless, as the record-first order is for Start:
//  1. with snapshotDestination, the destination's snapshot, so that the message can name
//     it (a crash between the two leaves that snapshot behind: README, "Limits");
//  2. the tracking message, carrying the whole job (ticket.Job) and its lease id, hidden
//     for FirstPoll;
//  3. the lease, then Copy Blob (attempt, as for any start);
//  4. the record, created by the attempt's first write (see Service.write) in its real
//     state: "pending" with the copy id, the outcome of a copy that ended at once, the
//     refusal, or "starting" for the tick to attempt again. The start is answered after
//     it, so status reads, aborts and a 409 naming the copy's owner see the record.
//
// A crash (or a record storage refused) leaves the message and no record: the tick's
// recoverStart records the job's copy if one started, and otherwise drops the message
// (the client never got a 202), releasing the lease and deleting the snapshot.
func (s *Service) startWithMessage(ctx context.Context, job *Job, readURL string, log *slog.Logger) (*Job, bool, error) {
	job.Tracked, job.unrecorded = true, true
	dst := job.Destination.BlobRef
	if job.Options.SnapshotDestination && job.Options.Overwrite {
		sctx, cancel := context.WithTimeout(ctx, s.cfg.StartDeadline)
		snap, err := s.blobs.Snapshot(sctx, dst)
		cancel()
		switch {
		case err == nil:
			job.DestinationSnapshot = snap
		case errors.Is(err, ErrNotFound):
			// Nothing to protect: the destination does not exist yet.
		default:
			// Nothing started and nothing is recorded: the answer is the whole outcome.
			return nil, false, blobError("destination", "cannot snapshot the destination", err)
		}
		job.snapshotChecked = true
		faultpoint.Hit("start:snapshotted")
	}
	trail := cloneJob(job)
	t := ticketFor(job)
	t.Job = trail
	msg, err := s.queue.Enqueue(ctx, t.encode(), s.cfg.FirstPoll)
	if err != nil {
		log.WarnContext(ctx, "cannot enqueue the tracking message", "err", err)
		if job.DestinationSnapshot != "" {
			s.deleteSnapshot(ctx, dst, job.DestinationSnapshot, log)
		}
		return nil, false, storageError("cannot enqueue the tracking message", err)
	}
	faultpoint.Hit("start:enqueued")
	tr := &tracker{msg: msg, enqueued: true}
	err = s.attempt(withTracker(ctx, tr), job, readURL, job.claimToken(), log)
	if job.unrecorded {
		return s.unrecordedStart(ctx, job, trail, tr.msg, err, log)
	}
	faultpoint.Hit("start:recorded")
	if job.Status.Terminal() && !s.hasLeftovers(job) && job.Claim == nil {
		// Nothing is left for the tick: save it a visit.
		s.dropMessage(ctx, tr.msg, log)
	}
	return job, true, err
}

// unrecordedStart ends a start whose record storage did not create. Its message still
// follows the job. A copy that started is named in the message (ticket.Unrecorded), so
// that the tick's first visit records it (recoverStart), and the start is answered as
// accepted: the copy runs, and a 503 would make a client without an idempotency key
// start a second one. Without a copy the answer is the attempt's (a refusal, or a 503:
// nothing started); the tick drops the message after StartGrace.
func (s *Service) unrecordedStart(ctx context.Context, job, trail *Job, m Message, cause error, log *slog.Logger) (*Job, bool, error) {
	if job.CopyID == "" {
		var e *Error
		if errors.As(cause, &e) && e.Job == job {
			e.Job = nil // no record holds it: the answer names no job
		}
		if cause == nil {
			cause = newError(CodeStorageUnavailable, "", "cannot write the job record", nil)
		}
		return nil, false, cause
	}
	// The start gives its claim back: the tick takes the start over at its first visit,
	// following this copy (see recoverStart).
	now := s.cfg.Now().UTC()
	trail.Claim, trail.NextAttemptAt, trail.Attempts = nil, &now, job.Attempts
	t := ticketFor(trail)
	t.Job, t.CopyID, t.Unrecorded = trail, job.CopyID, true
	bctx, cancel := bookkeeping(ctx)
	defer cancel()
	if _, err := s.queue.Update(bctx, m, t.encode(), s.cfg.FirstPoll); err != nil {
		// The tick still finds the copy on the destination after StartGrace, unless
		// another copy replaces it first (README, "Limits").
		log.ErrorContext(ctx, "copy started, but neither its record nor its tracking message could name it", "copyId", job.CopyID,
			"recordErr", cause, "err", err)
		return nil, false, storageError("the copy started but could not be recorded; the status tick records it after the start grace", err)
	}
	log.WarnContext(ctx, "copy started but its record could not be created; the tick records it from its message", "copyId", job.CopyID, "err", cause)
	if !job.Status.Terminal() {
		job.Status = StatusPending
	}
	job.Claim = nil
	return job, true, nil
}

// recoverStart handles a message whose ticket carries its job and whose record does not
// exist: its start (see startWithMessage) is still running, crashed, or could not create
// the record. Within StartGrace the start may still be running: the message comes back
// later. After it (the start's calls have ended: see StartDeadline), or at once when the
// ticket names the copy (the start gave up recording it and answered), the record is
// created as the ticket says, "starting" under the start's claim, and the start is taken
// over exactly as one that crashed after creating its record (resumeIfAbandoned): its
// copy adopted if one started (the named one followed), otherwise started, with the
// lease and the snapshot the ticket names. Taking over rather than dropping keeps a start
// that storage finished late (past its deadline) safe: the takeover's own Copy Blob meets
// the late one on the destination, and the late start's record write meets the takeover's.
func (s *Service) recoverStart(ctx context.Context, m Message, t ticket, log *slog.Logger) outcome {
	if !t.Unrecorded && s.cfg.Now().Sub(t.Job.CreatedAt) < s.cfg.StartGrace {
		return s.keepPolling(ctx, m, t, Progress{}, log)
	}
	job := cloneJob(t.Job)
	job.ID, job.Tracked, job.UpdatedAt = t.JobID, true, s.cfg.Now().UTC()
	if err := s.records.Create(ctx, job); err != nil {
		if !errors.Is(err, ErrExists) {
			log.WarnContext(ctx, "cannot record a start that left no record", "err", err)
			return visitFailed(err)
		}
		// Written meanwhile: by the start itself, or by this visit's Create whose answer
		// was lost.
		if job, err = s.records.Get(ctx, t.JobID); err != nil {
			return visitFailed(err)
		}
	} else {
		log.WarnContext(ctx, "recorded a start that ended before recording itself; the tick takes it over", "copyId", t.CopyID)
	}
	switch {
	case job.Status.Terminal():
		return s.finishTerminal(ctx, m, job, true, log)
	case job.Status == StatusStarting:
		return s.resumeIfAbandoned(ctx, m, t, job, log)
	}
	return s.keepPolling(ctx, m, ticketFor(job), job.Progress, log)
}
