package azstorage

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/lease"

	"github.com/blobcopy/blobcopy/internal/config"
	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/redact"
)

// Blobs implements copyjob.Blobs over the configured accounts. The account with alias
// "" is the app's default destination account.
type Blobs struct {
	accounts map[string]*Account
	order    []*Account
	now      func() time.Time
}

var _ copyjob.Blobs = (*Blobs)(nil)

// NewBlobs returns the blob adapter for the accounts (aliases must be unique).
func NewBlobs(accounts ...*Account) *Blobs {
	b := &Blobs{accounts: map[string]*Account{}, now: time.Now}
	for _, a := range accounts {
		b.accounts[a.Alias] = a
		b.order = append(b.order, a)
	}
	return b
}

// Account returns the account with the alias.
func (b *Blobs) Account(alias string) (*Account, bool) {
	a, ok := b.accounts[alias]
	return a, ok
}

func (b *Blobs) account(alias string) (*Account, error) {
	a, ok := b.accounts[alias]
	if !ok {
		return nil, fmt.Errorf("%w: %q", copyjob.ErrUnknownAccount, alias)
	}
	return a, nil
}

func (b *Blobs) blobClient(ref copyjob.BlobRef) (*blob.Client, error) {
	a, err := b.account(ref.Account)
	if err != nil {
		return nil, err
	}
	bc := a.Service.NewContainerClient(ref.Container).NewBlobClient(ref.Blob)
	if ref.Snapshot != "" {
		if bc, err = bc.WithSnapshot(ref.Snapshot); err != nil {
			return nil, err
		}
	}
	if ref.VersionID != "" {
		if bc, err = bc.WithVersionID(ref.VersionID); err != nil {
			return nil, err
		}
	}
	return bc, nil
}

// URL returns the blob's URL without any credential.
func (b *Blobs) URL(ref copyjob.BlobRef) (string, error) {
	bc, err := b.blobClient(ref)
	if err != nil {
		return "", err
	}
	return redact.StripQuery(bc.URL()), nil
}

// Locate finds the configured account a blob URL belongs to.
func (b *Blobs) Locate(u *url.URL) (copyjob.BlobRef, bool) {
	for _, a := range b.order {
		if !a.Config.OwnsURL(u) {
			continue
		}
		c, name, ok := a.Config.BlobPath(u)
		if !ok {
			continue
		}
		q := u.Query()
		return copyjob.BlobRef{Account: a.Alias, Container: c, Blob: name, Snapshot: q.Get("snapshot"), VersionID: q.Get("versionid")}, true
	}
	return copyjob.BlobRef{}, false
}

// misspelled refuses a URL that storage could read as a blob of a configured account
// but that Locate does not map: on its endpoint without a well-formed blob path (a dot
// segment, no container), or naming the account elsewhere (another host for the
// endpoint, the secondary endpoint, a trailing dot). Taken for an outside URL, it
// would escape every check bound to the blob (the app's own containers are never a
// source), and Copy Blob reads a source of the destination's own account with the
// destination request's Shared Key.
func (b *Blobs) misspelled(u *url.URL) error {
	for _, a := range b.order {
		switch {
		case a.Config.OwnsURL(u):
			return fmt.Errorf("%w: %q is on the blob endpoint of account %s but names no blob there as written "+
				"(a container, then the blob's name, without \".\" or \"..\" segments)", copyjob.ErrInvalidSource, redact.URL(u.String()), a.Config.Name)
		case a.Config.NamedBy(u):
			return fmt.Errorf("%w: %q names storage account %s but is not on its blob endpoint %s: give the blob's URL on that endpoint",
				copyjob.ErrInvalidSource, redact.URL(u.String()), a.Config.Name, a.Config.BlobEndpoint)
		}
	}
	return nil
}

