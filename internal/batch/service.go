package batch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/redact"
)

// Codes of the batch refusals, beside copyjob's.
const (
	CodeBatchNotFound copyjob.Code = "BatchNotFound"
	// CodeBatchTooLarge: the source holds more matching blobs than MaxChildren.
	CodeBatchTooLarge copyjob.Code = "BatchTooLarge"
	// CodeBatchFinished: an abort of a batch that has finished.
	CodeBatchFinished copyjob.Code = "BatchFinished"
)

// Config tunes batches; zero values take the defaults.
type Config struct {
	// MaxChildren bounds the children of one batch (default 100,000): a larger source is
	// refused before any child starts. Bulk migrations belong to AzCopy.
	MaxChildren int
	// PageSize is the List Blobs page size of enumeration and tracking (default and at
	// most 5,000, Azure's maximum).
	PageSize int
	// Concurrency bounds the children started at once (default 16).
	Concurrency int
	// TickBudget bounds one tick; ClaimTTL is how long a tick runner holds a batch: a
	// live runner is never taken over, and one that crashed is taken over after it.
	// Default: TickBudget plus the copy service's StartGrace (a child start begun just
	// before the budget ends finishes within it).
	TickBudget time.Duration
	ClaimTTL   time.Duration
	// RecordCache bounds the child records an instance keeps so that a child's final
	// write needs no read first (default 20,000, about 1.1 KiB each; negative: none).
	// See childCache.
	RecordCache int
	Now         func() time.Time
}

