package copyjob

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// ticket is the tracking message's text. It carries what a poll needs (destination and
// copy id), so polling a pending copy costs one Get Blob Properties and one Update
// Message, and the job record is read only when something changes.
type ticket struct {
	JobID  string   `json:"jobId"`
	Dest   *BlobRef `json:"destination,omitempty"`
	CopyID string   `json:"copyId,omitempty"`
	// Polls counts the visits that rescheduled the message; it drives the backoff.
	Polls int64 `json:"polls"`
	// Failures counts failed visits in a row; MaxFailures of them poison the message.
	// Outages counts visits in a row that storage was unavailable for: they only drive
	// the backoff.
	Failures int64 `json:"failures,omitempty"`
	Outages  int64 `json:"outages,omitempty"`
	// Progress is no longer written (a moving progress must not cost a queue write);
	// kept so that messages written by earlier versions still decode.
	Progress Progress `json:"progress,omitzero"`
	// Attempt is the attempt the message tracks (len(History) when it was written): a
	// message of an attempt before a retry is dropped, never applied to the new one.
	Attempt int `json:"attempt,omitempty"`
	// Unrecorded: Start named the copy here because it could not write it to the record,
	// which still says "starting": the fast path must not skip the record then.
	Unrecorded bool `json:"unrecorded,omitempty"`
	// Created is the job's creation time. (Versions before issue 13 enqueued the message
	// before creating the record; orphan still handles such a message.)
	Created time.Time `json:"created,omitzero"`
	// Lease names the source lease, so that even a job whose record was deleted behind
	// the app's back never leaves a lease held by nobody.
	Lease *ticketLease `json:"lease,omitempty"`
	// Job is the whole job as its start began, in the message that is that start's crash
	// trail (see startWithMessage): no record exists until after Copy Blob. Visits
	// rewrite the ticket without it once the record exists.
	Job *Job `json:"job,omitempty"`
	// Outcome is the outcome of the copy the ticket names (Unrecorded), when that copy
	// ended at once: what storage answered then, recorded as it is, not derived from what
	// the destination shows later.
	Outcome *CopyState `json:"outcome,omitempty"`
	// Seen is the message's dequeue count when this ticket was written (0 when
	// enqueued; absent in messages of earlier versions). Every visit that finishes
	// rewrites the message at least once per checkpointEvery visits, so a message
	// dequeued far more often since is one whose visits die: see exhausted.
	Seen *int64 `json:"seen,omitempty"`
	// Stalls counts the probes written since a visit last finished (see stalled).
	Stalls int64 `json:"stalls,omitempty"`
}

type ticketLease struct {
	Source BlobRef `json:"source"`
	ID     string  `json:"id"`
}

func ticketFor(job *Job) ticket {
	t := ticket{JobID: job.ID, Created: job.CreatedAt, Attempt: len(job.History), Seen: new(int64)}
	if job.Lease != nil && job.Source.Ref != nil {
		t.Lease = &ticketLease{Source: *job.Source.Ref, ID: job.Lease.ID}
	}
	// The destination is named from the start: a message whose record is gone can still
	// tell a start that crashed before writing it (no copy on the destination) from a
	// record deleted while its copy ran.
	d := job.Destination.BlobRef
	t.Dest, t.CopyID = &d, job.CopyID
	return t
}

func (t ticket) encode() string {
	b, _ := json.Marshal(t) // plain strings and numbers: cannot fail
	return string(b)
}

func decodeTicket(text string) (ticket, error) {
	var t ticket
	if err := json.Unmarshal([]byte(text), &t); err != nil {
		return t, fmt.Errorf("not a tracking message: %w", err)
	}
	if t.JobID == "" {
		return t, errors.New("not a tracking message: jobId missing")
	}
	return t, nil
}

// TickReport counts what one status tick did.
type TickReport struct {
	Dequeued  int `json:"dequeued"`
	Pending   int `json:"pending"`
	Completed int `json:"completed"`
	Resumed   int `json:"resumed"`
	Poisoned  int `json:"poisoned"`
	Failed    int `json:"failed"`
	Dropped   int `json:"dropped"`
	// Swept counts "starting" records the sweep gave a tracking message (see sweep).
	Swept int `json:"swept,omitempty"`
	// BudgetExhausted is true when the tick stopped with messages possibly left.
	BudgetExhausted bool `json:"budgetExhausted"`
}

type outcome int

const (
	outPending outcome = iota
	outCompleted
	outResumed
	outPoisoned
	outFailed
	// outUnavailable: a visit that failed because storage was unavailable. Retried
	// with backoff like outFailed, but not counted towards poisoning: a storage outage
	// must not strand every pending job (the copies go on, and so must their tracking).
	outUnavailable
	outDropped
)

