package copyjob

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/blobcopy/blobcopy/internal/faultpoint"
	"github.com/blobcopy/blobcopy/internal/redact"
)

// StartRequest asks for one copy.
type StartRequest struct {
	// JobID makes the start idempotent when set (derived from an idempotency key or an
	// event id); otherwise a random id is used.
	JobID       string
	RequestHash string
	Origin      string
	EventID     string
	// Owner is recorded as Job.Owner ("" for no owner).
	Owner string
	// Batch is recorded as Job.Batch. A batch's child gets no tracking message: the
	// batch's tick finds and follows it (see children.go).
	Batch       string
	Source      string
	Destination BlobRef
	Options     Options
	CallbackURL string
}

// Start starts a copy and tracks it. It returns the job, whether this call created it
// (false when a retry of the same request found the first job), and a *Error on
// failure: Retryable(err) tells whether the caller should retry (the job then stays
// "starting" and the tick retries it too), otherwise the start was refused for good.
//
// A start nothing can replay (no JobID, not a batch's child) leaves its crash trail in
// its tracking message and creates its record once, after Copy Blob: see
// startWithMessage, whose order comment is this one's counterpart. For a keyed start
// (an idempotency key, an event id), the order of the steps is what makes a crash
// anywhere harmless: the record is created
// first, in "starting" with the lease id it will use and the start's claim (it is also
// the idempotency lock: a second start of the same id stops there); then the lease is
// acquired and the copy started. A copy that ended at once with nothing left to do
// (its lease released right away, no callback) is recorded and that is all: no
// tracking message, 4 storage requests for a plain copy. Otherwise (a pending copy, a
// callback to send) the tracking message naming the copy is enqueued before the record
// says "pending" or the outcome: a recorded "pending" always has a message (see track).
// A crash before that message leaves a "starting" record that nothing follows: the
// tick's sweep gives it a message once StartGrace has passed (see sweep). The start
// gives up its storage calls at StartDeadline; after StartGrace its claim expires and
// the tick (or a retry of the request) takes the start over: it adopts a copy that did
// start, or starts it, and it always knows which lease to release. A batch's child
// (req.Batch) gets no message: its batch lists its records and takes it over the same
// way (children.go); a child whose record was never written started nothing.
func (s *Service) Start(ctx context.Context, req StartRequest) (*Job, bool, error) {
	if req.Source == "" {
		return nil, false, newError(CodeInvalidRequest, "source", "source is required", nil)
	}
	id := req.JobID
	if id == "" {
		id = uuid.NewString()
	}
	if s.cfg.Internal(req.Destination) {
		return nil, false, newError(CodeDestinationNotAllowed, "destination.container",
			"container "+req.Destination.Container+" is the app's own (its records, the Functions host's keys and locks) and cannot be a destination", nil)
	}
	lifetime, err := s.sasLifetime(req.Options.SASLifetime)
	if err != nil {
		return nil, false, err
	}
	prepared, err := s.blobs.PrepareSource(ctx, req.Source, req.Destination, lifetime)
	if err != nil {
		return nil, false, sourceError(err)
	}
	if refused := s.internalSource(prepared.Source); refused != nil {
		return nil, false, refused
	}
	if req.Options.LeaseSource && prepared.Source.Ref == nil {
		return nil, false, newError(CodeInvalidRequest, "leaseSource",
			"leaseSource needs a source blob in a configured storage account; this source is "+string(prepared.Source.Kind), nil)
	}
	if req.Options.LeaseSource && sameBlob(*prepared.Source.Ref, req.Destination) {
		// Copy Blob onto a leased blob needs the lease id, which Copy Blob cannot pass
		// for its source: storage would answer 412 LeaseIdMissing on every attempt.
		return nil, false, newError(CodeInvalidRequest, "leaseSource", "a copy onto its own source cannot lease the source", nil)
	}
	dstURL, err := s.blobs.URL(req.Destination)
	if err != nil {
		return nil, false, newError(CodeInvalidRequest, "destination.account", "unknown destination account", err)
	}

	now := s.cfg.Now().UTC()
	job := &Job{
		ID:          id,
		Origin:      req.Origin,
		EventID:     req.EventID,
		Owner:       req.Owner,
		Batch:       req.Batch,
		Source:      prepared.Source,
		Destination: Destination{BlobRef: req.Destination, URL: dstURL},
		Options:     req.Options,
		Status:      StatusStarting,
		CreatedAt:   now,
		UpdatedAt:   now,
		RequestHash: req.RequestHash,
		Claim:       s.newClaim(ActorStart, s.cfg.StartGrace),
	}
	if req.Options.LeaseSource {
		job.Lease = &Lease{ID: uuid.NewString(), State: LeaseAcquiring, fresh: true}
	}
	if req.CallbackURL != "" {
		job.Callback = &Callback{URL: req.CallbackURL}
	}
	token := job.Claim.Token
	log := s.log.With("jobId", id, "operation", "start")
	// The start outlives a client that hangs up: its deadline is StartDeadline, not the
	// request's.
	ctx = context.WithoutCancel(ctx)

	if req.JobID == "" && req.Batch == "" {
		// Nothing can replay this start (its id is new): its tracking message is the crash
		// trail, and its record is written once, after Copy Blob.
		if _, text, fits := trailTicket(job); fits {
			answer, created, err := s.startWithMessage(ctx, job, text, prepared.ReadURL, log)
			if !errors.Is(err, errTrailRefused) {
				return answer, created, err
			}
		}
	}
	if err := s.records.Create(ctx, job); err != nil {
		existing, gerr := s.records.Get(ctx, id)
		switch {
		case gerr == nil && holds(existing, token):
			// Our own Create landed and its answer was lost (or the SDK's retry met it).
			job = existing
		case errors.Is(err, ErrExists) && gerr == nil:
			return s.replay(ctx, id, req.RequestHash, req.Source)
		default:
			// The record may or may not exist: one that did land says "starting" under a
			// claim nobody will finish, and the tick's sweep takes it over (see sweep).
			if errors.Is(gerr, ErrNotFound) && job.snapshotChecked && job.DestinationSnapshot != "" {
				// A start whose message was refused took its snapshot first: no record
				// names it, nothing started.
				s.deleteSnapshot(ctx, job.Destination.BlobRef, job.DestinationSnapshot, log)
			}
			return nil, false, storageError("cannot write the job record", err)
		}
	}
	faultpoint.Hit("start:recorded")
	tr := &tracker{}
	err = s.attempt(withTracker(ctx, tr), job, prepared.ReadURL, token, log)
	if tr.enqueued && job.Status.Terminal() && !s.hasLeftovers(job) && job.Claim == nil {
		// The message was enqueued for effects that are all done now: save the tick a visit.
		s.dropMessageBehind(ctx, tr.msg, log)
	}
	return job, true, err
}

