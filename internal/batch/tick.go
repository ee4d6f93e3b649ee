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
		now := s.cfg.Now().UTC()
		x.Claim = &Claim{Token: token, Until: now.Add(s.cfg.ClaimTTL)}
		if x.Status == StatusEnumerating && x.Phase == PhaseStarting && !x.AbortRequested && x.PageBegun == nil {
			// The page this runner may start next is begun with the claim: no write of
			// its own (see Batch.PageBegun).
			x.PageBegun = &PageBegun{Marker: x.Marker, At: now, Token: token}
		}
		return nil
	})
	if errors.Is(err, errLost) {
		return rep, nil
	}
	if err != nil {
		return rep, err
	}
	hold, halfPage := false, false
	defer func() {
		if !hold {
			s.release(ctx, b, token, halfPage) // no request when the last write gave the batch back
		}
	}()
	active := !b.Status.Terminal()
	if b.Status == StatusEnumerating && (!b.AbortRequested || b.PageBegun != nil) {
		if err := s.enumerate(ctx, b, token, &rep); err != nil {
			// A Copy Blob whose answer was lost and that no record names may still be
			// carried out by storage: the claim is kept until it expires (it outlasts the
			// request), so the page's recovery reads a destination that shows the copy if
			// it ran.
			hold, halfPage = errors.Is(err, copyjob.ErrCopyInDoubt), true
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

// release gives the batch back. A page this runner began is kept begun when it may be
// half-started (halfPage: its enumeration failed), for the next runner to recover;
// otherwise it was not started and is cleared.
func (s *Service) release(ctx context.Context, b *Batch, token string, halfPage bool) {
	if b.Claim == nil || b.Claim.Token != token {
		return // given back (or lost) already, as far as this runner knows
	}
	err := s.guarded(ctx, b, token, func(x *Batch) {
		x.Claim = nil
		if !halfPage && x.PageBegun != nil && x.PageBegun.Token == token {
			x.PageBegun = nil
		}
	})
	if err != nil && !errors.Is(err, errLost) {
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
	// An aborted batch starts no page, but still recovers the page an earlier runner
	// began: its copies may run unrecorded (adopted, never started anew).
	for b.Phase != PhaseDone && (!b.AbortRequested || b.PageBegun != nil) {
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
			if since := s.recoverySince(b, token); since != nil {
				// Refused for good while another runner's page may hold unrecorded copies:
				// they are adopted from the destination first (the source cannot be listed).
				if _, aerr := s.adoptUnrecorded(ctx, b, token, *since, rep); aerr != nil {
					return aerr
				}
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
			now := s.cfg.Now().UTC()
			err = s.guarded(ctx, b, token, func(x *Batch) {
				x.Matched += n
				x.Marker = page.NextMarker
				if page.NextMarker == "" {
					x.Phase, x.Marker = PhaseStarting, ""
					x.PageBegun = &PageBegun{Marker: "", At: now, Token: token} // the first page, begun next
				}
			})
		case PhaseStarting:
			err = s.startingPage(ctx, b, token, page, rep)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// startingPage starts one page's children and records the page done (its marker). The
// page is first recorded begun (PageBegun), before any Copy Blob: children without
// leaseSource are recorded after their Copy Blob, so a page begun and not done may have
// copies that no record names, and whoever takes the page up again recovers it (see
// startPage). A runner that finds the page begun by an earlier runner is in recovery and
// keeps its time. An aborted batch only recovers the begun page and starts nothing new.
func (s *Service) startingPage(ctx context.Context, b *Batch, token string, page SourcePage, rep *TickReport) error {
	begun := b.PageBegun != nil && b.PageBegun.Marker == b.Marker
	recovering := begun && b.PageBegun.Token != token
	if b.AbortRequested && !recovering {
		return s.guarded(ctx, b, token, func(x *Batch) { x.PageBegun = nil }) // nothing begun to recover
	}
	if !begun {
		// Not begun by an earlier write of this runner (nor anyone's): one write of its own.
		now := s.cfg.Now().UTC()
		if err := s.guarded(ctx, b, token, func(x *Batch) { x.PageBegun = &PageBegun{Marker: x.Marker, At: now, Token: token} }); err != nil {
			return err
		}
	}
	since := s.recoverySince(b, token)
	var recovered *Recovered
	if since != nil {
		s.log.InfoContext(ctx, "recovering a page of children an earlier run began", "batch", b.ID, "since", *since)
		var err error
		if recovered, err = s.adoptUnrecorded(ctx, b, token, *since, rep); err != nil {
			return err
		}
	}
	adoptOnly := b.AbortRequested
	started, refused, failures, err := s.startPage(ctx, b, page, since, adoptOnly)
	rep.Started += started
	if err != nil {
		return err // the page is listed and recovered again: its children map onto the same jobs
	}
	faultpoint.Hit("batch:pageStarted")
	now := s.cfg.Now().UTC()
	return s.guarded(ctx, b, token, func(x *Batch) {
		x.Started += started
		x.Refused += refused
		x.Failures = appendFailures(x.Failures, failures...)
		x.PageBegun, x.PagesBegun = nil, true
		if recovered != nil {
			x.Recovered = recovered
		}
		if adoptOnly || x.AbortRequested {
			return // an aborted batch lists no further page
		}
		x.Marker = page.NextMarker
		if page.NextMarker == "" {
			x.Phase, x.Marker, x.Status = PhaseDone, "", StatusRunning
			x.Matched = x.Started + x.Refused // what the pages held, not what was counted before
			return
		}
		// The next page is begun with this write; if this runner does not start it (its
		// budget ends), its last write of the tick clears it (see track).
		x.PageBegun = &PageBegun{Marker: x.Marker, At: now, Token: token}
	})
}

// recoverySince is when the copies a recovery must look for may have begun: the begun
// page's time when another runner began it, the batch's creation for a batch submitted
// before pages were recorded begun; nil when nothing is to recover.
func (s *Service) recoverySince(b *Batch, token string) *time.Time {
	switch {
	case b.Phase != PhaseStarting:
		return nil
	case b.PageBegun != nil && b.PageBegun.Marker == b.Marker && b.PageBegun.Token != token:
		return &b.PageBegun.At
	case !b.PagesBegun:
		return &b.CreatedAt // submitted before pages were recorded begun: see Batch.PagesBegun
	}
	return nil
}

// adoptUnrecorded is the first step of a recovery: it lists the destination with copy
// details and adopts every copy of a child's source begun since then that no record
// names (copyjob.RecoverChild, adopting only). It looks at the destination, not at a new
// listing of the source: that listing may end elsewhere than the begun page did (a blob
// uploaded into its range, a short page), and a source blob deleted since its copy
// began is in no listing. It reports the last source name it found a copy for, which
// later pages honour (Batch.Recovered). A transient failure is an error: the page is
// recovered again later (its copies are adopted once: a recorded child is left alone).
func (s *Service) adoptUnrecorded(ctx context.Context, b *Batch, token string, since time.Time, rep *TickReport) (*Recovered, error) {
	var (
		mu        sync.Mutex
		until     string
		transient error
	)
	marker := ""
	for {
		page, err := s.storage.ListCopies(ctx, b.Destination, marker)
		rep.Listings++
		if err != nil {
			return nil, fmt.Errorf("list the destination to recover a begun page: %w", err)
		}
		var visits []func()
		for _, bl := range page.Blobs {
			name, ok := s.sourceNameOf(b, bl.Name)
			if !ok || bl.State.CopyID == "" || bl.State.LastModified.Before(since.Add(-copyjob.ClockSkew)) {
				continue
			}
			visits = append(visits, func() {
				job, err := s.startChild(ctx, b, name, &since, true)
				mu.Lock()
				defer mu.Unlock()
				if name > until {
					until = name
				}
				switch {
				case job != nil:
					s.cache.put(job)
				case err != nil && copyjob.Retryable(err):
					transient = err
				case err != nil:
					s.log.WarnContext(ctx, "cannot adopt a child's copy found in the destination", "batch", b.ID, "blob", name, "err", err)
				}
			})
		}
		s.run(visits)
		if transient != nil {
			return nil, transient
		}
		if page.NextMarker == "" {
			break
		}
		marker = page.NextMarker
	}
	if until == "" {
		return nil, nil
	}
	return &Recovered{Until: until, Since: since}, nil
}

// startPage starts one page's children with bounded concurrency (since set: recovers
// them, see copyjob.RecoverChild). A child whose start failed transiently stays
// "starting" (its record exists: tracking takes it over); a failure that left no record
// (the source could not be prepared, or the copy runs unrecorded) is retried with the
// page, unless it is permanent, when it is counted as a failure of the batch. The
// batch's first child starts alone: its Copy Blob creates a missing destination
// container once, not once per concurrent start.
func (s *Service) startPage(ctx context.Context, b *Batch, page SourcePage, since *time.Time, adoptOnly bool) (int, int, []Failure, error) {
	var (
		mu       sync.Mutex
		started  int
		refused  int
		failures []Failure
		retry    error
		wg       sync.WaitGroup
		slots    = make(chan struct{}, s.cfg.Concurrency)
	)
	first := b.Started == 0 && b.Marker == "" && since == nil
	// BATCH_MAX_CHILDREN holds for what is started, not only for what was counted: the
	// source may have grown between the two listings (review 12: 25 children of a
	// batch limited to 5). The blobs past it are refused, and the batch says so.
	room := s.cfg.MaxChildren - b.Started - b.Refused
	aborted := s.abortWatch(ctx, b, adoptOnly)
	for _, blob := range page.Blobs {
		if !b.Filter.Matches(blob) {
			continue
		}
		if aborted() {
			break // the page's other children are not started; the abort ends the batch
		}
		if room <= 0 && !adoptOnly {
			mu.Lock()
			failures = append(failures, Failure{Blob: blob.Name, JobID: ChildID(b.ID, blob.Name), Status: copyjob.StatusStartFailed,
				Description: fmt.Sprintf("%s: not copied: the source grew past %d matching blobs (BATCH_MAX_CHILDREN) after it was counted", CodeBatchTooLarge, s.cfg.MaxChildren)})
			refused++
			mu.Unlock()
			continue
		}
		room--
		slots <- struct{}{}
		wg.Add(1)
		start := func(name string) {
			defer func() { <-slots; wg.Done() }()
			childSince := since
			if childSince == nil && b.Recovered != nil && name <= b.Recovered.Until {
				// A recovery may have recorded it already, from another page's listing.
				childSince = &b.Recovered.Since
			}
			job, err := s.startChild(ctx, b, name, childSince, adoptOnly)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case job != nil:
				started++
				s.cache.put(job)
				if job.Status.Terminal() && job.Status != copyjob.StatusSuccess {
					failures = append(failures, failureOf(name, job))
				}
			case err == nil:
				// Recovering an aborted batch's page: nothing ran for this blob.
			case copyjob.Retryable(err):
				if retry == nil || errors.Is(err, copyjob.ErrCopyInDoubt) {
					retry = err
				}
			default:
				failures = append(failures, Failure{Blob: name, JobID: ChildID(b.ID, name), Status: copyjob.StatusStartFailed,
					Description: err.Error()})
				refused++
			}
		}
		if first {
			first = false
			start(blob.Name)
			continue
		}
		go start(blob.Name)
	}
	wg.Wait()
	return started, refused, failures, retry
}

// abortCheckEvery bounds the children a page starts after its batch's abort was
// recorded (by another request, maybe on another instance): the runner reads the batch
// record again after the page's first child and then every abortCheckEvery children or
// every second, one read per check (a page of 5,000 children pays 51).
const abortCheckEvery = 100

// abortWatch returns the check startPage makes before each child: whether the batch's
// abort has been recorded since the page began. A failed read is not an abort.
func (s *Service) abortWatch(ctx context.Context, b *Batch, adoptOnly bool) func() bool {
	if adoptOnly {
		return func() bool { return false } // recovering an aborted batch's page: nothing starts anew
	}
	launched, sinceCheck := 0, 0
	last := s.cfg.Now()
	seen := false
	return func() bool {
		if seen {
			return true
		}
		due := launched == 1 || sinceCheck >= abortCheckEvery || s.cfg.Now().Sub(last) >= time.Second
		launched++
		sinceCheck++
		if !due {
			return false
		}
		sinceCheck, last = 0, s.cfg.Now()
		if cur, err := s.store.Get(ctx, b.ID); err == nil && cur.AbortRequested {
			s.log.InfoContext(ctx, "the batch was aborted while its page started; no further child starts", "batch", b.ID)
			seen = true
		}
		return seen
	}
}

func (s *Service) startChild(ctx context.Context, b *Batch, name string, since *time.Time, adoptOnly bool) (*copyjob.Job, error) {
	src, err := s.storage.URL(copyjob.BlobRef{Account: b.Source.Account, Container: b.Source.Container, Blob: name})
	if err != nil {
		return nil, err
	}
	req := copyjob.StartRequest{
		JobID:       ChildID(b.ID, name),
		Origin:      "batch",
		Owner:       b.Owner,
		Batch:       b.ID,
		Source:      src,
		Destination: s.destinationOf(b, name),
		Options:     b.Options,
		CallbackURL: b.ChildCallbackURL,
	}
	if since != nil {
		return s.copies.RecoverChild(ctx, req, *since, adoptOnly)
	}
	return s.copies.StartChild(ctx, req)
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

// refuse ends a batch's enumeration for good (too large, or a source that cannot be
// listed): a batch still counting has no child and fails at once; one whose children
// started follows them to their outcomes (a child is followed by its batch only) and
// then fails. The caller delivers the callback once the batch has ended.
func (s *Service) refuse(ctx context.Context, b *Batch, token string, code copyjob.Code, msg string) error {
	now := s.cfg.Now().UTC()
	err := s.guarded(ctx, b, token, func(x *Batch) {
		if x.Phase == PhaseCounting {
			x.Status, x.CompletedAt = StatusFailed, &now // no child exists yet
		} else {
			// Children started before the refusal run on: the batch follows them to their
			// outcomes, and then ends failed (see track).
			x.Status = StatusRunning
		}
		x.Phase, x.Marker = PhaseDone, ""
		x.Refusal = &Refusal{Code: code, Message: msg}
		if x.PageBegun != nil && x.PageBegun.Token == token {
			x.PageBegun = nil // begun with this runner's claim, never started
		}
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
