package copysim

import (
	"crypto/rand"
	"encoding/xml"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// serviceVersion is answered when the client sends no x-ms-version.
const serviceVersion = "2026-06-06"

// snapshotFormat is how Azure spells snapshot timestamps (100 ns ticks).
const snapshotFormat = "2006-01-02T15:04:05.0000000Z"

// messages holds the service's wording for the error codes used here.
var messages = map[string]string{
	"AuthenticationFailed":               "Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly including the signature.",
	"BlobAlreadyExists":                  "The specified blob already exists.",
	"BlobNotFound":                       "The specified blob does not exist.",
	"CannotVerifyCopySource":             "Could not verify the copy source within the specified time.",
	"ConditionNotMet":                    "The condition specified using HTTP conditional header(s) is not met.",
	"ContainerAlreadyExists":             "The specified container already exists.",
	"ContainerNotFound":                  "The specified container does not exist.",
	"CopyIdMismatch":                     "The specified copy ID did not match the copy ID for the pending copy operation.",
	"InvalidHeaderValue":                 "The value for one of the HTTP headers is not in the correct format.",
	"InvalidRange":                       "The range specified is invalid for the current size of the resource.",
	"LeaseAlreadyPresent":                "There is already a lease present.",
	"LeaseIdMismatchWithBlobOperation":   "The lease ID specified did not match the lease ID for the blob.",
	"LeaseIdMismatchWithLeaseOperation":  "The lease ID specified did not match the lease ID for the blob.",
	"LeaseIdMissing":                     "There is currently a lease on the blob and no lease ID was specified in the request.",
	"LeaseIsBreakingAndCannotBeAcquired": "There is already a breaking lease on the blob and it cannot be acquired.",
	"LeaseIsBreakingAndCannotBeChanged":  "There is already a breaking lease on the blob and it cannot be changed.",
	"LeaseIsBrokenAndCannotBeRenewed":    "The lease ID matched, but the lease has been broken explicitly and cannot be renewed.",
	"LeaseNotPresentWithBlobOperation":   "There is currently no lease on the blob.",
	"LeaseNotPresentWithLeaseOperation":  "There is currently no lease on the blob.",
	"NoPendingCopyOperation":             "There is currently no pending copy operation.",
	"NotImplemented":                     "The copy simulator does not implement this operation.",
	"PendingCopyOperation":               "There is currently a pending copy operation.",
	"SnapshotsPresent":                   "This operation is not permitted because the blob has snapshots.",
	"SourceConditionNotMet":              "The source condition specified using HTTP conditional header(s) is not met.",
}

// exchange is one request being served; handlers fill status/header/body,
// which serveHTTP writes after releasing the lock.
type exchange struct {
	r                        *http.Request
	op                       string
	account, container, blob string
	requestID                string
	now                      time.Time

	status  int
	code    string
	header  http.Header
	body    []byte
	started *CopyStart
	probe   sourceProbe // Copy Blob of an external source with FetchSource
}

func (x *exchange) fail(status int, code, detail string) {
	msg := messages[code]
	if msg == "" {
		msg = code
	}
	if detail != "" {
		msg += " " + detail
	}
	x.status, x.code = status, code
	x.header.Set("x-ms-error-code", code)
	x.header.Set("Content-Type", "application/xml")
	x.body = fmt.Appendf(nil, "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>%s</Code><Message>%s\nRequestId:%s\nTime:%s</Message></Error>",
		code, xmlEscape(msg), x.requestID, x.now.Format("2006-01-02T15:04:05.0000000Z"))
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	now := s.opts.Now().UTC()
	x := &exchange{r: r, requestID: newUUID(), now: now, header: http.Header{}, status: http.StatusOK}
	x.account, x.container, x.blob = splitPath(r.URL.Path)
	x.op = classify(r, x.container, x.blob)

	s.mu.Lock()
	s.counts[x.op]++
	f := s.takeFaultLocked(x)
	s.mu.Unlock()

	if f != nil && f.When == Before {
		sleep(r.Context(), f.Delay)
	}
	if x.op == OpCopyBlob && (f == nil || f.When == After || (f.Status == 0 && !f.Drop)) {
		// Outside the lock: the source may be slow, or this very server.
		x.probe = s.probeSource(r.Header.Get("x-ms-copy-source"))
	}
	s.mu.Lock()
	switch {
	case f != nil && f.When == Before && f.Drop:
	case f != nil && f.When == Before && f.Status != 0:
		f.answer(x)
	default:
		if s.authorize(x) {
			s.dispatch(x)
		}
	}
	s.mu.Unlock()

	// Outside the lock so that the callback may drive the copy.
	if x.started != nil && s.opts.OnCopyStart != nil {
		s.opts.OnCopyStart(*x.started)
	}
	if f != nil && f.When == After {
		sleep(r.Context(), f.Delay)
		if f.Status != 0 {
			f.answer(x)
		}
	}
	if f != nil && f.Drop && drop(w) {
		s.record(x, now, 0, "(connection dropped)")
		return
	}

	h := w.Header()
	maps.Copy(h, x.header)
	h.Set("x-ms-request-id", x.requestID)
	v := r.Header.Get("x-ms-version")
	if v == "" {
		v = serviceVersion
	}
	h.Set("x-ms-version", v)
	h.Set("Date", now.Format(http.TimeFormat))
	if id := r.Header.Get("x-ms-client-request-id"); id != "" {
		h.Set("x-ms-client-request-id", id)
	}
	if r.Method == http.MethodHead {
		if h.Get("Content-Length") == "" {
			h.Set("Content-Length", "0")
		}
		w.WriteHeader(x.status)
	} else {
		h.Set("Content-Length", strconv.Itoa(len(x.body)))
		w.WriteHeader(x.status)
		_, _ = w.Write(x.body)
	}
	s.record(x, now, x.status, x.code)
}

func (s *Server) record(x *exchange, now time.Time, status int, code string) {
	r := x.r
	rec := RecordedRequest{
		Op: x.op, Method: r.Method, URL: redactParsed(r.URL),
		Account: x.account, Container: x.container, Blob: x.blob,
		Header: redactHeader(r.Header), Status: status, ErrorCode: code, Time: now,
	}
	s.mu.Lock()
	s.requests = append(s.requests, rec)
	s.mu.Unlock()
	s.log.Debug("copysim request", "op", x.op, "method", r.Method, "url", rec.URL, "status", status, "error_code", code)
}

func splitPath(p string) (account, container, blob string) {
	parts := strings.SplitN(strings.TrimPrefix(p, "/"), "/", 3)
	for len(parts) < 3 {
		parts = append(parts, "")
	}
	return parts[0], parts[1], parts[2]
}

func classify(r *http.Request, container, blob string) string {
	q := r.URL.Query()
	comp, m := q.Get("comp"), r.Method
	if container == "" {
		return OpUnsupported
	}
	if blob == "" {
		if q.Get("restype") == "container" && comp == "list" && m == http.MethodGet {
			return OpListBlobs
		}
		if q.Get("restype") != "container" || comp != "" {
			return OpUnsupported
		}
		switch m {
		case http.MethodPut:
			return OpCreateContainer
		case http.MethodGet, http.MethodHead:
			return OpGetContainerProperties
		case http.MethodDelete:
			return OpDeleteContainer
		}
		return OpUnsupported
	}
	switch {
	case comp == "lease" && m == http.MethodPut:
		return OpLeaseBlob
	case comp == "snapshot" && m == http.MethodPut:
		return OpSnapshotBlob
	case comp == "copy" && m == http.MethodPut:
		return OpAbortCopyBlob
	case comp == "metadata" && (m == http.MethodGet || m == http.MethodHead):
		return OpGetBlobMetadata
	case comp == "metadata" && m == http.MethodPut:
		return OpSetBlobMetadata
	case comp == "tags" && m == http.MethodGet:
		return OpGetBlobTags
	case comp == "tags" && m == http.MethodPut:
		return OpSetBlobTags
	case comp != "":
		return OpUnsupported
	case m == http.MethodPut && r.Header.Get("x-ms-copy-source") != "":
		return OpCopyBlob
	case m == http.MethodPut:
		return OpPutBlob
	case m == http.MethodGet:
		return OpGetBlob
	case m == http.MethodHead:
		return OpGetBlobProperties
	case m == http.MethodDelete:
		return OpDeleteBlob
	}
	return OpUnsupported
}

// authorize accepts any Shared Key or bearer header or any SAS; signatures
// are not verified, but an expired SAS is refused.
func (s *Server) authorize(x *exchange) bool {
	q := x.r.URL.Query()
	if q.Has("sig") {
		if exp, ok := parseSASTime(q.Get("se")); ok && x.now.After(exp) {
			x.fail(http.StatusForbidden, "AuthenticationFailed", fmt.Sprintf("Signed expiry time [%s] has to be after signed start time [%s]",
				exp.Format(http.TimeFormat), x.now.Format(http.TimeFormat)))
			return false
		}
		return true
	}
	if x.r.Header.Get("Authorization") != "" || s.opts.AllowAnonymous {
		return true
	}
	x.fail(http.StatusForbidden, "AuthenticationFailed", "")
	return false
}

func (s *Server) dispatch(x *exchange) {
	switch x.op {
	case OpCreateContainer:
		s.createContainer(x)
		return
	case OpUnsupported:
		x.fail(http.StatusNotImplemented, "NotImplemented", "")
		return
	}
	c := s.containers[x.account+"/"+x.container]
	if c == nil {
		x.fail(http.StatusNotFound, "ContainerNotFound", "")
		return
	}
	switch x.op {
	case OpGetContainerProperties:
		x.header.Set("ETag", c.etag)
		x.header.Set("Last-Modified", c.created.Format(http.TimeFormat))
		x.header.Set("x-ms-lease-state", "available")
		x.header.Set("x-ms-lease-status", "unlocked")
	case OpDeleteContainer:
		delete(s.containers, x.account+"/"+x.container)
		x.status = http.StatusAccepted
	case OpPutBlob:
		s.putBlob(x, c)
	case OpCopyBlob:
		s.copyBlob(x, c)
	case OpListBlobs:
		s.listBlobs(x, c)
	default:
		s.blobOp(x, c)
	}
}

func (s *Server) createContainer(x *exchange) {
	key := x.account + "/" + x.container
	if s.containers[key] != nil {
		x.fail(http.StatusConflict, "ContainerAlreadyExists", "")
		return
	}
	c := s.ensureContainer(x.account, x.container)
	x.status = http.StatusCreated
	x.header.Set("ETag", c.etag)
	x.header.Set("Last-Modified", c.created.Format(http.TimeFormat))
}

// blobOp serves the operations on an existing blob or snapshot.
func (s *Server) blobOp(x *exchange, c *containerEntry) {
	snap := x.r.URL.Query().Get("snapshot")
	b := s.current(c.blobs[x.blob])
	if snap != "" {
		b = c.snapshots[x.blob][snap]
	}
	if b == nil {
		x.fail(http.StatusNotFound, "BlobNotFound", "")
		return
	}
	switch x.op {
	case OpGetBlob, OpGetBlobProperties:
		if !s.checkRead(x, b) {
			return
		}
		s.blobHeaders(x, b)
		if x.op == OpGetBlobProperties {
			x.header.Set("Content-Length", strconv.Itoa(len(b.data)))
			return
		}
		s.getBlob(x, b)
	case OpGetBlobMetadata:
		x.header.Set("ETag", b.etag)
		x.header.Set("Last-Modified", b.lastModified.Format(http.TimeFormat))
		for k, v := range b.metadata {
			x.header.Set("x-ms-meta-"+k, v)
		}
	case OpGetBlobTags:
		s.getTags(x, b)
	case OpDeleteBlob:
		s.deleteBlob(x, c, snap)
	case OpSetBlobMetadata, OpSetBlobTags, OpLeaseBlob, OpSnapshotBlob, OpAbortCopyBlob:
		if snap != "" {
			x.fail(http.StatusBadRequest, "InvalidQueryParameterValue", "snapshot is not allowed here")
			return
		}
		switch x.op {
		case OpSetBlobMetadata:
			if s.writable(x, b) {
				b.metadata = requestMetadata(x.r.Header)
				s.touch(b, x)
			}
		case OpSetBlobTags:
			if !refusePending(x, b) {
				s.setTags(x, b)
			}
		case OpLeaseBlob:
			s.leaseBlob(x, b)
		case OpSnapshotBlob:
			if !refusePending(x, b) {
				s.snapshotBlob(x, c, b)
			}
		case OpAbortCopyBlob:
			s.abortCopy(x, b)
		}
	}
}

// touch records a modification of b and answers its ETag.
func (s *Server) touch(b *blobEntry, x *exchange) {
	b.etag = s.newETag()
	b.lastModified = x.now
	x.header.Set("ETag", b.etag)
	x.header.Set("Last-Modified", b.lastModified.Format(http.TimeFormat))
}

// writable applies the checks of a write to an existing blob: no pending
// copy, conditional headers, lease.
func (s *Server) writable(x *exchange, b *blobEntry) bool {
	return !refusePending(x, b) && s.checkWrite(x, b) && s.checkLease(x, b)
}

// refusePending answers 409 PendingCopyOperation when b's copy is pending. Which
// operations Azure refuses on a pending destination, and where it says so:
//   - Copy Blob onto it: "only one copy can be pending on a destination"; the error
//     code table lists PendingCopyOperation, 409, "There is currently a pending copy
//     operation." (https://learn.microsoft.com/rest/api/storageservices/copy-blob,
//     https://learn.microsoft.com/rest/api/storageservices/blob-service-error-codes).
//   - Put Blob, Set Blob Metadata (and Put Block List, not simulated): writes to the
//     destination while the copy is pending (Copy Blob, Remarks).
//   - Snapshot Blob, Set Blob Tags and acquiring a lease: the Snapshot Blob, Set Blob
//     Tags and Lease Blob pages say nothing about pending copies; the simulator takes
//     the conservative reading and refuses them too, so an app that works here does not
//     rely on Azure accepting them. A lease taken before the copy started stays usable
//     (renew, release, break), since Copy Blob documents leased destinations.
//   - Reads, Abort Copy Blob and Delete Blob are allowed: Delete Blob documents no
//     refusal for a pending copy, and deleting the destination ends the copy.
func refusePending(x *exchange, b *blobEntry) bool {
	if b != nil && b.copy != nil && b.copy.Status == StatusPending {
		x.fail(http.StatusConflict, "PendingCopyOperation", "")
		return true
	}
	return false
}

func (s *Server) putBlob(x *exchange, c *containerEntry) {
	if t := x.r.Header.Get("x-ms-blob-type"); t != "BlockBlob" {
		x.fail(http.StatusBadRequest, "InvalidHeaderValue", "Only x-ms-blob-type: BlockBlob is simulated.")
		return
	}
	old := s.current(c.blobs[x.blob])
	if !s.writable(x, old) {
		return
	}
	data, err := io.ReadAll(x.r.Body)
	if err != nil {
		x.fail(http.StatusBadRequest, "InvalidInput", err.Error())
		return
	}
	b := &blobEntry{
		data:        data,
		contentType: x.r.Header.Get("x-ms-blob-content-type"),
		metadata:    requestMetadata(x.r.Header),
		tags:        requestTags(x.r.Header),
		tier:        x.r.Header.Get("x-ms-access-tier"),
		created:     x.now,
	}
	if b.contentType == "" {
		b.contentType = "application/octet-stream"
	}
	if old != nil {
		b.lease, b.created = old.lease, old.created
	}
	c.blobs[x.blob] = b
	s.touch(b, x)
	x.status = http.StatusCreated
	x.header.Set("x-ms-request-server-encrypted", "true")
}

func (s *Server) getBlob(x *exchange, b *blobEntry) {
	rng := x.r.Header.Get("x-ms-range")
	if rng == "" {
		rng = x.r.Header.Get("Range")
	}
	if rng == "" {
		x.body = b.data
		return
	}
	start, end, ok := parseRange(rng, int64(len(b.data)))
	if !ok {
		x.header = http.Header{}
		x.fail(http.StatusRequestedRangeNotSatisfiable, "InvalidRange", "")
		x.header.Set("Content-Range", fmt.Sprintf("bytes */%d", len(b.data)))
		return
	}
	x.status = http.StatusPartialContent
	x.body = b.data[start : end+1]
	x.header.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, end, len(b.data)))
}

