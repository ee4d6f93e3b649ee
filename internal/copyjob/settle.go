package copyjob

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/blobcopy/blobcopy/internal/redact"
)

// settle makes a job's terminal transition to outcome, if guard lets this actor make it
// on the newest record, and then performs the transition's effects (lease release,
// callback). The transition and the claim on those effects are one compare-and-swap
// write, so of two actors settling at once exactly one wins and acts; the loser adopts
// the winner's record (job holds it) and does nothing.
func (s *Service) settle(ctx context.Context, job *Job, outcome CopyState, actor Actor, guard func(*Job) error, log *slog.Logger) error {
	bctx, cancel := bookkeeping(ctx)
	defer cancel()
	started := cloneJob(job) // what a start knows that its record does not yet say
	now := s.cfg.Now().UTC()
	released := s.releaseFirst(bctx, job, actor, log)
	var claim *Claim
	err := s.write(bctx, job, func(j *Job) error {
		if err := guard(j); err != nil {
			return err
		}
		if released != nil && j.Lease != nil && j.Lease.ID == released.ID && leaseHeld(j) {
			lease := *released
			j.Lease = &lease
		}
		if j.Status == StatusStarting {
			j.CopyID, j.StartedAt, j.Attempts, j.Lease = started.CopyID, started.StartedAt, started.Attempts, started.Lease
			j.DestinationSnapshot, j.CopyUncertain = started.DestinationSnapshot, started.CopyUncertain
		}
		j.Status = outcome.Status
		j.StatusDescription = redact.Text(outcome.Description)
		if outcome.Progress.BytesTotal > 0 || outcome.Progress.BytesCopied > 0 {
			j.Progress = outcome.Progress
		}
		j.CompletedAt = outcome.CompletedAt
		if j.CompletedAt == nil {
			j.CompletedAt = &now
		}
		j.Claim, j.StartFailures, j.NextAttemptAt = nil, 0, nil
		if j.Callback != nil && j.Callback.DeliveryID == "" {
			j.Callback.DeliveryID = uuid.NewString()
		}
		claim = nil
		if s.hasLeftovers(j) && !leftToBatch(ctx, j, actor) {
			claim = s.newClaim(actor, s.cfg.EffectsGrace)
			j.Claim = claim
		}
		return nil
	})
	switch {
	case errors.Is(err, errLostClaim), errors.Is(err, errStale):
		log.InfoContext(ctx, "another actor settled the job first; keeping its outcome", "status", job.Status, "actor", actor)
		return nil
	case err != nil:
		return err
	}
	status, description, progress := job.Status, job.StatusDescription, job.Progress
	s.reportBehind(ctx, func() {
		log.InfoContext(ctx, "copy outcome recorded", "status", status, "description", description, "actor", actor,
			"bytesCopied", progress.BytesCopied, "bytesTotal", progress.BytesTotal)
	})
	if claim != nil {
		if actor != ActorTick && s.callbackDue(job) && answering(ctx) {
			// A request's: behind its answer. A batch tick's starts (no answer) keep them
			// inline, bounded by the batch's concurrency, not one goroutine per child.
			s.effectsBehind(ctx, job, claim.Token, log)
		} else {
			s.effects(bctx, job, claim.Token, log)
		}
	}
	return nil
}

// followingKey holds the tracking message a retry's attempt is followed by (a start's
// is in its tracker): effectsBehind deletes it once nothing is left for the tick.
type followingKey struct{}

// leftToBatch tells whether the callback of a batch child a batch tick has just settled
// at its start (a copy that ended at once) is left to the batch's pass over its
// children's leftovers (FinishChild), as a child recorded after its copy is: sent inline
// here, one receiver timeout per child, it held the tick past its budget (review R6).
func leftToBatch(ctx context.Context, j *Job, actor Actor) bool {
	return j.Batch != "" && actor == ActorStart && !answering(ctx) && !leaseHeld(j) && !snapshotLeft(j)
}

