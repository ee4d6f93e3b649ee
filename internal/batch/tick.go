package batch

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/faultpoint"
	"github.com/blobcopy/blobcopy/internal/redact"
)

// TickReport counts what one batch tick did.
type TickReport struct {
	Batches  int `json:"batches"`  // active batches visited
	Started  int `json:"started"`  // children started (or found started) by enumeration
	Changed  int `json:"changed"`  // children whose record this tick changed
	Resumed  int `json:"resumed"`  // children whose abandoned start was taken over
	Aborted  int `json:"aborted"`  // children aborted for an aborted batch
	Finished int `json:"finished"` // batches that reached a terminal status
	// Listings counts the List Blobs calls (source, destination, child records).
	Listings        int  `json:"listings"`
	BudgetExhausted bool `json:"budgetExhausted"`
}

func (r *TickReport) add(o TickReport) {
	r.Started += o.Started
	r.Changed += o.Changed
	r.Resumed += o.Resumed
	r.Aborted += o.Aborted
	r.Finished += o.Finished
	r.Listings += o.Listings
}

// Tick works on every active batch within the tick's budget: enumeration first (each
// page's children started, then its marker recorded), then tracking. A batch is worked
// on by one tick runner at a time (a claim in its record); a runner that dies leaves its
// claim to expire and the next tick carries on from the last recorded marker.
func (s *Service) Tick(ctx context.Context) (TickReport, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.TickBudget)
	defer cancel()
	var report TickReport
	marker := ""
	for {
		page, err := s.store.List(ctx, ListOptions{Active: true, Marker: marker, Limit: 100})
		if err != nil {
			if ctx.Err() != nil {
				report.BudgetExhausted = true
				return report, nil
			}
			return report, fmt.Errorf("list active batches: %w", err)
		}
		for _, b := range page.Batches {
			if ctx.Err() != nil {
				report.BudgetExhausted = true
				return report, nil
			}
			report.Batches++
			r, err := s.tickBatch(ctx, b)
			report.add(r)
			if err != nil {
				s.log.WarnContext(ctx, "batch tick failed; the next tick carries on", "batch", b.ID, "err", err)
			}
		}
		if page.NextMarker == "" {
			break
		}
		marker = page.NextMarker
	}
	report.BudgetExhausted = ctx.Err() != nil
	return report, nil
}

// errLost: another runner holds the batch (or it moved on).
var errLost = errors.New("another tick runner holds the batch")

func (s *Service) tickBatch(ctx context.Context, b *Batch) (TickReport, error) {
	var rep TickReport
	token := uuid.NewString()
	err := s.write(ctx, b, func(x *Batch) error {
		if !s.needsTick(x) || (x.Claim != nil && s.cfg.Now().Before(x.Claim.Until)) {
			return errLost
		}
		x.Claim = &Claim{Token: token, Until: s.cfg.Now().UTC().Add(s.cfg.ClaimTTL)}
		return nil
	})
	if errors.Is(err, errLost) {
		return rep, nil
	}
	if err != nil {
		return rep, err
	}
	defer s.release(ctx, b, token) // no request when the last write gave the batch back
	active := !b.Status.Terminal()
	if b.Status == StatusEnumerating && !b.AbortRequested {
		if err := s.enumerate(ctx, b, token, &rep); err != nil {
			return rep, err
		}
	}
	if !b.Status.Terminal() && (b.Phase != PhaseCounting || b.AbortRequested) {
		// While counting no child exists yet: nothing to track.
		if err := s.track(ctx, b, token, &rep); err != nil {
			return rep, err
		}
	}
	if b.Status.Terminal() {
		if active {
			rep.Finished++
		}
		if s.callbackDue(b) {
			s.callback(ctx, b)
		}
	}
	return rep, nil
}