// parseRange understands "bytes=a-b" and "bytes=a-".
func parseRange(h string, size int64) (start, end int64, ok bool) {
	spec, found := strings.CutPrefix(h, "bytes=")
	if !found {
		return 0, 0, false
	}
	a, b, _ := strings.Cut(spec, "-")
	start, err := strconv.ParseInt(a, 10, 64)
	if err != nil || start < 0 || start >= size {
		return 0, 0, false
	}
	end = size - 1
	if b != "" {
		e, err := strconv.ParseInt(b, 10, 64)
		if err != nil || e < start {
			return 0, 0, false
		}
		end = min(e, size-1)
	}
	return start, end, true
}

func (s *Server) blobHeaders(x *exchange, b *blobEntry) {
	h := x.header
	h.Set("Content-Type", b.contentType)
	h.Set("ETag", b.etag)
	h.Set("Last-Modified", b.lastModified.Format(http.TimeFormat))
	h.Set("x-ms-creation-time", b.created.Format(http.TimeFormat))
	h.Set("x-ms-blob-type", "BlockBlob")
	h.Set("Accept-Ranges", "bytes")
	h.Set("x-ms-server-encrypted", "true")
	for k, v := range b.metadata {
		h.Set("x-ms-meta-"+k, v)
	}
	if len(b.tags) > 0 {
		h.Set("x-ms-tag-count", strconv.Itoa(len(b.tags)))
	}
	if b.tier != "" {
		h.Set("x-ms-access-tier", b.tier)
	} else {
		h.Set("x-ms-access-tier", "Hot")
		h.Set("x-ms-access-tier-inferred", "true")
	}
	l := b.lease.view(x.now)
	h.Set("x-ms-lease-state", l.State)
	h.Set("x-ms-lease-status", l.Status)
	if l.Duration != "" {
		h.Set("x-ms-lease-duration", l.Duration)
	}
	if cp := b.copy; cp != nil {
		h.Set("x-ms-copy-id", cp.ID)
		// The URL as the copy was started with, SAS (signature included) and all, as
		// Azure answers it: "URL up to 2 KB in length that specifies the source blob or
		// file used in the last attempted Copy Blob operation"
		// (https://learn.microsoft.com/rest/api/storageservices/get-blob-properties).
		// The app must redact it itself.
		h.Set("x-ms-copy-source", cp.sourceURL.String())
		h.Set("x-ms-copy-status", cp.Status)
		h.Set("x-ms-copy-progress", fmt.Sprintf("%d/%d", cp.Copied, cp.Total))
		if !cp.CompletedAt.IsZero() {
			h.Set("x-ms-copy-completion-time", cp.CompletedAt.Format(http.TimeFormat))
		}
		if cp.Description != "" {
			h.Set("x-ms-copy-status-description", cp.Description)
		}
	}
}