// Tick polls queued jobs until the queue has nothing visible or the time budget
// (kept below functionTimeout) is spent. Messages are processed with bounded
// concurrency while the next batch is being dequeued.
func (s *Service) Tick(ctx context.Context) (TickReport, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.TickBudget)
	defer cancel()
	var (
		report   TickReport
		mu       sync.Mutex
		wg       sync.WaitGroup
		inflight sync.WaitGroup // messages handed to the workers and not yet processed
	)
	work := make(chan Message, s.cfg.BatchSize)
	for range s.cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m := range work {
				o := s.safeProcess(ctx, m)
				if o == outFailed || o == outUnavailable {
					s.retryLater(ctx, m, o == outFailed)
				}
				mu.Lock()
				switch o {
				case outPending:
					report.Pending++
				case outCompleted:
					report.Completed++
				case outResumed:
					report.Resumed++
				case outPoisoned:
					report.Poisoned++
				case outFailed, outUnavailable:
					report.Failed++
				case outDropped:
					report.Dropped++
				}
				mu.Unlock()
				inflight.Done()
			}
		}()
	}
	// drain hands the visible messages to the workers until none is left or the budget
	// is spent, and waits for them.
	drain := func() error {
		defer inflight.Wait()
		for {
			if ctx.Err() != nil {
				report.BudgetExhausted = true
				return nil
			}
			msgs, err := s.queue.Dequeue(ctx, s.cfg.BatchSize, s.visitVisibility())
			if err != nil {
				if ctx.Err() != nil {
					report.BudgetExhausted = true
					return nil
				}
				return fmt.Errorf("dequeue tracking messages: %w", err)
			}
			report.Dequeued += len(msgs)
			for _, m := range msgs {
				inflight.Add(1)
				work <- m
			}
			if len(msgs) < s.cfg.BatchSize {
				return nil
			}
		}
	}
	sweep, sweepFirst := s.sweepDue()
	if sweep && sweepFirst {
		report.Swept = s.sweep(ctx)
	}
	err := drain()
	if sweep && !sweepFirst {
		// After the messages: a start whose own message was visible has been visited
		// (and marked Tracked) by now, so the sweep does not add a second one.
		if ctx.Err() != nil {
			s.sweepStarved() // no budget left: the next tick sweeps first
		} else if report.Swept = s.sweep(ctx); report.Swept > 0 && err == nil {
			err = drain() // the swept starts' messages are visible at once: take them over now
		}
	}
	close(work)
	wg.Wait()
	return report, err
}

// visitVisibility hides dequeued messages for the longest poll interval (and at least
// for the processing time): a steady pending copy is then polled with one Get Blob
// Properties and no queue write (but one per checkpointEvery polls); only messages due
// sooner are rewritten.
func (s *Service) visitVisibility() time.Duration {
	return max(s.cfg.MaxPollInterval, s.cfg.ProcessingVisibility)
}

// maxVisits bounds how often one message is dequeued in all, a backstop for messages
// of earlier versions (no Seen). It is twice the visits of the longest life a message
// has, a copy pending (or an event's start waiting for it) for maxDestinationWait while
// visited once per MaxPollInterval, and at least 20,000: a fixed 20,000 poisoned a copy
// pending for two weeks polled every minute.
func (s *Service) maxVisits() int64 {
	return max(20000, 2*int64(maxDestinationWait/s.cfg.MaxPollInterval))
}

// A visit that dies without reporting its failure (the process killed mid-visit, every
// time) rewrites nothing. Every visit that finishes rewrites its message at least once
// per checkpointEvery visits (a steady poll, which otherwise leaves it as it is, costs
// one Update Message per checkpointEvery polls). A message dequeued more than
// maxVisitsWithoutRewrite times since its ticket was written has stalled: a visit's
// Update failed all that time (storage refusing writes), an earlier version polled it
// (it never rewrote steady messages), or its visits die. Only the last must poison, so
// the visit first writes a probe (Stalls+1, see visit) and goes on; a failed probe
// poisons nothing.
// A message that stalls again with a probe on it is poisoned: visits that die, about
// 200 in a row (17 hours at the default interval, whatever the interval).
const (
	checkpointEvery         = 50
	maxVisitsWithoutRewrite = 2 * checkpointEvery
)

// rewrite updates the message with t, which records the visit count it is written at
// (and that a visit finished: no stall).
func (s *Service) rewrite(ctx context.Context, m Message, t ticket, visibleAfter time.Duration) (Message, error) {
	next, _, err := s.writeTicket(ctx, m, t, 0, visibleAfter)
	return next, err
}

