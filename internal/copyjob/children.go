package copyjob

import (
	"context"
	"errors"
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
	return true, s.resumeStart(ctx, job, ActorTick, "")
}

// FinishChild performs the leftovers of a terminal child (a lease release, a callback)
// under an effects claim, as the tick does for a single copy. It reports whether any
// are left (being done by a live claim holder counts).
func (s *Service) FinishChild(ctx context.Context, job *Job) (bool, error) {
	if !job.Status.Terminal() {
		return false, nil
	}
	if s.hasLeftovers(job) && !s.claimLive(job) {
		log := s.log.With("jobId", job.ID, "batch", job.Batch, "operation", "effects")
		token, err := s.takeClaim(ctx, job, ActorTick, s.cfg.EffectsGrace, job.Status)
		switch {
		case err == nil:
			s.effects(ctx, job, token, log)
		case errors.Is(err, errLostClaim), errors.Is(err, errStale):
		default:
			return true, err
		}
	}
	return s.hasLeftovers(job) || s.claimLive(job), nil
}