func (s *Server) copyBlob(x *exchange, c *containerEntry) {
	raw := x.r.Header.Get("x-ms-copy-source")
	src, err := url.Parse(raw)
	if err != nil || !src.IsAbs() {
		x.fail(http.StatusBadRequest, "InvalidHeaderValue", "x-ms-copy-source must be an absolute URL.")
		return
	}
	expiry, _ := parseSASTime(src.Query().Get("se"))
	if !expiry.IsZero() && x.now.After(expiry) {
		// Azure verifies the source when the copy starts.
		x.fail(http.StatusForbidden, "CannotVerifyCopySource", messages["AuthenticationFailed"])
		return
	}

	var ref *blobRef
	var srcBlob *blobEntry
	srcSize := int64(-1) // unknown for an external source that is not probed
	if s.internalSource(src) {
		a, ct, bl := splitPath(src.Path)
		ref = &blobRef{account: a, container: ct, blob: bl, snapshot: src.Query().Get("snapshot")}
		if srcBlob = s.lookupRef(*ref); srcBlob == nil {
			x.fail(http.StatusNotFound, "CannotVerifyCopySource", messages["BlobNotFound"])
			return
		}
		if !s.checkSource(x, srcBlob) {
			return
		}
		srcSize = int64(len(srcBlob.data))
	} else if !x.probe.verify(x) {
		return
	} else if x.probe.checked {
		srcSize = x.probe.size
	}

	sync := x.r.Header.Get("x-ms-requires-sync") == "true"
	if sync && srcSize > syncCopyLimit {
		x.fail(http.StatusConflict, "CannotVerifyCopySource", "The source request body for synchronous copy is too large and exceeds the maximum permissible limit (256MB).")
		return
	}

	old := s.current(c.blobs[x.blob])
	if !s.writable(x, old) {
		return
	}
	b := &blobEntry{
		contentType: "application/octet-stream",
		metadata:    requestMetadata(x.r.Header),
		tags:        requestTags(x.r.Header),
		tier:        x.r.Header.Get("x-ms-access-tier"),
		created:     x.now,
	}
	if old != nil {
		b.lease, b.created = old.lease, old.created
	}
	cp := &copyRecord{
		CopyState: CopyState{ID: newUUID(), Source: redactParsed(src), Status: StatusPending, SourceExpiry: expiry},
		sourceURL: src,
		internal:  ref,
		started:   x.now,
	}
	cp.Destination = x.account + "/" + x.container + "/" + x.blob
	s.rememberCopy(cp)
	if srcSize >= 0 {
		cp.Total = srcSize
	}
	if srcBlob != nil {
		cp.Total = int64(len(srcBlob.data))
		cp.srcETag = srcBlob.etag
		b.contentType = srcBlob.contentType
		if len(b.metadata) == 0 {
			// Without x-ms-meta-* the source's metadata is copied.
			b.metadata = maps.Clone(srcBlob.metadata)
		}
	}
	b.copy = cp
	c.blobs[x.blob] = b
	s.touch(b, x)

	switch {
	case sync || (ref != nil && s.opts.SyncInternalCopies):
		s.finishLocked(x.account, x.container, x.blob, nil)
		if sync && cp.Status != StatusSuccess {
			x.header = http.Header{}
			x.fail(http.StatusConflict, "CannotVerifyCopySource", cp.Description)
			return
		}
		x.header.Set("ETag", b.etag)
		x.header.Set("Last-Modified", b.lastModified.Format(http.TimeFormat))
	default:
		x.started = &CopyStart{Account: x.account, Container: x.container, Blob: x.blob,
			ID: cp.ID, Source: cp.Source, Internal: ref != nil}
	}
	x.status = http.StatusAccepted
	x.header.Set("x-ms-copy-id", cp.ID)
	x.header.Set("x-ms-copy-status", cp.Status)
	s.log.Debug("copy started", "copy_id", cp.ID, "dest", x.account+"/"+x.container+"/"+x.blob, "source", cp.Source, "status", cp.Status)
}

