package contract

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/copyjob/copyjobtest"
)

// BlobsHarness is a copyjob.Blobs under test with the hooks the suite needs.
type BlobsHarness interface {
	Blobs() copyjob.Blobs
	// Ref names a blob that does not exist yet, in a container that exists, in an
	// account the Blobs knows. Every Ref of one harness is in the same account.
	Ref(name string) copyjob.BlobRef
	// Put writes a blob with a plain Put Blob (the copy sources).
	Put(t *testing.T, ref copyjob.BlobRef, data []byte)
	// LeaseAsOther makes another client take an infinite lease on ref with leaseID.
	LeaseAsOther(t *testing.T, ref copyjob.BlobRef, leaseID string)
	// PendingCopies is true when copies stay pending until CompleteCopy (false for a
	// backend that finishes every copy at start, like Azurite).
	PendingCopies() bool
	// CompleteCopy ends the pending copy on ref with success.
	CompleteCopy(t *testing.T, ref copyjob.BlobRef)
	// FailCopy ends the pending copy on ref as failed with storage's description.
	FailCopy(t *testing.T, ref copyjob.BlobRef, description string)
	// InjectTransient makes the next call of op (a copyjobtest.Op* name) meet a
	// transient failure: before the operation (nothing happens, storage answers 503), or
	// after it (the operation happens and its answer is lost). It returns false when the
	// backend cannot inject that fault; the check is then skipped.
	InjectTransient(t *testing.T, op string, after bool) bool
}

// OtherAccount is implemented by a BlobsHarness whose Blobs knows a second account.
type OtherAccount interface {
	// OtherRef names a blob that does not exist yet, in a container that exists, in
	// another account than Ref's.
	OtherRef(name string) copyjob.BlobRef
}

