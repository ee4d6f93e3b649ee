// Package copysim is an in-process fake of the Azure Blob service for the
// asynchronous Copy Blob paths that Azurite cannot reproduce: Azurite always
// finishes a copy synchronously and cannot read external URLs, so pending
// copies, progress, aborts and failed copies are simulated here.
//
// The server speaks the REST subset that the real azblob client uses, with
// path-style URLs (/<account>/<container>/<blob>) for any account name. It
// accepts Shared Key, bearer or SAS authorization without checking
// signatures. Copies start "pending" and stay so until the test calls
// SetProgress, Complete, CompleteWith or Fail (or the client aborts).
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
	faults     map[string]*fault
	etagSeq    uint64
}

type fault struct {
	status int
	code   string
	left   int
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
		faults:     map[string]*fault{},
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
// any blob and its copy state but keeping its lease, like Put Blob.
func (s *Server) PutBlob(account, container, blob string, data []byte, metadata map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.ensureContainer(account, container)
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

// Requests returns every request answered so far, oldest first.
func (s *Server) Requests() []RecordedRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]RecordedRequest(nil), s.requests...)
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

// FailNext makes the next n requests for op fail with status and code
// (e.g. 503 "ServerBusy") before doing anything.
func (s *Server) FailNext(op string, status int, code string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n <= 0 {
		delete(s.faults, op)
		return
	}
	s.faults[op] = &fault{status: status, code: code, left: n}
}

// --- internals; callers hold s.mu unless noted ---

// ErrNoPendingCopy is returned by the control methods when the blob has no
// pending copy.
var ErrNoPendingCopy = errors.New("no pending copy")

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
	return c.blobs[blob]
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
	b := s.lookup(account, container, blob)
	now := s.opts.Now().UTC()
	cp := b.copy
	b.data = nil
	b.etag = s.newETag()
	b.lastModified = now
	cp.Status = StatusFailed
	cp.Description = description
	cp.CompletedAt = now
	s.log.Debug("copy failed", "copy_id", cp.ID, "blob", account+"/"+container+"/"+blob, "description", description)
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