// checkSource applies x-ms-source-if-* and x-ms-source-lease-id.
func (s *Server) checkSource(x *exchange, src *blobEntry) bool {
	h := x.r.Header
	if m := h.Get("x-ms-source-if-match"); m != "" && m != "*" && m != src.etag {
		x.fail(http.StatusPreconditionFailed, "SourceConditionNotMet", "")
		return false
	}
	if m := h.Get("x-ms-source-if-none-match"); m != "" && (m == "*" || m == src.etag) {
		x.fail(http.StatusPreconditionFailed, "SourceConditionNotMet", "")
		return false
	}
	if id := h.Get("x-ms-source-lease-id"); id != "" {
		if !src.lease.active(x.now) {
			x.fail(http.StatusPreconditionFailed, "LeaseNotPresentWithBlobOperation", "")
			return false
		}
		if id != src.lease.id {
			x.fail(http.StatusPreconditionFailed, "LeaseIdMismatchWithBlobOperation", "")
			return false
		}
	}
	return true
}

func (s *Server) abortCopy(x *exchange, b *blobEntry) {
	if x.r.Header.Get("x-ms-copy-action") != "abort" {
		x.fail(http.StatusBadRequest, "InvalidHeaderValue", "x-ms-copy-action must be abort.")
		return
	}
	if b.copy == nil || b.copy.Status != StatusPending {
		x.fail(http.StatusConflict, "NoPendingCopyOperation", "")
		return
	}
	if x.r.URL.Query().Get("copyid") != b.copy.ID {
		x.fail(http.StatusConflict, "CopyIdMismatch", "")
		return
	}
	if !s.checkLease(x, b) {
		return
	}
	b.data = nil
	b.copy.Status = StatusAborted
	b.copy.CompletedAt = x.now
	s.touch(b, x)
	x.header.Del("ETag")
	x.header.Del("Last-Modified")
	x.status = http.StatusNoContent
	s.log.Debug("copy aborted", "copy_id", b.copy.ID, "dest", x.account+"/"+x.container+"/"+x.blob)
}