// tracker carries, through one Start, the tracking message it enqueued (if any), so
// that Start can drop it once nothing is left for the tick.
type tracker struct {
	msg      Message
	enqueued bool
}

type trackerKey struct{}

func withTracker(ctx context.Context, t *tracker) context.Context {
	return context.WithValue(ctx, trackerKey{}, t)
}

// track makes sure a tracking message follows the job before a write that leaves work
// to the tick (a pending copy, effects still to do, a postponed start): Start enqueues
// none up front, so a copy that ends at once with nothing left costs no queue request.
// The message is enqueued before that write, never after it: a crash in between leaves
// a message (and a record still "starting", so the sweep may add a second one: see
// sweep), never a pending or postponed record that nothing follows. job.Tracked is set
// for the caller's next write to record.
func (s *Service) track(ctx context.Context, job *Job, log *slog.Logger) error {
	tr, ok := ctx.Value(trackerKey{}).(*tracker)
	if !ok || job.Batch != "" {
		// A batch's child is followed by its batch (one message per batch), never by a
		// message of its own.
		// The tick and a retry (POST .../retry) attempt a start their own message follows.
		job.Tracked = true
		return nil
	}
	if job.Tracked {
		return nil
	}
	t := ticketFor(job)
	// The record does not name the copy yet: the first visit must read it (see ticket).
	t.Unrecorded = job.CopyID != ""
	msg, err := s.queue.Enqueue(ctx, t.encode(), s.cfg.FirstPoll)
	if err != nil {
		log.WarnContext(ctx, "cannot enqueue the tracking message", "err", err)
		return err
	}
	tr.msg, tr.enqueued = msg, true
	job.Tracked = true
	faultpoint.Hit("start:enqueued")
	return nil
}

// effectsDue tells whether the outcome about to be recorded leaves the tick work: a
// lease still to release, a callback to send, or the snapshot of a refused start (no
// copy) to delete.
func (s *Service) effectsDue(job *Job) bool {
	return leaseHeld(job) || (s.notifier != nil && job.Callback != nil) || (job.DestinationSnapshot != "" && job.CopyID == "")
}

// replay answers a retry of a request (same idempotency key, same event) that found
// the first job: the job as it stands; the original refusal for a start refused for
// good; and a new attempt for a start that failed transiently (the retry is the point).
func (s *Service) replay(ctx context.Context, id, requestHash, source string) (*Job, bool, error) {
	job, err := s.records.Get(ctx, id)
	if err != nil {
		return nil, false, storageError("cannot read the existing job", err)
	}
	if requestHash != "" && job.RequestHash != "" && job.RequestHash != requestHash {
		e := newError(CodeIdempotencyMismatch, "Idempotency-Key", "the idempotency key was used for another request", nil)
		e.Job = job
		return nil, false, e
	}
	switch {
	case job.Status == StatusStartFailed && job.Refusal != nil:
		return job, false, refusalError(job)
	case job.Status == StatusStarting && job.Claim == nil:
		// A start that failed transiently and gave its claim back: the retry is the
		// point. A claim left to expire (a crashed or stalled start) is the tick's to
		// take over: its tracking message may name a copy the record does not.
		// Its message may be missing (the postponing write's enqueue failed): track
		// enqueues one unless the record says it is there.
		return job, false, s.resumeStart(withTracker(ctx, &tracker{}), job, ActorReplay, "", source)
	}
	return job, false, nil
}

// refusalError rebuilds the error a refused start answered, for its replays.
func refusalError(job *Job) *Error {
	e := newError(job.Refusal.Code, job.Refusal.Target, job.Refusal.Message, nil)
	e.Job = job
	return e
}