// writeTicket updates the message with t as written at m's visit count with stalls, and
// returns the message (its new pop receipt and text) and ticket to go on with.
func (s *Service) writeTicket(ctx context.Context, m Message, t ticket, stalls int64, visibleAfter time.Duration) (Message, ticket, error) {
	seen := m.DequeueCount
	t.Seen, t.Stalls = &seen, stalls
	text := t.encode()
	next, err := s.queue.Update(ctx, m, text, visibleAfter)
	if err != nil {
		return m, t, err
	}
	next.Text = text
	return next, t, nil
}

// visitsWithoutRewrite counts the dequeues since t was written: since the message was
// enqueued for a ticket of an earlier version, or one enqueued again (requeue-poison)
// with the count it had.
func visitsWithoutRewrite(m Message, t ticket) int64 {
	if t.Seen == nil || *t.Seen > m.DequeueCount {
		return m.DequeueCount
	}
	return m.DequeueCount - *t.Seen
}

// stalled: see maxVisitsWithoutRewrite. A ticket of an earlier version never stalls.
func stalled(m Message, t ticket) bool {
	return t.Seen != nil && visitsWithoutRewrite(m, t) > maxVisitsWithoutRewrite
}

// safeProcess turns a panic while processing one message into a counted failure.
func (s *Service) safeProcess(ctx context.Context, m Message) (o outcome) {
	defer func() {
		if r := recover(); r != nil {
			s.log.ErrorContext(ctx, "panic while processing a tracking message", "messageId", m.ID, "panic", fmt.Sprint(r))
			o = outFailed
		}
	}()
	return s.process(ctx, m)
}

// process handles one tracking message. A failed visit is counted in the ticket by
// retryLater; MaxFailures in a row poison the message.
func (s *Service) process(ctx context.Context, m Message) outcome {
	t, err := decodeTicket(m.Text)
	if err != nil {
		return s.poison(ctx, m, nil, err.Error(), s.log.With("operation", "poll", "messageId", m.ID))
	}
	if !s.exhausted(m, t) && !stalled(m, t) && t.CopyID != "" && t.Dest != nil && !t.Unrecorded {
		// The steady poll, most of a tick: its copy still pending and its message left as
		// it is. It builds no logger (a JSON handler's With formats its attributes at once,
		// a quarter of the CPU such a poll spends outside its Get Blob Properties).
		state, stateErr := s.blobs.CopyState(ctx, *t.Dest)
		if stateErr == nil && state.CopyID == t.CopyID && state.Status == StatusPending && s.pollUnchanged(m, t) {
			if s.log.Enabled(ctx, slog.LevelDebug) {
				s.log.DebugContext(ctx, "copy still pending", "operation", "poll", "messageId", m.ID, "jobId", t.JobID,
					"bytesCopied", state.Progress.BytesCopied, "bytesTotal", state.Progress.BytesTotal)
			}
			return outPending
		}
		return s.visit(ctx, m, t, true, state, stateErr)
	}
	return s.visit(ctx, m, t, false, CopyState{}, nil)
}

// exhausted tells whether a message has failed too often in a row, or been visited too
// often in all, to be visited again: it goes to the poison queue.
func (s *Service) exhausted(m Message, t ticket) bool {
	return t.Failures >= int64(s.cfg.MaxFailures) || m.DequeueCount > s.maxVisits() || (stalled(m, t) && t.Stalls > 0)
}

// exhaustedReason says why exhausted poisons m.
func (s *Service) exhaustedReason(m Message, t ticket) string {
	if t.Failures < int64(s.cfg.MaxFailures) && stalled(m, t) && t.Stalls > 0 {
		return fmt.Sprintf("%d visits in a row never finished, after a probe that landed (the process may die while visiting this job; %d visits in all)", visitsWithoutRewrite(m, t), m.DequeueCount)
	}
	return fmt.Sprintf("%d attempts in a row failed (%d visits in all)", t.Failures, m.DequeueCount)
}