func (s *Server) deleteBlob(x *exchange, c *containerEntry, snap string) {
	if snap != "" {
		delete(c.snapshots[x.blob], snap)
		x.status = http.StatusAccepted
		return
	}
	b := c.blobs[x.blob]
	if !s.checkWrite(x, b) || !s.checkLease(x, b) {
		return
	}
	mode := x.r.Header.Get("x-ms-delete-snapshots")
	if len(c.snapshots[x.blob]) > 0 && mode == "" {
		x.fail(http.StatusConflict, "SnapshotsPresent", "")
		return
	}
	delete(c.snapshots, x.blob)
	if mode != "only" {
		delete(c.blobs, x.blob)
	}
	x.status = http.StatusAccepted
}

func (s *Server) snapshotBlob(x *exchange, c *containerEntry, b *blobEntry) {
	if !s.checkWrite(x, b) {
		return
	}
	if id := x.r.Header.Get("x-ms-lease-id"); id != "" && (!b.lease.active(x.now) || id != b.lease.id) {
		x.fail(http.StatusPreconditionFailed, "LeaseIdMismatchWithBlobOperation", "")
		return
	}
	snaps := c.snapshots[x.blob]
	if snaps == nil {
		snaps = map[string]*blobEntry{}
		c.snapshots[x.blob] = snaps
	}
	t := x.now
	id := t.Format(snapshotFormat)
	for snaps[id] != nil { // unique even within one clock tick
		t = t.Add(100 * time.Nanosecond)
		id = t.Format(snapshotFormat)
	}
	frozen := b.clone()
	if md := requestMetadata(x.r.Header); len(md) > 0 {
		frozen.metadata = md
	}
	snaps[id] = frozen
	x.status = http.StatusCreated
	x.header.Set("x-ms-snapshot", id)
	x.header.Set("ETag", b.etag)
	x.header.Set("Last-Modified", b.lastModified.Format(http.TimeFormat))
}