// PrepareSource classifies the source and, for a blob in another configured account
// (or in an identity-based destination account), signs a read-only SAS for it.
func (b *Blobs) PrepareSource(ctx context.Context, source string, dst copyjob.BlobRef, lifetime time.Duration) (copyjob.PreparedSource, error) {
	u, err := url.Parse(source)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return copyjob.PreparedSource{}, fmt.Errorf("%w: %q is not an http(s) URL", copyjob.ErrInvalidSource, redact.URL(source))
	}
	if u.User != nil {
		return copyjob.PreparedSource{}, fmt.Errorf("%w: credentials in the URL's user info are not supported", copyjob.ErrInvalidSource)
	}
	// Checked and sent as storage reads it: a backslash in the path, a host spelled
	// outside ASCII or as IPv4 numbers in another form would name a configured account
	// past every check below.
	if u, err = config.ReadAsStorage(source, u); err != nil {
		return copyjob.PreparedSource{}, fmt.Errorf("%w: %w", copyjob.ErrInvalidSource, err)
	}
	source = u.String()
	rec := copyjob.Source{URL: redact.StripQuery(source), QueryDropped: redact.DropsQuery(source)}
	ref, known := b.Locate(u)
	if !known {
		if err := b.misspelled(u); err != nil {
			return copyjob.PreparedSource{}, err
		}
	}
	if known {
		r := ref
		rec.Ref = &r
	}
	if sig, se := queryValueFold(u, "sig"), queryValueFold(u, "se"); sig != "" {
		// Names compare without regard to case, as redact's do.
		rec.Kind = copyjob.SourceCallerSAS
		if t, perr := time.Parse(time.RFC3339, se); perr == nil {
			rec.SASExpiresAt = &t
		}
		return copyjob.PreparedSource{ReadURL: source, Source: rec}, nil
	}
	if !known {
		rec.Kind = copyjob.SourceExternal
		return copyjob.PreparedSource{ReadURL: source, Source: rec}, nil
	}
	a := b.accounts[ref.Account]
	if ref.Account == dst.Account && a.sharedKey != nil {
		// Shared Key on the destination authorizes a source in the same account for
		// Copy Blob; Copy Blob From URL (requiresSync) needs a SAS, which StartCopy signs
		// for that one call (syncSource).
		rec.Kind = copyjob.SourceSameAccount
		return copyjob.PreparedSource{ReadURL: source, Source: rec}, nil
	}
	if !a.CanSign() {
		return copyjob.PreparedSource{}, fmt.Errorf("%w: account %q has no key or identity to sign a SAS with", copyjob.ErrInvalidSource, a.Config.Name)
	}
	rec.Kind = copyjob.SourceOtherAccount
	if ref.Account == dst.Account {
		rec.Kind = copyjob.SourceSameAccount
	}
	q, kind, expiry, err := a.signRead(ctx, ref.Container, ref.Blob, ref.Snapshot, ref.VersionID, b.now().UTC(), lifetime)
	if err != nil {
		return copyjob.PreparedSource{}, err
	}
	rec.SASExpiresAt, rec.SASKind = &expiry, kind
	return copyjob.PreparedSource{ReadURL: withSAS(u, q), Source: rec}, nil
}

// withSAS is the blob's URL as storage reads it through a SAS the app signed: its
// snapshot or version, and the SAS query; any other query is dropped.
func withSAS(u *url.URL, sasQuery string) string {
	read := *u
	keep := url.Values{}
	for _, k := range []string{"snapshot", "versionid"} {
		if v := u.Query().Get(k); v != "" {
			keep.Set(k, v)
		}
	}
	read.RawQuery = keep.Encode()
	if read.RawQuery != "" {
		read.RawQuery += "&"
	}
	read.RawQuery += sasQuery
	return read.String()
}

// syncSASLifetime: the SAS a synchronous copy within a Shared Key account reads its
// source with (syncSource) serves that one Copy Blob From URL call, which lasts at most
// copyTryTimeout; the rest is margin for clock skew.
const syncSASLifetime = copyTryTimeout + 5*time.Minute

// syncSource returns what Copy Blob From URL should read for readURL. Unlike the
// asynchronous Copy Blob, Copy Blob From URL reads its source only when it is public
// or authorized by a SAS (or x-ms-copy-source-authorization): the destination request's
// Shared Key does not authorize a source in the same account, and Azure answers
// CannotVerifyCopySource. PrepareSource sends such a source (SourceSameAccount) without
// a SAS, as async Copy Blob needs none; it does not know the copy's kind, so the SAS is
// signed here, with the account key, for this one call. Every other source is read as
// prepared: an outside URL or a caller's SAS as given, another account's blob or an
// identity-only account's through the SAS PrepareSource signed.
func (b *Blobs) syncSource(ctx context.Context, dst copyjob.BlobRef, readURL string) (string, error) {
	u, err := url.Parse(readURL)
	if err != nil || queryValueFold(u, "sig") != "" {
		return readURL, nil
	}
	ref, ok := b.Locate(u)
	if !ok || ref.Account != dst.Account {
		return readURL, nil
	}
	a := b.accounts[ref.Account]
	if a.sharedKey == nil {
		return readURL, nil
	}
	if _, err := snapshotTime(ref.Snapshot, ref.VersionID); err != nil {
		// What storage answers such a value (400 InvalidQueryParameterValue) when it is
		// sent without a SAS, as an asynchronous copy's is.
		return "", fmt.Errorf("%w: %w", copyjob.ErrInvalidValue, err)
	}
	q, _, _, err := a.signRead(ctx, ref.Container, ref.Blob, ref.Snapshot, ref.VersionID, b.now().UTC(), syncSASLifetime)
	if err != nil {
		return "", err
	}
	return withSAS(u, q), nil
}