// visit is a poll past the steady fast path of process; polled tells whether the
// destination was read already (state, stateErr).
func (s *Service) visit(ctx context.Context, m Message, t ticket, polled bool, state CopyState, stateErr error) outcome {
	log := s.log.With("operation", "poll", "messageId", m.ID, "jobId", t.JobID)
	if s.exhausted(m, t) {
		job, _ := s.records.Get(ctx, t.JobID)
		if job != nil && t.Attempt != len(job.History) {
			return s.dropStale(ctx, m, log)
		}
		return s.poison(ctx, m, job, s.exhaustedReason(m, t), log)
	}
	if stalled(m, t) {
		// A probe: the visit has begun (Stalls+1, Seen now); a failed one poisons nothing.
		var err error
		if m, t, err = s.writeTicket(ctx, m, t, t.Stalls+1, s.visitVisibility()); err != nil {
			log.WarnContext(ctx, "cannot write to a tracking message that has not been rewritten for many visits", "err", err)
			return visitFailed(err)
		}
	}

	// Fast path: a pending copy whose ticket names its destination and copy id.
	read := false
	if polled {
		if stateErr == nil && state.CopyID == t.CopyID && state.Status == StatusPending {
			return s.keepPolling(ctx, m, t, state.Progress, log)
		}
		if stateErr != nil && !errors.Is(stateErr, ErrNotFound) {
			log.WarnContext(ctx, "cannot read copy status", "err", stateErr)
			return visitFailed(stateErr)
		}
		read = true
	}

	job, err := s.records.Get(ctx, t.JobID)
	if errors.Is(err, ErrNotFound) {
		return s.orphan(ctx, m, t, log)
	}
	if err != nil {
		log.WarnContext(ctx, "cannot read the job record", "err", err)
		return visitFailed(err)
	}
	log = log.With("copyId", job.CopyID)
	if t.Attempt > len(job.History) && s.cfg.Now().Sub(t.Created) < s.cfg.StartGrace {
		// A retry's message, enqueued before the write that records its attempt: the
		// write may be slow (the SDK retrying a 503) and still land, and this message
		// is then its attempt's only trail. After StartGrace it is dropped below.
		return s.keepPolling(ctx, m, t, Progress{}, log)
	}
	if t.Attempt != len(job.History) {
		return s.dropStale(ctx, m, log)
	}

	switch {
	case job.Status.Terminal():
		return s.finishTerminal(ctx, m, job, true, log)
	case job.Status == StatusStarting:
		return s.resumeIfAbandoned(ctx, m, t, job, log)
	}
	if !read || job.CopyID != t.CopyID || !sameRef(job.Destination.BlobRef, t.Dest) {
		state, stateErr = s.blobs.CopyState(ctx, job.Destination.BlobRef)
	}
	outcome, terminal, err := s.outcome(job, state, stateErr)
	if err != nil {
		log.WarnContext(ctx, "cannot poll the copy", "err", err)
		return visitFailed(err)
	}
	if terminal {
		if err := s.settle(ctx, job, outcome, ActorTick, s.pendingGuard(job.CopyID), log); err != nil {
			log.WarnContext(ctx, "cannot record the outcome", "err", err)
			return visitFailed(err)
		}
		if !job.Status.Terminal() {
			// An abort holds the job: come back when its claim ends.
			return s.keepPolling(ctx, m, ticketFor(job), job.Progress, log)
		}
		// The settle just made its callback attempt: a retry waits for a later visit.
		return s.finishTerminal(ctx, m, job, false, log)
	}
	return s.keepPolling(ctx, m, ticketFor(job), outcome.Progress, log)
}

// dropStale deletes the message of an attempt the job has moved on from (it was
// retried): that attempt's outcome and effects were done before the retry was allowed.
func (s *Service) dropStale(ctx context.Context, m Message, log *slog.Logger) outcome {
	log.InfoContext(ctx, "dropping the tracking message of an earlier attempt")
	if err := s.queue.Delete(ctx, m); err != nil {
		return visitFailed(err)
	}
	return outDropped
}