func (s *Server) leaseBlob(x *exchange, b *blobEntry) {
	h := x.r.Header
	l := &b.lease
	l.current(x.now)
	id, proposed := h.Get("x-ms-lease-id"), h.Get("x-ms-proposed-lease-id")
	switch action := h.Get("x-ms-lease-action"); action {
	case "acquire":
		d, err := strconv.Atoi(h.Get("x-ms-lease-duration"))
		if err != nil || (d != -1 && (d < 15 || d > 60)) {
			x.fail(http.StatusBadRequest, "InvalidHeaderValue", "x-ms-lease-duration must be -1 or 15..60.")
			return
		}
		if proposed == "" {
			proposed = newUUID()
		}
		if refusePending(x, b) {
			return
		}
		switch l.state {
		case "leased":
			if proposed != l.id {
				x.fail(http.StatusConflict, "LeaseAlreadyPresent", "")
				return
			}
		case "breaking":
			x.fail(http.StatusConflict, "LeaseIsBreakingAndCannotBeAcquired", "")
			return
		}
		*l = lease{id: proposed, state: "leased", duration: d, expires: x.now.Add(time.Duration(d) * time.Second)}
		x.status = http.StatusCreated
		x.header.Set("x-ms-lease-id", l.id)
	case "renew":
		if l.state == "" || id != l.id {
			x.fail(http.StatusConflict, "LeaseIdMismatchWithLeaseOperation", "")
			return
		}
		if l.state == "broken" || l.state == "breaking" {
			x.fail(http.StatusConflict, "LeaseIsBrokenAndCannotBeRenewed", "")
			return
		}
		l.state = "leased"
		l.expires = x.now.Add(time.Duration(l.duration) * time.Second)
		x.header.Set("x-ms-lease-id", l.id)
	case "change":
		if l.state != "leased" && l.state != "breaking" {
			x.fail(http.StatusConflict, "LeaseNotPresentWithLeaseOperation", "")
			return
		}
		if l.state == "breaking" {
			x.fail(http.StatusConflict, "LeaseIsBreakingAndCannotBeChanged", "")
			return
		}
		if id != l.id && proposed != l.id {
			x.fail(http.StatusConflict, "LeaseIdMismatchWithLeaseOperation", "")
			return
		}
		l.id = proposed
		x.header.Set("x-ms-lease-id", l.id)
	case "release":
		// Lease Blob's outcome table: a release on an available blob "Fails (409)";
		// on a blob leased, expired or broken under another id likewise
		// (https://learn.microsoft.com/rest/api/storageservices/lease-blob). The page
		// names no code; the service (and Azurite, LeaseAvailableState.release) answers
		// LeaseIdMismatchWithLeaseOperation in both cases, so a client cannot tell "no
		// lease" from "someone else's lease" by the code alone.
		if l.state == "" || id != l.id {
			x.fail(http.StatusConflict, "LeaseIdMismatchWithLeaseOperation", "")
			return
		}
		l.state = ""
	case "break":
		if l.state != "leased" && l.state != "breaking" {
			x.fail(http.StatusConflict, "LeaseNotPresentWithLeaseOperation", "")
			return
		}
		remaining := 0
		if l.duration > 0 {
			remaining = int(l.expires.Sub(x.now).Seconds())
		}
		if p := h.Get("x-ms-lease-break-period"); p != "" {
			period, err := strconv.Atoi(p)
			if err != nil || period < 0 || period > 60 {
				x.fail(http.StatusBadRequest, "InvalidHeaderValue", "x-ms-lease-break-period must be 0..60.")
				return
			}
			if l.duration < 0 || period < remaining {
				remaining = period
			}
		}
		if l.state == "leased" {
			l.state, l.breakAt = "breaking", x.now.Add(time.Duration(remaining)*time.Second)
		}
		l.current(x.now)
		x.status = http.StatusAccepted
		x.header.Set("x-ms-lease-time", strconv.Itoa(max(0, int(l.breakAt.Sub(x.now).Seconds()))))
	default:
		x.fail(http.StatusBadRequest, "InvalidHeaderValue", fmt.Sprintf("unknown x-ms-lease-action %q", action))
		return
	}
	x.header.Set("ETag", b.etag)
	x.header.Set("Last-Modified", b.lastModified.Format(http.TimeFormat))
}

