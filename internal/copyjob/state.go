package copyjob

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// The job state machine.
//
//	                 claim (start, replay, tick)
//	            +-----------------------------+
//	            v                             |
//	 (Create) starting --transient failure--> starting (no claim, NextAttemptAt)
//	            |  \
//	            |   +--permanent refusal / attempts exhausted--> startFailed
//	            |   +--Copy Blob finished at once--------------> success | failed | aborted
//	            |   +--its unrecorded copy was replaced--------> copyIdMismatch | destinationMissing
//	            v
//	         pending --storage says it ended------------------> success | failed | aborted
//	            |     --destination deleted-------------------> destinationMissing
//	            |     --destination carries another copy------> copyIdMismatch
//	            +-----abort------------------------------------> aborted
//
// Who may make each transition (Actor):
//
//	starting -> *           the holder of the job's start claim: the start that created
//	                        the record (ActorStart), a replay of the same request or
//	                        event (ActorReplay), or the tick (ActorTick) once the claim
//	                        has expired or was given back after a transient failure.
//	pending  -> terminal    the tick (ActorTick) or an abort (ActorAbort): the first
//	                        compare-and-swap write wins, the loser adopts its outcome.
//	terminal -> *           nobody: a terminal record's outcome never changes. Only the
//	                        bookkeeping of its effects (lease state, callback attempts)
//	                        is written afterwards, by the claim holder.
//	failed|startFailed      a retry (ActorRetry, POST .../retry) once every effect is
//	  -> starting           done: the outcome moves, unchanged, into History and a new
//	                        attempt starts under a start claim.
//
// A "starting" record nothing follows (its start crashed before enqueuing the tracking
// message: Start enqueues one only when work is left to the tick, see track) is found
// by the tick's sweep once StartGrace has passed, and taken over like any other.
//
// Status reads never write: a GET must be safe, and a reader that settled jobs would be
// one more concurrent settle path (the duplicate callbacks of issue 10 came from
// there). A read shows the live copy state; the record follows at the next poll.
//
// Effects that must happen once belong to the writer that won the transition which
// owns them, and are done under a Claim written in the same compare-and-swap:
// Copy Blob (start claim), the lease release and the callback (terminal claim),
// deleting a snapshot taken for a refused start (start claim). A claim expires (Until)
// so that a crashed holder's work is taken over; the start claim's holder gives up its
// own storage calls at StartDeadline, well before StartGrace lets anyone take over, so a
// takeover never runs beside a live start.

// Actor names who writes a transition; it is recorded in claims and logs.
type Actor string

const (
	ActorStart  Actor = "start"  // the request that created the job
	ActorReplay Actor = "replay" // a retry of the same request or a redelivered event
	ActorTick   Actor = "tick"   // the status timer
	ActorAbort  Actor = "abort"  // POST .../abort
	ActorRetry  Actor = "retry"  // POST .../retry
)

// transitions lists the allowed status changes; "" is a record being created.
var transitions = map[Status][]Status{
	"": {StatusStarting},
	StatusStarting: {StatusStarting, StatusPending, StatusSuccess, StatusFailed, StatusAborted, StatusStartFailed,
		StatusDestinationMissing, StatusCopyIDMismatch}, // the last two: a copy started but never recorded, then replaced
	StatusPending: {StatusPending, StatusSuccess, StatusFailed, StatusAborted, StatusDestinationMissing,
		StatusCopyIDMismatch},
}

// CanTransition reports whether a job may go from one status to another. A terminal
// status may only stay itself (its effects' bookkeeping changes, not its outcome).
func CanTransition(from, to Status) bool {
	if from.Terminal() {
		return from == to
	}
	for _, s := range transitions[from] {
		if s == to {
			return true
		}
	}
	return false
}

// errStale tells write's caller that the newest record no longer allows its change;
// job then holds the newest record.
var errStale = errors.New("the job moved on")