// orphan handles a message whose job record does not exist. A ticket that carries its
// job is the trail of a start that records after Copy Blob: recoverStart. Otherwise
// (a keyed start enqueues only after its record exists, but a version before issue 13
// enqueued first) within StartGrace the record may still come. After it, the
// destination tells what happened: no copy of this job there means the start crashed
// before writing its record and started nothing (the message is dropped); a copy there
// means the record was deleted while the copy ran. Such a copy is followed until it
// ends, so that the lease the message names is released then and never while the copy
// runs; then the message is poisoned for an operator.
func (s *Service) orphan(ctx context.Context, m Message, t ticket, log *slog.Logger) outcome {
	if t.Job != nil {
		return s.recoverStart(ctx, m, t, log) // a start whose message is its trail
	}
	if t.CopyID == "" && s.cfg.Now().Sub(t.Created) < s.cfg.StartGrace {
		return s.keepPolling(ctx, m, t, t.Progress, log)
	}
	if t.Dest == nil {
		// A message from before tickets named their destination: nothing to look at.
		if !s.releaseOrphanLease(ctx, t, log) {
			return outFailed
		}
		return s.poison(ctx, m, nil, "no job record: the start crashed before writing it, or the record was deleted", log)
	}
	state, err := s.blobs.CopyState(ctx, *t.Dest)
	if err != nil && !errors.Is(err, ErrNotFound) {
		log.WarnContext(ctx, "cannot read the destination of an orphan message", "err", err)
		return visitFailed(err)
	}
	ours := err == nil && state.CopyID != "" &&
		(state.CopyID == t.CopyID || (t.CopyID == "" && !state.LastModified.Before(t.Created.Add(-ClockSkew))))
	if !ours && t.CopyID == "" {
		// No copy of this job runs: a lease the ticket names may be released safely.
		if !s.releaseOrphanLease(ctx, t, log) {
			return outFailed
		}
		log.WarnContext(ctx, "dropping the tracking message of a start that crashed before writing its job record; nothing was started")
		if err := s.queue.Delete(ctx, m); err != nil {
			return outFailed
		}
		return outDropped
	}
	if ours && state.Status == StatusPending {
		log.WarnContext(ctx, "the job record was deleted while its copy runs; following the copy to release its lease when it ends")
		t.CopyID = state.CopyID
		return s.keepPolling(ctx, m, t, state.Progress, log)
	}
	if !s.releaseOrphanLease(ctx, t, log) {
		return outFailed
	}
	return s.poison(ctx, m, nil, fmt.Sprintf("the job record was deleted while copy %s was tracked; the copy has ended and its source lease (if any) was released", t.CopyID), log)
}

func (s *Service) releaseOrphanLease(ctx context.Context, t ticket, log *slog.Logger) bool {
	if t.Lease == nil {
		return true
	}
	orphan := &Job{ID: t.JobID, Source: Source{Ref: &t.Lease.Source}, Lease: &Lease{ID: t.Lease.ID, State: LeaseHeld}}
	return s.releaseLease(ctx, orphan, log) == nil
}

// visitFailed classifies a failed visit: storage unavailable (not counted towards
// poisoning) or anything else (counted).
func visitFailed(err error) outcome {
	if errors.Is(err, ErrUnavailable) || isUnclassified(err) {
		return outUnavailable
	}
	return outFailed
}

// retryLater counts a failed visit in the ticket and brings the message back after a
// backoff that grows with the failures in a row, instead of waiting out the whole
// visibility.
func (s *Service) retryLater(ctx context.Context, m Message, count bool) {
	// Even when the tick's budget has run out: a visit that cannot say it failed counts
	// as one that never finished (see stalled).
	ctx, cancel := bookkeeping(ctx)
	defer cancel()
	t, err := decodeTicket(m.Text)
	if err != nil {
		return // poisoned already
	}
	var wait time.Duration
	if count {
		t.Failures++
		wait = s.backoff(t.Failures)
	} else {
		// Storage unavailable: back off like any failure, up to the poll interval,
		// without counting towards poisoning.
		t.Outages++
		wait = s.backoff(t.Outages)
	}
	if _, err := s.rewrite(ctx, m, t, wait); err != nil {
		s.log.DebugContext(ctx, "cannot reschedule a failed message; it returns after the visibility timeout", "messageId", m.ID, "err", err)
	}
}

// keepPolling hides the message with exponential backoff: no busy loop on long copies.
// A poll writes nothing to the record: progress is read live by status reads, and the
// record is written on state changes only (issue 13: a poll whose progress moved cost
// four requests, it now costs the one Get Blob Properties). progress is for the log.
func (s *Service) keepPolling(ctx context.Context, m Message, t ticket, progress Progress, log *slog.Logger) outcome {
	log.DebugContext(ctx, "copy still pending", "bytesCopied", progress.BytesCopied, "bytesTotal", progress.BytesTotal)
	if s.pollUnchanged(m, t) {
		return outPending
	}
	t.Progress = Progress{}
	t.Failures, t.Outages = 0, 0 // a success ends a run of failures
	next := s.backoff(t.Polls + 1)
	t.Polls++
	if _, err := s.rewrite(ctx, m, t, next); err != nil {
		log.WarnContext(ctx, "cannot reschedule the tracking message", "err", err)
		return visitFailed(err)
	}
	return outPending
}

// pollUnchanged tells whether a poll that found the copy still pending leaves the
// message as it is: the dequeue hid it for as long as the next poll waits, and its
// ticket would not change (a steady poll costs one Get Blob Properties, no queue write),
// and its checkpoint is not due (see checkpointEvery). A poll changes no field but these
// (and Polls and Seen, when it rewrites), so comparing them is comparing the ticket,
// without encoding it again.
func (s *Service) pollUnchanged(m Message, t ticket) bool {
	return s.backoff(t.Polls+1) >= s.visitVisibility() && t.Progress == (Progress{}) && t.Failures == 0 && t.Outages == 0 &&
		t.Stalls == 0 && visitsWithoutRewrite(m, t) < checkpointEvery
}

