package copyjobtest

import (
	"context"
	"fmt"
	"maps"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/blobcopy/blobcopy/internal/config"
	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/redact"
)

// Hosts of the accounts NewEnv configures.
const (
	DefaultHost = "app.blob.core.windows.net"
	OtherHost   = "other.blob.core.windows.net"
)

// StartCopyCall is one recorded Copy Blob call.
type StartCopyCall struct {
	Dst     copyjob.BlobRef
	ReadURL string
	Opts    copyjob.StartCopyOptions
	// CopyID is the id the call got; "" when it failed.
	CopyID string
	Err    error
}

// BlobInfo is what the fake holds about one blob (or snapshot).
type BlobInfo struct {
	Size         int64
	Metadata     map[string]string
	Tags         map[string]string
	Tier         string
	Copy         copyjob.CopyState // CopyID "" when the blob was never a copy destination
	LeaseID      string            // "" when not leased
	LastModified time.Time
}

type blob struct {
	BlobInfo
	copySize int64 // the size the destination gets when its pending copy succeeds
}

// Blobs is an in-memory copyjob.Blobs across configured accounts.
//
// Sources: a URL on a configured account's host is a blob of that account (it must
// exist for a copy to read it; another account's blob is readable only with a SAS, i.e.
// a "sig" query parameter); any other URL is external and readable only once registered
// with PutExternal.
//
// Copies: StartCopy answers with the status set by SetStartStatus (pending by default,
// success when RequiresSync is set); a pending copy stays pending until the test calls
// SetCopyProgress, CompleteCopy, FailCopy or FinishCopy.
type Blobs struct {
	Faults
	mu          sync.Mutex
	now         func() time.Time
	accounts    map[string]string // alias -> host
	blobs       map[copyjob.BlobRef]*blob
	external    map[string]int64
	startStatus copyjob.Status
	seq         int
	starts      []StartCopyCall
	ended       map[string]copyjob.Status // copy id -> how storage ended it
	prepare     func(ctx context.Context, source string, dst copyjob.BlobRef, lifetime time.Duration) (copyjob.PreparedSource, error)
}

var _ copyjob.Blobs = (*Blobs)(nil)

// NewBlobs returns an empty store knowing the app's own account "" on DefaultHost, on
// the real clock (see SetClock).
func NewBlobs() *Blobs {
	return &Blobs{
		now:         time.Now,
		accounts:    map[string]string{"": DefaultHost},
		blobs:       map[copyjob.BlobRef]*blob{},
		external:    map[string]int64{},
		startStatus: copyjob.StatusPending,
	}
}

// SetClock sets the clock used for last-modified times, SAS expiries and completions.
func (b *Blobs) SetClock(now func() time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.now = now
}

// AddAccount configures an account alias served on host.
func (b *Blobs) AddAccount(alias, host string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.accounts[alias] = strings.ToLower(host)
}

// SetStartStatus sets what StartCopy answers when RequiresSync is not set: StatusPending
// (the default), StatusSuccess or StatusFailed (finished at start).
func (b *Blobs) SetStartStatus(s copyjob.Status) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.startStatus = s
}

// SetPrepareSource replaces the built-in PrepareSource logic (faults still apply first).
// nil restores the built-in one.
func (b *Blobs) SetPrepareSource(fn func(ctx context.Context, source string, dst copyjob.BlobRef, lifetime time.Duration) (copyjob.PreparedSource, error)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.prepare = fn
}

// Put creates or overwrites a blob with a plain write, bypassing every rule (pending
// copies, leases are kept as they are): the copy properties are cleared, like Put Blob.
// Azure refuses a write to a destination whose copy is pending (409
// PendingCopyOperation); the state Put leaves there (no copy properties) arises on Azure
// when the copy ended and then someone wrote the blob before the app looked again.
func (b *Blobs) Put(ref copyjob.BlobRef, size int64, metadata map[string]string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	lease := ""
	if old := b.blobs[ref]; old != nil {
		lease = old.LeaseID
	}
	b.blobs[ref] = &blob{BlobInfo: BlobInfo{Size: size, Metadata: maps.Clone(metadata), LeaseID: lease, LastModified: b.now().UTC()}}
}