// write stores a change to job with compare-and-swap. change is applied to the record
// as last read and decides from it; on a concurrent write the newest record is read and
// change decides again (so a writer never overwrites what it has not seen). When change
// returns an error nothing is written, job holds the newest record, and the error is
// returned. The written status must be a legal transition from the one read. The
// first write of a job whose record does not exist yet (unrecorded: see
// startWithMessage) creates it; a record someone else created meanwhile is read, and
// change decides again, as on any concurrent write.
func (s *Service) write(ctx context.Context, job *Job, change func(*Job) error) error {
	cur := job
	for attempt := 0; ; attempt++ {
		next := cloneJob(cur)
		if err := change(next); err != nil {
			*job = *cur
			return err
		}
		if !CanTransition(cur.Status, next.Status) && !isRetry(cur, next) || (cur.Status.Terminal() && !sameOutcome(cur, next) && !isRetry(cur, next)) {
			*job = *cur
			return fmt.Errorf("%w: %s -> %s is not a transition", errStale, cur.Status, next.Status)
		}
		next.UpdatedAt = s.cfg.Now().UTC()
		var err error
		if cur.unrecorded {
			err = s.createRecord(ctx, next)
		} else {
			err = s.records.Update(ctx, next)
		}
		if err == nil {
			next.unrecorded = false
			*job = *next
			return nil
		}
		if !(errors.Is(err, ErrConflict) || cur.unrecorded && errors.Is(err, ErrExists)) || attempt >= 4 {
			return err
		}
		newest, gerr := s.records.Get(ctx, job.ID)
		if gerr != nil {
			return fmt.Errorf("%w (and re-read: %w)", err, gerr)
		}
		if cur.unrecorded && sameWrite(newest, next) {
			// Our Create landed and its answer was lost (or the SDK's retry met it). Any
			// other creator (the tick recovering the start) writes another UpdatedAt.
			*job = *newest
			return nil
		}
		cur = newest
	}
}

// createRecord creates a job's record. For a start without a key it is the one write
// that names its copy (see startWithMessage): a failure storage calls transient is tried
// twice more, a little later, before the start falls back on its message. A try whose
// answer was lost meets its own record (ErrExists; write recognizes it: sameWrite).
func (s *Service) createRecord(ctx context.Context, job *Job) error {
	err := s.records.Create(ctx, job)
	for try := 1; try < 3 && err != nil && (errors.Is(err, ErrUnavailable) || isUnclassified(err)); try++ {
		if !pause(ctx, time.Duration(try)*createRetryDelay) {
			return err
		}
		err = s.records.Create(ctx, job)
	}
	return err
}

// pause waits d before a call is tried again, and reports false, at once, when ctx
// ends first.
func pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// createRetryDelay spaces createRecord's tries (50 ms, then 100 ms).
const createRetryDelay = 50 * time.Millisecond

// sameWrite tells whether the stored record is the one next was written as.
func sameWrite(stored, next *Job) bool {
	return stored.UpdatedAt.Equal(next.UpdatedAt) && stored.Status == next.Status && stored.CopyID == next.CopyID &&
		stored.claimToken() == next.claimToken()
}

// Retryable statuses: a new attempt may follow these outcomes.
func (s Status) Retryable() bool { return s == StatusFailed || s == StatusStartFailed }

// isRetry reports whether next is a retry of the terminal cur: a new "starting" attempt
// whose History ends with cur's outcome, unchanged.
func isRetry(cur, next *Job) bool {
	if !cur.Status.Retryable() || next.Status != StatusStarting || len(next.History) != len(cur.History)+1 {
		return false
	}
	last := next.History[len(next.History)-1]
	return last.Status == cur.Status && last.StatusDescription == cur.StatusDescription && last.CopyID == cur.CopyID &&
		timeEqual(last.CompletedAt, cur.CompletedAt)
}

// outcomeOf is the job's current terminal state, as History keeps it.
func outcomeOf(j *Job) Outcome {
	o := Outcome{Status: j.Status, StatusDescription: j.StatusDescription, CopyID: j.CopyID, Progress: j.Progress,
		StartedAt: j.StartedAt, CompletedAt: j.CompletedAt}
	if j.Refusal != nil {
		r := *j.Refusal
		o.Refusal = &r
	}
	if j.Callback != nil {
		cb := *j.Callback
		o.Callback = &cb
	}
	return o
}