// guarded writes a change only while this runner holds the batch.
func (s *Service) guarded(ctx context.Context, b *Batch, token string, change func(*Batch)) error {
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	return s.write(bctx, b, func(x *Batch) error {
		if x.Claim == nil || x.Claim.Token != token {
			return errLost
		}
		change(x)
		return nil
	})
}

func (s *Service) release(ctx context.Context, b *Batch, token string) {
	if b.Claim == nil || b.Claim.Token != token {
		return // given back (or lost) already, as far as this runner knows
	}
	if err := s.guarded(ctx, b, token, func(x *Batch) { x.Claim = nil }); err != nil && !errors.Is(err, errLost) {
		s.log.WarnContext(ctx, "cannot give the batch back; its claim expires by itself", "batch", b.ID, "err", err)
	}
}

// pageMargin is the time a page of children needs: enumeration starts no page later.
func (s *Service) pageMargin() time.Duration { return s.cfg.TickBudget / 4 }

// enumerate lists the source page by page from the recorded marker: counting first
// (the limit is checked before any child starts), then starting a child per matching
// blob. Only the current page is held in memory. The marker is recorded after each
// page, so a crash repeats one page at most, whose children map onto the same job ids.
func (s *Service) enumerate(ctx context.Context, b *Batch, token string, rep *TickReport) error {
	for b.Phase != PhaseDone && !b.AbortRequested {
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < s.pageMargin() {
			rep.BudgetExhausted = true
			return nil
		}
		page, err := s.storage.ListSource(ctx, b.Source, b.Marker, s.cfg.PageSize)
		rep.Listings++
		if err != nil {
			if errors.Is(err, copyjob.ErrUnavailable) || ctx.Err() != nil {
				return fmt.Errorf("list the source: %w", err)
			}
			return s.refuse(ctx, b, token, listingCode(err), redact.Text("cannot list the source: "+err.Error()))
		}
		switch b.Phase {
		case PhaseCounting:
			n := 0
			for _, blob := range page.Blobs {
				if b.Filter.Matches(blob) {
					n++
				}
			}
			if b.Matched+n > s.cfg.MaxChildren {
				return s.refuse(ctx, b, token, CodeBatchTooLarge, fmt.Sprintf(
					"the source holds more than %d matching blobs (the limit per batch, BATCH_MAX_CHILDREN); nothing was started. "+
						"Narrow the prefix or the filter, split the batch, or use AzCopy (azcopy copy --recursive) for bulk migrations",
					s.cfg.MaxChildren))
			}
			err = s.guarded(ctx, b, token, func(x *Batch) {
				x.Matched += n
				x.Marker = page.NextMarker
				if page.NextMarker == "" {
					x.Phase, x.Marker = PhaseStarting, ""
				}
			})
		case PhaseStarting:
			var started, refused int
			var failures []Failure
			started, refused, failures, err = s.startPage(ctx, b, page)
			rep.Started += started
			if err != nil {
				return err // the page is listed and started again: replays find the children
			}
			faultpoint.Hit("batch:pageStarted")
			err = s.guarded(ctx, b, token, func(x *Batch) {
				x.Started += started
				x.Refused += refused
				x.Marker = page.NextMarker
				x.Failures = appendFailures(x.Failures, failures...)
				if page.NextMarker == "" {
					x.Phase, x.Marker, x.Status = PhaseDone, "", StatusRunning
				}
			})
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// startPage starts one page's children with bounded concurrency. A child whose start
// failed transiently stays "starting" (its record exists: tracking takes it over); a
// failure that left no record (the source could not even be prepared) is retried with
// the page, unless it is permanent, when it is counted as a failure of the batch.
func (s *Service) startPage(ctx context.Context, b *Batch, page SourcePage) (int, int, []Failure, error) {
	var (
		mu       sync.Mutex
		started  int
		refused  int
		failures []Failure
		retry    error
		wg       sync.WaitGroup
		slots    = make(chan struct{}, s.cfg.Concurrency)
	)
	for _, blob := range page.Blobs {
		if !b.Filter.Matches(blob) {
			continue
		}
		slots <- struct{}{}
		wg.Add(1)
		go func(name string) {
			defer func() { <-slots; wg.Done() }()
			job, err := s.startChild(ctx, b, name)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case job != nil:
				started++
				if job.Status.Terminal() && job.Status != copyjob.StatusSuccess {
					failures = append(failures, failureOf(name, job))
				}
			case copyjob.Retryable(err):
				retry = err
			default:
				failures = append(failures, Failure{Blob: name, JobID: ChildID(b.ID, name), Status: copyjob.StatusStartFailed,
					Description: err.Error()})
				refused++
			}
		}(blob.Name)
	}
	wg.Wait()
	return started, refused, failures, retry
}

func (s *Service) startChild(ctx context.Context, b *Batch, name string) (*copyjob.Job, error) {
	src, err := s.storage.URL(copyjob.BlobRef{Account: b.Source.Account, Container: b.Source.Container, Blob: name})
	if err != nil {
		return nil, err
	}
	job, _, err := s.copies.Start(ctx, copyjob.StartRequest{
		JobID:       ChildID(b.ID, name),
		Origin:      "batch",
		Owner:       b.Owner,
		Batch:       b.ID,
		Source:      src,
		Destination: s.destinationOf(b, name),
		Options:     b.Options,
		CallbackURL: b.ChildCallbackURL,
	})
	if job == nil {
		var ce *copyjob.Error
		if errors.As(err, &ce) && ce.Job != nil {
			job = ce.Job
		}
	}
	return job, err
}

// destinationOf keeps a source blob's name relative to the source prefix under the
// destination prefix.
func (s *Service) destinationOf(b *Batch, name string) copyjob.BlobRef {
	rel := strings.TrimPrefix(name, b.Source.Prefix)
	return copyjob.BlobRef{Account: b.Destination.Account, Container: b.Destination.Container, Blob: b.Destination.Prefix + rel}
}

// sourceNameOf is the inverse of destinationOf for a destination blob's name.
func (s *Service) sourceNameOf(b *Batch, dstName string) (string, bool) {
	if !strings.HasPrefix(dstName, b.Destination.Prefix) {
		return "", false
	}
	return b.Source.Prefix + strings.TrimPrefix(dstName, b.Destination.Prefix), true
}

func failureOf(name string, job *copyjob.Job) Failure {
	return Failure{Blob: name, JobID: job.ID, Status: job.Status, Description: job.StatusDescription}
}

func appendFailures(list []Failure, more ...Failure) []Failure {
	for _, f := range more {
		if len(list) >= maxFailures {
			break
		}
		dup := false
		for _, g := range list {
			dup = dup || g.JobID == f.JobID
		}
		if !dup {
			list = append(list, f)
		}
	}
	return list
}

// refuse ends a batch before any child started (too large, or a source that cannot be
// listed for good); the caller delivers the callback and gives the batch back.
func (s *Service) refuse(ctx context.Context, b *Batch, token string, code copyjob.Code, msg string) error {
	now := s.cfg.Now().UTC()
	err := s.guarded(ctx, b, token, func(x *Batch) {
		x.Status, x.Phase, x.Marker, x.CompletedAt = StatusFailed, PhaseDone, "", &now
		x.Refusal = &Refusal{Code: code, Message: msg}
	})
	if err != nil {
		return err
	}
	s.log.WarnContext(ctx, "batch refused", "batch", b.ID, "code", code, "reason", msg)
	return nil
}

// listingCode is the refusal code of a source listing storage refused for good.
func listingCode(err error) copyjob.Code {
	switch {
	case errors.Is(err, copyjob.ErrNotFound):
		return copyjob.CodeContainerNotFound
	case errors.Is(err, copyjob.ErrForbidden):
		return copyjob.CodeForbidden
	}
	return copyjob.CodeStorageRefused
}
