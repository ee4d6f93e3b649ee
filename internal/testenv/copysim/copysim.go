// Package copysim is an in-process fake of the Azure Blob service for the
// asynchronous Copy Blob paths that Azurite cannot reproduce: Azurite always
// finishes a copy synchronously and cannot read external URLs, so pending
// copies, progress, aborts and failed copies are simulated here.
//
// The server speaks the REST subset that the real azblob client uses, with
// path-style URLs (/<account>/<container>/<blob>) for any account name. It
// accepts Shared Key, bearer or SAS authorization without checking
// signatures. Copies start "pending" and stay so until the test calls
// SetProgress, Complete, CompleteWith or Fail (or the client aborts), or until the
// simulator clock passes Azure's two-week limit.
//
// It is as strict as Azure where the app's pending paths depend on it, each rule citing
// the REST reference page it follows: no write, snapshot or new lease on a destination
// whose copy is pending (409 PendingCopyOperation); 412 LeaseIdMissing for writes to a
// leased blob; x-ms-copy-source answered with its SAS; non-fatal status descriptions
// (SetStatusDescription); dead external sources refused at the start (with
// FetchSource); Copy Blob From URL limited to 256 MiB; a pending destination changes
// hands only through abort and restart (RestartCopy). FailNext injects faults before
// an operation or after it (the operation happens, its answer is lost or is a 5xx).
package copysim

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Options configure New.
type Options struct {
	// FetchSource makes Complete read an external copy source with an HTTP
	// GET; otherwise an external source is never contacted and completing
	// gives the destination Total zero bytes.
	FetchSource bool
	// HTTPClient fetches external sources (default http.DefaultClient).
	HTTPClient *http.Client
	// SyncInternalCopies completes copies whose source is in this simulator
	// at once (202 with status success), as Azure usually does within an
	// account. By default every copy starts pending.
	SyncInternalCopies bool
	// AllowAnonymous accepts requests without any authorization.
	AllowAnonymous bool
	// OnCopyStart is called (outside the simulator's lock, before the 202 is
	// sent) for every copy that starts pending; it may call Complete etc.
	OnCopyStart func(CopyStart)
	// Now is the simulator's clock (default time.Now); it drives lease
	// expiry, SAS expiry and timestamps.
	Now func() time.Time
	// Logger receives one debug line per request (default: discard).
	Logger *slog.Logger
}

// Server is a running simulator. All methods are safe for concurrent use.
type Server struct {
	opts Options
	srv  *httptest.Server
	log  *slog.Logger

	mu         sync.Mutex
	containers map[string]*containerEntry // "account/container"
	requests   []RecordedRequest
	counts     map[string]int
	copies     map[string]*copyRecord // every copy ever started, by id
	faults     []*fault
	etagSeq    uint64
}

// New starts a simulator on a loopback port; Close stops it.
func New(opts Options) *Server {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = http.DefaultClient
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		opts:       opts,
		log:        log,
		containers: map[string]*containerEntry{},
		counts:     map[string]int{},
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	return s
}

// Close shuts the server down.
func (s *Server) Close() { s.srv.Close() }

// URL is the server's base URL, e.g. http://127.0.0.1:PORT.
func (s *Server) URL() string { return s.srv.URL }

// AccountEndpoint is the blob endpoint of account (URL()+"/"+account).
func (s *Server) AccountEndpoint(account string) string { return s.srv.URL + "/" + account }

// AccountKey is a valid base64 key usable for any account (never checked).
const AccountKey = "c2ltdWxhdG9yLWtleS1ub3QtY2hlY2tlZC1zaW11bGF0b3Ita2V5LW5vdC1jaGVja2Vk"

// ConnectionString returns a connection string for account.
func (s *Server) ConnectionString(account string) string {
	return fmt.Sprintf("DefaultEndpointsProtocol=http;AccountName=%s;AccountKey=%s;BlobEndpoint=%s;",
		account, AccountKey, s.AccountEndpoint(account))
}