// resumeStart takes the start claim of a "starting" job nobody holds and attempts the
// start again: a tick after a crash or a transient failure, or a replayed request.
// knownCopy is the copy id the tracking message learnt when a start could not record
// it (see Start): that copy is the job's, and is followed rather than started again.
// callerSource is the source as a replayed request sends it ("" for the tick): the
// only way back to a caller's SAS, which no record keeps.
func (s *Service) resumeStart(ctx context.Context, job *Job, actor Actor, knownCopy, callerSource string) error {
	log := s.log.With("jobId", job.ID, "operation", "start", "actor", actor)
	// A claim left to expire (not given back) means its holder died or stalled mid-way:
	// it may have sent Copy Blob without recording it.
	abandoned := job.Claim != nil
	token, err := s.takeClaim(ctx, job, actor, s.cfg.StartGrace, StatusStarting)
	switch {
	case errors.Is(err, errLostClaim), errors.Is(err, errStale):
		return nil // someone else is on it, or it moved on: job holds the newest record
	case err != nil:
		return storageError("cannot claim the job", err)
	}
	log.InfoContext(ctx, "attempting the start again", "attempts", job.Attempts, "startFailures", job.StartFailures)
	job.CopyUncertain = job.CopyUncertain || abandoned
	if knownCopy != "" && job.CopyID == "" {
		return s.followKnownCopy(ctx, job, token, knownCopy, log, actor)
	}
	// Before anything else (a snapshot, the lease, preparing the source), look for a
	// copy an earlier attempt started: nothing may refuse, or snapshot over, the job's
	// own running copy.
	if job.CopyUncertain || job.Attempts > 0 {
		switch cur, v := s.ownCopy(ctx, job); v {
		case copyOurs:
			log.InfoContext(ctx, "adopted the copy an earlier attempt started", "copyId", cur.CopyID)
			job.Attempts++
			return s.adopt(ctx, job, token, cur, log)
		case copyUnknown:
			return s.postpone(ctx, job, token, newError(CodeStorageUnavailable, "destination",
				"cannot read the destination to tell whether an earlier attempt started the copy", nil), log)
		}
	}
	if waitingForDestination(job) {
		if cause := s.destinationStillBusy(ctx, job, actor, log); cause != nil {
			return s.awaitDestination(ctx, job, token, cause, log)
		}
	}
	prepared, refused, err := s.prepareAgain(ctx, job, callerSource)
	switch {
	case refused != nil:
		return s.refuse(ctx, job, token, refused, log)
	case err != nil:
		return s.fail(ctx, job, token, sourceError(err), log)
	}
	job.Source.SASExpiresAt = prepared.Source.SASExpiresAt
	return s.attempt(ctx, job, prepared.ReadURL, token, log)
}

// prepareAgain prepares a recorded job's source for a new attempt (the tick, a replay,
// POST .../retry): from callerSource when a replay brings the request's own URL, else
// from the recorded URL, which kept no query. refused says why no attempt may follow:
// an outside URL whose query the record did not keep (attempted without the caller's
// SAS, storage would refuse for want of it, a false CannotVerifyCopySource; without a
// token it could read something else), a blob in a configured account the app can no
// longer read without that query, or a source in the app's own containers (a job
// recorded before that check: it binds every preparation, not just the first).
func (s *Service) prepareAgain(ctx context.Context, job *Job, callerSource string) (prepared PreparedSource, refused *Error, err error) {
	lifetime, lerr := s.sasLifetime(job.Options.SASLifetime)
	if lerr != nil {
		lifetime = s.cfg.SASLifetime
	}
	lostQuery := callerSource == "" && (job.Source.Kind == SourceCallerSAS || job.Source.QueryDropped)
	if lostQuery && job.Source.needsCallersQuery() {
		return PreparedSource{}, sourceQueryNotKept(), nil
	}
	source := job.Source.URL
	if callerSource != "" {
		source = callerSource
	}
	prepared, err = s.blobs.PrepareSource(ctx, source, job.Destination.BlobRef, lifetime)
	if err == nil && prepared.Source.URL != job.Source.URL || lostQuery && errors.Is(err, ErrInvalidSource) {
		// Another URL than the recorded one (never for a true replay), or a configured
		// account the app cannot sign for: the caller's SAS was the only way in.
		return PreparedSource{}, sourceQueryNotKept(), nil
	}
	if err != nil {
		return PreparedSource{}, nil, err
	}
	if refused := s.internalSource(prepared.Source); refused != nil {
		return PreparedSource{}, refused, nil
	}
	return prepared, nil, nil
}

// internalSource refuses a source in the app's own containers. It is checked on the
// blob the SAS was signed for, not on the URL's text: no spelling of the URL reaches
// them through the app's signature.
func (s *Service) internalSource(src Source) *Error {
	if src.Ref == nil || !s.cfg.Internal(*src.Ref) {
		return nil
	}
	return newError(CodeSourceNotAllowed, "source",
		"container "+src.Ref.Container+" is the app's own (its records, the Functions host's keys and locks) and cannot be a source", nil)
}

// needsCallersQuery: the source is an outside URL whose query (the caller's SAS, a
// token) the record does not keep, so the copy can be attempted again only with the
// request. A blob in a configured account needs none: the app signs its own SAS.
func (s Source) needsCallersQuery() bool {
	return s.Ref == nil && (s.Kind == SourceCallerSAS || s.QueryDropped)
}

// sourceQueryNotKept is why such a start is not attempted again by the tick or a
// retry: no SAS or token is ever stored.
func sourceQueryNotKept() *Error {
	return newError(CodeSourceQueryNotKept, "source", "the source URL carried your SAS or token, which is never stored, so "+
		"the copy cannot be attempted again without it: start a new copy (a new request, or a new Idempotency-Key) with it", nil)
}

