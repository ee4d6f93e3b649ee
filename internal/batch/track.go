package batch

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/google/uuid"

	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/redact"
)

// tracking is one pass over a batch's children.
type tracking struct {
	mu       sync.Mutex
	status   map[string]copyjob.Status // child id -> status, as listed, then as changed
	etags    map[string]string         // child id -> record ETag, as listed
	failures []Failure
	copied   int64
	total    int64
}

func (t *tracking) set(job *copyjob.Job) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.status[job.ID] = job.Status
	if job.Status.Terminal() && job.Status != copyjob.StatusSuccess {
		name := ""
		if job.Source.Ref != nil {
			name = job.Source.Ref.Blob
		}
		t.failures = append(t.failures, failureOf(name, job))
	}
}

// track visits the batch's children. The child records are listed (ids, statuses and
// ETags from the listing, no document read), then the destination prefix is listed with
// copy details: a child whose copy is still pending costs nothing more; one whose copy
// ended has its outcome settled by copyjob (ObserveChild: the same guarded transition
// and effects as a single copy), from the record this instance holds when its ETag is
// the listed one (see childCache), else from a read. A pending child missing from a
// complete listing lost its destination. A child left "starting" (a start that crashed
// or failed transiently) is taken over (ResumeChild). So a tick costs two listings per
// 5,000 children plus a write per child whose state changed (and a read before it when
// another instance created the record).
func (s *Service) track(ctx context.Context, b *Batch, token string, rep *TickReport) error {
	t := &tracking{status: map[string]copyjob.Status{}, etags: map[string]string{}}
	if err := s.listChildren(ctx, b, t, rep); err != nil {
		return err
	}
	complete, missing, err := s.pollChildren(ctx, b, t, rep)
	if err != nil {
		return err
	}
	s.missingChildren(ctx, b, missing, t, rep)
	s.resumeChildren(ctx, b, t, rep)

	counts := map[copyjob.Status]int{}
	open := 0
	for _, st := range t.status {
		counts[st]++
		if !st.Terminal() {
			open++
		}
	}
	// An aborted batch whose page another runner began is not recovered yet may have
	// copies no record names: it is not finished. (A page begun by this runner is not
	// half-started here: track runs once enumerate has ended cleanly.)
	begunByOther := b.PageBegun != nil && b.PageBegun.Token != token
	enumerated := (b.Phase == PhaseDone || b.AbortRequested) && !begunByOther
	finished := enumerated && open == 0 && complete
	if finished && (b.Options.LeaseSource || b.ChildCallbackURL != "") && !s.finishLeftovers(ctx, t) {
		finished = false // a lease to release or a child's callback to send: the next tick tries again
	}
	now := s.cfg.Now().UTC()
	return s.guarded(ctx, b, token, func(x *Batch) {
		if x.PageBegun != nil && x.PageBegun.Token == token {
			x.PageBegun = nil // begun by this runner's writes and not started
		}
		x.Counts = counts
		if complete {
			x.BytesCopied, x.BytesTotal = t.copied, t.total
		}
		x.Failures = appendFailures(x.Failures, t.failures...)
		if finished {
			x.Phase, x.Marker, x.CompletedAt = PhaseDone, "", &now
			switch {
			case x.AbortRequested:
				x.Status = StatusAborted
			case counts[copyjob.StatusSuccess] == len(t.status) && x.Refused == 0 && x.Refusal == nil:
				x.Status = StatusSuccess
			default:
				x.Status = StatusFailed
			}
			if x.Callback != nil && x.Callback.DeliveryID == "" {
				// Named in the write that ends the batch, as a copy's: every attempt of
				// the one delivery carries it, even one whose record write failed.
				x.Callback.DeliveryID = uuid.NewString()
			}
		}
		if !x.Status.Terminal() || !x.Active() {
			// The pass's last write gives the batch back in the same request; a batch
			// with its callback to deliver stays claimed until the attempt is recorded.
			x.Claim = nil
		}
	})
}

func (s *Service) listChildren(ctx context.Context, b *Batch, t *tracking, rep *TickReport) error {
	marker := ""
	for {
		page, err := s.store.ListChildren(ctx, b.ID, marker)
		rep.Listings++
		if err != nil {
			return fmt.Errorf("list the batch's children: %w", err)
		}
		for _, c := range page.Children {
			t.status[c.ID] = c.Status
			t.etags[c.ID] = c.ETag
		}
		if page.NextMarker == "" {
			return nil
		}
		marker = page.NextMarker
	}
}