// effectsBehind performs, behind the request's answer, the effects of a transition a
// request made (a start whose copy ended at once or was refused, an abort, a retry) when
// they include a callback. A receiver may take the notifier's whole timeout (10 s) to
// answer, and the request must not wait for it: an Event Grid delivery's answer added
// each begun event's callback on top of its 20 s budget, past Event Grid's 30 s, and a
// receiver that was down made every start and abort 10 s slower. The claim written with
// the transition keeps the effects to exactly one performer; a process that dies first
// leaves them to the tick once the claim expires (the start enqueued a tracking message
// for them, which the work below deletes once nothing is left). The work runs on a copy
// of the job: the caller answers with job meanwhile.
func (s *Service) effectsBehind(ctx context.Context, job *Job, token string, log *slog.Logger) {
	held := cloneJob(job)
	var msg *Message
	if tr, ok := ctx.Value(trackerKey{}).(*tracker); ok && tr.enqueued {
		m := tr.msg
		msg = &m
	} else if m, ok := ctx.Value(followingKey{}).(Message); ok {
		msg = &m
	}
	leave(ctx, s.counted(func() {
		bctx, cancel := bookkeeping(ctx)
		defer cancel()
		s.effects(bctx, held, token, log)
		if msg != nil && !s.hasLeftovers(held) && held.Claim == nil {
			s.dropMessage(bctx, *msg, log) // nothing left for the tick: save it a visit
		}
	}))
}

// releaseFirst releases the source lease of a pending job whose copy a poll saw end,
// before the terminal write, when the release is the transition's only effect (no
// callback to send): the write then records the released lease and needs no effects
// claim, so leaseSource costs its release and nothing more (one write, not two). The
// effects claim exists to send a callback exactly once; a release needs none: the copy
// has ended, and releasing again is harmless (the lease is found free and recorded
// released), which is what happens after a crash between the release and the write,
// or when another actor settles first. It returns the lease as released (nil when it
// released nothing): the write applies it only to the same lease id.
func (s *Service) releaseFirst(ctx context.Context, job *Job, actor Actor, log *slog.Logger) *Lease {
	if actor != ActorTick || job.Status != StatusPending || !leaseHeld(job) || job.Lease.State != LeaseHeld {
		return nil
	}
	if s.notifier != nil && job.Callback != nil && job.Callback.DeliveredAt == nil && !job.Callback.GaveUp {
		return nil // the callback needs the effects claim: the lease is released under it
	}
	lease := *job.Lease
	probe := &Job{ID: job.ID, Lease: &lease, Source: job.Source}
	if s.releaseLease(ctx, probe, log) != nil {
		return nil // the effects claim retries it
	}
	return probe.Lease
}

// pendingGuard lets a poll make the terminal transition of the pending copy it read,
// unless another actor (an abort) holds the job.
func (s *Service) pendingGuard(copyID string) func(*Job) error {
	return func(j *Job) error {
		if j.Status != StatusPending || j.CopyID != copyID {
			return errStale
		}
		if s.claimLive(j) {
			return errLostClaim
		}
		return nil
	}
}

// claimGuard lets only the holder of the job's claim (token) make the transition.
func claimGuard(token string) func(*Job) error {
	return func(j *Job) error {
		if !holds(j, token) {
			return errLostClaim
		}
		return nil
	}
}

// hasLeftovers tells whether a terminal job still has effects to perform: a lease to
// release, a callback to deliver, a snapshot of a refused start to delete.
func (s *Service) hasLeftovers(j *Job) bool {
	return leaseHeld(j) || s.callbackDue(j) || snapshotLeft(j)
}

func leaseHeld(j *Job) bool {
	return j.Lease != nil && (j.Lease.State == LeaseHeld || j.Lease.State == LeaseAcquiring)
}

func snapshotLeft(j *Job) bool {
	return j.Status == StatusStartFailed && j.DestinationSnapshot != "" && j.CopyID == ""
}

// callbackDue tells whether a callback is still to be delivered; never without a
// notifier, which would keep the tracking message forever.
func (s *Service) callbackDue(j *Job) bool {
	return s.notifier != nil && j.Status.Terminal() && j.Callback != nil && j.Callback.DeliveredAt == nil && !j.Callback.GaveUp
}

// callbackReady tells whether a due callback may be attempted now: its first attempt,
// or a later one whose backoff has passed.
func (s *Service) callbackReady(j *Job) bool {
	return s.callbackDue(j) && s.due(j.Callback.NextAttemptAt)
}

// due tells whether a leftover that backs off until at (nil: it does not) may be
// attempted now.
func (s *Service) due(at *time.Time) bool {
	return at == nil || !s.cfg.Now().Before(*at)
}