// followKnownCopy records the outcome of the copy a start began but could not record:
// adopted while the destination still carries it, copyIdMismatch (or
// destinationMissing) once something else replaced it; never a second Copy Blob.
func (s *Service) followKnownCopy(ctx context.Context, job *Job, token, copyID string, log *slog.Logger, actor Actor) error {
	cur, err := s.blobs.CopyState(ctx, job.Destination.BlobRef)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return s.fail(ctx, job, token, blobError("destination", "cannot read the destination", err), log)
	}
	if err == nil && cur.CopyID == copyID {
		return s.adopt(ctx, job, token, cur, log)
	}
	job.CopyID = copyID
	outcome, _, _ := s.outcome(job, cur, err)
	now := s.cfg.Now().UTC()
	job.StartedAt = &now
	return s.settle(ctx, job, outcome, actor, startGuard(token), log)
}

// attempt takes a "starting" job whose start claim (token) it holds as far as it goes:
// snapshot, lease, copy, record. Its storage calls end startMargin before the claim
// does (StartDeadline after the claim was taken), so a request still in flight then is
// finished by storage before anyone may take the start over.
func (s *Service) attempt(ctx context.Context, job *Job, readURL, token string, log *slog.Logger) error {
	began := time.Now()
	deadline := time.Now().Add(s.cfg.StartDeadline)
	if job.Claim != nil {
		// Measured from the claim, not from here: preparing the source took some of it.
		deadline = time.Now().Add(job.Claim.Until.Sub(s.cfg.Now()) - s.startMargin())
	}
	actx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	job.Attempts++
	dst := job.Destination.BlobRef

	// With overwrite false the destination must not exist: there is nothing to protect,
	// and a snapshot would be left behind by the refusal (issue 10, case 6).
	late := func() error {
		return s.fail(ctx, job, token, newError(CodeStorageUnavailable, "", "the start ran past its deadline; it is attempted again", nil), log)
	}
	if job.Options.SnapshotDestination && job.Options.Overwrite && job.DestinationSnapshot == "" && !job.snapshotChecked {
		if !s.inTime(job, token, s.startMargin()) {
			return late()
		}
		snap, err := s.blobs.Snapshot(actx, dst)
		switch {
		case err == nil:
			// Record it before the copy overwrites the destination: a start resumed after
			// a crash must restore this snapshot, not take one of a half-copied blob.
			werr := s.write(ctx, job, func(j *Job) error {
				if !holds(j, token) {
					return errLostClaim
				}
				j.DestinationSnapshot, j.Attempts = snap, job.Attempts
				return nil
			})
			if werr != nil {
				s.deleteSnapshot(ctx, dst, snap, log)
				if errors.Is(werr, errLostClaim) {
					return nil
				}
				return s.fail(ctx, job, token, storageError("cannot record the destination snapshot", werr), log)
			}
			faultpoint.Hit("start:snapshotted")
		case errors.Is(err, ErrNotFound):
			// Nothing to protect: the destination does not exist yet.
		case errors.Is(err, ErrPendingCopy):
			// Storage refuses to snapshot a blob whose copy is pending: the same refusal
			// Copy Blob would give, naming the job that owns that copy (or waiting for it,
			// for an event), not a generic one.
			return s.fail(ctx, job, token, s.pendingCopyError(ctx, job, err), log)
		default:
			return s.fail(ctx, job, token, blobError("destination", "cannot snapshot the destination", err), log)
		}
	}

	if job.Lease != nil && job.Lease.State == LeaseAcquiring {
		if !s.inTime(job, token, s.startMargin()) {
			return late()
		}
		if err := s.blobs.AcquireLease(actx, *job.Source.Ref, job.Lease.ID); err != nil {
			if errors.Is(err, ErrLeaseConflict) || errors.Is(err, ErrNotFound) || job.Lease.fresh && refusedForCertain(err) {
				// Never ours: held by another, no source, or refused for certain (the app may
				// not lease it: a 403) a lease no earlier attempt can hold. Nothing to
				// release: a release of a lease never acquired would be refused in the same
				// way at every visit, and the job would never finish. A lease read from the
				// record may have been acquired by an attempt that died: it stays acquiring,
				// and its release is attempted until storage allows it (see releaseLease).
				job.Lease.State = LeaseNotAcquired
			}
			return s.fail(ctx, job, token, leaseError(err), log)
		}
		job.Lease.State = LeaseHeld
		faultpoint.Hit("start:leased")
	}

	if !s.inTime(job, token, s.startMargin()) {
		return late()
	}
	state, err := s.copyOnce(actx, job, readURL, log)
	if err != nil {
		return s.fail(ctx, job, token, s.startCopyError(ctx, job, err), log)
	}
	faultpoint.Hit("start:copied")
	// Debug: the next line says the same at Info ("copy pending", or "copy finished at
	// start" and the outcome), and each Info line of a start is ingested and paid for.
	log.DebugContext(ctx, "copy started", "duration", time.Since(began))
	return s.adopt(ctx, job, token, state, log)
}