type tagsXML struct {
	XMLName xml.Name `xml:"Tags"`
	Tags    []tagXML `xml:"TagSet>Tag"`
}

type tagXML struct {
	Key   string `xml:"Key"`
	Value string `xml:"Value"`
}

func (s *Server) getTags(x *exchange, b *blobEntry) {
	var t tagsXML
	for _, k := range slices.Sorted(maps.Keys(b.tags)) {
		t.Tags = append(t.Tags, tagXML{Key: k, Value: b.tags[k]})
	}
	out, err := xml.Marshal(t)
	if err != nil {
		x.fail(http.StatusInternalServerError, "InternalError", err.Error())
		return
	}
	x.header.Set("Content-Type", "application/xml")
	x.body = append([]byte(xml.Header), out...)
}

func (s *Server) setTags(x *exchange, b *blobEntry) {
	var t tagsXML
	if err := xml.NewDecoder(x.r.Body).Decode(&t); err != nil {
		x.fail(http.StatusBadRequest, "InvalidXmlDocument", err.Error())
		return
	}
	b.tags = map[string]string{}
	for _, tag := range t.Tags {
		b.tags[tag.Key] = tag.Value
	}
	x.status = http.StatusNoContent
}

// checkRead applies If-Match / If-None-Match / If-(Un)Modified-Since to a read.
func (s *Server) checkRead(x *exchange, b *blobEntry) bool {
	h := x.r.Header
	if m := h.Get("If-Match"); m != "" && m != "*" && m != b.etag {
		x.fail(http.StatusPreconditionFailed, "ConditionNotMet", "")
		return false
	}
	if m := h.Get("If-None-Match"); m != "" && (m == "*" || m == b.etag) {
		x.status = http.StatusNotModified
		x.header.Set("ETag", b.etag)
		return false
	}
	if t, err := http.ParseTime(h.Get("If-Modified-Since")); err == nil && !b.lastModified.After(t) {
		x.status = http.StatusNotModified
		return false
	}
	if t, err := http.ParseTime(h.Get("If-Unmodified-Since")); err == nil && b.lastModified.After(t) {
		x.fail(http.StatusPreconditionFailed, "ConditionNotMet", "")
		return false
	}
	return true
}