// RunBlobs runs the Blobs contract; newHarness returns a fresh harness per subtest.
func RunBlobs(t *testing.T, newHarness func(t *testing.T) BlobsHarness) {
	t.Run("URL and PrepareSource", func(t *testing.T) { blobsURL(t, newHarness(t)) })
	t.Run("StartCopy and CopyState", func(t *testing.T) { blobsStartCopy(t, newHarness(t)) })
	t.Run("StartCopy refusals", func(t *testing.T) { blobsStartRefusals(t, newHarness(t)) })
	t.Run("pending copy and abort", func(t *testing.T) { blobsPending(t, newHarness(t)) })
	t.Run("copy state never shows a SAS", func(t *testing.T) { blobsNoSAS(t, newHarness(t)) })
	t.Run("source in another account", func(t *testing.T) { blobsOtherAccount(t, newHarness(t)) })
	t.Run("leases", func(t *testing.T) { blobsLeases(t, newHarness(t)) })
	t.Run("snapshots", func(t *testing.T) { blobsSnapshots(t, newHarness(t)) })
	t.Run("transient faults", func(t *testing.T) { blobsTransient(t, newHarness(t)) })
	t.Run("lost Copy Blob answer", func(t *testing.T) { blobsLostStart(t, newHarness(t)) })
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// source puts a 64-byte source blob and returns its ref and prepared read URL for dst.
func source(t *testing.T, h BlobsHarness, name string, dst copyjob.BlobRef) (copyjob.BlobRef, copyjob.PreparedSource) {
	t.Helper()
	ref := h.Ref(name)
	h.Put(t, ref, []byte(strings.Repeat("s", 64)))
	u, err := h.Blobs().URL(ref)
	if err != nil {
		t.Fatalf("URL: %v", err)
	}
	prep, err := h.Blobs().PrepareSource(ctx(t), u, dst, time.Hour)
	if err != nil {
		t.Fatalf("PrepareSource(%s): %v", u, err)
	}
	return ref, prep
}

func blobsURL(t *testing.T, h BlobsHarness) {
	b := h.Blobs()
	ref := h.Ref("url.bin")
	u, err := b.URL(ref)
	wantOK(t, "URL", err)
	if !strings.Contains(u, ref.Container) || !strings.HasSuffix(u, "/"+ref.Blob) || strings.Contains(u, "sig=") {
		t.Errorf("URL(%+v) = %q: want the container and blob, no SAS", ref, u)
	}
	unknown := ref
	unknown.Account = "no-such-account-alias"
	_, err = b.URL(unknown)
	wantErr(t, "URL of an unknown account", err, copyjob.ErrUnknownAccount)

	prep, err := b.PrepareSource(ctx(t), u, h.Ref("dst.bin"), time.Hour)
	wantOK(t, "PrepareSource of a blob of the same account", err)
	if prep.Source.Kind != copyjob.SourceSameAccount || prep.Source.Ref == nil || *prep.Source.Ref != ref || strings.Contains(prep.Source.URL, "sig=") {
		t.Errorf("PrepareSource = %+v, want sameAccount naming %+v without a SAS", prep.Source, ref)
	}
	// A URL on the account's endpoint that names no blob there as written (an HTTP stack
	// resolves dot segments; no container) is refused, never read as an outside URL:
	// every check bound to the blob would miss it.
	onEndpoint := strings.Replace(u, "/"+ref.Container+"/", "/./"+ref.Container+"/", 1)
	dotDot := strings.Replace(u, "/"+ref.Container+"/", "/x/../"+ref.Container+"/", 1)
	noContainer := strings.Replace(u, "/"+ref.Container+"/", "//", 1)
	backslash := strings.Replace(u, "/"+ref.Container+"/", `\`+ref.Container+`\`, 1) // "/" to Azurite, a character to Go
	for _, bad := range []string{"not a url", "ftp://example.com/x", "/relative/path", onEndpoint, dotDot, noContainer, u + "/../../x/y", backslash} {
		_, err := b.PrepareSource(ctx(t), bad, h.Ref("dst.bin"), time.Hour)
		wantErr(t, "PrepareSource("+bad+")", err, copyjob.ErrInvalidSource)
	}
	// The host spelled with a fullwidth first character (storage maps it, as the WHATWG
	// URL standard does, to the ASCII one) is the same blob, recorded in ASCII.
	if parsed, err := url.Parse(u); err == nil && parsed.Host != "" {
		first := rune(parsed.Host[0])
		wide := parsed.Scheme + "://" + string(first+0xFEE0) + strings.TrimPrefix(u, parsed.Scheme+"://"+string(first))
		prep, err := b.PrepareSource(ctx(t), wide, h.Ref("dst.bin"), time.Hour)
		wantOK(t, "PrepareSource("+wide+")", err)
		if prep.Source.Ref == nil || *prep.Source.Ref != ref || prep.Source.URL != u {
			t.Errorf("PrepareSource(%s) = %+v, want %+v recorded as %s", wide, prep.Source, ref, u)
		}
	}
	// A query the record does not keep (a caller's SAS in any letter case, a token) is
	// read with and said to be dropped: only a replay of the request can bring it back.
	for _, tt := range []struct {
		query   string
		kind    copyjob.SourceKind
		dropped bool
	}{
		{"?sv=2025-01-05&sp=r&sig=abc", copyjob.SourceCallerSAS, true},
		{"?SV=2025-01-05&SP=r&SIG=abc", copyjob.SourceCallerSAS, true},
		{"?snapshot=2026-01-01T00:00:00.0000000Z", copyjob.SourceSameAccount, false},
	} {
		prep, err := b.PrepareSource(ctx(t), u+tt.query, h.Ref("dst.bin"), time.Hour)
		wantOK(t, "PrepareSource with "+tt.query, err)
		if prep.Source.Kind != tt.kind || prep.Source.QueryDropped != tt.dropped || !strings.HasSuffix(prep.ReadURL, strings.TrimPrefix(tt.query, "?")) && tt.dropped {
			t.Errorf("PrepareSource with %s = %+v (reads %s), want kind %s, queryDropped %v, read with the query", tt.query, prep.Source, prep.ReadURL, tt.kind, tt.dropped)
		}
	}
	ext, err := b.PrepareSource(ctx(t), "https://example.org/f.bin?token=abc", h.Ref("dst.bin"), time.Hour)
	wantOK(t, "PrepareSource of an external URL with a token", err)
	if ext.Source.Kind != copyjob.SourceExternal || !ext.Source.QueryDropped || strings.Contains(ext.Source.URL, "token") || !strings.Contains(ext.ReadURL, "token=abc") {
		t.Errorf("PrepareSource of an external URL with a token = %+v (reads %s), want external, queryDropped, read with it", ext.Source, ext.ReadURL)
	}
}

func blobsStartCopy(t *testing.T, h BlobsHarness) {
	b := h.Blobs()
	dst := h.Ref("copy-dst.bin")
	_, prep := source(t, h, "copy-src.bin", dst)
	st, err := b.StartCopy(ctx(t), dst, prep.ReadURL, copyjob.StartCopyOptions{Metadata: map[string]string{"job": "contract"}})
	if err != nil {
		t.Fatalf("StartCopy: %v", err)
	}
	if st.CopyID == "" || (st.Status != copyjob.StatusPending && st.Status != copyjob.StatusSuccess) {
		t.Fatalf("StartCopy = %+v: want a copy id, pending or success", st)
	}
	if h.PendingCopies() {
		if st.Status != copyjob.StatusPending {
			t.Fatalf("StartCopy status %s, want pending on this backend", st.Status)
		}
		h.CompleteCopy(t, dst)
	}
	got, err := b.CopyState(ctx(t), dst)
	if err != nil {
		t.Fatalf("CopyState: %v", err)
	}
	if got.CopyID != st.CopyID || got.Status != copyjob.StatusSuccess || got.Progress != (copyjob.Progress{BytesCopied: 64, BytesTotal: 64}) ||
		got.CompletedAt == nil || got.LastModified.IsZero() {
		t.Errorf("CopyState = %+v: want copy %s, success, 64/64 bytes, completion and last-modified times", got, st.CopyID)
	}
	if strings.Contains(got.SourceURL, "sig=") || !strings.Contains(got.SourceURL, "copy-src.bin") {
		t.Errorf("CopyState.SourceURL = %q: want the source without its SAS", got.SourceURL)
	}
	_, err = b.CopyState(ctx(t), h.Ref("never-written.bin"))
	wantErr(t, "CopyState of a missing blob", err, copyjob.ErrNotFound)

	// If-None-Match: * onto a missing destination starts.
	if _, err := b.StartCopy(ctx(t), h.Ref("fresh-dst.bin"), prep.ReadURL, copyjob.StartCopyOptions{IfNotExists: true}); err != nil {
		t.Errorf("StartCopy IfNotExists onto a missing destination: %v", err)
	}

	// A synchronous copy answers success.
	syncDst := h.Ref("sync-dst.bin")
	st, err = b.StartCopy(ctx(t), syncDst, prep.ReadURL, copyjob.StartCopyOptions{RequiresSync: true})
	if err != nil || st.Status != copyjob.StatusSuccess || st.CopyID == "" {
		t.Errorf("StartCopy RequiresSync = %+v, %v: want success", st, err)
	}
}

func blobsStartRefusals(t *testing.T, h BlobsHarness) {
	b := h.Blobs()
	dst := h.Ref("exists.bin")
	h.Put(t, dst, []byte("already here"))
	_, prep := source(t, h, "refusal-src.bin", dst)
	_, err := b.StartCopy(ctx(t), dst, prep.ReadURL, copyjob.StartCopyOptions{IfNotExists: true})
	wantErr(t, "StartCopy IfNotExists onto an existing blob", err, copyjob.ErrExists)

	missing := h.Ref("missing-src.bin")
	u, _ := b.URL(missing)
	mprep, err := b.PrepareSource(ctx(t), u, dst, time.Hour)
	wantOK(t, "PrepareSource of a missing blob", err)
	_, err = b.StartCopy(ctx(t), h.Ref("from-missing.bin"), mprep.ReadURL, copyjob.StartCopyOptions{})
	wantErr(t, "StartCopy from a missing source", err, copyjob.ErrSourceNotFound)

	other := h.Ref("unknown-account.bin")
	other.Account = "no-such-account-alias"
	_, err = b.StartCopy(ctx(t), other, prep.ReadURL, copyjob.StartCopyOptions{})
	wantErr(t, "StartCopy into an unknown account", err, copyjob.ErrUnknownAccount)

	leased := h.Ref("leased-dst.bin")
	h.Put(t, leased, []byte("leased"))
	h.LeaseAsOther(t, leased, "99999999-9999-9999-9999-999999999999")
	_, err = b.StartCopy(ctx(t), leased, prep.ReadURL, copyjob.StartCopyOptions{})
	wantErr(t, "StartCopy onto a destination leased by someone else", err, copyjob.ErrDestinationLeased)

	// A copy of a blob onto itself while the caller holds its lease (leaseSource on a
	// self-copy): Copy Blob carries no destination lease id, storage answers 412.
	self, selfPrep := source(t, h, "self.bin", h.Ref("self.bin"))
	wantOK(t, "AcquireLease", b.AcquireLease(ctx(t), self, "44444444-4444-4444-4444-444444444444"))
	_, err = b.StartCopy(ctx(t), self, selfPrep.ReadURL, copyjob.StartCopyOptions{})
	wantErr(t, "StartCopy of a leased blob onto itself", err, copyjob.ErrDestinationLeased)

	// A source SAS that storage refuses (expired): the source cannot be read.
	sep := "?"
	if strings.Contains(prep.ReadURL, "?") {
		sep = "&"
	}
	expired := prep.ReadURL + sep + "sv=2025-01-05&sr=b&sp=r&se=2001-01-01T00%3A00%3A00Z&sig=" + url.QueryEscape(secretSig)
	_, err = b.StartCopy(ctx(t), h.Ref("from-expired.bin"), expired, copyjob.StartCopyOptions{})
	wantErr(t, "StartCopy with an expired source SAS", err, copyjob.ErrSourceUnreadable)
}

func blobsPending(t *testing.T, h BlobsHarness) {
	b := h.Blobs()
	dst := h.Ref("pending-dst.bin")
	_, prep := source(t, h, "pending-src.bin", dst)
	st, err := b.StartCopy(ctx(t), dst, prep.ReadURL, copyjob.StartCopyOptions{})
	if err != nil {
		t.Fatalf("StartCopy: %v", err)
	}
	err = b.AbortCopy(ctx(t), h.Ref("no-such-dst.bin"), st.CopyID)
	wantErr(t, "AbortCopy of a missing blob", err, copyjob.ErrNotFound)
	if !h.PendingCopies() {
		err = b.AbortCopy(ctx(t), dst, st.CopyID)
		wantErr(t, "AbortCopy of a finished copy", err, copyjob.ErrNoPendingCopy)
		return
	}
	// One pending copy per destination.
	_, err = b.StartCopy(ctx(t), dst, prep.ReadURL, copyjob.StartCopyOptions{})
	wantErr(t, "StartCopy onto a pending destination", err, copyjob.ErrPendingCopy)
	_, err = b.StartCopy(ctx(t), dst, prep.ReadURL, copyjob.StartCopyOptions{IfNotExists: true})
	if err == nil || !(errors.Is(err, copyjob.ErrPendingCopy) || errors.Is(err, copyjob.ErrExists)) {
		t.Errorf("StartCopy IfNotExists onto a pending destination: %v, want ErrPendingCopy or ErrExists", err)
	}
	got, err := b.CopyState(ctx(t), dst)
	if err != nil || got.CopyID != st.CopyID || got.Status != copyjob.StatusPending || got.CompletedAt != nil {
		t.Errorf("CopyState while pending = %+v, %v", got, err)
	}
	// No snapshot and no new lease on a pending destination (409 PendingCopyOperation in
	// the simulator, which reads Azure's docs conservatively).
	_, err = b.Snapshot(ctx(t), dst)
	wantErr(t, "Snapshot of a pending destination", err, copyjob.ErrPendingCopy)
	wantErr(t, "AcquireLease of a pending destination", b.AcquireLease(ctx(t), dst, "55555555-5555-5555-5555-555555555555"), copyjob.ErrPendingCopy)
	err = b.AbortCopy(ctx(t), dst, "00000000-0000-0000-0000-000000000000")
	wantErr(t, "AbortCopy with another copy id", err, copyjob.ErrCopyIDMismatch)
	wantOK(t, "AbortCopy", b.AbortCopy(ctx(t), dst, st.CopyID))
	got, err = b.CopyState(ctx(t), dst)
	if err != nil || got.CopyID != st.CopyID || got.Status != copyjob.StatusAborted || got.CompletedAt == nil {
		t.Errorf("CopyState after abort = %+v, %v", got, err)
	}
	err = b.AbortCopy(ctx(t), dst, st.CopyID)
	wantErr(t, "AbortCopy again", err, copyjob.ErrNoPendingCopy)
}

func blobsLeases(t *testing.T, h BlobsHarness) {
	b := h.Blobs()
	const mine, theirs = "11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222"
	src := h.Ref("leased-src.bin")
	h.Put(t, src, []byte("lease me"))

	wantOK(t, "AcquireLease", b.AcquireLease(ctx(t), src, mine))
	wantOK(t, "AcquireLease again with the same id", b.AcquireLease(ctx(t), src, mine))
	wantErr(t, "AcquireLease with another id", b.AcquireLease(ctx(t), src, theirs), copyjob.ErrLeaseConflict)
	wantErr(t, "ReleaseLease with another id", b.ReleaseLease(ctx(t), src, theirs), copyjob.ErrLeaseConflict)
	wantOK(t, "ReleaseLease", b.ReleaseLease(ctx(t), src, mine))
	wantErr(t, "ReleaseLease of a free blob", b.ReleaseLease(ctx(t), src, mine), copyjob.ErrLeaseNotHeld)

	h.LeaseAsOther(t, src, theirs)
	wantErr(t, "ReleaseLease of a blob someone else leased", b.ReleaseLease(ctx(t), src, mine), copyjob.ErrLeaseConflict)
	wantErr(t, "AcquireLease of a blob someone else leased", b.AcquireLease(ctx(t), src, mine), copyjob.ErrLeaseConflict)

	// A release whose answer was lost did release: its retry finds no lease held.
	mine2 := h.Ref("leased-src-2.bin")
	h.Put(t, mine2, []byte("lease me too"))
	wantOK(t, "AcquireLease", b.AcquireLease(ctx(t), mine2, mine))
	if h.InjectTransient(t, copyjobtest.OpReleaseLease, true) {
		wantErr(t, "ReleaseLease with its answer lost", b.ReleaseLease(ctx(t), mine2, mine), copyjob.ErrUnavailable)
		wantErr(t, "the retried ReleaseLease", b.ReleaseLease(ctx(t), mine2, mine), copyjob.ErrLeaseNotHeld)
	}
	if h.InjectTransient(t, copyjobtest.OpAcquireLease, true) {
		wantErr(t, "AcquireLease with its answer lost", b.AcquireLease(ctx(t), mine2, mine), copyjob.ErrUnavailable)
		wantOK(t, "the retried AcquireLease", b.AcquireLease(ctx(t), mine2, mine))
	}

	missing := h.Ref("no-such-blob.bin")
	wantErr(t, "AcquireLease of a missing blob", b.AcquireLease(ctx(t), missing, mine), copyjob.ErrNotFound)
	wantErr(t, "ReleaseLease of a missing blob", b.ReleaseLease(ctx(t), missing, mine), copyjob.ErrNotFound)
}

func blobsSnapshots(t *testing.T, h BlobsHarness) {
	b := h.Blobs()
	ref := h.Ref("snap.bin")
	h.Put(t, ref, []byte("before"))
	id, err := b.Snapshot(ctx(t), ref)
	if err != nil || id == "" {
		t.Fatalf("Snapshot = %q, %v", id, err)
	}
	snap := ref
	snap.Snapshot = id
	if _, err := b.URL(snap); err != nil {
		t.Errorf("URL of the snapshot: %v", err)
	}
	wantOK(t, "DeleteSnapshot", b.DeleteSnapshot(ctx(t), ref, id))
	wantErr(t, "DeleteSnapshot again", b.DeleteSnapshot(ctx(t), ref, id), copyjob.ErrNotFound)
	wantErr(t, "DeleteSnapshot without an id", b.DeleteSnapshot(ctx(t), ref, ""), copyjob.ErrNotFound)
	_, err = b.Snapshot(ctx(t), h.Ref("no-such-blob.bin"))
	wantErr(t, "Snapshot of a missing blob", err, copyjob.ErrNotFound)
}

// blobsTransient: every operation meeting a transient failure answers ErrUnavailable
// (and only it), and works again afterwards.
func blobsTransient(t *testing.T, h BlobsHarness) {
	b := h.Blobs()
	dst := h.Ref("transient-dst.bin")
	src, prep := source(t, h, "transient-src.bin", dst)
	const lease = "33333333-3333-3333-3333-333333333333"
	ops := []struct {
		op   string
		call func() error
	}{
		{copyjobtest.OpStartCopy, func() error {
			_, err := b.StartCopy(ctx(t), dst, prep.ReadURL, copyjob.StartCopyOptions{})
			return err
		}},
		{copyjobtest.OpCopyState, func() error { _, err := b.CopyState(ctx(t), dst); return err }},
		{copyjobtest.OpAcquireLease, func() error { return b.AcquireLease(ctx(t), src, lease) }},
		{copyjobtest.OpReleaseLease, func() error { return b.ReleaseLease(ctx(t), src, lease) }},
		{copyjobtest.OpSnapshot, func() error { _, err := b.Snapshot(ctx(t), src); return err }},
	}
	if id, err := b.Snapshot(ctx(t), src); err == nil {
		ops = append(ops, struct {
			op   string
			call func() error
		}{copyjobtest.OpDeleteSnapshot, func() error { return b.DeleteSnapshot(ctx(t), src, id) }})
	}
	if h.PendingCopies() {
		abortDst := h.Ref("transient-abort.bin")
		if st, err := b.StartCopy(ctx(t), abortDst, prep.ReadURL, copyjob.StartCopyOptions{}); err == nil {
			ops = append(ops, struct {
				op   string
				call func() error
			}{copyjobtest.OpAbortCopy, func() error { return b.AbortCopy(ctx(t), abortDst, st.CopyID) }})
		}
	}
	for _, o := range ops {
		if !h.InjectTransient(t, o.op, false) {
			t.Skipf("the backend cannot inject faults into %s", o.op)
		}
		wantErr(t, o.op+" after a transient failure", o.call(), copyjob.ErrUnavailable)
		wantOK(t, o.op+" once storage is back", o.call())
	}
}

// blobsLostStart: Copy Blob carried out but its answer lost is ErrUnavailable, and the
// copy is there: a caller must look before concluding it did not start.
func blobsLostStart(t *testing.T, h BlobsHarness) {
	b := h.Blobs()
	dst := h.Ref("lost-dst.bin")
	_, prep := source(t, h, "lost-src.bin", dst)
	if !h.InjectTransient(t, copyjobtest.OpStartCopy, true) {
		t.Skip("the backend cannot lose an answer")
	}
	_, err := b.StartCopy(ctx(t), dst, prep.ReadURL, copyjob.StartCopyOptions{})
	wantErr(t, "StartCopy with its answer lost", err, copyjob.ErrUnavailable)
	st, err := b.CopyState(ctx(t), dst)
	if err != nil || st.CopyID == "" {
		t.Errorf("CopyState after a lost answer = %+v, %v: want the copy that did start", st, err)
	}
}

// secretSig is the signature of the SAS the suite hands to storage; no answer of the
// port may carry it.
const secretSig = "c2VjcmV0LXNpZ25hdHVyZQ=="

// blobsNoSAS: storage answers the copy source with its SAS (x-ms-copy-source) and may
// quote it in a failure description; CopyState carries neither signature.
func blobsNoSAS(t *testing.T, h BlobsHarness) {
	if !h.PendingCopies() {
		t.Skip("a SAS the backend would verify cannot be made up here")
	}
	b := h.Blobs()
	dst := h.Ref("sas-dst.bin")
	_, prep := source(t, h, "sas-src.bin", dst)
	sep := "?"
	if strings.Contains(prep.ReadURL, "?") {
		sep = "&"
	}
	withSAS := prep.ReadURL + sep + "sv=2025-01-05&sp=r&se=2099-01-01T00%3A00%3A00Z&sig=" + url.QueryEscape(secretSig)
	st, err := b.StartCopy(ctx(t), dst, withSAS, copyjob.StartCopyOptions{})
	if err != nil {
		t.Fatalf("StartCopy: %v", err)
	}
	noSig := func(what, s string) {
		t.Helper()
		if strings.Contains(s, secretSig) || strings.Contains(s, url.QueryEscape(secretSig)) {
			t.Errorf("%s carries the SAS signature: %q", what, s)
		}
	}
	got, err := b.CopyState(ctx(t), dst)
	if err != nil || got.CopyID != st.CopyID {
		t.Fatalf("CopyState = %+v, %v", got, err)
	}
	noSig("CopyState.SourceURL", got.SourceURL)
	if !strings.Contains(got.SourceURL, "sas-src.bin") {
		t.Errorf("CopyState.SourceURL = %q, want the source", got.SourceURL)
	}
	h.FailCopy(t, dst, `403 AuthenticationFailed "Copy failed when reading the source `+withSAS+`."`)
	got, err = b.CopyState(ctx(t), dst)
	if err != nil || got.Status != copyjob.StatusFailed || got.CompletedAt == nil || !strings.HasPrefix(got.Description, "403 AuthenticationFailed") {
		t.Fatalf("CopyState after the failure = %+v, %v: want failed with storage's description", got, err)
	}
	noSig("CopyState.Description", got.Description)
}

// blobsOtherAccount: a source in another configured account is read through a SAS the
// Blobs signs; the recorded source, the copy state and the errors never show it.
func blobsOtherAccount(t *testing.T, h BlobsHarness) {
	other, ok := h.(OtherAccount)
	if !ok {
		t.Skip("the harness knows one account")
	}
	b := h.Blobs()
	src := other.OtherRef("cross-src.bin")
	h.Put(t, src, []byte(strings.Repeat("c", 32)))
	u, err := b.URL(src)
	if err != nil {
		t.Fatalf("URL: %v", err)
	}
	dst := h.Ref("cross-dst.bin")
	prep, err := b.PrepareSource(ctx(t), u, dst, time.Hour)
	if err != nil {
		t.Fatalf("PrepareSource: %v", err)
	}
	read, _ := url.Parse(prep.ReadURL)
	if prep.Source.Kind != copyjob.SourceOtherAccount || prep.Source.Ref == nil || *prep.Source.Ref != src || prep.Source.SASExpiresAt == nil ||
		read == nil || read.Query().Get("sig") == "" || read.Query().Get("sp") != "r" {
		t.Fatalf("PrepareSource = %+v (read URL with a SAS: %v): want otherAccount, a read-only SAS and its expiry", prep.Source, read != nil && read.Query().Get("sig") != "")
	}
	sig := read.Query().Get("sig")
	if strings.Contains(prep.Source.URL, sig) || strings.Contains(prep.Source.URL, "sig=") {
		t.Errorf("recorded source %q carries the SAS", prep.Source.URL)
	}
	st, err := b.StartCopy(ctx(t), dst, prep.ReadURL, copyjob.StartCopyOptions{})
	if err != nil {
		t.Fatalf("StartCopy: %v", err)
	}
	got, err := b.CopyState(ctx(t), dst)
	if err != nil || got.CopyID != st.CopyID {
		t.Fatalf("CopyState = %+v, %v", got, err)
	}
	if strings.Contains(got.SourceURL, sig) || strings.Contains(got.SourceURL, url.QueryEscape(sig)) || !strings.Contains(got.SourceURL, "cross-src.bin") {
		t.Errorf("CopyState.SourceURL = %q: want the source without its signature", got.SourceURL)
	}
	_, err = b.StartCopy(ctx(t), dst, prep.ReadURL, copyjob.StartCopyOptions{IfNotExists: true})
	if err == nil || strings.Contains(err.Error(), sig) || strings.Contains(err.Error(), url.QueryEscape(sig)) {
		t.Errorf("a refused StartCopy: %v: want an error without the signature", err)
	}
}