// adopt records a copy that runs (or ran) for the job, started by this attempt or an
// earlier one: pending, or its terminal outcome at once.
func (s *Service) adopt(ctx context.Context, job *Job, token string, state CopyState, log *slog.Logger) error {
	if job.Lease != nil && job.Lease.State == LeaseAcquiring && state.Status == StatusPending {
		// Adopted from an attempt that died after leasing (a start leases before Copy
		// Blob): confirm the lease is ours; acquiring again with the same id succeeds.
		switch err := s.blobs.AcquireLease(ctx, *job.Source.Ref, job.Lease.ID); {
		case err == nil:
			job.Lease.State = LeaseHeld
		case errors.Is(err, ErrLeaseConflict), errors.Is(err, ErrNotFound):
			job.Lease.State = LeaseNotAcquired
		default:
			log.WarnContext(ctx, "cannot confirm the source lease of an adopted copy; it is released with the outcome", "err", err)
		}
	}
	now := s.cfg.Now().UTC()
	job.CopyID, job.StartedAt = state.CopyID, &now
	log = log.With("copyId", job.CopyID)
	if state.Status != StatusPending {
		// Debug: the outcome's line at Info is settle's "copy outcome recorded", which follows
		// (one line per outcome, as dashboards count them; issue 13).
		log.DebugContext(ctx, "copy finished at start", "status", state.Status)
		state = s.withLength(ctx, job, state)
		ended := state
		job.ended = &ended
		if job.Lease != nil && job.Lease.State == LeaseAcquiring {
			// A copy of this attempt ran, and a start leases before Copy Blob: the lease was
			// acquired (a release that finds it free then means an earlier run released it).
			job.Lease.State = LeaseHeld
		}
		if leaseHeld(job) && s.inTime(job, token, s.startMargin()) {
			// The copy has ended: the source needs its lease no more. Released here, under
			// the start claim (nobody else may settle the job), the lease's state is
			// recorded with the outcome in one write and no message is needed: leaseSource
			// adds only its acquire and release. A crash before that write leaves the
			// record "starting"; the takeover's release then finds the lease free and
			// records it released.
			s.releaseLease(ctx, job, log)
		}
		if s.effectsDue(job) {
			// Effects follow the outcome: a message must be there to finish them if this
			// process dies between the two.
			if err := s.track(ctx, job, log); err != nil {
				return s.untracked(ctx, job, state, err, log)
			}
		}
		tracked := job.Tracked
		return s.settle(ctx, job, state, ActorStart, func(j *Job) error {
			if !holds(j, token) {
				return errLostClaim
			}
			j.Tracked = j.Tracked || tracked
			return nil
		}, log)
	}
	// A pending copy is followed by its message, enqueued before the record says
	// "pending" (a pending record nothing follows would never be polled).
	if err := s.track(ctx, job, log); err != nil {
		return s.untracked(ctx, job, state, err, log)
	}
	attempts, lease, copyID, progress := job.Attempts, job.Lease, job.CopyID, state.Progress
	err := s.write(ctx, job, func(j *Job) error {
		if !holds(j, token) {
			return errLostClaim
		}
		j.Status, j.CopyID, j.StartedAt, j.Progress, j.Attempts = StatusPending, copyID, &now, progress, attempts
		j.Lease, j.Claim, j.StartFailures, j.NextAttemptAt, j.StatusDescription = lease, nil, 0, nil, ""
		j.Tracked = true
		return nil
	})
	switch {
	case errors.Is(err, errLostClaim), errors.Is(err, errStale):
		log.WarnContext(ctx, "another actor took the start over; answering its outcome", "status", job.Status)
		return nil
	case err != nil:
		// The copy runs; when the claim expires the tick adopts it from the record.
		log.WarnContext(ctx, "copy started but the record was not updated; the status tick will adopt it", "err", err)
		job.Status, job.CopyID, job.Progress = StatusPending, copyID, progress
		return nil
	}
	source, destination := job.Source.URL, job.Destination.URL
	s.reportBehind(ctx, func() { log.InfoContext(ctx, "copy pending", "source", source, "destination", destination) })
	return nil
}

// untracked ends an attempt whose copy started but whose tracking message could not be
// enqueued: the record is left "starting" under the claim, which expires, and the tick's
// sweep then gives it a message and takes the start over (adopting this copy, as after
// a failed record write). The start is answered as accepted: the copy runs, and a 503
// would make a client without an idempotency key start a second one.
func (s *Service) untracked(ctx context.Context, job *Job, state CopyState, cause error, log *slog.Logger) error {
	log.WarnContext(ctx, "copy started but no tracking message could be enqueued; the tick's sweep takes the start over after the start grace", "err", cause)
	job.Status, job.Progress = StatusPending, state.Progress
	return nil
}