// pollChildren lists the destination with copy details, one page at a time, and visits
// the pending children whose copy ended (or, for an aborted batch, every pending one).
// It reports whether the listing reached its end within the budget, and then the
// pending children it did not show.
func (s *Service) pollChildren(ctx context.Context, b *Batch, t *tracking, rep *TickReport) (complete bool, missing []string, err error) {
	defer func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		for id, st := range t.status {
			switch {
			case st == statusSeen:
				t.status[id] = copyjob.StatusPending
			case st == copyjob.StatusPending && complete:
				missing = append(missing, id)
			}
		}
	}()
	marker := ""
	for {
		if ctx.Err() != nil {
			rep.BudgetExhausted = true
			return false, nil, nil
		}
		page, err := s.storage.ListCopies(ctx, b.Destination, marker)
		rep.Listings++
		if err != nil {
			return false, nil, fmt.Errorf("list the destination: %w", err)
		}
		var visits []func()
		for _, bl := range page.Blobs {
			name, ok := s.sourceNameOf(b, bl.Name)
			if !ok {
				continue
			}
			id := ChildID(b.ID, name)
			t.mu.Lock()
			st, child := t.status[id]
			if child {
				t.copied += bl.State.Progress.BytesCopied
				t.total += bl.State.Progress.BytesTotal
				if st == copyjob.StatusPending {
					t.status[id] = statusSeen // told apart from a missing destination below
				}
			}
			t.mu.Unlock()
			if !child || st != copyjob.StatusPending || (bl.State.Status == copyjob.StatusPending && !b.AbortRequested) {
				continue
			}
			state := bl.State
			visits = append(visits, func() { s.visitPending(ctx, b, id, state, nil, t, rep) })
		}
		s.run(visits)
		if page.NextMarker == "" {
			break
		}
		marker = page.NextMarker
	}
	return true, nil, nil // the deferred pass names the missing children
}

// statusSeen marks, during a listing, a pending child whose destination was listed.
const statusSeen copyjob.Status = "pending (listed)"

// missingChildren settles the pending children whose destination a complete listing did
// not show: deleted while the copy ran (destinationMissing, as for a single copy).
func (s *Service) missingChildren(ctx context.Context, b *Batch, missing []string, t *tracking, rep *TickReport) {
	// Each is confirmed by its own read of the destination before anything is recorded.
	var visits []func()
	for _, id := range missing {
		visits = append(visits, func() { s.visitPending(ctx, b, id, copyjob.CopyState{}, errListedMissing, t, rep) })
	}
	s.run(visits)
}

var errListedMissing = errors.New("not in the destination listing")

// visitPending settles (or, for an aborted batch, aborts) one pending child. Its record
// is read unless this instance holds it with the ETag the listing showed (see
// childCache): then the final write is the child's only request here.
func (s *Service) visitPending(ctx context.Context, b *Batch, id string, state copyjob.CopyState, listErr error, t *tracking, rep *TickReport) {
	t.mu.Lock()
	etag := t.etags[id]
	t.mu.Unlock()
	job := s.cache.get(id, etag)
	var err error
	if job == nil {
		if job, err = s.records.Get(ctx, id); err != nil {
			s.log.WarnContext(ctx, "cannot read a child record; the next tick looks again", "batch", b.ID, "jobId", id, "err", err)
			return
		}
	}
	defer func() { s.cache.put(job) }() // the newest record this instance knows; a terminal one is dropped
	if listErr != nil {
		// Not listed: read the destination itself before calling it missing.
		state, err = s.blobs.CopyState(ctx, job.Destination.BlobRef)
		if err != nil && !errors.Is(err, copyjob.ErrNotFound) {
			return
		}
		listErr = err
	}
	if b.AbortRequested && job.Status == copyjob.StatusPending && listErr == nil && state.Status == copyjob.StatusPending && state.CopyID == job.CopyID {
		aborted, aerr := s.copies.Abort(ctx, id, copyjob.AbortOptions{})
		if aerr == nil || aborted != nil {
			if aborted != nil {
				job = aborted
			}
			t.mu.Lock()
			rep.Aborted++
			t.mu.Unlock()
			t.set(job)
			return
		}
		s.log.WarnContext(ctx, "cannot abort a child; the next tick tries again", "batch", b.ID, "jobId", id, "err", aerr)
		return
	}
	changed, err := s.copies.ObserveChild(ctx, job, state, listErr)
	if err != nil {
		s.log.WarnContext(ctx, "cannot record a child's outcome; the next tick tries again", "batch", b.ID, "jobId", id, "err", err)
		return
	}
	if changed {
		t.mu.Lock()
		rep.Changed++
		t.mu.Unlock()
	}
	t.set(job)
}