// CreateContainer creates a container if it does not exist.
func (s *Server) CreateContainer(account, container string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ensureContainer(account, container)
}

// PutBlob stores a block blob (creating the container if needed), replacing
// any blob and its ended copy's state but keeping its lease, like Put Blob. Like Put
// Blob, it refuses a destination whose copy is pending (ErrPendingCopy): Azure allows
// no write there (https://learn.microsoft.com/rest/api/storageservices/copy-blob), so
// "someone overwrote the destination" can only happen after the copy ended, or after
// another client aborted the copy and started another (see RestartCopy).
func (s *Server) PutBlob(account, container, blob string, data []byte, metadata map[string]string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.ensureContainer(account, container)
	if old := s.current(c.blobs[blob]); old != nil && old.copy != nil && old.copy.Status == StatusPending {
		return fmt.Errorf("copysim: put %s/%s/%s: %w", account, container, blob, ErrPendingCopy)
	}
	now := s.opts.Now().UTC()
	b := &blobEntry{
		data:         append([]byte(nil), data...),
		contentType:  "application/octet-stream",
		metadata:     maps.Clone(metadata),
		etag:         s.newETag(),
		created:      now,
		lastModified: now,
	}
	if old := c.blobs[blob]; old != nil {
		b.lease, b.created = old.lease, old.created
	}
	c.blobs[blob] = b
	return nil
}

// BlobData returns a copy of a blob's content.
func (s *Server) BlobData(account, container, blob string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.lookup(account, container, blob)
	if b == nil {
		return nil, false
	}
	return append([]byte(nil), b.data...), true
}

// Copy returns the copy state of a destination blob; false if the blob does
// not exist or never was a copy destination.
func (s *Server) Copy(account, container, blob string) (CopyState, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.lookup(account, container, blob)
	if b == nil || b.copy == nil {
		return CopyState{}, false
	}
	return b.copy.CopyState, true
}

// SetProgress sets the bytes copied of a pending copy (clamped to Total).
func (s *Server) SetProgress(account, container, blob string, copied int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cp, err := s.pending(account, container, blob)
	if err != nil {
		return err
	}
	cp.Copied = min(max(copied, 0), cp.Total)
	return nil
}

// SetTotal sets the total size reported for a pending copy, for external
// sources whose size the simulator cannot know.
func (s *Server) SetTotal(account, container, blob string, total int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cp, err := s.pending(account, container, blob)
	if err != nil {
		return err
	}
	cp.Total = max(total, 0)
	cp.Copied = min(cp.Copied, cp.Total)
	return nil
}

// Complete finishes a pending copy. An internal source gives its bytes; an
// external one is fetched with FetchSource, otherwise Total zero bytes are
// stored. The copy ends failed instead when the source SAS has expired
// (se= before now), when an internal source changed or vanished since the
// start, or when fetching fails. The returned error is only about misuse
// (no such blob, nothing pending); inspect Copy for the outcome.
func (s *Server) Complete(account, container, blob string) error {
	s.mu.Lock()
	cp, err := s.pending(account, container, blob)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	if cp.internal != nil || !s.opts.FetchSource || s.sasExpired(cp) {
		defer s.mu.Unlock()
		s.finishLocked(account, container, blob, nil)
		return nil
	}
	src := cp.sourceURL.String()
	id := cp.ID
	s.mu.Unlock()

	// Fetch without holding the lock: the source may be this very server.
	data, ferr := s.fetch(src)

	s.mu.Lock()
	defer s.mu.Unlock()
	cp, err = s.pending(account, container, blob)
	if err != nil || cp.ID != id {
		return fmt.Errorf("copy %s on %s/%s/%s ended while fetching its source", id, account, container, blob)
	}
	if ferr != nil {
		s.failLocked(account, container, blob, ferr.Error())
		return nil
	}
	s.finishLocked(account, container, blob, data)
	return nil
}