// copyOnce starts the copy: one Copy Blob, retried only after a try whose answer was
// lost (a timeout, a 500) and once the destination shows no copy of this job. A copy a
// lost answer did start is adopted, never abandoned; only a foreign copy is a conflict.
// When the destination cannot be read to tell, the attempt fails transiently: refusing
// could abandon the job's own copy. (Copies of earlier attempts are looked for by
// resumeStart, before anything else.)
func (s *Service) copyOnce(ctx context.Context, job *Job, readURL string, log *slog.Logger) (CopyState, error) {
	opts := StartCopyOptions{
		Metadata:        job.Options.Metadata,
		Tags:            job.Options.Tags,
		Tier:            job.Options.Tier,
		IfNotExists:     !job.Options.Overwrite,
		RequiresSync:    job.Options.RequiresSync,
		CreateContainer: !job.Options.ContainerMustExist,
		// A synchronous copy is over at storage before the start's claim ends (ctx ends
		// startMargin before it): a takeover never runs beside it.
		MaxServerTime: s.startMargin(),
	}
	if opts.IfNotExists && len(job.History) > 0 && s.residueOfEarlierAttempt(ctx, job) {
		// overwrite false protects what others wrote, not the blob this job's own failed
		// attempt left behind.
		opts.IfNotExists = false
	}
	// Storage's adapters do not retry Copy Blob (see Blobs.StartCopy): a failed try is
	// retried here, and only after the destination shows no copy of this job. A 409/412
	// is the job's own copy only after a try whose answer was lost; on a first try it
	// means the destination was busy or present before: a real conflict.
	lost := false
	for try := 1; ; try++ {
		if try > 1 && !s.inTime(job, job.claimToken(), s.startMargin()) {
			return CopyState{}, fmt.Errorf("%w: the start ran past its deadline", ErrUnavailable)
		}
		state, err := s.blobs.StartCopy(ctx, job.Destination.BlobRef, readURL, opts)
		unavailable := errors.Is(err, ErrUnavailable)
		if err == nil || !(unavailable || (lost && (errors.Is(err, ErrPendingCopy) || errors.Is(err, ErrExists)))) {
			return state, err
		}
		lost = lost || unavailable
		cur, v := s.ownCopy(ctx, job)
		switch {
		case v == copyOurs:
			log.InfoContext(ctx, "Copy Blob's answer was lost; adopted the copy it started", "copyId", cur.CopyID, "err", err)
			return cur, nil
		case v == copyUnknown:
			job.CopyUncertain = true
			if !unavailable {
				// Not a refusal yet: it may be this job's own copy.
				err = fmt.Errorf("%w: %v (and the destination could not be read to tell whose copy it is)", ErrUnavailable, err)
			}
			return state, err
		case !unavailable:
			return state, err // a foreign copy or blob: a real conflict
		case try >= copyTries || ctx.Err() != nil:
			job.CopyUncertain = true // no verdict; it may have run and been replaced already
			return state, err
		}
		// Storage gave no verdict and the destination shows no copy of this job: it did
		// not start (or ran and was replaced already, which no read can tell).
		if !pause(ctx, time.Duration(try)*copyRetryDelay) {
			job.CopyUncertain = true
			return state, err
		}
	}
}

// residueOfEarlierAttempt tells whether the destination still carries the copy of one
// of the job's earlier (failed or aborted) attempts.
func (s *Service) residueOfEarlierAttempt(ctx context.Context, job *Job) bool {
	cur, err := s.blobs.CopyState(ctx, job.Destination.BlobRef)
	if err != nil || cur.CopyID == "" || cur.Status == StatusPending {
		return false
	}
	for _, earlier := range job.History {
		if earlier.CopyID == cur.CopyID {
			return true
		}
	}
	return false
}

// copyTries and copyRetryDelay bound the retries of one start attempt's Copy Blob.
const (
	copyTries      = 3
	copyRetryDelay = 200 * time.Millisecond
)

// copyVerdict says whether the copy on a destination is the job's own.
type copyVerdict int

const (
	copyNotOurs copyVerdict = iota
	copyOurs
	copyUnknown // the destination could not be read
)

// ownCopy reads the destination and tells whether its copy is this job's: the same
// source (without its query), started after the job was created, and recorded by no
// other job.
func (s *Service) ownCopy(ctx context.Context, job *Job) (CopyState, copyVerdict) {
	cur, err := s.blobs.CopyState(ctx, job.Destination.BlobRef)
	switch {
	case errors.Is(err, ErrNotFound):
		return cur, copyNotOurs
	case err != nil:
		return cur, copyUnknown
	case cur.CopyID == "":
		return cur, copyNotOurs
	}
	if cur.LastModified.Before(job.CreatedAt.Add(-ClockSkew)) || !sameBlobURL(cur.SourceURL, job.Source.URL) {
		return cur, copyNotOurs
	}
	for _, earlier := range job.History {
		if earlier.CopyID == cur.CopyID {
			return cur, copyNotOurs // an earlier attempt's copy, before a retry
		}
	}
	owner, err := s.findOwner(ctx, job.Destination.BlobRef, cur.CopyID)
	switch {
	case err != nil:
		return cur, copyUnknown // not knowing another job's copy is not knowing it is ours
	case owner != nil && owner.ID != job.ID:
		return cur, copyNotOurs
	}
	return cur, copyOurs
}

// withLength gives a copy that finished at once its length, for its callback: Copy
// Blob's answer has none. Only a job with a callback pays the read; others are
// recorded without it, and a status read fills it in (Service.Get).
func (s *Service) withLength(ctx context.Context, job *Job, state CopyState) CopyState {
	if state.Status != StatusSuccess || state.Progress != (Progress{}) || s.notifier == nil || job.Callback == nil {
		return state
	}
	if cur, ok := s.carriedCopy(ctx, job.Destination.BlobRef, state.CopyID); ok {
		return cur
	}
	return state
}

// carriedCopy reads the destination's copy properties, for copy copyID: ok is false
// when they cannot be read or the destination no longer carries that copy.
func (s *Service) carriedCopy(ctx context.Context, dst BlobRef, copyID string) (CopyState, bool) {
	cur, err := s.blobs.CopyState(ctx, dst)
	return cur, err == nil && cur.CopyID == copyID
}

// ClockSkew is how far storage's clock may lag the app's: a copy whose last modification
// storage dates up to this long before a job began may still be that job's.
const ClockSkew = time.Minute

func sameBlob(a, b BlobRef) bool {
	return a.Account == b.Account && a.Container == b.Container && a.Blob == b.Blob
}

func sameBlobURL(a, b string) bool {
	ua, errA := url.Parse(a)
	ub, errB := url.Parse(b)
	if errA != nil || errB != nil {
		return false
	}
	return strings.EqualFold(ua.Host, ub.Host) && strings.TrimSuffix(ua.EscapedPath(), "/") == strings.TrimSuffix(ub.EscapedPath(), "/") &&
		ua.Query().Get("snapshot") == ub.Query().Get("snapshot") && ua.Query().Get("versionid") == ub.Query().Get("versionid")
}

