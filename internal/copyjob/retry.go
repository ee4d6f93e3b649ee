package copyjob

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
)

// RetryOptions tune a retry.
type RetryOptions struct {
	// Allow, when set, is asked with the job as recorded before anything else happens
	// (the caller may act on this job: see AbortOptions.Allow).
	Allow func(*Job) error
}

// Retry starts a new attempt of a job whose copy failed (an expired source SAS, a
// rotated key, a source that was briefly unreadable) or whose start was refused: same
// job id, a freshly signed source SAS, the earlier outcome kept in History. It answers
// like Start. A job that is running, succeeded, or still finishing its last attempt's
// effects (lease release, callback) cannot be retried (CopyNotRetryable, 409).
//
// Order, as in Start: a tracking message first (a message without a matching attempt
// is dropped by the tick), then the transition to "starting" with a start claim in one
// compare-and-swap write (so two retries racing start one attempt), then the attempt.
func (s *Service) Retry(ctx context.Context, id string, opts RetryOptions) (*Job, error) {
	job, err := s.jobFor(ctx, id, opts.Allow)
	if err != nil {
		return nil, err
	}
	if err := s.retryable(job); err != nil {
		return job, err
	}
	log := s.log.With("jobId", job.ID, "operation", "retry")
	ctx = context.WithoutCancel(ctx)
	// The new attempt's lease id is chosen before the message names it, as at the first
	// start: the message must name the lease the attempt may take.
	var lease *Lease
	if job.Options.LeaseSource && job.Source.Ref != nil {
		lease = &Lease{ID: uuid.NewString(), State: LeaseAcquiring, fresh: true}
	}
	// A batch's child gets a message of its own too: its batch may have finished, and a
	// finished batch follows no child (review 12: a retried child's copy was never
	// settled, its lease never released). Followed by both while its batch runs, it is
	// settled once (compare-and-swap) and its lease and callback are done once (claims).
	msg, err := s.queue.Enqueue(ctx, ticketFor(&Job{ID: job.ID, Destination: job.Destination, CreatedAt: s.cfg.Now().UTC(),
		Lease: lease, Source: job.Source, History: make([]Outcome, len(job.History)+1)}).encode(), s.cfg.FirstPoll)
	if err != nil {
		return job, storageError("cannot enqueue the tracking message", err)
	}
	claim := s.newClaim(ActorRetry, s.cfg.StartGrace)
	err = s.write(ctx, job, func(j *Job) error {
		if holds(j, claim.Token) {
			return nil // this very write landed, its answer lost (write re-read it)
		}
		if err := s.retryable(j); err != nil {
			return err
		}
		earlier := outcomeOf(j)
		if cb := earlier.Callback; cb != nil && cb.DeliveredAt == nil && !cb.GaveUp {
			// The earlier outcome's callback was still backing off: the retry supersedes
			// it, and the new attempt's outcome is delivered instead (a new delivery id).
			cb.GaveUp, cb.NextAttemptAt = true, nil
			cb.LastError = strings.TrimSpace(cb.LastError + " (not attempted again: superseded by a retry of the copy)")
		}
		j.History = append(j.History, earlier)
		j.Status, j.StatusDescription, j.CopyID, j.Progress = StatusStarting, "", "", Progress{}
		j.StartedAt, j.CompletedAt, j.LastPolled, j.Refusal = nil, nil, nil, nil
		j.StartFailures, j.NextAttemptAt, j.CopyUncertain, j.PoisonReason, j.RestoredFrom = 0, nil, false, "", ""
		j.Polls, j.Claim, j.WaitingSince, j.Waits, j.LeftoversFollowed = 0, claim, nil, 0, false
		if lease != nil {
			// The earlier lease was released with the outcome; the new one is named before
			// it is taken.
			l := *lease
			j.Lease = &l
		}
		if j.Callback != nil {
			j.Callback = &Callback{URL: j.Callback.URL}
		}
		return nil
	})
	if err != nil {
		var coded *Error
		if errors.As(err, &coded) {
			s.dropMessage(ctx, msg, log) // refused: no attempt will follow it
			return job, coded
		}
		// Storage failed: the write may have landed all the same (its answer lost). The
		// message stays: if the attempt was recorded, it is that attempt's trail (the
		// tick resumes it once its claim ends); if not, the tick drops it after
		// StartGrace as a message ahead of its record (visit).
		return job, storageError("cannot record the new attempt", err)
	}
	log.InfoContext(ctx, "retrying the copy", "attempt", len(job.History)+1)
	ctx = context.WithValue(ctx, followingKey{}, msg)
	prepared, refused, err := s.prepareAgain(ctx, job, "")
	if refused != nil {
		err = s.refuse(ctx, job, claim.Token, refused, log)
	} else if err != nil {
		err = s.fail(ctx, job, claim.Token, sourceError(err), log)
	} else {
		job.Source.SASExpiresAt, job.Source.SASKind = prepared.Source.SASExpiresAt, prepared.Source.SASKind
		err = s.attempt(ctx, job, prepared.ReadURL, claim.Token, log)
	}
	if job.Status == StatusPending && holds(job, claim.Token) {
		// As in Start: the copy runs but the record says "starting"; the message names it.
		t := ticketFor(job)
		t.Unrecorded = true
		if _, uerr := s.rewrite(ctx, msg, t, s.cfg.FirstPoll); uerr != nil {
			log.WarnContext(ctx, "cannot name the copy in the tracking message either", "err", uerr)
		}
	}
	if job.Status.Terminal() && !s.hasLeftovers(job) && job.Claim == nil {
		s.dropMessageBehind(ctx, msg, log) // as in Start
	}
	return job, err
}

// retryable tells whether a new attempt may follow the job's state.
func (s *Service) retryable(j *Job) error {
	notRetryable := func(msg string) error {
		e := newError(CodeCopyNotRetryable, "id", msg, nil)
		e.Job = j
		return e
	}
	switch {
	case !j.Status.Retryable():
		return notRetryable(fmt.Sprintf("the copy is %s: only failed or startFailed copies can be retried", j.Status))
	case s.claimLive(j):
		// Its effects are being performed (a callback in flight, behind the answer of the
		// request that ended the attempt): at most until the claim ends.
		return notRetryable(fmt.Sprintf("the last attempt is still being finished (its lease, snapshot or callback); retry after %s",
			j.Claim.Until.UTC().Format(time.RFC3339)))
	case leaseHeld(j) && j.Lease.Refusals > 0:
		// The new attempt would take its own lease on a source this job's lease may still
		// hold (and the record would no longer name the one to release by hand).
		return notRetryable(fmt.Sprintf("the last attempt's source lease %s may still be held: storage refused its release %d times "+
			"(the app keeps trying); release it, or restore the app's lease permission, then retry", j.Lease.ID, j.Lease.Refusals))
	case leaseHeld(j) || snapshotLeft(j):
		// The next tick releases the lease (the new attempt takes its own on the same
		// source) and deletes the snapshot.
		return notRetryable("the last attempt is still being finished (its source lease or destination snapshot); retry in a minute")
	case s.callbackDue(j) && (j.Callback.Attempts == 0 || j.Callback.NextAttemptAt == nil):
		// A callback not attempted yet (a batch child's waits for the batch's pass; an
		// attempt whose record write failed reads the same): the tick attempts it soon.
		// One that failed and waits for its next attempt does not hold a retry up: the
		// retry supersedes it (see Retry).
		return notRetryable("the last attempt's callback has not been attempted yet; retry in a minute")
	case j.Source.needsCallersQuery():
		e := sourceQueryNotKept()
		e.Job = j
		return e
	}
	return nil
}