// leaseReady tells whether a lease that may be held may be released now: at once, or
// after the backoff of a release storage refused.
func (s *Service) leaseReady(j *Job) bool {
	return leaseHeld(j) && s.due(j.Lease.NextAttemptAt)
}

// leftoversReady tells whether any of a terminal job's leftovers may be performed now.
func (s *Service) leftoversReady(j *Job) bool {
	return s.leaseReady(j) || s.callbackReady(j) || snapshotLeft(j)
}

// nextLeftoverAt is when the first leftover that backs off (a callback, a lease
// release storage refused) is due; nil when none backs off.
func (s *Service) nextLeftoverAt(j *Job) *time.Time {
	var lease, callback *time.Time
	if leaseHeld(j) {
		lease = j.Lease.NextAttemptAt
	}
	if s.callbackDue(j) {
		callback = j.Callback.NextAttemptAt
	}
	if lease == nil || callback != nil && callback.Before(*lease) {
		return callback
	}
	return lease
}

// leftoverWait is how long a terminal job's message stays hidden while none of its
// leftovers is ready: until the first that backs off is due, at least FirstPoll, at most
// as long as a queue hides a message.
func (s *Service) leftoverWait(j *Job) time.Duration {
	wait := s.cfg.FirstPoll
	if at := s.nextLeftoverAt(j); at != nil {
		wait = max(wait, at.Sub(s.cfg.Now()))
	}
	return min(wait, maxMessageHide)
}

// callbackRetrySchedule, the default CallbackRetryDelays, spaces the attempts of a
// failed delivery as Standard Webhooks senders do (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h): the 8 attempts of the default
// COPY_MAX_CALLBACK_ATTEMPTS span about 28 hours, so a receiver down for a deployment, a
// restart or a night still gets the outcome. Attempted again at every visit, the 5
// attempts the default allowed were spent in 2.5 minutes.
var callbackRetrySchedule = []time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour}

// callbackRetryDelay is how long after its failed attempt number attempts a delivery is
// attempted again (CallbackRetryDelays; the last repeats). A lease release storage
// refused backs off on the same schedule.
func (s *Service) callbackRetryDelay(attempts int) time.Duration {
	delays := s.cfg.CallbackRetryDelays
	return delays[min(max(attempts, 1), len(delays))-1]
}

// effects performs a terminal job's leftovers under the claim token, then records what
// happened and gives the claim back. A crash or a failed write after the callback left
// means the claim expires and a later tick delivers again: at least once, with the same
// delivery id (Callback.DeliveryID) for receivers to deduplicate on.
func (s *Service) effects(ctx context.Context, job *Job, token string, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(ctx, s.effectsMargin())
	defer cancel()
	if s.inTime(job, token, s.effectsMargin()) && s.leaseReady(job) {
		_ = s.releaseLease(ctx, job, log) // a failure is left to a later visit (see releaseLease)
	}
	if s.inTime(job, token, s.effectsMargin()) && snapshotLeft(job) && s.deleteSnapshot(ctx, job.Destination.BlobRef, job.DestinationSnapshot, log) {
		job.DestinationSnapshot = ""
	}
	if !s.inTime(job, token, s.effectsMargin()) {
		log.WarnContext(ctx, "the effects claim is running out; leaving the rest to whoever takes the job over")
		return
	}
	s.notify(ctx, job, log)
	lease, callback, snapshot := job.Lease, job.Callback, job.DestinationSnapshot
	err := s.write(ctx, job, func(j *Job) error {
		if !holds(j, token) {
			return errLostClaim
		}
		j.Lease, j.Callback, j.DestinationSnapshot, j.Claim = lease, callback, snapshot, nil
		return nil
	})
	if err != nil {
		// job keeps the record as stored (its claim included): the message stays, and
		// when the claim expires a tick performs what the record says is left.
		log.WarnContext(ctx, "cannot record the lease and callback state; the status tick takes them over when the claim expires", "err", err)
	}
}

// performLeftovers performs a terminal job's leftovers under an effects claim, unless
// there are none or another actor holds the job (it is performing them now). It fails
// only when the claim could not be written; job holds the newest record afterwards.
func (s *Service) performLeftovers(ctx context.Context, job *Job, log *slog.Logger) error {
	if !s.leftoversReady(job) || s.claimLive(job) {
		return nil // none, none due yet (a callback backing off), or another actor's
	}
	token, err := s.takeClaim(ctx, job, ActorTick, s.cfg.EffectsGrace, job.Status)
	switch {
	case err == nil:
		s.effects(ctx, job, token, log)
	case errors.Is(err, errLostClaim), errors.Is(err, errStale):
	default:
		return err
	}
	return nil
}