// fail ends an attempt that failed: a transient failure leaves the job "starting" for
// another attempt, a permanent one refuses it.
func (s *Service) fail(ctx context.Context, job *Job, token string, cause *Error, log *slog.Logger) error {
	if cause.Code == CodePendingCopyOperation && waitsForDestination(job) {
		return s.awaitDestination(ctx, job, token, cause, log)
	}
	if Retryable(cause) && job.StartFailures+1 < s.cfg.MaxFailures {
		return s.postpone(ctx, job, token, cause, log)
	}
	if Retryable(cause) {
		// Give up only when the destination shows no copy of this job: an attempt whose
		// answer was lost may have started one, and it must be adopted, not abandoned.
		bctx, cancel := bookkeeping(ctx)
		cur, v := s.ownCopy(bctx, job)
		cancel()
		switch v {
		case copyOurs:
			log.InfoContext(ctx, "adopted the copy a failed attempt started", "copyId", cur.CopyID)
			return s.adopt(ctx, job, token, cur, log)
		case copyUnknown:
			return s.postpone(ctx, job, token, cause, log)
		}
		cause = newError(CodeStartRetriesExhausted, cause.Target,
			fmt.Sprintf("gave up after %d attempts: %s", job.StartFailures+1, cause.Message), cause.Err)
	}
	return s.refuse(ctx, job, token, cause, log)
}

// waitsForDestination: an Event Grid event announces a new version of its source, and
// a copy pending on its destination (an earlier version's, another client's) ends in
// time. Refused, the newest version would never be copied: Event Grid drops an event
// answered as refused. The event's job waits instead, attempted again by the tick as
// the destination's copy runs, without counting failures. A start holding a source
// lease does not wait (it would hold the lease as long); an API caller gets the 409
// naming the owner and decides.
func waitsForDestination(job *Job) bool { return job.Origin == "eventgrid" && job.Lease == nil }

// awaitDestination leaves an event's job "starting" until the copy pending on its
// destination has ended: the tick attempts it again with the polls' backoff (up to
// MaxPollInterval), and so does a redelivery of the event. A wait is a successful
// attempt: it ends a run of transient failures (blips while waiting never add up to
// COPY_MAX_FAILURES). It ends after maxDestinationWait, refused: storage gives up a
// copy after about two weeks, so a copy pending longer is one that nothing ends.
func (s *Service) awaitDestination(ctx context.Context, job *Job, token string, cause *Error, log *slog.Logger) error {
	now := s.cfg.Now().UTC()
	if job.WaitingSince == nil {
		job.WaitingSince = &now
	}
	if waited := now.Sub(*job.WaitingSince); waited > maxDestinationWait {
		return s.refuse(ctx, job, token, newError(CodePendingCopyOperation, "destination",
			fmt.Sprintf("gave up after waiting %s for the copy pending on the destination to end: %s", waited.Round(time.Hour), cause.Message), cause.Err), log)
	}
	job.Waits++
	e := newError(CodeWaitingForDestination, "destination",
		"the destination has a copy pending; this job starts once it has ended: "+cause.Message, cause.Err)
	s.postponeFor(ctx, job, token, e, 0, s.backoff(int64(job.Waits)), log)
	log.InfoContext(ctx, "the destination has a copy pending; the start waits for it to end", "waits", job.Waits, "waitingSince", job.WaitingSince, "nextAttemptAt", job.NextAttemptAt)
	e.Job = job
	return e
}

// maxDestinationWait bounds a wait for the destination: a pending copy lasts at most
// about two weeks (storage then fails it), plus a day.
const maxDestinationWait = 15 * 24 * time.Hour

// destinationStillBusy says why a waiting job must wait on: the copy on its destination
// is another job's of this app that has not recorded its outcome yet (pending, or
// ended and not yet seen by the tick). Copying over it now would leave that job a
// copyIdMismatch instead of its true outcome. When that copy has ended, the tick records
// its outcome for its job, as that job's own poll would (lease release and callback
// included, once: settle's compare-and-swap), so a job whose message was lost (poisoned,
// deleted) does not hold the waiting job for ever. A copy no job of this app records is
// left to Copy Blob to judge.
func (s *Service) destinationStillBusy(ctx context.Context, job *Job, actor Actor, log *slog.Logger) *Error {
	cur, err := s.blobs.CopyState(ctx, job.Destination.BlobRef)
	if err != nil || cur.CopyID == "" {
		return nil
	}
	owner, _ := s.findOwner(ctx, job.Destination.BlobRef, cur.CopyID)
	if owner == nil || owner.ID == job.ID || owner.Status.Terminal() {
		return nil
	}
	if actor == ActorTick && owner.Status == StatusPending && cur.Status != StatusPending {
		if outcome, terminal, oerr := s.outcome(owner, cur, nil); oerr == nil && terminal {
			olog := s.log.With("jobId", owner.ID, "operation", "poll", "actor", actor, "for", job.ID)
			if err := s.settle(ctx, owner, outcome, ActorTick, s.pendingGuard(owner.CopyID), olog); err == nil && owner.Status.Terminal() {
				log.InfoContext(ctx, "recorded the outcome of the copy this start waited for", "owner", owner.ID, "status", owner.Status)
				return nil
			}
		}
	}
	return newError(CodePendingCopyOperation, "destination",
		fmt.Sprintf("another job of this app has not yet recorded the outcome of copy %s on the destination", cur.CopyID), nil)
}

