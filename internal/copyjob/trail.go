package copyjob

import (
	"context"
	"errors"
	"log/slog"

	"github.com/blobcopy/blobcopy/internal/faultpoint"
	"github.com/blobcopy/blobcopy/internal/redact"
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
// 64 KiB, and the text travels XML-escaped. A job over it (large metadata or tags, long
// URLs) starts record-first; so does one whose message storage refuses (errTrailRefused).
const maxTrailText = 32 << 10

// trailTicket is the ticket of a start whose message is its trail, and whether it fits.
func trailTicket(job *Job) (ticket, string, bool) {
	t := ticketFor(job)
	t.Job = job
	text := t.encode()
	return t, text, len(text) <= maxTrailText
}

// errTrailRefused: storage refused the trail's message for good (too large, most
// likely): Start falls back to the record-first order.
var errTrailRefused = errors.New("the tracking message carrying the job was refused")

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
// recoverStart records the job's copy if one started, and otherwise records the job as
// not started (the client never got a 202), releasing the lease and deleting the
// snapshot.
func (s *Service) startWithMessage(ctx context.Context, job *Job, text, readURL string, log *slog.Logger) (*Job, bool, error) {
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
	if job.snapshotChecked {
		_, text, _ = trailTicket(trail) // it names the snapshot now
	}
	msg, err := s.queue.Enqueue(ctx, text, s.cfg.FirstPoll)
	if errors.Is(err, ErrRefused) {
		// Refused for good (too large once escaped): the record-first order needs no
		// message before Copy Blob. A snapshot taken is recorded with the record.
		log.WarnContext(ctx, "the tracking message carrying the job was refused; starting record-first", "err", err)
		job.Tracked, job.unrecorded = false, false
		return job, false, errTrailRefused
	}
	if err != nil {
		// The message may have landed (a lost answer): its recovery finds no copy of the
		// job and records it as not started, deleting the snapshot it names (see
		// recoverStart).
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
		s.dropMessageBehind(ctx, tr.msg, log)
	}
	return job, true, err
}

// unrecordedStart ends a start whose record storage did not create. Its message still
// follows the job. A copy that started is named in the message (ticket.Unrecorded), so
// that the tick's first visit records it (recoverStart), and the start is answered as
// accepted: the copy runs, and a 503 would make a client without an idempotency key
// start a second one. Without a copy the answer is the attempt's (a refusal, or a 503),
// naming the job: the tick records it as not started after StartGrace, unless its record
// landed after all.
func (s *Service) unrecordedStart(ctx context.Context, job, trail *Job, m Message, cause error, log *slog.Logger) (*Job, bool, error) {
	// Whatever the message is told, it carries the lease as this attempt left it.
	trail.Attempts = job.Attempts
	if job.Lease != nil {
		lease := *job.Lease
		trail.Lease = &lease
	}
	if job.CopyID == "" {
		// The answer names the job (as a keyed start's does): its record may have landed
		// (a lost answer), and then the tick goes on with it; otherwise the tick records
		// the job as not started once the grace has passed (see abandonUnstarted). What
		// the attempt learnt goes into the message first: a refusal (recorded as it is,
		// at the first visit: the destination may carry another's copy of the same
		// source, which must not be adopted), or a Copy Blob whose outcome is unknown
		// (said in the record).
		if cause == nil {
			cause = newError(CodeStorageUnavailable, "", "cannot write the job record", nil)
		}
		var e *Error
		refused := errors.As(cause, &e) && !Retryable(cause)
		if refused || job.CopyUncertain {
			trail.CopyUncertain = job.CopyUncertain
			if refused {
				trail.Refusal = &Refusal{Code: e.Code, Target: e.Target, Message: redact.Text(e.Message)}
			}
			if err := s.rewriteTrail(ctx, m, trail, "", nil); err != nil {
				log.WarnContext(ctx, "cannot tell the tracking message what the start learnt", "err", err)
			}
		}
		return nil, false, cause
	}
	// The tick's first visit records this copy from the message (recoverStart), with the
	// outcome Copy Blob answered, if it ended.
	if err := s.rewriteTrail(ctx, m, trail, job.CopyID, job.ended); err != nil {
		// The tick still finds the copy on the destination after StartGrace, unless
		// another copy replaces it first (README, "Limits").
		log.ErrorContext(ctx, "copy started, but neither its record nor its tracking message could name it", "copyId", job.CopyID,
			"recordErr", cause, "err", err)
		e := storageError("the copy started but could not be recorded; the status tick records it after the start grace", err)
		e.Job = job
		return nil, false, e
	}
	log.WarnContext(ctx, "copy started but its record could not be created; the tick records it from its message", "copyId", job.CopyID, "err", cause)
	job.Claim = nil
	if ended := job.ended; ended != nil {
		// Answered with the outcome Copy Blob gave, as the record will say.
		job.Status, job.StatusDescription, job.CompletedAt = ended.Status, redact.Text(ended.Description), ended.CompletedAt
		if ended.Progress != (Progress{}) {
			job.Progress = ended.Progress
		}
		return job, true, nil
	}
	job.Status = StatusPending
	return job, true, nil
}

// rewriteTrail tells the start's message what the start learnt: the copy it started
// (copyID, and the outcome when it ended at once: Unrecorded, recorded at the first
// visit), or a refusal or an unknown Copy Blob outcome (in trail). A tick may hold the
// message (it visited it while the start ran: a new pop receipt): a second message is
// enqueued then, which is harmless (the record is created once; the other message finds
// it and follows it).
func (s *Service) rewriteTrail(ctx context.Context, m Message, trail *Job, copyID string, ended *CopyState) error {
	t := ticketFor(trail)
	t.Job, t.CopyID, t.Outcome = trail, copyID, ended
	t.Unrecorded = copyID != "" || trail.Refusal != nil
	bctx, cancel := bookkeeping(ctx)
	defer cancel()
	if _, err := s.rewrite(bctx, m, t, s.cfg.FirstPoll); err == nil {
		return nil
	}
	_, err := s.queue.Enqueue(bctx, t.encode(), s.cfg.FirstPoll)
	return err
}

// recoverStart handles a message whose ticket carries its job and whose record does not
// exist: its start (see startWithMessage) is still running, crashed, or could not create
// the record. Within StartGrace the start may still be running: the message comes back
// later. After it, the start's calls have ended (its Copy Blob is sent before
// StartDeadline and carried out by storage within its server timeout, both well before
// StartGrace), and the destination tells what happened: a copy of this job there (same
// source, begun since the job was created, recorded by no other job) is adopted, its
// record created pending (or with its outcome) with the lease and the snapshot the
// ticket names; otherwise nothing was started, and the start's client got no 202 (it
// crashed before Copy Blob, or answered a refusal or a 503 it could not record): the
// job is recorded "startFailed" and the lease and the snapshot the ticket names are
// undone (abandonUnstarted). A ticket that names the copy (the start could not record
// it and answered 202) is recorded at once, without reading the destination: with the
// outcome Copy Blob answered when the copy ended at once, otherwise pending, and the
// polls tell its outcome; never a second Copy Blob. A ticket that names a refusal is
// recorded at once as that refusal.
//
// The record is born naming the copy (or with its outcome), in one write: a start can
// leave two messages (see unrecordedStart), and the other one, which may not name the
// copy, then finds a record that does. When the destination cannot be read, or the
// record cannot be written, nothing is written and the message comes back.
func (s *Service) recoverStart(ctx context.Context, m Message, t ticket, log *slog.Logger) outcome {
	now := s.cfg.Now().UTC()
	if !t.Unrecorded && now.Sub(t.Job.CreatedAt) < s.cfg.StartGrace {
		return s.keepPolling(ctx, m, t, Progress{}, log)
	}
	job := cloneJob(t.Job)
	job.ID, job.Tracked, job.unrecorded = t.JobID, true, true
	job.NextAttemptAt, job.StartFailures = nil, 0
	job.Claim = s.newClaim(ActorTick, s.cfg.StartGrace)
	token := job.Claim.Token
	var err error
	if refusal := t.Job.Refusal; refusal != nil && t.CopyID == "" {
		// The start was refused and could not record it: recorded as it is (never a copy
		// found on the destination: another's copy of the same source may be there).
		log.WarnContext(ctx, "recording the refusal a start could not record", "code", refusal.Code)
		err = s.settle(ctx, job, CopyState{Status: StatusStartFailed, Description: string(refusal.Code) + ": " + refusal.Message},
			ActorTick, func(j *Job) error {
				if !holds(j, token) {
					return errLostClaim
				}
				j.Refusal = refusal
				return nil
			}, log)
	} else if t.Unrecorded && t.CopyID != "" && t.Outcome != nil {
		// The copy ended at once: its outcome is what storage answered then.
		job.CopyID, job.StartedAt = t.CopyID, &now
		log.WarnContext(ctx, "recording the outcome of a copy a start could not record", "copyId", t.CopyID, "status", t.Outcome.Status)
		err = s.settle(ctx, job, *t.Outcome, ActorTick, startGuard(token), log)
	} else if t.Unrecorded && t.CopyID != "" {
		// The copy was pending when the start saw it last: recorded pending as the start
		// would have (no destination read: nothing may delay this record past the grace,
		// when the start's other message, which does not name the copy, looks), and the
		// polls tell its outcome.
		log.WarnContext(ctx, "recording the pending copy a start could not record", "copyId", t.CopyID)
		err = s.adopt(ctx, job, token, CopyState{CopyID: t.CopyID, Status: StatusPending}, log)
	} else {
		cur, v := s.ownCopy(ctx, job)
		switch v {
		case copyUnknown:
			log.WarnContext(ctx, "cannot tell whether a start that left no record started its copy; trying again later")
			return outUnavailable
		case copyNotOurs:
			err = s.abandonUnstarted(ctx, job, token, log)
		default:
			log.WarnContext(ctx, "adopting the copy of a start that ended before recording it", "copyId", cur.CopyID)
			err = s.adopt(ctx, job, token, cur, log)
		}
	}
	if job.unrecorded {
		log.WarnContext(ctx, "cannot create the record of a start to recover; trying again later", "err", err)
		if err == nil {
			err = ErrUnavailable
		}
		return visitFailed(err)
	}
	return s.followRecorded(ctx, m, t, job, log)
}

// followRecorded goes on with a job recoverStart found recorded (by this visit, or by a
// write that came first): this message follows it from now on.
func (s *Service) followRecorded(ctx context.Context, m Message, t ticket, job *Job, log *slog.Logger) outcome {
	switch {
	case job.Status.Terminal():
		return s.finishTerminal(ctx, m, job, false, log)
	case job.Status == StatusStarting:
		// The start's own record (a transient failure it recorded late): attempted again
		// like any, and its answer named the job.
		return s.resumeIfAbandoned(ctx, m, t, job, log)
	}
	return s.keepPolling(ctx, m, ticketFor(job), job.Progress, log)
}

// abandonUnstarted records a start that started no copy and left no record: its
// process stopped before Copy Blob, or it answered a refusal or a transient failure it
// could not record. The record is created first, "startFailed", under the tick's claim
// and If-None-Match (the start's own record write, should storage carry it out late,
// then loses to it instead of leaving a "starting" record nothing follows); the lease
// and the snapshot the ticket names are then undone as a refused start's are (settle's
// effects: retried by the tick while storage fails, never counted towards poisoning),
// and the callback, if any, says so.
func (s *Service) abandonUnstarted(ctx context.Context, job *Job, token string, log *slog.Logger) error {
	log.WarnContext(ctx, "recording a start that started no copy and left no record as not started")
	desc := "the start left no record and the destination shows no copy of it once its grace has passed: it ended before Copy Blob (its process stopped, or it answered a failure it could not record)"
	if job.CopyUncertain {
		desc = "the start left no record, and its Copy Blob got no answer that said whether it ran; the destination shows no copy of it once its grace has passed (if it ran, another copy has replaced it)"
	}
	return s.settle(ctx, job, CopyState{Status: StatusStartFailed, Description: desc}, ActorTick, startGuard(token), log)
}