// StartCopy starts Copy Blob (or the synchronous Copy Blob From URL).
func (b *Blobs) StartCopy(ctx context.Context, dst copyjob.BlobRef, readURL string, opts copyjob.StartCopyOptions) (copyjob.CopyState, error) {
	bc, err := b.blobClient(dst)
	if err != nil {
		return copyjob.CopyState{}, err
	}
	var access *blob.AccessConditions
	if opts.IfNotExists {
		access = &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfNoneMatch: to.Ptr(azcore.ETagAny)}}
	}
	var tier *blob.AccessTier
	if opts.Tier != "" {
		tier = to.Ptr(blob.AccessTier(opts.Tier))
	}
	if opts.RequiresSync {
		if readURL, err = b.syncSource(ctx, dst, readURL); err != nil {
			return copyjob.CopyState{}, err
		}
	}
	state, err := b.startCopy(ctx, bc, readURL, opts, access, tier)
	if opts.CreateContainer && errors.Is(err, copyjob.ErrNotFound) && bloberror.HasCode(err, bloberror.ContainerNotFound) {
		// Like AzCopy, create a missing destination container (the allowlist has
		// already said the container is acceptable), then try once more.
		a, _ := b.account(dst.Account)
		if _, cerr := a.Service.CreateContainer(ctx, dst.Container, nil); cerr == nil || bloberror.HasCode(cerr, bloberror.ContainerAlreadyExists) {
			state, err = b.startCopy(ctx, bc, readURL, opts, access, tier)
		}
	}
	if err != nil {
		b.dropRefusedKey(readURL, err)
	}
	// Copy Blob's answer carries no length: a copy that finished at once has none here
	// (issue 13: a read for it cost every such start a request; see copyjob.adopt).
	return state, err
}

// dropRefusedKey forgets the user-delegation key a refused copy source was signed with.
// Storage answers CannotVerifyCopySource 401 or 403 when it cannot read the source with
// the SAS given, e.g. after the source account's user-delegation keys were revoked;
// without this, every copy (and every retry, whose "fresh" SAS would be signed with the
// same key) would be refused until the key's age ran out (udkMaxAge).
func (b *Blobs) dropRefusedKey(readURL string, err error) {
	if !bloberror.HasCode(err, bloberror.CannotVerifyCopySource) {
		return
	}
	if status := statusCode(err); status != 401 && status != 403 {
		return
	}
	u, perr := url.Parse(readURL)
	if perr != nil {
		return
	}
	q := u.Query()
	if q.Get("skoid") == "" {
		return // not a user-delegation SAS
	}
	keyEnd, perr := time.Parse(time.RFC3339, q.Get("ske"))
	if perr != nil {
		return
	}
	if ref, ok := b.Locate(u); ok {
		b.accounts[ref.Account].dropKey(keyEnd)
	}
}

func (b *Blobs) startCopy(ctx context.Context, bc *blob.Client, readURL string, opts copyjob.StartCopyOptions, access *blob.AccessConditions, tier *blob.AccessTier) (copyjob.CopyState, error) {
	// One try, no SDK retry: Copy Blob is not idempotent. After a 500 OperationTimedOut
	// or a lost answer the copy may have started; a blind retry then meets it (409) or,
	// had it already finished, starts a second copy. The copy service retries instead,
	// after reading the destination to adopt a copy that did start.
	ctx = policy.WithRetryOptions(ctx, policy.RetryOptions{MaxRetries: -1, TryTimeout: copyTryTimeout})
	var state copyjob.CopyState
	if opts.RequiresSync {
		// Storage carries the copy out before answering: it must give up when this try does
		// (see servertimeout.go).
		limit := copyTryTimeout
		if opts.MaxServerTime > 0 {
			limit = min(limit, opts.MaxServerTime)
		}
		ctx := withServerTimeout(ctx, serverTimeoutUntilDeadline(ctx, limit))
		resp, err := bc.CopyFromURL(ctx, readURL, &blob.CopyFromURLOptions{
			Metadata: ptrMap(opts.Metadata), BlobTags: opts.Tags, Tier: tier, BlobAccessConditions: access,
		})
		if err != nil {
			return state, startCopyErr(err)
		}
		state.CopyID, state.Status = deref(resp.CopyID), copyjob.Status(deref((*string)(resp.CopyStatus)))
	} else {
		resp, err := bc.StartCopyFromURL(ctx, readURL, &blob.StartCopyFromURLOptions{
			Metadata: ptrMap(opts.Metadata), BlobTags: opts.Tags, Tier: tier, AccessConditions: access,
		})
		if err != nil {
			return state, startCopyErr(err)
		}
		state.CopyID, state.Status = deref(resp.CopyID), copyjob.Status(deref((*string)(resp.CopyStatus)))
	}
	return state, nil
}