func (s *Service) backoff(polls int64) time.Duration {
	d := s.cfg.FirstPoll
	for i := int64(1); i < polls && d < s.cfg.MaxPollInterval; i++ {
		d *= 2
	}
	return min(d, s.cfg.MaxPollInterval)
}

// finishTerminal performs the leftovers of a finished job (lease, callback, the
// snapshot of a refused start) under an effects claim, and drops its message once
// nothing is left. A job another actor holds (it is performing them now) is left to it.
// act is false when this visit has just settled the job and made its attempts.
func (s *Service) finishTerminal(ctx context.Context, m Message, job *Job, act bool, log *slog.Logger) outcome {
	if act {
		if err := s.performLeftovers(ctx, job, log); err != nil {
			log.WarnContext(ctx, "cannot claim the job's leftovers", "err", err)
			return visitFailed(err)
		}
	}
	if s.hasLeftovers(job) || s.claimLive(job) {
		// Left to do, or being done by a claim holder (possibly this visit, whose
		// bookkeeping write failed): come back when the claim has ended.
		wait := s.cfg.FirstPoll
		if s.claimLive(job) {
			wait = max(wait, job.Claim.Until.Sub(s.cfg.Now()))
		} else if !s.leftoversReady(job) {
			// A callback or a lease release backing off: come back when the first is due.
			wait = s.leftoverWait(job)
		}
		if _, err := s.rewrite(ctx, m, ticketFor(job), wait); err != nil {
			return visitFailed(err)
		}
		return outPending
	}
	if err := s.queue.Delete(ctx, m); err != nil {
		log.WarnContext(ctx, "cannot delete the tracking message", "err", err)
		return visitFailed(err)
	}
	return outCompleted
}

// resumeIfAbandoned attempts the start of a "starting" job once nobody holds it and its
// next attempt is due: a start that crashed (its claim expired) or failed transiently.
func (s *Service) resumeIfAbandoned(ctx context.Context, m Message, t ticket, job *Job, log *slog.Logger) outcome {
	now := s.cfg.Now()
	legacyYoung := job.Claim == nil && job.NextAttemptAt == nil && now.Sub(job.CreatedAt) < s.cfg.StartGrace
	if s.claimLive(job) || legacyYoung || (job.NextAttemptAt != nil && now.Before(*job.NextAttemptAt)) {
		if !job.Tracked {
			// This message follows the start (its starter enqueued it and has not yet
			// recorded the copy, or it crashed): say so, so the sweep adds no second one.
			// Rare: a start normally records "pending" long before its first poll.
			if err := s.write(ctx, job, func(j *Job) error {
				if j.Status != StatusStarting || j.Tracked {
					return errStale
				}
				j.Tracked = true
				return nil
			}); err != nil && !errors.Is(err, errStale) {
				log.DebugContext(ctx, "cannot mark the start tracked; the sweep may add a message", "err", err)
			}
		}
		return s.followStart(ctx, m, t, job, log)
	}
	if job.StartFailures >= 3*s.cfg.MaxFailures {
		// Storage never let the start be finished nor told apart from a started copy:
		// an operator decides (the job keeps its lease; the poison entry names it).
		return s.poison(ctx, m, job, fmt.Sprintf("the start failed transiently %d times and the destination could not be checked for a copy of this job", job.StartFailures), log)
	}
	if waitingForDestination(job) {
		log.DebugContext(ctx, "attempting again a start that waits for the copy pending on its destination", "attempts", job.Attempts)
	} else {
		log.WarnContext(ctx, "taking over a start that crashed or failed transiently", "attempts", job.Attempts, "startFailures", job.StartFailures)
	}
	job.Tracked = true // this message follows it: the takeover enqueues no other
	err := s.resumeStart(ctx, job, ActorTick, t.CopyID, "")
	switch {
	case job.Status.Terminal():
		if o := s.finishTerminal(ctx, m, job, false, log); o != outCompleted {
			return o
		}
		return outResumed
	case job.Status == StatusStarting && err != nil && !Retryable(err) && CodeOf(err) != CodeWaitingForDestination:
		return outFailed
	}
	next := ticketFor(job)
	if next.CopyID == "" && t.CopyID != "" && job.Status == StatusStarting {
		// The takeover failed before recording the copy this message names: keep naming it,
		// so that the next one follows it rather than starting another.
		next.CopyID, next.Unrecorded = t.CopyID, true
	}
	s.followStart(ctx, m, next, job, log)
	return outResumed
}

