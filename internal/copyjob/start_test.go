package copyjob_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/copyjob/copyjobtest"
)

func TestStartSourceKinds(t *testing.T) {
	callerSAS := otherURL + "?sv=2025-01-05&sp=r&sig=callersecret"
	tests := []struct {
		name       string
		source     string
		lifetime   time.Duration // requested SAS lifetime, 0 = default
		wantKind   copyjob.SourceKind
		wantURL    string
		wantRef    *copyjob.BlobRef
		wantSAS    time.Duration // expected SAS lifetime recorded, 0 = none
		wantSigned bool          // the URL Copy Blob reads carries a SAS
	}{
		{name: "same account", source: srcURL, wantKind: copyjob.SourceSameAccount, wantURL: srcURL, wantRef: &srcRef},
		{name: "other account, default SAS lifetime", source: otherURL, wantKind: copyjob.SourceOtherAccount,
			wantURL: otherURL, wantRef: &otherRef, wantSAS: 24 * time.Hour, wantSigned: true},
		{name: "other account, requested SAS lifetime", source: otherURL, lifetime: 72 * time.Hour,
			wantKind: copyjob.SourceOtherAccount, wantURL: otherURL, wantRef: &otherRef, wantSAS: 72 * time.Hour, wantSigned: true},
		{name: "caller SAS", source: callerSAS, wantKind: copyjob.SourceCallerSAS, wantURL: otherURL, wantRef: &otherRef, wantSigned: true},
		{name: "external", source: externalURL, wantKind: copyjob.SourceExternal, wantURL: externalURL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			now := h.Clock.Now()
			job := h.start(copyjob.StartRequest{
				JobID: "job-1", Source: tt.source, Destination: dstRef, Origin: "api",
				Options: copyjob.Options{SASLifetime: copyjob.Duration(tt.lifetime), Metadata: map[string]string{"k": "v"}, Tier: "Cool"},
			})
			if job.ID != "job-1" || job.Status != copyjob.StatusPending || job.CopyID == "" || job.Attempts != 1 {
				t.Fatalf("job = %+v", job)
			}
			if job.Source.Kind != tt.wantKind || job.Source.URL != tt.wantURL {
				t.Fatalf("source = %+v, want kind %s url %s", job.Source, tt.wantKind, tt.wantURL)
			}
			if (job.Source.Ref == nil) != (tt.wantRef == nil) || (tt.wantRef != nil && *job.Source.Ref != *tt.wantRef) {
				t.Fatalf("source ref = %v, want %v", job.Source.Ref, tt.wantRef)
			}
			if tt.wantSAS == 0 && job.Source.SASExpiresAt != nil {
				t.Fatalf("SASExpiresAt = %v, want none", job.Source.SASExpiresAt)
			}
			if tt.wantSAS != 0 {
				if job.Source.SASExpiresAt == nil || !job.Source.SASExpiresAt.Equal(now.Add(tt.wantSAS)) {
					t.Fatalf("SASExpiresAt = %v, want %v", job.Source.SASExpiresAt, now.Add(tt.wantSAS))
				}
				if job.Source.SASKind == "" {
					t.Fatal("SASKind not recorded")
				}
			}
			if want := "https://" + copyjobtest.DefaultHost + "/dst/out.bin"; job.Destination.URL != want || job.Destination.BlobRef != dstRef {
				t.Fatalf("destination = %+v, want %s", job.Destination, want)
			}
			if job.StartedAt == nil || !job.StartedAt.Equal(now) || !job.CreatedAt.Equal(now) {
				t.Fatalf("times: created %v started %v, want %v", job.CreatedAt, job.StartedAt, now)
			}

			// The record matches what Start returned, and never holds a SAS.
			rec := h.wantStatus(job.ID, copyjob.StatusPending)
			if rec.CopyID != job.CopyID || rec.Source.URL != tt.wantURL || rec.Origin != "api" {
				t.Fatalf("record = %+v", rec)
			}
			if data := fmt.Sprintf("%+v", rec); strings.Contains(data, "sig=") {
				t.Fatalf("record holds a SAS: %s", data)
			}

			calls := h.wantStartCopies(1)
			c := calls[0]
			if c.Dst != dstRef || c.CopyID != job.CopyID {
				t.Fatalf("StartCopy call = %+v", c)
			}
			if signed := strings.Contains(c.ReadURL, "sig="); signed != tt.wantSigned {
				t.Fatalf("StartCopy read URL %q: signed = %v, want %v", c.ReadURL, signed, tt.wantSigned)
			}
			if !c.Opts.IfNotExists || c.Opts.Tier != "Cool" || c.Opts.Metadata["k"] != "v" {
				t.Fatalf("StartCopy options = %+v", c.Opts)
			}

			// One tracking message, first visible after FirstPoll.
			ms := h.wantMessages(1)
			if !ms[0].VisibleAt.Equal(now.Add(h.svc.Config().FirstPoll)) {
				t.Fatalf("message visible at %v, want now+FirstPoll", ms[0].VisibleAt)
			}
			if !strings.Contains(ms[0].Text, `"jobId":"job-1"`) {
				t.Fatalf("message text = %s", ms[0].Text)
			}
		})
	}
}