// resumeChildren takes over the starts left "starting" by a crash or a transient failure.
func (s *Service) resumeChildren(ctx context.Context, b *Batch, t *tracking, rep *TickReport) {
	var starting []string
	for id, st := range t.status {
		if st == copyjob.StatusStarting {
			starting = append(starting, id)
		}
	}
	var visits []func()
	for _, id := range starting {
		visits = append(visits, func() {
			job, err := s.records.Get(ctx, id)
			if err != nil {
				return
			}
			if b.AbortRequested {
				// The batch is aborted: the child's start is ended, not attempted again,
				// unless an earlier attempt started its copy (adopted below, then aborted).
				aborted, err := s.copies.AbortChildStart(ctx, job)
				if err != nil || aborted {
					if err != nil {
						s.log.WarnContext(ctx, "cannot end the start of a child of an aborted batch; the next tick tries again", "batch", b.ID, "jobId", id, "err", err)
					}
					t.set(job)
					return
				}
			}
			resumed, err := s.copies.ResumeChild(ctx, job)
			if err != nil && job.Status == copyjob.StatusStarting {
				s.log.WarnContext(ctx, "a child's start is still not done; the next tick tries again", "batch", b.ID, "jobId", id, "err", err)
			}
			if resumed {
				t.mu.Lock()
				rep.Resumed++
				t.mu.Unlock()
			}
			t.set(job)
		})
	}
	s.run(visits)
}

// finishLeftovers releases the source leases and sends the callbacks left over by the
// finished children (their settle tried once already); it reports whether none is left.
// It reads every child's record once, so it runs only for batches with leases or child
// callbacks, and only once every child has finished.
func (s *Service) finishLeftovers(ctx context.Context, t *tracking) bool {
	var mu sync.Mutex
	done := true
	var visits []func()
	for id := range t.status {
		visits = append(visits, func() {
			job, err := s.records.Get(ctx, id)
			left := err != nil
			if err == nil {
				left, err = s.copies.FinishChild(ctx, job)
			}
			if left || err != nil {
				mu.Lock()
				done = false
				mu.Unlock()
			}
		})
	}
	s.run(visits)
	return done
}

// run calls fns with the configured concurrency.
func (s *Service) run(fns []func()) {
	var wg sync.WaitGroup
	slots := make(chan struct{}, s.cfg.Concurrency)
	for _, fn := range fns {
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			fn()
		}()
	}
	wg.Wait()
}

// needsTick tells whether the tick has work on the batch: unfinished, or its callback
// is still to be delivered.
func (s *Service) needsTick(b *Batch) bool { return b.Active() }

func (s *Service) callbackDue(b *Batch) bool { return b.Status.Terminal() && b.Active() }

// callback makes one delivery attempt of the batch's one callback, with the shape and
// signature of a copy's (jobId is the batch id, progress the batch's bytes).
func (s *Service) callback(ctx context.Context, b *Batch) {
	cb := *b.Callback
	if cb.DeliveryID == "" {
		cb.DeliveryID = uuid.NewString()
	}
	cb.Attempts++
	if s.notifier == nil {
		cb.GaveUp, cb.LastError = true, "no notifier is configured"
	} else {
		dst, _ := s.storage.URL(copyjob.BlobRef{Account: b.Destination.Account, Container: b.Destination.Container, Blob: b.Destination.Prefix})
		view := &copyjob.Job{ID: b.ID, Status: copyjob.Status(b.Status), StatusDescription: b.Summary(),
			Progress: copyjob.Progress{BytesCopied: b.BytesCopied, BytesTotal: b.BytesTotal},
			Source:   copyjob.Source{URL: redact.URL(b.SourceURL)}, Destination: copyjob.Destination{URL: dst},
			CompletedAt: b.CompletedAt, Callback: &cb}
		if err := s.notifier.Notify(ctx, cb.URL, view); err != nil {
			cb.LastError = redact.Text(err.Error())
			cb.GaveUp = cb.Attempts >= s.copies.Config().MaxCallbackAttempts
			s.log.WarnContext(ctx, "batch callback failed", "batch", b.ID, "attempt", cb.Attempts, "gaveUp", cb.GaveUp, "err", err)
		} else {
			now := s.cfg.Now().UTC()
			cb.DeliveredAt, cb.LastError = &now, ""
		}
	}
	if err := s.write(ctx, b, func(x *Batch) error { x.Callback = &cb; return nil }); err != nil {
		s.log.WarnContext(ctx, "cannot record the batch callback; it may be delivered again", "batch", b.ID, "err", err)
	}
}

// Summary is a one-line account of the batch's children.
func (b *Batch) Summary() string {
	if b.Refusal != nil {
		return b.Refusal.Message
	}
	done := 0
	for st, n := range b.Counts {
		if st.Terminal() {
			done += n
		}
	}
	failed := done - b.Counts[copyjob.StatusSuccess] + b.Refused
	return fmt.Sprintf("%d of %d children copied, %d did not copy, %d not finished", b.Counts[copyjob.StatusSuccess], b.Matched, failed,
		b.Matched-done-b.Refused)
}