// copyTryTimeout bounds one Copy Blob try (Copy Blob From URL copies up to 256 MiB
// before answering; Azure's own server timeout for it is longer than for Copy Blob).
const copyTryTimeout = 5 * time.Minute

func startCopyErr(err error) error {
	switch {
	case bloberror.HasCode(err, bloberror.BlobNotFound):
		// On Copy Blob, a missing blob is the source: the destination is created.
		return fmt.Errorf("%w: %w", copyjob.ErrSourceNotFound, concise(err))
	case bloberror.HasCode(err, bloberror.CannotVerifyCopySource):
		// Storage could not read the source; the status is the source's answer.
		switch status := statusCode(err); {
		case status == 404:
			return fmt.Errorf("%w: %w", copyjob.ErrSourceNotFound, concise(err))
		case status >= 500:
			return fmt.Errorf("%w: %w", copyjob.ErrUnavailable, concise(err))
		}
		return fmt.Errorf("%w: %w", copyjob.ErrSourceUnreadable, concise(err))
	case bloberror.HasCode(err, bloberror.ConditionNotMet, bloberror.TargetConditionNotMet):
		// If-None-Match: * refused an existing destination.
		return fmt.Errorf("%w: %w", copyjob.ErrExists, concise(err))
	}
	return mapBlobErr(err)
}

// CopyState reads the destination's copy properties.
func (b *Blobs) CopyState(ctx context.Context, dst copyjob.BlobRef) (copyjob.CopyState, error) {
	bc, err := b.blobClient(dst)
	if err != nil {
		return copyjob.CopyState{}, err
	}
	p, err := bc.GetProperties(ctx, nil)
	if err != nil {
		if statusCode(err) == 404 {
			// HEAD answers carry no error body, so the code may be missing.
			return copyjob.CopyState{}, fmt.Errorf("%w: %w", copyjob.ErrNotFound, err)
		}
		return copyjob.CopyState{}, mapBlobErr(err)
	}
	return copyProperties{ID: p.CopyID, Status: (*string)(p.CopyStatus), Description: p.CopyStatusDescription,
		CompletedAt: p.CopyCompletionTime, Source: p.CopySource, Progress: p.CopyProgress,
		LastModified: p.LastModified, Length: p.ContentLength}.state(), nil
}

// copyProperties are a blob's copy properties as Get Blob Properties and List Blobs
// (include=copy) both give them, in their own SDK types.
type copyProperties struct {
	ID, Status, Description, Source, Progress *string
	CompletedAt, LastModified                 *time.Time
	Length                                    *int64
}

// state is what the copy service reads of them: texts redacted (a source URL may carry
// a SAS), and a finished copy's length for its progress when x-ms-copy-progress is
// missing.
func (p copyProperties) state() copyjob.CopyState {
	st := copyjob.CopyState{
		CopyID:      deref(p.ID),
		Status:      copyjob.Status(deref(p.Status)),
		Description: redact.Text(deref(p.Description)),
		CompletedAt: p.CompletedAt,
		SourceURL:   redact.URL(deref(p.Source)),
		Progress:    parseProgress(deref(p.Progress)),
	}
	if p.LastModified != nil {
		st.LastModified = *p.LastModified
	}
	if st.Progress.BytesTotal == 0 && st.Status == copyjob.StatusSuccess && p.Length != nil {
		st.Progress = copyjob.Progress{BytesCopied: *p.Length, BytesTotal: *p.Length}
	}
	return st
}

func parseProgress(s string) copyjob.Progress {
	done, total, ok := strings.Cut(s, "/")
	if !ok {
		return copyjob.Progress{}
	}
	d, err1 := strconv.ParseInt(strings.TrimSpace(done), 10, 64)
	t, err2 := strconv.ParseInt(strings.TrimSpace(total), 10, 64)
	if err1 != nil || err2 != nil {
		return copyjob.Progress{}
	}
	return copyjob.Progress{BytesCopied: d, BytesTotal: t}
}