// A copy that finishes at start (same-account copies usually do, and Copy Blob From URL
// always) is recorded at once; the lease is released and the message dropped.
func TestStartFinishedAtStart(t *testing.T) {
	tests := []struct {
		name     string
		status   copyjob.Status // what StartCopy answers
		sync     bool
		wantDesc bool
	}{
		{name: "success", status: copyjob.StatusSuccess},
		{name: "requiresSync", status: copyjob.StatusPending, sync: true},
		{name: "failed at start", status: copyjob.StatusFailed, wantDesc: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.Blobs.SetStartStatus(tt.status)
			req := leasedReq()
			req.Options.RequiresSync = tt.sync
			job := h.start(req)
			want := tt.status
			if tt.sync {
				want = copyjob.StatusSuccess
			}
			if job.Status != want {
				t.Fatalf("status = %s, want %s", job.Status, want)
			}
			rec := h.wantStatus(job.ID, want)
			h.wantLeaseReleased(rec)
			if rec.CompletedAt == nil || rec.CopyID == "" {
				t.Fatalf("record = %+v", rec)
			}
			if (rec.StatusDescription != "") != tt.wantDesc {
				t.Fatalf("description = %q", rec.StatusDescription)
			}
			if want == copyjob.StatusSuccess {
				// Recorded without its length (Copy Blob's answer has none); a status read
				// fills it in while the destination holds the copy.
				if rec.Progress != (copyjob.Progress{}) {
					t.Fatalf("recorded progress = %+v, want none", rec.Progress)
				}
				if got, err := h.svc.Get(h.ctx, job.ID); err != nil || got.Progress.BytesCopied != srcSize || got.Progress.BytesTotal != srcSize {
					t.Fatalf("status read: %+v %v", got, err)
				}
			}
			h.wantMessages(0)
			if got := h.Blobs.StartCopyCalls()[0].Opts.RequiresSync; got != tt.sync {
				t.Fatalf("RequiresSync passed = %v", got)
			}
		})
	}
}

func TestStartLeasesSourceUntilTerminal(t *testing.T) {
	h := newHarness(t)
	job := h.start(leasedReq())
	if job.Lease == nil || job.Lease.ID == "" || job.Lease.State != copyjob.LeaseHeld {
		t.Fatalf("lease = %+v", job.Lease)
	}
	rec := h.record(job.ID)
	if rec.Lease == nil || rec.Lease.ID != job.Lease.ID || rec.Lease.State != copyjob.LeaseHeld {
		t.Fatalf("recorded lease = %+v, want held %s", rec.Lease, job.Lease.ID)
	}
	if got := h.Blobs.LeaseHolder(srcRef); got != job.Lease.ID {
		t.Fatalf("source lease holder = %q, want %q", got, job.Lease.ID)
	}
	// Held while pending, across ticks.
	for range 3 {
		h.tickAfter(time.Minute)
		if got := h.Blobs.LeaseHolder(srcRef); got != job.Lease.ID {
			t.Fatalf("source lease holder while pending = %q", got)
		}
	}
	if err := h.Blobs.CompleteCopy(dstRef); err != nil {
		t.Fatal(err)
	}
	h.tickAfter(time.Minute)
	h.wantLeaseReleased(h.wantStatus(job.ID, copyjob.StatusSuccess))
}