// followStart reschedules the message of a job resumeIfAbandoned visited: until the
// next attempt of a start that waits for its destination, else with the polls' backoff.
func (s *Service) followStart(ctx context.Context, m Message, t ticket, job *Job, log *slog.Logger) outcome {
	if job.Status == StatusStarting && waitingForDestination(job) && job.NextAttemptAt != nil {
		return s.awaitNextAttempt(ctx, m, t, job, log)
	}
	return s.keepPolling(ctx, m, t, job.Progress, log)
}

// awaitNextAttempt hides the message of a start that waits for its destination until
// its next attempt is due, or until another actor's claim on it ends: one visit per
// attempt. (The polls' backoff, started again from FirstPoll after each attempt, added
// visits that found nothing due: about six per attempt, which poisoned a wait of two
// weeks.)
func (s *Service) awaitNextAttempt(ctx context.Context, m Message, t ticket, job *Job, log *slog.Logger) outcome {
	at := *job.NextAttemptAt
	if s.claimLive(job) && job.Claim.Until.After(at) {
		at = job.Claim.Until
	}
	t.Progress = Progress{}
	t.Failures, t.Outages = 0, 0 // a visit that found the job waiting ends a run of failures
	wait := min(max(at.Sub(s.cfg.Now()), time.Second), s.visitVisibility())
	if _, err := s.rewrite(ctx, m, t, wait); err != nil {
		log.WarnContext(ctx, "cannot reschedule the tracking message", "err", err)
		return visitFailed(err)
	}
	return outPending
}

// poison moves a message to the poison queue and records why on the job when there is
// one. It releases the lease only of a job that is terminal: a pending (or starting)
// job's copy may still run, and no path may release the lease of a running copy; the
// poison entry names the lease for the operator.
func (s *Service) poison(ctx context.Context, m Message, job *Job, reason string, log *slog.Logger) outcome {
	log.ErrorContext(ctx, "tracking message moved to the poison queue", "reason", reason)
	if err := s.queue.Poison(ctx, m.Text, reason); err != nil {
		log.WarnContext(ctx, "cannot write to the poison queue", "err", err)
		return outFailed
	}
	if job != nil {
		if job.Status.Terminal() && !s.claimLive(job) {
			s.releaseLease(ctx, job, log)
		}
		lease := job.Lease
		terminal := job.Status.Terminal()
		err := s.write(ctx, job, func(j *Job) error {
			j.PoisonReason = reason
			if terminal && j.Status.Terminal() {
				j.Lease = lease
			}
			return nil
		})
		if err != nil {
			log.WarnContext(ctx, "cannot record the poison reason", "err", err)
		}
	}
	if err := s.queue.Delete(ctx, m); err != nil {
		log.WarnContext(ctx, "cannot delete the poisoned message", "err", err)
	}
	return outPoisoned
}

func sameRef(a BlobRef, b *BlobRef) bool { return b != nil && a == *b }

// sweepDue tells whether this tick sweeps for untracked starts: at most once per half
// StartGrace per instance. A start that crashed before its message is then taken over
// within about 1.5 StartGrace plus a tick period, and the sweep's listing (one List
// Blobs request per 5,000 records) is paid at most twice per StartGrace, not per tick.
//
// It runs after the tick's messages (see Tick), or first when the previous tick's
// budget ran out before it could (first reports that), so a busy queue never starves it.
func (s *Service) sweepDue() (due, first bool) {
	now := s.cfg.Now()
	s.sweepMu.Lock()
	defer s.sweepMu.Unlock()
	if !s.lastSweep.IsZero() && now.Sub(s.lastSweep) < s.cfg.StartGrace/2 {
		return false, false
	}
	s.lastSweep = now
	first, s.sweepFirst = s.sweepFirst, false
	return true, first
}

// sweepStarved makes the next tick sweep, before its messages.
func (s *Service) sweepStarved() {
	s.sweepMu.Lock()
	defer s.sweepMu.Unlock()
	s.lastSweep, s.sweepFirst = time.Time{}, true
}