// PutExternal makes an external (non-account) URL readable by copies, with size bytes.
func (b *Blobs) PutExternal(rawURL string, size int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.external[stripQuery(rawURL)] = size
}

// Delete removes a blob (its snapshots stay).
func (b *Blobs) Delete(ref copyjob.BlobRef) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.blobs, ref)
}

// Blob returns a copy of what the fake holds about ref.
func (b *Blobs) Blob(ref copyjob.BlobRef) (BlobInfo, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	bl := b.blobs[ref]
	if bl == nil {
		return BlobInfo{}, false
	}
	return bl.info(), true
}

func (bl *blob) info() BlobInfo {
	i := bl.BlobInfo
	i.Metadata, i.Tags = maps.Clone(i.Metadata), maps.Clone(i.Tags)
	return i
}

// SetLease makes ref leased with id, as if someone acquired it ("" clears the lease, like
// Break Lease). The blob must exist.
func (b *Blobs) SetLease(ref copyjob.BlobRef, id string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if bl := b.blobs[ref]; bl != nil {
		bl.LeaseID = id
	}
}

// LeaseHolder returns the id of the lease held on ref, "" when none.
func (b *Blobs) LeaseHolder(ref copyjob.BlobRef) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if bl := b.blobs[ref]; bl != nil {
		return bl.LeaseID
	}
	return ""
}

// HeldLeases returns every held lease: blob -> lease id.
func (b *Blobs) HeldLeases() map[copyjob.BlobRef]string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[copyjob.BlobRef]string{}
	for ref, bl := range b.blobs {
		if bl.LeaseID != "" {
			out[ref] = bl.LeaseID
		}
	}
	return out
}

// StartCopyCalls returns every StartCopy call so far, failed ones included.
func (b *Blobs) StartCopyCalls() []StartCopyCall {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]StartCopyCall(nil), b.starts...)
}

// SetCopyProgress moves the pending copy on dst to copied of total bytes.
func (b *Blobs) SetCopyProgress(dst copyjob.BlobRef, copied, total int64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	bl, err := b.pendingLocked(dst)
	if err != nil {
		return err
	}
	bl.Copy.Progress = copyjob.Progress{BytesCopied: copied, BytesTotal: total}
	bl.copySize = total
	return nil
}

// CompleteCopy ends the pending copy on dst with success.
func (b *Blobs) CompleteCopy(dst copyjob.BlobRef) error {
	return b.FinishCopy(dst, copyjob.StatusSuccess, "")
}

// FailCopy ends the pending copy on dst with failed and the description.
func (b *Blobs) FailCopy(dst copyjob.BlobRef, description string) error {
	return b.FinishCopy(dst, copyjob.StatusFailed, description)
}

// FinishCopy ends the pending copy on dst with status (success, failed or aborted).
func (b *Blobs) FinishCopy(dst copyjob.BlobRef, status copyjob.Status, description string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	bl, err := b.pendingLocked(dst)
	if err != nil {
		return err
	}
	b.finishLocked(bl, status, description)
	return nil
}

func (b *Blobs) finishLocked(bl *blob, status copyjob.Status, description string) {
	if b.ended == nil {
		b.ended = map[string]copyjob.Status{}
	}
	b.ended[bl.Copy.CopyID] = status
	now := b.now().UTC()
	bl.Copy.Status, bl.Copy.Description, bl.Copy.CompletedAt = status, description, &now
	if status == copyjob.StatusSuccess {
		bl.Copy.Progress = copyjob.Progress{BytesCopied: bl.copySize, BytesTotal: bl.copySize}
		bl.Size = bl.copySize
	} else {
		bl.Size = 0
	}
}