func (c Config) withDefaults() Config {
	if c.MaxChildren <= 0 {
		c.MaxChildren = 100_000
	}
	if c.PageSize <= 0 || c.PageSize > 5000 {
		c.PageSize = 5000
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 16
	}
	if c.TickBudget <= 0 {
		c.TickBudget = 4 * time.Minute
	}
	if c.RecordCache == 0 {
		c.RecordCache = defaultCacheSize
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Service runs batches over a copy service.
type Service struct {
	copies   *copyjob.Service
	records  copyjob.Records // the children's records, read before copyjob settles them
	blobs    copyjob.Blobs
	store    Store
	storage  Storage
	notifier copyjob.Notifier
	cfg      Config
	log      *slog.Logger
	// cache holds the child records this instance last wrote (see childCache).
	cache *childCache
}

// Deps are what a batch service works with: the copy service and the ports it was
// built on, the batch store and listings.
type Deps struct {
	Copies   *copyjob.Service
	Records  copyjob.Records
	Blobs    copyjob.Blobs
	Store    Store
	Storage  Storage
	Notifier copyjob.Notifier // may be nil
}

// NewService wires a batch service.
func NewService(d Deps, cfg Config, log *slog.Logger) *Service {
	if log == nil {
		log = slog.Default()
	}
	cfg = cfg.withDefaults()
	if cfg.ClaimTTL <= cfg.TickBudget {
		cfg.ClaimTTL = cfg.TickBudget + d.Copies.Config().StartGrace
	}
	return &Service{copies: d.Copies, records: d.Records, blobs: d.Blobs, store: d.Store, storage: d.Storage,
		notifier: d.Notifier, cfg: cfg, log: log, cache: newChildCache(cfg.RecordCache)}
}

// Config returns the effective configuration.
func (s *Service) Config() Config { return s.cfg }

// SubmitRequest asks for a batch.
type SubmitRequest struct {
	// ID makes the submission idempotent when set (derived from an Idempotency-Key).
	ID          string
	RequestHash string
	Owner       string
	// Source is a container URL with an optional prefix path, in a configured account.
	Source      string
	Destination Location
	Options     copyjob.Options
	Filter      Filter
	CallbackURL string
	// ChildCallbackURL is each child's own callback (optional).
	ChildCallbackURL string
}

// UserInfoRefused is why a source URL with user info (https://user:password@host/...) is
// refused, in a single copy's words (azstorage Blobs.PrepareSource): a password there
// would be kept in the batch record, shown in answers and logged.
const UserInfoRefused = "invalid source: credentials in the URL's user info are not supported"

func invalid(target, msg string) *copyjob.Error {
	return &copyjob.Error{Code: copyjob.CodeInvalidRequest, Target: target, Message: msg}
}

// Submit records a batch in "enumerating"; the status tick does the rest. It returns the
// batch and whether this call created it (false for a replay of the same request).
func (s *Service) Submit(ctx context.Context, req SubmitRequest) (*Batch, bool, error) {
	b, err := s.newBatch(req)
	if err != nil {
		return nil, false, err
	}
	err = s.store.Create(ctx, b)
	if errors.Is(err, copyjob.ErrExists) {
		existing, gerr := s.store.Get(ctx, b.ID)
		if gerr != nil {
			return nil, false, storeError("cannot read the existing batch", gerr)
		}
		if req.RequestHash != "" && existing.RequestHash != "" && existing.RequestHash != req.RequestHash {
			return nil, false, &copyjob.Error{Code: copyjob.CodeIdempotencyMismatch, Target: "Idempotency-Key",
				Message: "the idempotency key was used for another request"}
		}
		return existing, false, nil
	}
	if err != nil {
		return nil, false, storeError("cannot write the batch record", err)
	}
	s.log.InfoContext(ctx, "batch submitted", "batch", b.ID, "source", redact.URL(b.SourceURL), "destinationContainer", b.Destination.Container)
	return b, true, nil
}

func (s *Service) newBatch(req SubmitRequest) (*Batch, error) {
	u, err := url.Parse(req.Source)
	if err != nil || u.Host == "" {
		return nil, invalid("source", "source must be a container URL, optionally with a prefix path")
	}
	if u.User != nil {
		return nil, invalid("source", UserInfoRefused)
	}
	if u.RawQuery != "" {
		// A caller's SAS would have to be kept until the last child starts, in a record:
		// no SAS is ever stored. The app signs for sources in configured accounts.
		return nil, invalid("source", "a batch's source must be in a configured storage account and carry no query (no SAS)")
	}
	src, ok := s.storage.Locate(req.Source)
	if !ok {
		return nil, invalid("source", "a batch's source must be a container in a configured storage account")
	}
	internal := s.copies.Config().Internal
	if internal(copyjob.BlobRef{Account: src.Account, Container: src.Container}) {
		return nil, &copyjob.Error{Code: copyjob.CodeSourceNotAllowed, Target: "source",
			Message: "container " + src.Container + " is the app's own (its records, the Functions host's keys and locks) and cannot be a source"}
	}
	dst := req.Destination
	if dst.Container == "" {
		return nil, invalid("destination.container", "destination.container is required")
	}
	if internal(copyjob.BlobRef{Account: dst.Account, Container: dst.Container}) {
		return nil, &copyjob.Error{Code: copyjob.CodeDestinationNotAllowed, Target: "destination.container",
			Message: "container " + dst.Container + " is the app's own (its records, the Functions host's keys and locks) and cannot be a destination"}
	}
	if _, err := s.storage.URL(copyjob.BlobRef{Account: dst.Account, Container: dst.Container, Blob: "x"}); err != nil {
		return nil, invalid("destination.account", "unknown destination account")
	}
	if s.storage.SameAccount(src.Account, dst.Account) && strings.EqualFold(src.Container, dst.Container) &&
		(strings.HasPrefix(src.Prefix, dst.Prefix) || strings.HasPrefix(dst.Prefix, src.Prefix)) {
		// The listing would meet the batch's own copies (or copy blobs onto themselves).
		return nil, invalid("destination.prefix", "source and destination prefixes overlap in one container")
	}
	if req.Options.SnapshotDestination {
		return nil, invalid("snapshotDestination", "batches do not snapshot destinations")
	}
	lifetime := time.Duration(req.Options.SASLifetime)
	if lifetime != 0 && (lifetime < time.Minute || lifetime > s.copies.Config().MaxSASLifetime) {
		return nil, invalid("sasLifetime", fmt.Sprintf("sasLifetime must be between 1m and %s", s.copies.Config().MaxSASLifetime))
	}
	id := req.ID
	if id == "" {
		id = uuid.NewString()
	}
	now := s.cfg.Now().UTC()
	b := &Batch{ID: id, Owner: req.Owner, RequestHash: req.RequestHash, Source: src, SourceURL: req.Source,
		Destination: dst, Options: req.Options, Filter: req.Filter, Status: StatusEnumerating, Phase: PhaseCounting,
		CreatedAt: now, UpdatedAt: now, ChildCallbackURL: req.ChildCallbackURL, PagesBegun: true}
	if req.CallbackURL != "" {
		b.Callback = &copyjob.Callback{URL: req.CallbackURL}
	}
	return b, nil
}

// storeError classifies a failure of the batch store (the app's own records) as copyjob
// answers for its records: StorageUnavailable (503 + Retry-After) only when a retry can
// succeed (storage unavailable, a write that lost to concurrent writers every time, or
// an error no adapter classified); a domain error keeps its code; any other permanent
// refusal of storage is an internal error (500: a misconfiguration, such as a role the
// app lacks, that no retry fixes).
func storeError(msg string, err error) *copyjob.Error {
	code := copyjob.CodeInternal
	switch {
	case errors.Is(err, copyjob.ErrUnavailable):
		code = copyjob.CodeStorageUnavailable
	case copyjob.CodeOf(err) != "":
		code = copyjob.CodeOf(err)
	case errors.Is(err, copyjob.ErrConflict), unclassified(err):
		code = copyjob.CodeStorageUnavailable
	}
	return &copyjob.Error{Code: code, Message: msg, Err: err}
}

// storageSentinels are the errors adapters classify storage's answers with (copyjob's
// errors.go); an error wrapping none of them has no verdict and counts as transient, as
// in copyjob.
var storageSentinels = []error{copyjob.ErrNotFound, copyjob.ErrExists, copyjob.ErrConflict, copyjob.ErrPendingCopy,
	copyjob.ErrNoPendingCopy, copyjob.ErrCopyIDMismatch, copyjob.ErrSourceUnreadable, copyjob.ErrLeaseConflict,
	copyjob.ErrLeaseNotHeld, copyjob.ErrForbidden, copyjob.ErrInvalidSource, copyjob.ErrUnknownAccount,
	copyjob.ErrSourceNotFound, copyjob.ErrDestinationLeased, copyjob.ErrInvalidValue, copyjob.ErrRefused}

func unclassified(err error) bool {
	for _, s := range storageSentinels {
		if errors.Is(err, s) {
			return false
		}
	}
	return true
}

// Get returns a batch as last recorded by the tick.
func (s *Service) Get(ctx context.Context, id string) (*Batch, error) {
	b, err := s.store.Get(ctx, id)
	if errors.Is(err, copyjob.ErrNotFound) {
		return nil, &copyjob.Error{Code: CodeBatchNotFound, Target: "id", Message: "no batch with id " + id, Err: err}
	}
	if err != nil {
		return nil, storeError("cannot read the batch record", err)
	}
	return b, nil
}

// List pages through batches.
func (s *Service) List(ctx context.Context, opts ListOptions) (Page, error) {
	if opts.Limit <= 0 || opts.Limit > 1000 {
		opts.Limit = 100
	}
	page, err := s.store.List(ctx, opts)
	if errors.Is(err, copyjob.ErrInvalidMarker) {
		// As GET /api/copies (copyjob.Service.List): bad input, never worth a retry.
		return Page{}, &copyjob.Error{Code: copyjob.CodeInvalidRequest, Target: "marker",
			Message: "the marker is not one a listing of this service returned", Err: err}
	}
	if err != nil {
		return Page{}, storeError("cannot list batches", err)
	}
	return page, nil
}

// Abort stops a batch: enumeration starts no further child, and the tick aborts the
// children still pending (each through copyjob's abort, as a single copy) and records
// the batch aborted once none runs. allow, when set, may refuse with the batch as
// recorded (owners). Aborting an aborted batch answers it again.
func (s *Service) Abort(ctx context.Context, id string, allow func(*Batch) error) (*Batch, error) {
	b, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if allow != nil {
		if err := allow(b); err != nil {
			return nil, err
		}
	}
	err = s.write(ctx, b, func(x *Batch) error {
		if x.Status.Terminal() {
			if x.Status == StatusAborted {
				return errNoChange
			}
			return &copyjob.Error{Code: CodeBatchFinished, Target: "id", Message: "the batch has finished (" + string(x.Status) + ")"}
		}
		if x.AbortRequested {
			return errNoChange
		}
		x.AbortRequested = true
		return nil
	})
	if errors.Is(err, errNoChange) {
		return b, nil
	}
	var ce *copyjob.Error
	if errors.As(err, &ce) {
		return b, err
	}
	if err != nil {
		return b, storeError("cannot record the abort", err)
	}
	s.log.InfoContext(ctx, "batch abort requested", "batch", id)
	return b, nil
}

var errNoChange = errors.New("nothing to change")

// write stores a change to b with compare-and-swap; on a conflict the newest record is
// read and change decides again. An error from change is returned with b holding the
// newest record.
func (s *Service) write(ctx context.Context, b *Batch, change func(*Batch) error) error {
	cur := b
	for attempt := 0; ; attempt++ {
		next := clone(cur)
		if err := change(next); err != nil {
			*b = *cur
			return err
		}
		next.UpdatedAt = s.cfg.Now().UTC()
		err := s.store.Update(ctx, next)
		if err == nil {
			*b = *next
			return nil
		}
		if !errors.Is(err, copyjob.ErrConflict) || attempt >= 4 {
			return err
		}
		newest, gerr := s.store.Get(ctx, b.ID)
		if gerr != nil {
			return fmt.Errorf("%w (and re-read: %w)", err, gerr)
		}
		cur = newest
	}
}

func clone(b *Batch) *Batch {
	c := *b
	c.Counts = make(map[copyjob.Status]int, len(b.Counts))
	for k, v := range b.Counts {
		c.Counts[k] = v
	}
	c.Failures = append([]Failure(nil), b.Failures...)
	if b.Claim != nil {
		cl := *b.Claim
		c.Claim = &cl
	}
	if b.Callback != nil {
		cb := *b.Callback
		c.Callback = &cb
	}
	if b.Refusal != nil {
		r := *b.Refusal
		c.Refusal = &r
	}
	if b.PageBegun != nil {
		p := *b.PageBegun
		c.PageBegun = &p
	}
	return &c
}
