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
)

// Config tunes the service; zero values take the defaults in withDefaults.
type Config struct {
	// SASLifetime is how long a generated source SAS stays valid when the request names
	// none. A SAS must outlive the copy (pitfalls #3); MaxSASLifetime bounds requests.
	SASLifetime    time.Duration
	MaxSASLifetime time.Duration
	// FirstPoll is when a new job's tracking message first becomes visible; later polls
	// back off exponentially up to MaxPollInterval.
	FirstPoll       time.Duration
	MaxPollInterval time.Duration
	// StartGrace is how long a job may stay "starting" before a tick assumes the starter
	// crashed and resumes the start.
	StartGrace time.Duration
	// MaxFailures is how many consecutive failed attempts a message gets before it is
	// moved to the poison queue.
	MaxFailures int
	// BatchSize (<= 32), Concurrency and TickBudget bound one status tick.
	BatchSize   int
	Concurrency int
	TickBudget  time.Duration
	// ProcessingVisibility hides a dequeued message while a tick works on it.
	ProcessingVisibility time.Duration
	// MaxCallbackAttempts bounds completion callback deliveries.
	MaxCallbackAttempts int
	Now                 func() time.Time
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.SASLifetime, 24*time.Hour)
	def(&c.MaxSASLifetime, 7*24*time.Hour)
	def(&c.FirstPoll, 5*time.Second)
	def(&c.MaxPollInterval, 5*time.Minute)
	def(&c.StartGrace, 2*time.Minute)
	def(&c.TickBudget, 4*time.Minute)
	def(&c.ProcessingVisibility, 2*time.Minute)
	if c.MaxFailures <= 0 {
		c.MaxFailures = 5
	}
	if c.BatchSize <= 0 || c.BatchSize > 32 {
		c.BatchSize = 32
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 16
	}
	if c.MaxCallbackAttempts <= 0 {
		c.MaxCallbackAttempts = 5
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Service runs copy jobs.
type Service struct {
	blobs    Blobs
	records  Records
	queue    Queue
	notifier Notifier
	cfg      Config
	log      *slog.Logger
}

// NewService wires a service; notifier may be nil.
func NewService(blobs Blobs, records Records, queue Queue, notifier Notifier, cfg Config, log *slog.Logger) *Service {
	if log == nil {
		log = slog.Default()
	}
	return &Service{blobs: blobs, records: records, queue: queue, notifier: notifier, cfg: cfg.withDefaults(), log: log}
}

// Config returns the effective configuration.
func (s *Service) Config() Config { return s.cfg }

// StartRequest asks for one copy.
type StartRequest struct {
	// JobID makes the start idempotent when set (derived from an idempotency key or an
	// event id); otherwise a random id is used.
	JobID       string
	RequestHash string
	Origin      string
	EventID     string
	Source      string
	Destination BlobRef
	Options     Options
	CallbackURL string
}

// Start starts a copy and tracks it. It returns the job, whether this call created it
// (false when an idempotent retry found the first job), and a *Error on failure.
//
// The order of the steps is what makes a crash anywhere harmless: the tracking message
// is enqueued first (a message without a record is dropped by the tick), then the record
// is created in "starting" with the lease id it will use, then the lease is acquired and
// the copy started, then the record says "pending". A tick that finds a "starting" job
// older than StartGrace resumes it: it adopts a copy that did start, or starts it, and
// it always knows which lease to release.
func (s *Service) Start(ctx context.Context, req StartRequest) (*Job, bool, error) {
	if req.Source == "" {
		return nil, false, newError(CodeInvalidRequest, "source", "source is required", nil)
	}
	id := req.JobID
	if id == "" {
		id = uuid.NewString()
	}
	lifetime, err := s.sasLifetime(req.Options.SASLifetime)
	if err != nil {
		return nil, false, err
	}
	prepared, err := s.blobs.PrepareSource(ctx, req.Source, req.Destination, lifetime)
	if err != nil {
		return nil, false, sourceError(err)
	}
	if req.Options.LeaseSource && prepared.Source.Ref == nil {
		return nil, false, newError(CodeInvalidRequest, "leaseSource",
			"leaseSource needs a source blob in a configured storage account; this source is "+string(prepared.Source.Kind), nil)
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
		Source:      prepared.Source,
		Destination: Destination{BlobRef: req.Destination, URL: dstURL},
		Options:     req.Options,
		Status:      StatusStarting,
		CreatedAt:   now,
		UpdatedAt:   now,
		RequestHash: req.RequestHash,
	}
	if req.Options.LeaseSource {
		job.Lease = &Lease{ID: uuid.NewString(), State: LeaseAcquiring}
	}
	if req.CallbackURL != "" {
		job.Callback = &Callback{URL: req.CallbackURL}
	}
	log := s.log.With("jobId", id, "operation", "start")

	msg, err := s.queue.Enqueue(ctx, ticketFor(job).encode(), s.cfg.FirstPoll)
	if err != nil {
		return nil, false, newError(CodeStorageUnavailable, "", "cannot enqueue the tracking message", err)
	}
	faultpoint.Hit("start:enqueued")
	if err := s.records.Create(ctx, job); err != nil {
		s.dropMessage(ctx, msg, log)
		if errors.Is(err, ErrExists) {
			return s.existing(ctx, id, req.RequestHash)
		}
		return nil, false, newError(CodeStorageUnavailable, "", "cannot write the job record", err)
	}
	faultpoint.Hit("start:recorded")
	created := job.ETag
	err = s.advance(ctx, job, prepared.ReadURL, false)
	// recorded: the terminal outcome reached the record (Update sets a new ETag). When that
	// write failed the record still says "starting" and the message must stay, so that a
	// tick resumes the job and records its outcome.
	recorded := job.ETag != created
	if job.Status.Terminal() && recorded && (job.Lease == nil || job.Lease.State != LeaseHeld) && job.Callback == nil {
		// Nothing left to track: save the tick a visit.
		s.dropMessage(ctx, msg, log)
	}
	return job, true, err
}

// existing answers an idempotent retry with the first job.
func (s *Service) existing(ctx context.Context, id, requestHash string) (*Job, bool, error) {
	job, err := s.records.Get(ctx, id)
	if err != nil {
		return nil, false, newError(CodeStorageUnavailable, "", "cannot read the existing job", err)
	}
	if requestHash != "" && job.RequestHash != "" && job.RequestHash != requestHash {
		e := newError(CodeIdempotencyMismatch, "Idempotency-Key", "the idempotency key was used for another request", nil)
		e.Job = job
		return nil, false, e
	}
	return job, false, nil
}

func (s *Service) dropMessage(ctx context.Context, m Message, log *slog.Logger) {
	if err := s.queue.Delete(ctx, m); err != nil {
		// Harmless: the tick drops a message whose job is gone or finished.
		log.Warn("cannot delete tracking message", "err", err)
	}
}

func (s *Service) sasLifetime(requested Duration) (time.Duration, error) {
	d := time.Duration(requested)
	if d == 0 {
		d = s.cfg.SASLifetime
	}
	if d < time.Minute || d > s.cfg.MaxSASLifetime {
		return 0, newError(CodeInvalidRequest, "sasLifetime",
			fmt.Sprintf("sasLifetime must be between 1m and %s", s.cfg.MaxSASLifetime), nil)
	}
	return d, nil
}

func sourceError(err error) *Error {
	switch {
	case errors.Is(err, ErrForbidden):
		return newError(CodeSourceNotAllowed, "source", "the source is not allowed", err)
	case errors.Is(err, ErrInvalidSource), errors.Is(err, ErrUnknownAccount):
		return newError(CodeInvalidRequest, "source", "invalid source", err)
	}
	return newError(CodeStorageUnavailable, "source", "cannot prepare the source", err)
}

// advance takes a "starting" job as far as it goes: snapshot, lease, copy, record.
// resuming is true when a tick picks up a start that crashed half-way.
func (s *Service) advance(ctx context.Context, job *Job, readURL string, resuming bool) error {
	log := s.log.With("jobId", job.ID, "operation", "start")
	began := time.Now()
	job.Attempts++
	dst := job.Destination.BlobRef

	if job.Options.SnapshotDestination && job.DestinationSnapshot == "" {
		snap, err := s.blobs.Snapshot(ctx, dst)
		switch {
		case err == nil:
			job.DestinationSnapshot = snap
			// Record it before the copy overwrites the destination: a start resumed after
			// a crash must restore this snapshot, not take one of a half-copied blob.
			if err := s.save(ctx, job); err != nil {
				return s.abandon(ctx, job, newError(CodeStorageUnavailable, "", "cannot record the destination snapshot", err))
			}
		case errors.Is(err, ErrNotFound):
			// Nothing to protect: the destination does not exist yet.
		default:
			return s.abandon(ctx, job, newError(CodeStorageUnavailable, "destination", "cannot snapshot the destination", err))
		}
	}

	if job.Lease != nil && job.Lease.State == LeaseAcquiring {
		if err := s.blobs.AcquireLease(ctx, *job.Source.Ref, job.Lease.ID); err != nil {
			if errors.Is(err, ErrLeaseConflict) {
				job.Lease.State = LeaseReleased // never ours
				return s.abandon(ctx, job, newError(CodeSourceLeased, "source", "the source holds another lease", err))
			}
			return s.abandon(ctx, job, newError(CodeStorageUnavailable, "source", "cannot lease the source", err))
		}
		job.Lease.State = LeaseHeld
		faultpoint.Hit("start:leased")
	}

	var state CopyState
	adopted := false
	if resuming {
		if cur, err := s.blobs.CopyState(ctx, dst); err == nil && s.isOurCopy(cur, job) {
			state, adopted = cur, true
			log.Info("adopted a copy started before a crash", "copyId", cur.CopyID)
		}
	}
	if !adopted {
		var err error
		state, err = s.blobs.StartCopy(ctx, dst, readURL, StartCopyOptions{
			Metadata:     job.Options.Metadata,
			Tags:         job.Options.Tags,
			Tier:         job.Options.Tier,
			IfNotExists:  !job.Options.Overwrite,
			RequiresSync: job.Options.RequiresSync,
		})
		if err != nil {
			return s.abandon(ctx, job, s.startCopyError(ctx, job, err))
		}
	}
	faultpoint.Hit("start:copied")
	now := s.cfg.Now().UTC()
	job.CopyID = state.CopyID
	job.StartedAt = &now
	log = log.With("copyId", job.CopyID)
	if state.Status == StatusPending {
		job.Status = StatusPending
		job.Progress = state.Progress
		if err := s.save(ctx, job); err != nil {
			// The copy runs; the tick will adopt it from the "starting" record.
			log.Warn("copy started but the record was not updated; the status tick will adopt it", "err", err)
			return nil
		}
		log.Info("copy pending", "source", job.Source.URL, "destination", job.Destination.URL, "duration", time.Since(began))
		return nil
	}
	log.Info("copy finished at start", "status", state.Status, "duration", time.Since(began))
	return s.settle(ctx, job, state)
}

// isOurCopy tells whether the destination's current copy is the one a crashed start of
// this job began: same source, written after the job was created.
func (s *Service) isOurCopy(cur CopyState, job *Job) bool {
	if cur.CopyID == "" || cur.LastModified.Before(job.CreatedAt.Add(-time.Minute)) {
		return false
	}
	return sameBlobURL(cur.SourceURL, job.Source.URL)
}

func sameBlobURL(a, b string) bool {
	ua, errA := url.Parse(a)
	ub, errB := url.Parse(b)
	if errA != nil || errB != nil {
		return false
	}
	return strings.EqualFold(ua.Host, ub.Host) && strings.TrimSuffix(ua.Path, "/") == strings.TrimSuffix(ub.Path, "/") &&
		ua.Query().Get("snapshot") == ub.Query().Get("snapshot") && ua.Query().Get("versionid") == ub.Query().Get("versionid")
}

func (s *Service) startCopyError(ctx context.Context, job *Job, err error) *Error {
	switch {
	case errors.Is(err, ErrPendingCopy):
		e := newError(CodePendingCopyOperation, "destination", "a copy is already pending on the destination", err)
		e.Job = s.pendingOwner(ctx, job.Destination.BlobRef)
		return e
	case errors.Is(err, ErrExists):
		return newError(CodeDestinationExists, "destination", "the destination exists and overwrite is false", err)
	case errors.Is(err, ErrSourceUnreadable):
		return newError(CodeSourceNotReadable, "source", "storage cannot read the source", err)
	case errors.Is(err, ErrNotFound):
		return newError(CodeContainerNotFound, "destination.container", "the destination container does not exist", err)
	case errors.Is(err, ErrForbidden):
		return newError(CodeForbidden, "destination", "the app is not authorized to write the destination", err)
	}
	return newError(CodeStorageUnavailable, "", "cannot start the copy", err)
}

// pendingOwner finds the job that owns the pending copy on dst, if this app started it.
func (s *Service) pendingOwner(ctx context.Context, dst BlobRef) *Job {
	cur, err := s.blobs.CopyState(ctx, dst)
	if err != nil || cur.CopyID == "" {
		return nil
	}
	marker := ""
	for range 20 { // bounded: this is an error path
		page, err := s.records.List(ctx, ListOptions{Status: StatusPending, Marker: marker, Limit: 500})
		if err != nil {
			return nil
		}
		for _, j := range page.Jobs {
			if j.CopyID == cur.CopyID && j.Destination.BlobRef == dst {
				return j
			}
		}
		if page.NextMarker == "" {
			break
		}
		marker = page.NextMarker
	}
	return &Job{CopyID: cur.CopyID, Status: cur.Status, Progress: cur.Progress, Source: Source{URL: cur.SourceURL}}
}

// abandon ends a start that failed: the lease is released and the record says why.
func (s *Service) abandon(ctx context.Context, job *Job, cause *Error) error {
	log := s.log.With("jobId", job.ID, "operation", "start")
	s.releaseLease(ctx, job, log)
	now := s.cfg.Now().UTC()
	job.Status = StatusStartFailed
	job.StatusDescription = cause.Error()
	job.CompletedAt = &now
	if err := s.save(ctx, job); err != nil {
		log.Error("cannot record the failed start; the status tick will retry", "err", err)
	}
	log.Warn("copy not started", "code", cause.Code, "err", cause.Err)
	cause.Job = orJob(cause.Job, job)
	return cause
}

func orJob(a, b *Job) *Job {
	if a != nil {
		return a
	}
	return b
}

// releaseLease releases the job's source lease if held, recording the new state.
// It reports whether the lease is now certainly not held by this job.
func (s *Service) releaseLease(ctx context.Context, job *Job, log *slog.Logger) bool {
	if job.Lease == nil || job.Lease.State == LeaseReleased || job.Lease.State == LeaseLost {
		return true
	}
	err := s.blobs.ReleaseLease(ctx, *job.Source.Ref, job.Lease.ID)
	switch {
	case err == nil, errors.Is(err, ErrLeaseNotHeld), errors.Is(err, ErrNotFound):
		job.Lease.State = LeaseReleased
		log.Info("source lease released", "leaseId", job.Lease.ID)
		return true
	case errors.Is(err, ErrLeaseConflict):
		job.Lease.State = LeaseLost
		log.Warn("source lease was broken or replaced by someone else", "leaseId", job.Lease.ID)
		return true
	}
	log.Warn("cannot release the source lease; will retry", "leaseId", job.Lease.ID, "err", err)
	return false
}

// settle records a terminal copy state, releases the lease and sends the callback.
// It returns an error when something is left to do (the lease is still held), so that
// the tracking message is kept.
func (s *Service) settle(ctx context.Context, job *Job, state CopyState) error {
	log := s.log.With("jobId", job.ID, "copyId", job.CopyID, "operation", "settle")
	released := s.releaseLease(ctx, job, log)
	now := s.cfg.Now().UTC()
	job.Status = state.Status
	job.StatusDescription = state.Description
	if state.Progress.BytesTotal > 0 || state.Progress.BytesCopied > 0 {
		job.Progress = state.Progress
	}
	job.CompletedAt = state.CompletedAt
	if job.CompletedAt == nil {
		job.CompletedAt = &now
	}
	s.notify(ctx, job, log)
	if err := s.save(ctx, job); err != nil {
		return fmt.Errorf("record outcome %s: %w", job.Status, err)
	}
	log.Info("copy outcome recorded", "status", job.Status, "description", job.StatusDescription,
		"bytesCopied", job.Progress.BytesCopied, "bytesTotal", job.Progress.BytesTotal)
	if !released {
		return fmt.Errorf("source lease %s still held", job.Lease.ID)
	}
	return nil
}

// notify delivers the completion callback once; failures are counted and retried by
// later ticks while the message lives, up to MaxCallbackAttempts.
func (s *Service) notify(ctx context.Context, job *Job, log *slog.Logger) {
	cb := job.Callback
	if cb == nil || s.notifier == nil || cb.DeliveredAt != nil || cb.GaveUp || !job.Status.Terminal() {
		return
	}
	cb.Attempts++
	if err := s.notifier.Notify(ctx, cb.URL, job); err != nil {
		cb.LastError = err.Error()
		cb.GaveUp = cb.Attempts >= s.cfg.MaxCallbackAttempts
		log.Warn("completion callback failed", "attempt", cb.Attempts, "gaveUp", cb.GaveUp, "err", err)
		return
	}
	now := s.cfg.Now().UTC()
	cb.DeliveredAt = &now
	cb.LastError = ""
	log.Info("completion callback delivered", "attempt", cb.Attempts)
}

// callbackPending tells whether a callback is still to be delivered; never without a
// notifier, which would keep the tracking message forever.
func (s *Service) callbackPending(job *Job) bool {
	return s.notifier != nil && job.Callback != nil && job.Callback.DeliveredAt == nil && !job.Callback.GaveUp
}

// save writes the record; on a concurrent update it merges nothing and retries the
// write only if the stored record has not moved on to a terminal state meanwhile.
func (s *Service) save(ctx context.Context, job *Job) error {
	job.UpdatedAt = s.cfg.Now().UTC()
	err := s.records.Update(ctx, job)
	if !errors.Is(err, ErrConflict) {
		return err
	}
	cur, gerr := s.records.Get(ctx, job.ID)
	if gerr != nil {
		return fmt.Errorf("%w (and reload: %v)", err, gerr)
	}
	if cur.Status.Terminal() && !job.Status.Terminal() {
		// Someone (an abort, a status read) settled it first; theirs wins.
		*job = *cur
		return nil
	}
	job.ETag = cur.ETag
	return s.records.Update(ctx, job)
}

// Get returns a job. For a pending job it reads the destination's copy properties live,
// so a status read never shows stale progress (pitfalls #8), and records a terminal
// state as soon as it sees one.
func (s *Service) Get(ctx context.Context, id string) (*Job, error) {
	job, err := s.records.Get(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil, newError(CodeJobNotFound, "id", "no copy job with id "+id, err)
	}
	if err != nil {
		return nil, newError(CodeStorageUnavailable, "", "cannot read the job record", err)
	}
	if job.Status != StatusPending {
		return job, nil
	}
	if err := s.refresh(ctx, job); err != nil {
		s.log.Warn("live copy status read failed; answering from the record", "jobId", id, "err", err)
	}
	return job, nil
}

// refresh reads the destination of a pending job and settles it if the copy ended.
func (s *Service) refresh(ctx context.Context, job *Job) error {
	state, err := s.blobs.CopyState(ctx, job.Destination.BlobRef)
	return s.apply(ctx, job, state, err)
}

// apply records what a read of the destination's copy properties found.
func (s *Service) apply(ctx context.Context, job *Job, state CopyState, err error) error {
	switch {
	case errors.Is(err, ErrNotFound):
		return s.settle(ctx, job, CopyState{Status: StatusDestinationMissing, Description: "the destination blob was deleted while the copy was pending"})
	case err != nil:
		return err
	case state.CopyID != job.CopyID:
		return s.settle(ctx, job, CopyState{Status: StatusCopyIDMismatch, Progress: job.Progress,
			Description: fmt.Sprintf("the destination now carries copy %q (or was overwritten); this job's copy %q is gone", state.CopyID, job.CopyID)})
	case state.Status == StatusPending:
		now := s.cfg.Now().UTC()
		job.Progress = state.Progress
		job.LastPolled = &now
		return nil
	}
	return s.settle(ctx, job, state)
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
	if err != nil {
		return ListPage{}, newError(CodeStorageUnavailable, "", "cannot list jobs", err)
	}
	return page, nil
}

// AbortOptions tune an abort.
type AbortOptions struct {
	// Restore copies the destination snapshot taken before the copy back over the
	// destination, rolling the aborted copy back.
	Restore bool
}

// Abort aborts a pending copy with its recorded copy id: one Abort Copy Blob call, no
// second property read.
func (s *Service) Abort(ctx context.Context, id string, opts AbortOptions) (*Job, error) {
	job, err := s.records.Get(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil, newError(CodeJobNotFound, "id", "no copy job with id "+id, err)
	}
	if err != nil {
		return nil, newError(CodeStorageUnavailable, "", "cannot read the job record", err)
	}
	notPending := func(j *Job) error {
		e := newError(CodeCopyNotPending, "id", fmt.Sprintf("the copy is %s, not pending", j.Status), nil)
		e.Job = j
		return e
	}
	if job.Status != StatusPending {
		return job, notPending(job)
	}
	if opts.Restore && job.DestinationSnapshot == "" {
		return job, newError(CodeInvalidRequest, "restore", "the job took no destination snapshot (start it with snapshotDestination: true)", nil)
	}
	log := s.log.With("jobId", job.ID, "copyId", job.CopyID, "operation", "abort")
	err = s.blobs.AbortCopy(ctx, job.Destination.BlobRef, job.CopyID)
	switch {
	case err == nil:
	case errors.Is(err, ErrNoPendingCopy), errors.Is(err, ErrCopyIDMismatch), errors.Is(err, ErrNotFound):
		// The copy ended (or was replaced) before the abort: record what happened.
		if rerr := s.refresh(ctx, job); rerr != nil {
			log.Warn("cannot record the state found at abort", "err", rerr)
		}
		return job, notPending(job)
	default:
		return job, newError(CodeStorageUnavailable, "", "cannot abort the copy", err)
	}
	log.Info("copy aborted")
	outcome := CopyState{Status: StatusAborted, Progress: job.Progress, Description: "aborted by request"}
	if opts.Restore {
		snapRef := job.Destination.BlobRef
		snapRef.Snapshot = job.DestinationSnapshot
		snapURL, uerr := s.blobs.URL(snapRef)
		if uerr == nil {
			_, uerr = s.blobs.StartCopy(ctx, job.Destination.BlobRef, snapURL, StartCopyOptions{})
		}
		if uerr != nil {
			outcome.Description = "aborted by request; restoring the destination snapshot failed: " + uerr.Error()
			log.Error("cannot restore the destination snapshot", "snapshot", job.DestinationSnapshot, "err", uerr)
		} else {
			job.RestoredFrom = job.DestinationSnapshot
			outcome.Description = "aborted by request; destination restored from snapshot " + job.DestinationSnapshot
		}
	}
	if err := s.settle(ctx, job, outcome); err != nil {
		log.Warn("abort recorded partially; the status tick finishes it", "err", err)
	}
	return job, nil
}