// CopyOutcome tells how storage ended the copy with copyID (success, failed, aborted),
// even after its destination was overwritten; false while it runs or if it never ran.
func (b *Blobs) CopyOutcome(copyID string) (copyjob.Status, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	st, ok := b.ended[copyID]
	return st, ok
}

// ForeignCopy starts a pending copy on dst that this app did not start (another tool, or
// someone overwriting the destination), whatever is there, and returns its copy id. On a
// pending destination it stands for what Azure allows there: another client aborting the
// copy and starting its own.
func (b *Blobs) ForeignCopy(dst copyjob.BlobRef, sourceURL string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seq++
	id := fmt.Sprintf("foreign-copy-%d", b.seq)
	lease := ""
	if old := b.blobs[dst]; old != nil {
		lease = old.LeaseID
	}
	b.blobs[dst] = &blob{BlobInfo: BlobInfo{LeaseID: lease, LastModified: b.now().UTC(),
		Copy: copyjob.CopyState{CopyID: id, Status: copyjob.StatusPending, SourceURL: stripQuery(sourceURL), LastModified: b.now().UTC()}}}
	return id
}

func (b *Blobs) pendingLocked(dst copyjob.BlobRef) (*blob, error) {
	bl := b.blobs[dst]
	if bl == nil {
		return nil, fmt.Errorf("copyjobtest: %v: %w", dst, copyjob.ErrNotFound)
	}
	if bl.Copy.Status != copyjob.StatusPending {
		return nil, fmt.Errorf("copyjobtest: %v: %w", dst, copyjob.ErrNoPendingCopy)
	}
	return bl, nil
}