// checkWrite applies conditional headers to a write; b may be nil.
// If-None-Match: * on an existing blob is 409 BlobAlreadyExists, as Azure
// (and Azurite) answer for Put Blob and Copy Blob.
func (s *Server) checkWrite(x *exchange, b *blobEntry) bool {
	h := x.r.Header
	if m := h.Get("If-None-Match"); m != "" && b != nil {
		if m == "*" {
			x.fail(http.StatusConflict, "BlobAlreadyExists", "")
			return false
		}
		if m == b.etag {
			x.fail(http.StatusPreconditionFailed, "ConditionNotMet", "")
			return false
		}
	}
	if m := h.Get("If-Match"); m != "" && (b == nil || (m != "*" && m != b.etag)) {
		x.fail(http.StatusPreconditionFailed, "ConditionNotMet", "")
		return false
	}
	if b == nil {
		return true
	}
	if t, err := http.ParseTime(h.Get("If-Modified-Since")); err == nil && !b.lastModified.After(t) {
		x.fail(http.StatusPreconditionFailed, "ConditionNotMet", "")
		return false
	}
	if t, err := http.ParseTime(h.Get("If-Unmodified-Since")); err == nil && b.lastModified.After(t) {
		x.fail(http.StatusPreconditionFailed, "ConditionNotMet", "")
		return false
	}
	return true
}

// checkLease enforces x-ms-lease-id on a write; b may be nil.
func (s *Server) checkLease(x *exchange, b *blobEntry) bool {
	id := x.r.Header.Get("x-ms-lease-id")
	active := b != nil && b.lease.active(x.now)
	switch {
	case active && id == "":
		x.fail(http.StatusPreconditionFailed, "LeaseIdMissing", "")
	case active && id != b.lease.id:
		x.fail(http.StatusPreconditionFailed, "LeaseIdMismatchWithBlobOperation", "")
	case !active && id != "":
		x.fail(http.StatusPreconditionFailed, "LeaseNotPresentWithBlobOperation", "")
	default:
		return true
	}
	return false
}

func requestMetadata(h http.Header) map[string]string {
	md := map[string]string{}
	for k, v := range h {
		if name, ok := strings.CutPrefix(strings.ToLower(k), "x-ms-meta-"); ok && len(v) > 0 {
			md[name] = v[0]
		}
	}
	if len(md) == 0 {
		return nil
	}
	return md
}

func requestTags(h http.Header) map[string]string {
	raw := h.Get("x-ms-tags")
	if raw == "" {
		return nil
	}
	q, err := url.ParseQuery(raw)
	if err != nil {
		return nil
	}
	tags := map[string]string{}
	for k, v := range q {
		tags[k] = v[0]
	}
	return tags
}

// parseSASTime parses se=/st= values (ISO 8601 in UTC, date optional time).
func parseSASTime(v string) (time.Time, bool) {
	if v == "" {
		return time.Time{}, false
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04Z", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

func redactHeader(h http.Header) map[string][]string {
	out := h.Clone()
	if out.Get("Authorization") != "" {
		out.Set("Authorization", "REDACTED")
	}
	if src := out.Get("x-ms-copy-source"); src != "" {
		out.Set("x-ms-copy-source", redactURL(src))
	}
	return out
}

func xmlEscape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails on supported platforms
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