// waitingForDestination tells a job left waiting by awaitDestination from one that
// failed transiently. A record written before WaitingSince existed says so in its
// description only.
func waitingForDestination(job *Job) bool {
	return job.WaitingSince != nil || strings.HasPrefix(job.StatusDescription, string(CodeWaitingForDestination)+":")
}

// postpone records a transient start failure: the job stays "starting", gives its claim
// back and may be attempted again from NextAttemptAt by the tick, or at once by a retry
// of the request. The lease (held or being acquired) stays: the next attempt reuses it.
func (s *Service) postpone(ctx context.Context, job *Job, token string, cause *Error, log *slog.Logger) error {
	failures := job.StartFailures + 1
	s.postponeFor(ctx, job, token, cause, failures, s.backoff(int64(failures)), log)
	log.WarnContext(ctx, "start failed transiently; it will be attempted again", "code", cause.Code, "failures", failures, "nextAttemptAt", job.NextAttemptAt, "err", cause.Err)
	cause.Job = job
	return cause
}

// postponeFor writes the job "starting" without its claim, to be attempted again after
// wait, with failures transient failures in a row.
func (s *Service) postponeFor(ctx context.Context, job *Job, token string, cause *Error, failures int, wait time.Duration, log *slog.Logger) {
	bctx, cancel := bookkeeping(ctx)
	defer cancel()
	next := s.cfg.Now().UTC().Add(wait)
	// The tick attempts the start again: a message must follow it (see track). Without
	// one the record is still written; the sweep gives it a message later.
	_ = s.track(bctx, job, log)
	attempts, lease, desc, uncertain, tracked := job.Attempts, job.Lease, redact.Text(cause.Error()), job.CopyUncertain, job.Tracked
	waitingSince, waits := job.WaitingSince, job.Waits
	err := s.write(bctx, job, func(j *Job) error {
		if !holds(j, token) {
			return errLostClaim
		}
		j.StartFailures, j.NextAttemptAt, j.Attempts, j.Lease, j.StatusDescription, j.Claim = failures, &next, attempts, lease, desc, nil
		j.WaitingSince, j.Waits = waitingSince, waits
		j.CopyUncertain = j.CopyUncertain || uncertain
		j.Tracked = j.Tracked || tracked
		return nil
	})
	if err != nil && !errors.Is(err, errLostClaim) {
		log.WarnContext(ctx, "cannot record the transient start failure; the claim expires and the tick retries", "err", err)
	}
}

// refuse ends a start refused for good. The transition to startFailed is written first,
// guarded by the start claim: if another actor took the start over, the write loses and
// nothing is touched. Once it wins no copy of this job can run (the job is terminal and
// nobody else held it), so the effects follow under the effects claim: the lease is
// released and a snapshot this start took is deleted (see settle and effects).
func (s *Service) refuse(ctx context.Context, job *Job, token string, cause *Error, log *slog.Logger) error {
	desc := redact.Text(cause.Error())
	if job.CopyUncertain {
		desc += "; an earlier attempt ended without learning whether its Copy Blob ran, and the destination no longer shows it (if it ran, another copy has replaced it)"
	}
	if snapshotLeft(&Job{Status: StatusStartFailed, DestinationSnapshot: job.DestinationSnapshot, CopyID: job.CopyID}) {
		desc += "; the destination snapshot taken for this start is deleted"
	}
	refusal := &Refusal{Code: cause.Code, Target: cause.Target, Message: redact.Text(cause.Message)}
	job.CopyID, job.StartedAt = "", nil
	if s.effectsDue(job) {
		// A lease to release or a snapshot to delete follows the refusal: a message must
		// be there to finish them if this process dies between the two (see track).
		if terr := s.track(ctx, job, log); terr != nil {
			return s.postpone(ctx, job, token, storageError("cannot enqueue the tracking message", terr), log)
		}
	}
	tracked := job.Tracked
	err := s.settle(ctx, job, CopyState{Status: StatusStartFailed, Description: desc}, ActorStart, func(j *Job) error {
		if !holds(j, token) {
			return errLostClaim
		}
		j.Refusal = refusal
		j.Tracked = j.Tracked || tracked
		return nil
	}, log)
	if err != nil {
		log.ErrorContext(ctx, "cannot record the refused start; the claim expires and the tick retries", "err", err)
	} else if job.Status != StatusStartFailed || job.Refusal == nil {
		// Another actor took the start over and settled it (its outcome is in job): that
		// is the answer, not this attempt's refusal.
		return nil
	}
	log.WarnContext(ctx, "copy not started", "code", cause.Code, "err", cause.Err)
	cause.Job = orJob(cause.Job, job)
	return cause
}

func (s *Service) deleteSnapshot(ctx context.Context, ref BlobRef, snapshot string, log *slog.Logger) bool {
	err := s.blobs.DeleteSnapshot(ctx, ref, snapshot)
	if err == nil || errors.Is(err, ErrNotFound) {
		log.InfoContext(ctx, "deleted the destination snapshot taken for a start that did not happen", "snapshot", snapshot)
		return true
	}
	log.WarnContext(ctx, "cannot delete the destination snapshot taken for this start", "snapshot", snapshot, "err", err)
	return false
}

func orJob(a, b *Job) *Job {
	if a != nil {
		return a
	}
	return b
}

// startGuard lets only the holder of the start claim make a start's transition.
func startGuard(token string) func(*Job) error {
	return func(j *Job) error {
		if !holds(j, token) {
			return errLostClaim
		}
		return nil
	}
}