func TestStartLeaseConflict(t *testing.T) {
	h := newHarness(t)
	h.Blobs.SetLease(srcRef, "someone-else")
	job, created, err := h.svc.Start(h.ctx, leasedReq())
	e := wantCode(t, err, copyjob.CodeSourceLeased)
	if !created || job == nil || job.Status != copyjob.StatusStartFailed {
		t.Fatalf("job = %+v created = %v", job, created)
	}
	if e.Job == nil || e.Job.ID != job.ID {
		t.Fatalf("error job = %+v", e.Job)
	}
	rec := h.wantStatus(job.ID, copyjob.StatusStartFailed)
	if rec.Lease.State != copyjob.LeaseNotAcquired || rec.CompletedAt == nil || rec.StatusDescription == "" {
		t.Fatalf("record = %+v lease %+v", rec, rec.Lease)
	}
	if got := h.Blobs.LeaseHolder(srcRef); got != "someone-else" {
		t.Fatalf("the other lease was touched: holder %q", got)
	}
	if h.Blobs.Calls(copyjobtest.OpReleaseLease) != 0 {
		t.Fatal("released a lease that was never ours")
	}
	h.wantStartCopies(0)
	h.wantMessages(0)
}

// A permanent refusal of Copy Blob after the lease was taken releases it and records
// startFailed; a replay of the request answers the same refusal (issue 10, case 3).
func TestStartCopyFailsAfterLease(t *testing.T) {
	tests := []struct {
		name  string
		setup func(*harness, *copyjob.StartRequest)
		code  copyjob.Code
	}{
		{name: "destination exists, overwrite false", code: copyjob.CodeDestinationExists,
			setup: func(h *harness, _ *copyjob.StartRequest) { h.Blobs.Put(dstRef, 10, nil) }},
		{name: "source unreadable", code: copyjob.CodeSourceNotReadable,
			setup: func(h *harness, _ *copyjob.StartRequest) {
				h.Blobs.FailNext(copyjobtest.OpStartCopy, fmt.Errorf("wrapped: %w", copyjob.ErrSourceUnreadable))
			}},
		{name: "container missing", code: copyjob.CodeContainerNotFound,
			setup: func(h *harness, _ *copyjob.StartRequest) {
				h.Blobs.FailNext(copyjobtest.OpStartCopy, copyjob.ErrNotFound)
			}},
		{name: "forbidden", code: copyjob.CodeForbidden,
			setup: func(h *harness, _ *copyjob.StartRequest) {
				h.Blobs.FailNext(copyjobtest.OpStartCopy, copyjob.ErrForbidden)
			}},
		{name: "destination leased by someone else", code: copyjob.CodeDestinationLeased,
			setup: func(h *harness, _ *copyjob.StartRequest) {
				h.Blobs.FailNext(copyjobtest.OpStartCopy, fmt.Errorf("412 LeaseIdMissing: %w", copyjob.ErrDestinationLeased))
			}},
		{name: "source missing", code: copyjob.CodeSourceNotFound,
			setup: func(h *harness, _ *copyjob.StartRequest) {
				h.Blobs.FailNext(copyjobtest.OpStartCopy, fmt.Errorf("404 CannotVerifyCopySource: %w", copyjob.ErrSourceNotFound))
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			req := leasedReq()
			tt.setup(h, &req)
			req.JobID = "idem"
			job, _, err := h.svc.Start(h.ctx, req)
			first := wantCode(t, err, tt.code)
			if copyjob.Retryable(err) {
				t.Fatalf("%v is retryable", err)
			}
			if job.Status != copyjob.StatusStartFailed {
				t.Fatalf("status = %s", job.Status)
			}
			rec := h.wantStatus(job.ID, copyjob.StatusStartFailed)
			h.wantLeaseReleased(rec)
			if !strings.Contains(rec.StatusDescription, string(tt.code)) {
				t.Fatalf("description %q does not name %s", rec.StatusDescription, tt.code)
			}
			h.wantMessages(0)
			// The replay answers the original refusal, not a 200 with the failed job.
			calls := len(h.Blobs.StartCopyCalls())
			_, created, err := h.svc.Start(h.ctx, req)
			again := wantCode(t, err, tt.code)
			if created || again.Message != first.Message || again.Target != first.Target || len(h.Blobs.StartCopyCalls()) != calls {
				t.Fatalf("replay: created=%v %+v, want %+v and no Copy Blob", created, again, first)
			}
			// A tick finds nothing to do and nothing to release.
			h.tickAfter(time.Hour)
			h.wantNoLeases()
		})
	}
}