// sweep gives a tracking message to every "starting" record that has none and that
// nobody holds: a start that crashed (or whose message could not be enqueued) after
// creating its record and before enqueuing. Start enqueues a message only when work is
// left to the tick (see track), so this is what finds such a record; its message then
// takes the start over like any other (resumeIfAbandoned). Records younger than
// StartGrace are left alone: their start's claim may still be live. The candidates come
// from Records.Untracked, an index of such records, so a sweep costs one request plus a
// read per candidate, not a listing of every record (it once ran inside the tick and
// cost the steady 10,000-job tick two thirds of its rate). One sweep per
// FullSweepInterval, among every instance, lists every "starting" record instead: the
// backstop for records the index does not know (written before the index tag existed,
// or where the account refused it).
//
// The message is enqueued before the record says Tracked, so a crash in between leaves
// two messages at worst, never none. A second message is harmless: every transition is
// a compare-and-swap write, a takeover first writes its claim (one of two visits wins,
// the other waits for the claim to end), and a finished job's messages are each deleted
// by their next visit.
func (s *Service) sweep(ctx context.Context) int {
	log := s.log.With("operation", "sweep")
	cutoff := s.cfg.Now().UTC().Add(-s.cfg.StartGrace)
	var (
		candidates func(marker string) ([]string, string, error)
		listed     map[string]*Job // the backstop's page: its records are read already
	)
	if s.fullSweepDue(ctx, log) {
		// The backstop: every "starting" record, from the metadata each is written with.
		log.DebugContext(ctx, "sweeping by listing every starting record (the index's backstop)")
		candidates = func(marker string) ([]string, string, error) {
			page, err := s.records.List(ctx, ListOptions{Status: StatusStarting, CreatedBefore: cutoff, Limit: 1000, Marker: marker})
			ids := make([]string, 0, len(page.Jobs))
			listed = make(map[string]*Job, len(page.Jobs))
			for _, j := range page.Jobs {
				ids, listed[j.ID] = append(ids, j.ID), j
			}
			return ids, page.NextMarker, err
		}
	} else {
		candidates = func(marker string) ([]string, string, error) { return s.records.Untracked(ctx, marker) }
	}
	var swept atomic.Int64
	marker := ""
	for {
		ids, next, err := candidates(marker)
		if err != nil {
			log.WarnContext(ctx, "cannot list the untracked starts; the next tick sweeps again", "err", err)
			s.sweepStarved()
			return int(swept.Load())
		}
		// Each candidate is read (unless listed with its record) and decided on again (the
		// index may lag), a few at a time.
		s.forEach(ids, func(id string) {
			if ctx.Err() != nil {
				return
			}
			job := listed[id]
			var err error
			if job == nil {
				job, err = s.records.Get(ctx, id)
			}
			if err != nil {
				if !errors.Is(err, ErrNotFound) && ctx.Err() == nil {
					log.WarnContext(ctx, "cannot read a start that may be untracked; the next sweep tries again", "jobId", id, "err", err)
				}
				return
			}
			if !NeedsSweep(job) || !job.CreatedAt.Before(cutoff) || s.claimLive(job) {
				return
			}
			if s.trackSwept(ctx, job, log.With("jobId", job.ID)) {
				swept.Add(1)
			}
		})
		if ctx.Err() != nil {
			s.sweepStarved() // the budget ran out mid-sweep: the next tick sweeps first
			return int(swept.Load())
		}
		if next == "" {
			return int(swept.Load())
		}
		marker = next
	}
}

// fullSweepDue tells whether this sweep is the backstop that lists every "starting"
// record: once per FullSweepInterval for every instance together (a claim in the
// store, one read per sweep), so that neither an instance's start nor a scale-out pays
// for a listing of every record.
func (s *Service) fullSweepDue(ctx context.Context, log *slog.Logger) bool {
	due, err := s.records.ClaimFullSweep(ctx, s.cfg.FullSweepInterval, s.cfg.Now().UTC())
	if err != nil {
		log.WarnContext(ctx, "cannot tell whether the sweep's backstop is due; asking the index only this time", "err", err)
		return false
	}
	return due
}

// forEach calls fn for each id with the tick's concurrency.
func (s *Service) forEach(ids []string, fn func(string)) {
	var wg sync.WaitGroup
	slots := make(chan struct{}, max(s.cfg.Concurrency, 1))
	for _, id := range ids {
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			fn(id)
		}()
	}
	wg.Wait()
}

func (s *Service) trackSwept(ctx context.Context, job *Job, log *slog.Logger) bool {
	if _, err := s.queue.Enqueue(ctx, ticketFor(job).encode(), 0); err != nil {
		log.WarnContext(ctx, "cannot enqueue a tracking message for an untracked start", "err", err)
		return false
	}
	err := s.write(ctx, job, func(j *Job) error {
		if j.Status != StatusStarting || j.Tracked {
			return errStale
		}
		j.Tracked = true
		return nil
	})
	if err != nil && !errors.Is(err, errStale) {
		// The message is there; the next sweep may add a second one (harmless, see sweep).
		log.WarnContext(ctx, "cannot record that a tracking message follows the start", "err", err)
	}
	log.WarnContext(ctx, "a start left no tracking message (it crashed, or the queue failed); the tick takes it over")
	return true
}