// URL implements copyjob.Blobs: https://<host>/<container>/<blob>[?snapshot=|?versionid=].
func (b *Blobs) URL(ref copyjob.BlobRef) (string, error) {
	if err := b.enter(OpURL); err != nil {
		return "", err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.urlLocked(ref)
}

func (b *Blobs) urlLocked(ref copyjob.BlobRef) (string, error) {
	host, ok := b.accounts[ref.Account]
	if !ok {
		return "", fmt.Errorf("copyjobtest: account %q: %w", ref.Account, copyjob.ErrUnknownAccount)
	}
	u := url.URL{Scheme: "https", Host: host, Path: "/" + ref.Container + "/" + ref.Blob}
	q := url.Values{}
	if ref.Snapshot != "" {
		q.Set("snapshot", ref.Snapshot)
	}
	if ref.VersionID != "" {
		q.Set("versionid", ref.VersionID)
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// refLocked maps a URL on a configured account to its blob.
func (b *Blobs) refLocked(u *url.URL) (copyjob.BlobRef, bool) {
	host := strings.ToLower(u.Host)
	for alias, h := range b.accounts {
		if h != host {
			continue
		}
		container, name, ok := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
		if !ok || !wellFormedBlobPath(container, name) {
			return copyjob.BlobRef{}, false
		}
		q := u.Query()
		return copyjob.BlobRef{Account: alias, Container: container, Blob: name,
			Snapshot: q.Get("snapshot"), VersionID: q.Get("versionid")}, true
	}
	return copyjob.BlobRef{}, false
}

// wellFormedBlobPath: a container name of letters, digits and hyphens, and a blob name
// without "." or ".." segments, as the adapter reads a URL of its accounts.
func wellFormedBlobPath(container, name string) bool {
	if container == "" || name == "" || strings.Trim(container, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") != "" {
		return false
	}
	for seg := range strings.SplitSeq(name, "/") {
		if seg == "." || seg == ".." {
			return false
		}
	}
	return true
}

// onAccountHostLocked: u's host is a configured account's.
func (b *Blobs) onAccountHostLocked(u *url.URL) bool {
	for _, h := range b.accounts {
		if h == strings.ToLower(u.Host) {
			return true
		}
	}
	return false
}

// stripQuery drops every query parameter but snapshot and versionid: the SAS-free form.
func stripQuery(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	q, keep := u.Query(), url.Values{}
	for _, k := range []string{"snapshot", "versionid"} {
		if v := q.Get(k); v != "" {
			keep.Set(k, v)
		}
	}
	u.RawQuery = keep.Encode()
	return u.String()
}

// PrepareSource implements copyjob.Blobs. A source on dst's account is SourceSameAccount;
// on another configured account SourceOtherAccount, read through a fake SAS valid for
// lifetime (SASKind "userDelegation"); a URL with a "sig" parameter is SourceCallerSAS;
// anything else SourceExternal. A URL that is not absolute http(s) is ErrInvalidSource.
func (b *Blobs) PrepareSource(ctx context.Context, source string, dst copyjob.BlobRef, lifetime time.Duration) (copyjob.PreparedSource, error) {
	if err := b.enter(OpPrepareSource); err != nil {
		return copyjob.PreparedSource{}, err
	}
	b.mu.Lock()
	prepare := b.prepare
	b.mu.Unlock()
	if prepare != nil {
		return prepare(ctx, source, dst, lifetime)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	u, err := url.Parse(source)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return copyjob.PreparedSource{}, fmt.Errorf("copyjobtest: %q: %w", source, copyjob.ErrInvalidSource)
	}
	// As the adapter: read as storage reads it, sent as Go writes the URL.
	if u, err = config.ReadAsStorage(source, u); err != nil {
		return copyjob.PreparedSource{}, fmt.Errorf("copyjobtest: %w: %w", copyjob.ErrInvalidSource, err)
	}
	source = u.String()
	clean := stripQuery(source)
	ref, inAccount := b.refLocked(u)
	if !inAccount && b.onAccountHostLocked(u) {
		// As the adapter: a URL on an account's endpoint that names no blob there as
		// written is refused, never taken for an outside URL.
		return copyjob.PreparedSource{}, fmt.Errorf("copyjobtest: %q names no blob of its account: %w", source, copyjob.ErrInvalidSource)
	}
	src := copyjob.Source{URL: clean, QueryDropped: redact.DropsQuery(source)}
	if inAccount {
		src.Ref = &ref
	}
	switch {
	case hasSig(u):
		src.Kind = copyjob.SourceCallerSAS
		return copyjob.PreparedSource{ReadURL: source, Source: src}, nil
	case !inAccount:
		src.Kind = copyjob.SourceExternal
		return copyjob.PreparedSource{ReadURL: source, Source: src}, nil // read with its query, as storage must
	case ref.Account == dst.Account:
		src.Kind = copyjob.SourceSameAccount
		return copyjob.PreparedSource{ReadURL: clean, Source: src}, nil
	}
	exp := b.now().UTC().Add(lifetime)
	src.Kind, src.SASExpiresAt, src.SASKind = copyjob.SourceOtherAccount, &exp, "userDelegation"
	sep := "?"
	if strings.Contains(clean, "?") {
		sep = "&"
	}
	readURL := clean + sep + "sv=2025-01-05&sp=r&se=" + url.QueryEscape(exp.Format(time.RFC3339)) + "&sig=fakesignature"
	return copyjob.PreparedSource{ReadURL: readURL, Source: src}, nil
}

// StartCopy implements copyjob.Blobs (see Blobs for the rules).
func (b *Blobs) StartCopy(ctx context.Context, dst copyjob.BlobRef, readURL string, opts copyjob.StartCopyOptions) (copyjob.CopyState, error) {
	v, err := b.carryStartCopy(ctx, dst, readURL, opts)
	b.loseAnswer(OpStartCopy, &err)
	return v, err
}

func (b *Blobs) carryStartCopy(_ context.Context, dst copyjob.BlobRef, readURL string, opts copyjob.StartCopyOptions) (copyjob.CopyState, error) {
	err := b.enter(OpStartCopy)
	b.mu.Lock()
	defer b.mu.Unlock()
	call := StartCopyCall{Dst: dst, ReadURL: readURL, Opts: opts}
	defer func() { b.starts = append(b.starts, call) }()
	if err == nil {
		var st copyjob.CopyState
		st, err = b.startLocked(dst, readURL, opts)
		call.CopyID = st.CopyID
		call.Err = err
		return st, err
	}
	call.Err = err
	return copyjob.CopyState{}, err
}

func (b *Blobs) startLocked(dst copyjob.BlobRef, readURL string, opts copyjob.StartCopyOptions) (copyjob.CopyState, error) {
	if _, ok := b.accounts[dst.Account]; !ok {
		return copyjob.CopyState{}, fmt.Errorf("copyjobtest: account %q: %w", dst.Account, copyjob.ErrUnknownAccount)
	}
	old := b.blobs[dst]
	if old != nil && old.Copy.Status == copyjob.StatusPending {
		return copyjob.CopyState{}, fmt.Errorf("copyjobtest: %v: %w", dst, copyjob.ErrPendingCopy)
	}
	if old != nil && opts.IfNotExists {
		return copyjob.CopyState{}, fmt.Errorf("copyjobtest: %v: %w", dst, copyjob.ErrExists)
	}
	if old != nil && old.LeaseID != "" {
		// The app never passes a destination lease id: storage answers 412 LeaseIdMissing.
		return copyjob.CopyState{}, fmt.Errorf("copyjobtest: %v leased by %s: %w", dst, old.LeaseID, copyjob.ErrDestinationLeased)
	}
	size, meta, err := b.readSourceLocked(dst, readURL)
	if err != nil {
		return copyjob.CopyState{}, err
	}
	if opts.Metadata != nil {
		meta = opts.Metadata
	}
	b.seq++
	now := b.now().UTC()
	status := b.startStatus
	if opts.RequiresSync {
		status = copyjob.StatusSuccess
	}
	lease := ""
	if old != nil {
		lease = old.LeaseID
	}
	bl := &blob{copySize: size, BlobInfo: BlobInfo{
		Metadata: maps.Clone(meta), Tags: maps.Clone(opts.Tags), Tier: opts.Tier, LeaseID: lease, LastModified: now,
		Copy: copyjob.CopyState{CopyID: fmt.Sprintf("copy-%d", b.seq), Status: copyjob.StatusPending,
			Progress: copyjob.Progress{BytesTotal: size}, SourceURL: stripQuery(readURL), LastModified: now},
	}}
	b.blobs[dst] = bl
	if status != copyjob.StatusPending {
		desc := ""
		if status == copyjob.StatusFailed {
			desc = "500 InternalError: simulated failure at start"
		}
		b.finishLocked(bl, status, desc)
	}
	st := bl.Copy
	st.Progress = copyjob.Progress{} // as Copy Blob's answer: no x-ms-copy-progress
	return st, nil
}

func (b *Blobs) readSourceLocked(dst copyjob.BlobRef, readURL string) (int64, map[string]string, error) {
	u, err := url.Parse(readURL)
	if err != nil {
		return 0, nil, fmt.Errorf("copyjobtest: %q: %w", readURL, copyjob.ErrSourceUnreadable)
	}
	ref, ok := b.refLocked(u)
	if !ok {
		size, known := b.external[stripQuery(readURL)]
		if !known {
			return 0, nil, fmt.Errorf("copyjobtest: external %q not registered: %w", stripQuery(readURL), copyjob.ErrSourceUnreadable)
		}
		return size, nil, nil
	}
	q := u.Query()
	if ref.Account != dst.Account && q.Get("sig") == "" {
		return 0, nil, fmt.Errorf("copyjobtest: %q from another account without a SAS: %w", stripQuery(readURL), copyjob.ErrSourceUnreadable)
	}
	if se := q.Get("se"); se != "" {
		if exp, err := time.Parse(time.RFC3339, se); err == nil && !b.now().Before(exp) {
			return 0, nil, fmt.Errorf("copyjobtest: SAS expired: %w", copyjob.ErrSourceUnreadable)
		}
	}
	src := b.blobs[ref]
	if src == nil {
		// Storage answers 404 (BlobNotFound, or CannotVerifyCopySource with the
		// source's 404), which the adapter reports as ErrSourceNotFound.
		return 0, nil, fmt.Errorf("copyjobtest: source %v missing: %w", ref, copyjob.ErrSourceNotFound)
	}
	return src.Size, src.Metadata, nil
}

// CopyState implements copyjob.Blobs.
func (b *Blobs) CopyState(_ context.Context, dst copyjob.BlobRef) (copyjob.CopyState, error) {
	if err := b.enter(OpCopyState); err != nil {
		return copyjob.CopyState{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	bl := b.blobs[dst]
	if bl == nil {
		return copyjob.CopyState{}, fmt.Errorf("copyjobtest: %v: %w", dst, copyjob.ErrNotFound)
	}
	st := bl.Copy
	st.LastModified = bl.LastModified
	// Storage's descriptions may quote the source URL, SAS and all; the adapter redacts.
	st.Description = redact.Text(st.Description)
	return st, nil
}

// AbortCopy implements copyjob.Blobs: ErrNotFound, ErrNoPendingCopy or ErrCopyIDMismatch
// like the service; an aborted destination is left with length zero.
func (b *Blobs) AbortCopy(ctx context.Context, dst copyjob.BlobRef, copyID string) error {
	err := b.carryAbortCopy(ctx, dst, copyID)
	b.loseAnswer(OpAbortCopy, &err)
	return err
}

func (b *Blobs) carryAbortCopy(_ context.Context, dst copyjob.BlobRef, copyID string) error {
	if err := b.enter(OpAbortCopy); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	bl, err := b.pendingLocked(dst)
	if err != nil {
		return err
	}
	if bl.Copy.CopyID != copyID {
		return fmt.Errorf("copyjobtest: pending copy is %s, not %s: %w", bl.Copy.CopyID, copyID, copyjob.ErrCopyIDMismatch)
	}
	if bl.LeaseID != "" {
		// Abort Copy Blob needs the destination's lease id, which the app never has.
		return fmt.Errorf("copyjobtest: %v leased by %s: %w", dst, bl.LeaseID, copyjob.ErrDestinationLeased)
	}
	b.finishLocked(bl, copyjob.StatusAborted, "aborted")
	return nil
}

// AcquireLease implements copyjob.Blobs: an infinite lease with the proposed id;
// acquiring again with the same id succeeds, another id gets ErrLeaseConflict.
func (b *Blobs) AcquireLease(ctx context.Context, ref copyjob.BlobRef, leaseID string) error {
	err := b.carryAcquireLease(ctx, ref, leaseID)
	b.loseAnswer(OpAcquireLease, &err)
	return err
}

func (b *Blobs) carryAcquireLease(_ context.Context, ref copyjob.BlobRef, leaseID string) error {
	if err := b.enter(OpAcquireLease); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	bl := b.blobs[ref]
	switch {
	case bl == nil:
		return fmt.Errorf("copyjobtest: %v: %w", ref, copyjob.ErrNotFound)
	case bl.Copy.Status == copyjob.StatusPending && bl.LeaseID == "":
		// Like copysim: no new lease on a destination whose copy is pending.
		return fmt.Errorf("copyjobtest: %v: %w", ref, copyjob.ErrPendingCopy)
	case bl.LeaseID != "" && bl.LeaseID != leaseID:
		return fmt.Errorf("copyjobtest: %v leased by %s: %w", ref, bl.LeaseID, copyjob.ErrLeaseConflict)
	}
	bl.LeaseID = leaseID
	return nil
}

// ReleaseLease implements copyjob.Blobs: ErrLeaseNotHeld when the blob is not leased,
// ErrLeaseConflict when it is leased with another id.
func (b *Blobs) ReleaseLease(ctx context.Context, ref copyjob.BlobRef, leaseID string) error {
	err := b.carryReleaseLease(ctx, ref, leaseID)
	b.loseAnswer(OpReleaseLease, &err)
	return err
}

func (b *Blobs) carryReleaseLease(_ context.Context, ref copyjob.BlobRef, leaseID string) error {
	if err := b.enter(OpReleaseLease); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	bl := b.blobs[ref]
	switch {
	case bl == nil:
		return fmt.Errorf("copyjobtest: %v: %w", ref, copyjob.ErrNotFound)
	case bl.LeaseID == "":
		return fmt.Errorf("copyjobtest: %v: %w", ref, copyjob.ErrLeaseNotHeld)
	case bl.LeaseID != leaseID:
		return fmt.Errorf("copyjobtest: %v leased by %s: %w", ref, bl.LeaseID, copyjob.ErrLeaseConflict)
	}
	bl.LeaseID = ""
	return nil
}

// Snapshot implements copyjob.Blobs; the snapshot is readable as ref with Snapshot set.
func (b *Blobs) Snapshot(ctx context.Context, ref copyjob.BlobRef) (string, error) {
	v, err := b.carrySnapshot(ctx, ref)
	b.loseAnswer(OpSnapshot, &err)
	return v, err
}

func (b *Blobs) carrySnapshot(_ context.Context, ref copyjob.BlobRef) (string, error) {
	if err := b.enter(OpSnapshot); err != nil {
		return "", err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	bl := b.blobs[ref]
	if bl == nil {
		return "", fmt.Errorf("copyjobtest: %v: %w", ref, copyjob.ErrNotFound)
	}
	if bl.Copy.Status == copyjob.StatusPending {
		// Like copysim: no snapshot of a destination whose copy is pending.
		return "", fmt.Errorf("copyjobtest: %v: %w", ref, copyjob.ErrPendingCopy)
	}
	b.seq++
	id := b.now().UTC().Add(time.Duration(b.seq)).Format("2006-01-02T15:04:05.0000000Z")
	snap := &blob{BlobInfo: bl.info(), copySize: bl.copySize}
	snap.LeaseID = ""
	sref := ref
	sref.Snapshot = id
	b.blobs[sref] = snap
	return id, nil
}

// DeleteSnapshot implements copyjob.Blobs.
func (b *Blobs) DeleteSnapshot(ctx context.Context, ref copyjob.BlobRef, snapshot string) error {
	err := b.carryDeleteSnapshot(ctx, ref, snapshot)
	b.loseAnswer(OpDeleteSnapshot, &err)
	return err
}

func (b *Blobs) carryDeleteSnapshot(_ context.Context, ref copyjob.BlobRef, snapshot string) error {
	if err := b.enter(OpDeleteSnapshot); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	sref := ref
	sref.Snapshot = snapshot
	if snapshot == "" || b.blobs[sref] == nil {
		return fmt.Errorf("copyjobtest: %v: %w", sref, copyjob.ErrNotFound)
	}
	delete(b.blobs, sref)
	return nil
}

// Refs lists every blob and snapshot held, sorted.
func (b *Blobs) Refs() []copyjob.BlobRef {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]copyjob.BlobRef, 0, len(b.blobs))
	for r := range b.blobs {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return fmt.Sprint(out[i]) < fmt.Sprint(out[j]) })
	return out
}

// hasSig: a caller's SAS, its parameter named in any letter case (as the adapter reads it).
func hasSig(u *url.URL) bool {
	for k, v := range u.Query() {
		if strings.EqualFold(k, "sig") && len(v) > 0 && v[0] != "" {
			return true
		}
	}
	return false
}