func TestStartOverwrite(t *testing.T) {
	for _, overwrite := range []bool{false, true} {
		t.Run(fmt.Sprint("overwrite=", overwrite), func(t *testing.T) {
			h := newHarness(t)
			h.Blobs.Put(dstRef, 10, nil)
			job, _, err := h.svc.Start(h.ctx, copyjob.StartRequest{Source: srcURL, Destination: dstRef,
				Options: copyjob.Options{Overwrite: overwrite}})
			if overwrite {
				if err != nil || job.Status != copyjob.StatusPending {
					t.Fatalf("job %+v err %v", job, err)
				}
				if h.Blobs.StartCopyCalls()[0].Opts.IfNotExists {
					t.Fatal("IfNotExists set with overwrite")
				}
				return
			}
			wantCode(t, err, copyjob.CodeDestinationExists)
			if !errors.Is(err, copyjob.ErrExists) {
				t.Fatalf("err %v does not wrap ErrExists", err)
			}
			if b, _ := h.Blobs.Blob(dstRef); b.Size != 10 {
				t.Fatal("destination was overwritten")
			}
		})
	}
}

func TestStartPendingCopyOperation(t *testing.T) {
	t.Run("owned by a job", func(t *testing.T) {
		h := newHarness(t)
		first := h.start(copyjob.StartRequest{JobID: "first", Source: srcURL, Destination: dstRef})
		job, _, err := h.svc.Start(h.ctx, copyjob.StartRequest{JobID: "second", Source: otherURL, Destination: dstRef,
			Options: copyjob.Options{Overwrite: true}})
		e := wantCode(t, err, copyjob.CodePendingCopyOperation)
		if e.Job == nil || e.Job.ID != first.ID || e.Job.CopyID != first.CopyID {
			t.Fatalf("owner = %+v, want job %s", e.Job, first.ID)
		}
		if job.ID != "second" || job.Status != copyjob.StatusStartFailed {
			t.Fatalf("job = %+v", job)
		}
		h.wantStatus("first", copyjob.StatusPending)
		h.wantMessages(1)
	})
	t.Run("started by someone else", func(t *testing.T) {
		h := newHarness(t)
		foreign := h.Blobs.ForeignCopy(dstRef, externalURL)
		_, _, err := h.svc.Start(h.ctx, copyjob.StartRequest{Source: srcURL, Destination: dstRef,
			Options: copyjob.Options{Overwrite: true, LeaseSource: true}})
		e := wantCode(t, err, copyjob.CodePendingCopyOperation)
		// No invented owner (issue 10, case 8): the message names the foreign copy, and
		// the job is the refused one.
		if !strings.Contains(e.Message, foreign) || !strings.Contains(e.Message, "no job of this app records it") || e.Job == nil || e.Job.Status != copyjob.StatusStartFailed {
			t.Fatalf("error = %+v, want the foreign copy %s named", e, foreign)
		}
		h.wantNoLeases()
	})
}