// CompleteWith finishes a pending copy successfully with the given content,
// whatever the source.
func (s *Server) CompleteWith(account, container, blob string, data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cp, err := s.pending(account, container, blob)
	if err != nil {
		return err
	}
	s.succeedLocked(account, container, blob, cp, data)
	return nil
}

// Fail ends a pending copy as failed with description, which Azure formats
// as `<HTTP status> <code> "<message>"`, e.g.
// `404 ResourceNotFound "Copy failed when reading the source."`.
func (s *Server) Fail(account, container, blob, description string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.pending(account, container, blob); err != nil {
		return err
	}
	s.failLocked(account, container, blob, description)
	return nil
}

// SetStatusDescription sets the non-fatal x-ms-copy-status-description of a
// pending copy, e.g. `502 BadGateway "Encountered a retryable error when reading the
// source. Will retry..."`: "Intermittent, non-fatal errors that can occur during a copy
// might impede the progress of the copy but not cause it to fail. In these cases,
// x-ms-copy-status-description describes the intermittent errors."
// (https://learn.microsoft.com/rest/api/storageservices/copy-blob, Remarks; Get Blob
// Properties: the header "only appears when x-ms-copy-status is failed or pending").
// The copy stays pending; success clears the description.
func (s *Server) SetStatusDescription(account, container, blob, description string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cp, err := s.pending(account, container, blob)
	if err != nil {
		return err
	}
	cp.Description = description
	return nil
}

// RestartCopy does what another client holding the copy id may do to a pending
// copy: Abort Copy Blob, then Copy Blob again from the same source. The destination
// then carries a new copy id (returned), which is how a pending destination gets
// "overwritten" on Azure: no write reaches a blob while its copy is pending
// (https://learn.microsoft.com/rest/api/storageservices/abort-copy-blob,
// https://learn.microsoft.com/rest/api/storageservices/copy-blob). The destination's
// lease, if any, is not checked: the other client is assumed to hold it.
func (s *Server) RestartCopy(account, container, blob string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, err := s.pending(account, container, blob)
	if err != nil {
		return "", err
	}
	b := s.lookup(account, container, blob)
	now := s.opts.Now().UTC()
	old.Status, old.CompletedAt = StatusAborted, now
	cp := &copyRecord{
		CopyState: CopyState{ID: newUUID(), Source: old.Source, Status: StatusPending, SourceExpiry: old.SourceExpiry, Total: old.Total},
		sourceURL: old.sourceURL,
		internal:  old.internal,
		started:   now,
	}
	cp.Destination = account + "/" + container + "/" + blob
	s.rememberCopy(cp)
	if cp.internal != nil {
		if src := s.lookupRef(*cp.internal); src != nil {
			cp.Total, cp.srcETag = int64(len(src.data)), src.etag
		}
	}
	b.data = nil
	b.copy = cp
	b.etag = s.newETag()
	b.lastModified = now
	return cp.ID, nil
}

// Lease returns the lease state of a blob (State "available" if missing).
func (s *Server) Lease(account, container, blob string) LeaseState {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.lookup(account, container, blob)
	if b == nil {
		return LeaseState{State: "available", Status: "unlocked"}
	}
	return b.lease.view(s.opts.Now())
}

// Snapshots returns the snapshot ids of a blob, in no order.
func (s *Server) Snapshots(account, container, blob string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.containers[account+"/"+container]
	if c == nil {
		return nil
	}
	var ids []string
	for id := range c.snapshots[blob] {
		ids = append(ids, id)
	}
	return ids
}

// Requests returns every request answered so far, oldest first.
func (s *Server) Requests() []RecordedRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]RecordedRequest(nil), s.requests...)
}

// rememberCopy keeps a copy's record findable by id after its destination moves on.
func (s *Server) rememberCopy(cp *copyRecord) {
	if s.copies == nil {
		s.copies = map[string]*copyRecord{}
	}
	s.copies[cp.ID] = cp
}