// releaseLease releases the job's source lease if it may be held, recording the new
// state. It returns nil when the lease is now certainly not held by this job, else why
// not. Callers only call it once the copy is known not to be pending.
func (s *Service) releaseLease(ctx context.Context, job *Job, log *slog.Logger) error {
	if !leaseHeld(job) {
		return nil
	}
	acquiring := job.Lease.State == LeaseAcquiring
	err := s.blobs.ReleaseLease(ctx, *job.Source.Ref, job.Lease.ID)
	switch {
	case err == nil:
		job.Lease.State, job.Lease.Refusals, job.Lease.NextAttemptAt = LeaseReleased, 0, nil
		log.InfoContext(ctx, "source lease released", "leaseId", job.Lease.ID)
		return nil
	case acquiring && (errors.Is(err, ErrLeaseNotHeld) || errors.Is(err, ErrNotFound) || errors.Is(err, ErrLeaseConflict)):
		job.Lease.State = LeaseNotAcquired
		return nil
	case errors.Is(err, ErrLeaseNotHeld), errors.Is(err, ErrNotFound):
		// Free already: released by an earlier run that crashed before recording it.
		job.Lease.State = LeaseReleased
		log.InfoContext(ctx, "source lease was already released", "leaseId", job.Lease.ID)
		return nil
	case errors.Is(err, ErrLeaseConflict):
		job.Lease.State = LeaseLost
		log.WarnContext(ctx, "source lease was broken or replaced by someone else", "leaseId", job.Lease.ID)
		return nil
	}
	if refusedForCertain(err) {
		// A 403 (the app's lease permission removed while the copy ran, or a passing
		// authentication failure): asked again at every visit it was refused for ever;
		// given up after a few, a lease back in reach stayed held for good. Attempted again
		// on the callbacks' schedule for as long as it takes, and an operator is told once
		// the refusals reach MaxFailures.
		job.Lease.Refusals++
		next := s.cfg.Now().UTC().Add(s.callbackRetryDelay(job.Lease.Refusals))
		job.Lease.NextAttemptAt = &next
		if job.Lease.Refusals == s.cfg.MaxFailures {
			log.ErrorContext(ctx, "source lease cannot be released: storage refuses it; the app keeps trying, release it by hand if it is held",
				"leaseId", job.Lease.ID, "leaseState", job.Lease.State, "source", job.Source.Ref, "refusals", job.Lease.Refusals,
				"nextAttemptAt", next, "err", err)
			return err
		}
	}
	log.WarnContext(ctx, "cannot release the source lease; will retry", "leaseId", job.Lease.ID, "err", err)
	return err
}

// notify makes one delivery attempt of the completion callback; failures are counted
// and retried by later ticks up to MaxCallbackAttempts. Only the holder of the job's
// effects claim calls it.
func (s *Service) notify(ctx context.Context, job *Job, log *slog.Logger) {
	if !s.callbackReady(job) {
		return
	}
	cb := job.Callback
	if cb.DeliveryID == "" {
		cb.DeliveryID = uuid.NewString()
	}
	cb.Attempts++
	if err := s.notifier.Notify(ctx, cb.URL, job); err != nil {
		cb.LastError = redact.Text(err.Error())
		cb.GaveUp = cb.Attempts >= s.cfg.MaxCallbackAttempts
		cb.NextAttemptAt = nil
		if !cb.GaveUp {
			next := s.cfg.Now().UTC().Add(s.callbackRetryDelay(cb.Attempts))
			cb.NextAttemptAt = &next
		}
		log.WarnContext(ctx, "completion callback failed", "attempt", cb.Attempts, "gaveUp", cb.GaveUp, "nextAttemptAt", cb.NextAttemptAt, "deliveryId", cb.DeliveryID, "err", err)
		return
	}
	now := s.cfg.Now().UTC()
	cb.DeliveredAt = &now
	cb.LastError, cb.NextAttemptAt = "", nil
	log.InfoContext(ctx, "completion callback delivered", "attempt", cb.Attempts, "deliveryId", cb.DeliveryID)
}