func TestStartIdempotent(t *testing.T) {
	h := newHarness(t)
	req := copyjob.StartRequest{JobID: "idem", RequestHash: "h1", Source: srcURL, Destination: dstRef,
		Options: copyjob.Options{LeaseSource: true}}
	first := h.start(req)

	again, created, err := h.svc.Start(h.ctx, req)
	if err != nil || created {
		t.Fatalf("retry: created %v err %v", created, err)
	}
	if again.ID != first.ID || again.CopyID != first.CopyID || again.Status != copyjob.StatusPending {
		t.Fatalf("retry returned %+v, want the first job %+v", again, first)
	}
	h.wantStartCopies(1)
	h.wantMessages(1)

	other := req
	other.RequestHash = "h2"
	job, created, err := h.svc.Start(h.ctx, other)
	e := wantCode(t, err, copyjob.CodeIdempotencyMismatch)
	if job != nil || created || e.Job == nil || e.Job.ID != first.ID {
		t.Fatalf("mismatch: job %+v created %v error job %+v", job, created, e.Job)
	}
	h.wantStartCopies(1)
	h.wantMessages(1)
	if got := h.Blobs.LeaseHolder(srcRef); got != first.Lease.ID {
		t.Fatalf("lease holder = %q", got)
	}

	// A retry without a hash is accepted.
	noHash := req
	noHash.RequestHash = ""
	if _, created, err := h.svc.Start(h.ctx, noHash); err != nil || created {
		t.Fatalf("retry without hash: created %v err %v", created, err)
	}
}

func TestStartRejects(t *testing.T) {
	tests := []struct {
		name  string
		req   copyjob.StartRequest
		setup func(*harness)
		code  copyjob.Code
	}{
		{name: "no source", req: copyjob.StartRequest{Destination: dstRef}, code: copyjob.CodeInvalidRequest},
		{name: "lease on external source", code: copyjob.CodeInvalidRequest,
			req: copyjob.StartRequest{Source: externalURL, Destination: dstRef, Options: copyjob.Options{LeaseSource: true}}},
		{name: "SAS lifetime too short", code: copyjob.CodeInvalidRequest,
			req: copyjob.StartRequest{Source: otherURL, Destination: dstRef, Options: copyjob.Options{SASLifetime: copyjob.Duration(time.Second)}}},
		{name: "SAS lifetime too long", code: copyjob.CodeInvalidRequest,
			req: copyjob.StartRequest{Source: otherURL, Destination: dstRef, Options: copyjob.Options{SASLifetime: copyjob.Duration(8 * 24 * time.Hour)}}},
		{name: "invalid source URL", code: copyjob.CodeInvalidRequest,
			req: copyjob.StartRequest{Source: "ftp://x/y", Destination: dstRef}},
		{name: "source not allowed", code: copyjob.CodeSourceNotAllowed,
			req:   copyjob.StartRequest{Source: srcURL, Destination: dstRef},
			setup: func(h *harness) { h.Blobs.FailNext(copyjobtest.OpPrepareSource, copyjob.ErrForbidden) }},
		{name: "unknown destination account", code: copyjob.CodeInvalidRequest,
			req: copyjob.StartRequest{Source: srcURL, Destination: copyjob.BlobRef{Account: "nope", Container: "c", Blob: "b"}}},
		{name: "records down", code: copyjob.CodeStorageUnavailable,
			req:   keyed(copyjob.StartRequest{Source: srcURL, Destination: dstRef}),
			setup: func(h *harness) { h.Records.FailNext(copyjobtest.OpCreate, errBusy) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			if tt.setup != nil {
				tt.setup(h)
			}
			job, created, err := h.svc.Start(h.ctx, tt.req)
			wantCode(t, err, tt.code)
			if job != nil || created {
				t.Fatalf("job %+v created %v", job, created)
			}
			if n := len(h.Records.Jobs()); n != 0 {
				t.Fatalf("%d records left", n)
			}
			// Nothing was enqueued, started or leased.
			h.tickAfter(h.svc.Config().StartGrace + time.Second)
			h.wantMessages(0)
			h.wantStartCopies(0)
			h.wantNoLeases()
		})
	}
}