// sameOutcome reports whether two versions of a job tell the same outcome: what a
// terminal record may never change.
func sameOutcome(a, b *Job) bool {
	return a.Status == b.Status && a.StatusDescription == b.StatusDescription && a.CopyID == b.CopyID &&
		a.Progress == b.Progress && timeEqual(a.CompletedAt, b.CompletedAt) && (a.Refusal == nil) == (b.Refusal == nil) && (a.Refusal == nil || *a.Refusal == *b.Refusal)
}

func timeEqual(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

// Clone copies a job deeply enough that the copy and the original never share what a
// change to a record may modify (its lease, callback, claim, refusal and history).
func (j *Job) Clone() *Job { return cloneJob(j) }

// cloneJob deep-copies the parts of a job a change may modify.
func cloneJob(j *Job) *Job {
	c := *j
	if j.Lease != nil {
		l := *j.Lease
		c.Lease = &l
	}
	if j.Callback != nil {
		cb := *j.Callback
		c.Callback = &cb
	}
	if j.Claim != nil {
		cl := *j.Claim
		c.Claim = &cl
	}
	if j.Refusal != nil {
		r := *j.Refusal
		c.Refusal = &r
	}
	c.History = append([]Outcome(nil), j.History...)
	return &c
}

// newClaim returns a fresh claim for actor lasting ttl.
func (s *Service) newClaim(actor Actor, ttl time.Duration) *Claim {
	return &Claim{Token: uuid.NewString(), Actor: actor, Until: s.cfg.Now().UTC().Add(ttl)}
}

// claimLive reports whether someone holds a claim on the job that has not expired.
func (s *Service) claimLive(j *Job) bool {
	return j.Claim != nil && s.cfg.Now().Before(j.Claim.Until)
}

// inTime reports whether the actor holding the job's claim (token) may still start a
// side effect: its claim must outlast the effect by margin, so that nobody can take
// the job over while the effect is under way. Claims are timed on the service clock; a
// holder past this point gives its work up and leaves it to whoever takes over.
func (s *Service) inTime(j *Job, token string, margin time.Duration) bool {
	return holds(j, token) && s.cfg.Now().Add(margin).Before(j.Claim.Until)
}

// startMargin is how long before its claim ends a start stops making storage calls:
// StartGrace minus StartDeadline, at least storage's server timeout.
func (s *Service) startMargin() time.Duration { return s.cfg.StartGrace - s.cfg.StartDeadline }

// effectsMargin is the same for a terminal job's effects (a callback's timeout and a
// lease release fit in it).
func (s *Service) effectsMargin() time.Duration { return s.cfg.EffectsGrace / 2 }

// claimToken is the token of the job's claim, "" without one.
func (j *Job) claimToken() string {
	if j.Claim == nil {
		return ""
	}
	return j.Claim.Token
}

// holds reports whether the job's claim is the one with token.
func holds(j *Job, token string) bool { return j.Claim != nil && j.Claim.Token == token }

// errLostClaim: another actor took the job over; the loser adopts its outcome.
var errLostClaim = errors.New("another actor holds the job")

// takeClaim writes a claim for actor on a job that nobody holds (or whose holder's
// claim expired) and that is still in one of the statuses given. It returns the claim's
// token, or errLostClaim / errStale with job holding the newest record.
func (s *Service) takeClaim(ctx context.Context, job *Job, actor Actor, ttl time.Duration, statuses ...Status) (string, error) {
	claim := s.newClaim(actor, ttl)
	err := s.write(ctx, job, func(j *Job) error {
		if holds(j, claim.Token) {
			return nil // this very claim landed, its answer lost (the write re-read it)
		}
		if !statusIn(j.Status, statuses) {
			return errStale
		}
		if s.claimLive(j) {
			return errLostClaim
		}
		j.Claim = claim
		return nil
	})
	return claim.Token, err
}

func statusIn(s Status, set []Status) bool {
	for _, x := range set {
		if s == x {
			return true
		}
	}
	return false
}