// CopyByID returns a copy's state by its id, also after its destination was deleted or
// carries another copy: how storage ended it is what a job's outcome must equal.
func (s *Server) CopyByID(id string) (CopyState, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cp, ok := s.copies[id]
	if !ok {
		return CopyState{}, false
	}
	return cp.CopyState, true
}

// CopyIDs lists the ids of every copy started, in no order.
func (s *Server) CopyIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, 0, len(s.copies))
	for id := range s.copies {
		ids = append(ids, id)
	}
	return ids
}

// RequestCount is the number of requests for op (e.g. OpCopyBlob) since
// the start or the last ResetCounts, injected faults included.
func (s *Server) RequestCount(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[op]
}

// ResetCounts forgets recorded requests and counts.
func (s *Server) ResetCounts() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = nil
	s.counts = map[string]int{}
}

// --- internals; callers hold s.mu unless noted ---

// ErrNoPendingCopy is returned by the control methods when the blob has no
// pending copy.
var ErrNoPendingCopy = errors.New("no pending copy")

// ErrPendingCopy is returned by PutBlob on a destination whose copy is pending.
var ErrPendingCopy = errors.New("a copy is pending on the blob")

func (s *Server) pending(account, container, blob string) (*copyRecord, error) {
	b := s.lookup(account, container, blob)
	if b == nil {
		return nil, fmt.Errorf("copysim: blob %s/%s/%s does not exist", account, container, blob)
	}
	if b.copy == nil || b.copy.Status != StatusPending {
		return nil, fmt.Errorf("copysim: %s/%s/%s: %w", account, container, blob, ErrNoPendingCopy)
	}
	return b.copy, nil
}

func (s *Server) ensureContainer(account, container string) *containerEntry {
	key := account + "/" + container
	c := s.containers[key]
	if c == nil {
		c = &containerEntry{
			created:   s.opts.Now().UTC(),
			etag:      s.newETag(),
			blobs:     map[string]*blobEntry{},
			snapshots: map[string]map[string]*blobEntry{},
		}
		s.containers[key] = c
	}
	return c
}

func (s *Server) lookup(account, container, blob string) *blobEntry {
	c := s.containers[account+"/"+container]
	if c == nil {
		return nil
	}
	return s.current(c.blobs[blob])
}

func (s *Server) lookupRef(r blobRef) *blobEntry {
	if r.snapshot == "" {
		return s.lookup(r.account, r.container, r.blob)
	}
	c := s.containers[r.account+"/"+r.container]
	if c == nil {
		return nil
	}
	return c.snapshots[r.blob][r.snapshot]
}

func (s *Server) newETag() string {
	s.etagSeq++
	return fmt.Sprintf("\"0x8DD%013X\"", uint64(s.opts.Now().UnixNano()/1000)+s.etagSeq)
}

func (s *Server) sasExpired(cp *copyRecord) bool {
	return !cp.SourceExpiry.IsZero() && s.opts.Now().After(cp.SourceExpiry)
}

// finishLocked ends a pending copy the way the service would: failed if the
// source became unreadable, else success with the source's bytes (or data
// for a fetched external source).
func (s *Server) finishLocked(account, container, blob string, fetched []byte) {
	b := s.lookup(account, container, blob)
	cp := b.copy
	now := s.opts.Now().UTC()
	if s.sasExpired(cp) {
		s.failLocked(account, container, blob, fmt.Sprintf(
			"403 AuthenticationFailed \"Copy failed when reading the source. Signed expiry time [%s] has to be after signed start time [%s]\"",
			cp.SourceExpiry.UTC().Format(http.TimeFormat), now.Format(http.TimeFormat)))
		return
	}
	switch {
	case cp.internal != nil:
		src := s.lookupRef(*cp.internal)
		if src == nil {
			s.failLocked(account, container, blob, `404 ResourceNotFound "Copy failed when reading the source."`)
			return
		}
		if src.etag != cp.srcETag {
			s.failLocked(account, container, blob, `412 ConditionNotMet "The source blob was modified during the copy."`)
			return
		}
		s.succeedLocked(account, container, blob, cp, src.data)
	case fetched != nil:
		s.succeedLocked(account, container, blob, cp, fetched)
	default:
		s.succeedLocked(account, container, blob, cp, make([]byte, cp.Total))
	}
}