func TestStartSnapshotDestination(t *testing.T) {
	t.Run("existing destination", func(t *testing.T) {
		h := newHarness(t)
		h.Blobs.Put(dstRef, 10, nil)
		job := h.start(copyjob.StartRequest{Source: srcURL, Destination: dstRef,
			Options: copyjob.Options{Overwrite: true, SnapshotDestination: true}})
		if job.DestinationSnapshot == "" || h.record(job.ID).DestinationSnapshot != job.DestinationSnapshot {
			t.Fatalf("snapshot not recorded: %+v", job)
		}
		snap := dstRef
		snap.Snapshot = job.DestinationSnapshot
		if b, ok := h.Blobs.Blob(snap); !ok || b.Size != 10 {
			t.Fatalf("snapshot %v = %+v %v", snap, b, ok)
		}
	})
	t.Run("new destination", func(t *testing.T) {
		h := newHarness(t)
		job := h.start(copyjob.StartRequest{Source: srcURL, Destination: dstRef,
			Options: copyjob.Options{SnapshotDestination: true}})
		if job.DestinationSnapshot != "" || job.Status != copyjob.StatusPending {
			t.Fatalf("job = %+v", job)
		}
	})
}

func TestStartCallbackKeepsMessage(t *testing.T) {
	h := newHarness(t)
	h.Blobs.SetStartStatus(copyjob.StatusSuccess)
	job := h.start(copyjob.StartRequest{Source: srcURL, Destination: dstRef, CallbackURL: "https://hook.example/done"})
	if job.Callback == nil || job.Callback.DeliveryID == "" {
		t.Fatalf("callback = %+v", job.Callback)
	}
	// The callback is sent behind the answer (a slow receiver must not hold the answer up),
	// and its message deleted once it is delivered.
	h.svc.Wait()
	if d := h.Notifier.Deliveries(); len(d) != 1 || d[0].URL != "https://hook.example/done" || d[0].Job.Status != copyjob.StatusSuccess {
		t.Fatalf("deliveries = %+v", d)
	}
	if cb := h.record(job.ID).Callback; cb.DeliveredAt == nil || cb.DeliveryID != job.Callback.DeliveryID {
		t.Fatalf("recorded callback = %+v", cb)
	}
	h.wantMessages(0)
	h.tickAfter(time.Minute)
	h.wantMessages(0)
	if n := len(h.Notifier.Deliveries()); n != 1 {
		t.Fatalf("%d deliveries", n)
	}
}

// A synchronous copy (Copy Blob From URL) is carried out by storage before it answers.
// Its request is sent before the start's deadline, which is startMargin before its claim
// ends; storage is told to give up within that margin (MaxServerTime), so the copy is
// over at storage before anyone may take the start over, however long the request took
// to leave (a token fetched, a slow connect). An asynchronous copy has no such bound.
func TestSyncStartBoundsStorageToTheClaim(t *testing.T) {
	for _, tt := range []struct {
		grace, margin time.Duration
	}{
		{2 * time.Minute, time.Minute}, // the default: StartDeadline 60 s
		{10 * time.Minute, time.Minute},
		{time.Minute, 45 * time.Second}, // StartDeadline = StartGrace/4
	} {
		t.Run(tt.grace.String(), func(t *testing.T) {
			h := newHarness(t, func(c *copyjob.Config, _ *copyjobtest.Env) { c.StartGrace = tt.grace })
			if got := h.svc.Config().StartGrace - h.svc.Config().StartDeadline; got != tt.margin {
				t.Fatalf("start margin %s, want %s", got, tt.margin)
			}
			req := leasedReq()
			req.Options.RequiresSync = true
			h.start(req)
			calls := h.Blobs.StartCopyCalls()
			if len(calls) != 1 || !calls[0].Opts.RequiresSync || calls[0].Opts.MaxServerTime != tt.margin {
				t.Fatalf("StartCopy calls %+v, want one synchronous with MaxServerTime %s", calls, tt.margin)
			}
		})
	}
}