// AbortCopy aborts a pending copy by its id.
func (b *Blobs) AbortCopy(ctx context.Context, dst copyjob.BlobRef, copyID string) error {
	bc, err := b.blobClient(dst)
	if err != nil {
		return err
	}
	_, err = bc.AbortCopyFromURL(ctx, copyID, nil)
	return mapBlobErr(err)
}

// AcquireLease takes an infinite lease: a copy may run for days and a finite lease
// would depend on every tick renewing it in time; the job record names the lease, so
// the tick (or an abort) always releases it.
func (b *Blobs) AcquireLease(ctx context.Context, ref copyjob.BlobRef, leaseID string) error {
	lc, err := b.leaseClient(ref, leaseID)
	if err != nil {
		return err
	}
	_, err = lc.AcquireLease(ctx, -1, nil)
	if bloberror.HasCode(err, bloberror.LeaseAlreadyPresent) {
		// Held already: by us (a resumed start) if renewing with our id works.
		if _, rerr := lc.RenewLease(ctx, nil); rerr == nil {
			return nil
		}
	}
	return mapBlobErr(err)
}

// ReleaseLease releases the lease. Storage answers a release on a blob without any
// lease with the same LeaseIdMismatchWithLeaseOperation as one on a blob leased by
// someone else, so on that answer the lease state decides: a free blob means the lease
// is no longer held (released before, e.g. by a run that crashed before recording it);
// a leased, breaking or broken one means someone else took or broke it.
func (b *Blobs) ReleaseLease(ctx context.Context, ref copyjob.BlobRef, leaseID string) error {
	lc, err := b.leaseClient(ref, leaseID)
	if err != nil {
		return err
	}
	_, err = lc.ReleaseLease(ctx, nil)
	if err == nil || !bloberror.HasCode(err, bloberror.LeaseIDMismatchWithLeaseOperation) {
		return mapBlobErr(err)
	}
	ref.Snapshot, ref.VersionID = "", ""
	bc, cerr := b.blobClient(ref)
	if cerr != nil {
		return cerr
	}
	props, perr := bc.GetProperties(ctx, nil)
	if perr != nil {
		return mapBlobErr(perr)
	}
	if props.LeaseState != nil && (*props.LeaseState == lease.StateTypeAvailable || *props.LeaseState == lease.StateTypeExpired) {
		return fmt.Errorf("%w: %w", copyjob.ErrLeaseNotHeld, concise(err))
	}
	return mapBlobErr(err) // ErrLeaseConflict
}

func (b *Blobs) leaseClient(ref copyjob.BlobRef, leaseID string) (*lease.BlobClient, error) {
	ref.Snapshot, ref.VersionID = "", "" // leases live on the base blob
	bc, err := b.blobClient(ref)
	if err != nil {
		return nil, err
	}
	return lease.NewBlobClient(bc, &lease.BlobClientOptions{LeaseID: to.Ptr(leaseID)})
}

// Snapshot snapshots the blob.
func (b *Blobs) Snapshot(ctx context.Context, ref copyjob.BlobRef) (string, error) {
	bc, err := b.blobClient(ref)
	if err != nil {
		return "", err
	}
	resp, err := bc.CreateSnapshot(ctx, nil)
	if err != nil {
		return "", mapBlobErr(err)
	}
	return deref(resp.Snapshot), nil
}

// DeleteSnapshot deletes one snapshot of the blob.
func (b *Blobs) DeleteSnapshot(ctx context.Context, ref copyjob.BlobRef, snapshot string) error {
	if snapshot == "" {
		return fmt.Errorf("%w: no snapshot named", copyjob.ErrNotFound)
	}
	ref.Snapshot, ref.VersionID = snapshot, ""
	bc, err := b.blobClient(ref)
	if err != nil {
		return err
	}
	_, err = bc.Delete(ctx, nil)
	return mapBlobErr(err)
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func ptrMap(m map[string]string) map[string]*string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]*string, len(m))
	for k, v := range m {
		out[k] = to.Ptr(v)
	}
	return out
}

// queryValueFold returns the first value of the query parameter named name in any
// letter case.
func queryValueFold(u *url.URL, name string) string {
	for k, v := range u.Query() {
		if strings.EqualFold(k, name) && len(v) > 0 && v[0] != "" {
			return v[0]
		}
	}
	return ""
}