func (s *Server) succeedLocked(account, container, blob string, cp *copyRecord, data []byte) {
	b := s.lookup(account, container, blob)
	now := s.opts.Now().UTC()
	b.data = append([]byte(nil), data...)
	b.etag = s.newETag()
	b.lastModified = now
	cp.Status = StatusSuccess
	cp.Total = int64(len(data))
	cp.Copied = cp.Total
	cp.Description = ""
	cp.CompletedAt = now
	s.log.Debug("copy completed", "copy_id", cp.ID, "blob", account+"/"+container+"/"+blob, "bytes", len(data))
}

func (s *Server) failLocked(account, container, blob, description string) {
	s.failEntry(s.lookup(account, container, blob), description)
}

// failEntry ends b's pending copy as failed, leaving an empty blob.
func (s *Server) failEntry(b *blobEntry, description string) {
	now := s.opts.Now().UTC()
	cp := b.copy
	b.data = nil
	b.etag = s.newETag()
	b.lastModified = now
	cp.Status = StatusFailed
	cp.Description = description
	cp.CompletedAt = now
	s.log.Debug("copy failed", "copy_id", cp.ID, "description", description)
}

// copyTimeout is how long a copy may stay pending: "A pending Copy Blob operation has
// a two-week timeout. A copy attempt that hasn't completed after two weeks times out
// and leaves an empty blob with x-ms-copy-status set to failed and
// x-ms-copy-status-description set to 500 (OperationCancelled)."
// (https://learn.microsoft.com/rest/api/storageservices/copy-blob, Remarks.)
const copyTimeout = 14 * 24 * time.Hour

// copyTimeoutDescription is that failure, in the `<status> <code> "<message>"` form
// the service uses for copy descriptions; the message is the simulator's own.
const copyTimeoutDescription = `500 OperationCancelled "The copy did not complete within two weeks."`

// current applies the time-driven end of b's copy (the two-week limit) and returns b;
// every path that reads or writes a blob goes through it (b may be nil).
func (s *Server) current(b *blobEntry) *blobEntry {
	if b == nil || b.copy == nil || b.copy.Status != StatusPending {
		return b
	}
	if s.opts.Now().Sub(b.copy.started) >= copyTimeout {
		s.failEntry(b, copyTimeoutDescription)
	}
	return b
}

// fetch GETs an external source; called without s.mu.
func (s *Server) fetch(src string) ([]byte, error) {
	resp, err := s.opts.HTTPClient.Get(src)
	if err != nil {
		return nil, fmt.Errorf(`500 InternalError "Copy failed when reading the source: %s"`, redactErr(err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf(`500 InternalError "Copy failed when reading the source: %s"`, redactErr(err))
	}
	if resp.StatusCode != http.StatusOK {
		code := resp.Header.Get("x-ms-error-code")
		if code == "" {
			code = strings.ReplaceAll(http.StatusText(resp.StatusCode), " ", "")
		}
		return nil, fmt.Errorf(`%d %s "Copy failed when reading the source."`, resp.StatusCode, code)
	}
	return data, nil
}

// redactErr keeps SAS signatures in URLs out of copy descriptions.
func redactErr(err error) string {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return uerr.Op + " " + redactURL(uerr.URL) + ": " + uerr.Err.Error()
	}
	return err.Error()
}

// redactURL removes the sig= parameter of a SAS, as Azure does in
// x-ms-copy-source (the signature is a secret: never log or return it).
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparsable URL>"
	}
	return redactParsed(u)
}

func redactParsed(u *url.URL) string {
	q := u.Query()
	if !q.Has("sig") {
		return u.String()
	}
	q.Del("sig")
	c := *u
	c.RawQuery = q.Encode()
	return c.String()
}
