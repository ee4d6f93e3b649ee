package copyjob_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/copyjob/copyjobtest"
)

func TestTickPendingThenSuccess(t *testing.T) {
	h := newHarness(t)
	job := h.start(leasedReq())
	cfg := h.svc.Config()

	// Not visible yet: nothing dequeued.
	if r := h.tick(); r.Dequeued != 0 {
		t.Fatalf("report = %+v", r)
	}

	if err := h.Blobs.SetCopyProgress(dstRef, 100, srcSize); err != nil {
		t.Fatal(err)
	}
	r := h.tickAfter(cfg.FirstPoll)
	if r.Dequeued != 1 || r.Pending != 1 {
		t.Fatalf("report = %+v", r)
	}
	// A poll writes nothing to the record (issue 13): progress is read live.
	h.wantStatus(job.ID, copyjob.StatusPending)
	if got, _ := h.svc.Get(h.ctx, job.ID); got.Progress != (copyjob.Progress{BytesCopied: 100, BytesTotal: srcSize}) {
		t.Fatalf("live progress = %+v", got.Progress)
	}
	ms := h.wantMessages(1)
	if !ms[0].VisibleAt.After(h.Clock.Now()) {
		t.Fatal("message not hidden after a poll")
	}

	// Backoff doubles up to MaxPollInterval; a poll writes no record, whatever progress.
	var waits []time.Duration
	for i := range 6 {
		_ = h.Blobs.SetCopyProgress(dstRef, int64(200+i), srcSize)
		ms := h.wantMessages(1)
		wait := ms[0].VisibleAt.Sub(h.Clock.Now())
		waits = append(waits, wait)
		if r := h.tickAfter(wait - time.Millisecond); r.Dequeued != 0 {
			t.Fatalf("message dequeued before its backoff: %+v", r)
		}
		if r := h.tickAfter(time.Millisecond); r.Pending != 1 {
			t.Fatalf("poll %d: report = %+v", i, r)
		}
		if got, _ := h.svc.Get(h.ctx, job.ID); got.Progress.BytesCopied != int64(200+i) {
			t.Fatalf("poll %d: live progress %d", i, got.Progress.BytesCopied)
		}
	}
	want := []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second, 40 * time.Second, time.Minute, time.Minute}
	if fmt.Sprint(waits) != fmt.Sprint(want) {
		t.Fatalf("waits = %v, want %v", waits, want)
	}
	if h.Blobs.LeaseHolder(srcRef) != job.Lease.ID {
		t.Fatal("lease not held while pending")
	}

	if err := h.Blobs.CompleteCopy(dstRef); err != nil {
		t.Fatal(err)
	}
	r = h.tickAfter(time.Hour)
	if r.Completed != 1 {
		t.Fatalf("report = %+v", r)
	}
	rec := h.wantStatus(job.ID, copyjob.StatusSuccess)
	h.wantLeaseReleased(rec)
	if rec.Progress != (copyjob.Progress{BytesCopied: srcSize, BytesTotal: srcSize}) || rec.CompletedAt == nil {
		t.Fatalf("record = %+v", rec)
	}
	h.wantMessages(0)
	if len(h.Queue.Poisoned()) != 0 {
		t.Fatal("poisoned")
	}
}

// Every terminal outcome is recorded as itself, the lease released and the message dropped.
func TestTickOutcomes(t *testing.T) {
	tests := []struct {
		name     string
		act      func(h *harness)
		want     copyjob.Status
		wantDesc string
	}{
		{name: "failed", want: copyjob.StatusFailed, wantDesc: "500 InternalError",
			act: func(h *harness) { _ = h.Blobs.FailCopy(dstRef, "500 InternalError: source changed") }},
		{name: "aborted by someone else", want: copyjob.StatusAborted, wantDesc: "aborted",
			act: func(h *harness) { _ = h.Blobs.FinishCopy(dstRef, copyjob.StatusAborted, "aborted") }},
		{name: "destination deleted", want: copyjob.StatusDestinationMissing, wantDesc: "deleted",
			act: func(h *harness) { h.Blobs.Delete(dstRef) }},
		{name: "overwritten by another copy", want: copyjob.StatusCopyIDMismatch, wantDesc: "foreign-copy",
			act: func(h *harness) { h.Blobs.ForeignCopy(dstRef, externalURL) }},
		{name: "overwritten by another copy that succeeded", want: copyjob.StatusCopyIDMismatch, wantDesc: "foreign-copy",
			act: func(h *harness) { h.Blobs.ForeignCopy(dstRef, externalURL); _ = h.Blobs.CompleteCopy(dstRef) }},
		{name: "overwritten by a plain write", want: copyjob.StatusCopyIDMismatch, wantDesc: "overwritten",
			act: func(h *harness) { h.Blobs.Put(dstRef, 5, nil) }},
		{name: "written after its copy ended (no copy properties)", want: copyjob.StatusCopyIDMismatch, wantDesc: "shows no copy properties",
			act: func(h *harness) { _ = h.Blobs.CompleteCopy(dstRef); h.Blobs.Put(dstRef, 10, nil) }},
	}
	for _, tt := range tests {
		for _, polledFirst := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/polledFirst=%v", tt.name, polledFirst), func(t *testing.T) {
				h := newHarness(t)
				job := h.start(leasedReq())
				if polledFirst { // the message then carries the copy id (fast path)
					h.tickAfter(time.Minute)
					h.wantStatus(job.ID, copyjob.StatusPending)
				}
				tt.act(h)
				r := h.tickAfter(time.Hour)
				if r.Completed != 1 {
					t.Fatalf("report = %+v", r)
				}
				rec := h.wantStatus(job.ID, tt.want)
				if !strings.Contains(rec.StatusDescription, tt.wantDesc) {
					t.Fatalf("description = %q, want it to contain %q", rec.StatusDescription, tt.wantDesc)
				}
				if rec.CompletedAt == nil {
					t.Fatal("CompletedAt not set")
				}
				h.wantLeaseReleased(rec)
				h.wantMessages(0)
				h.wantStartCopies(1)
			})
		}
	}
}

func TestTickPoisonsInvalidMessages(t *testing.T) {
	for _, text := range []string{"not json", `{"polls":1}`, ""} {
		t.Run(fmt.Sprintf("%q", text), func(t *testing.T) {
			h := newHarness(t)
			if _, err := h.Queue.Enqueue(h.ctx, text, 0); err != nil {
				t.Fatal(err)
			}
			r := h.tick()
			if r.Poisoned != 1 {
				t.Fatalf("report = %+v", r)
			}
			p := h.Queue.Poisoned()
			if len(p) != 1 || p[0].Text != text || !strings.Contains(p[0].Reason, "not a tracking message") {
				t.Fatalf("poisoned = %+v", p)
			}
			h.wantMessages(0)
		})
	}
}

func TestTickPoisonsWhenRecordDeleted(t *testing.T) {
	h := newHarness(t)
	job := h.start(copyjob.StartRequest{Source: srcURL, Destination: dstRef})
	h.tickAfter(h.svc.Config().FirstPoll) // until its first visit the message carries the job: TestRecordDeletedBeforeTheFirstVisit
	_ = h.Blobs.CompleteCopy(dstRef)
	h.Records.Delete(job.ID)
	r := h.tickAfter(h.svc.Config().StartGrace + time.Second)
	if r.Poisoned != 1 {
		t.Fatalf("report = %+v", r)
	}
	p := h.Queue.Poisoned()
	if len(p) != 1 || !strings.Contains(p[0].Reason, "deleted") || !strings.Contains(p[0].Text, job.ID) {
		t.Fatalf("poisoned = %+v", p)
	}
	h.wantMessages(0)
}

func TestTickPoisonsAfterMaxFailuresInARow(t *testing.T) {
	h := newHarness(t)
	job := h.start(leasedReq())
	cfg := h.svc.Config()
	h.tickAfter(cfg.FirstPoll) // one good poll: the message now names the copy
	// A permanent failure (the app lost its role on the destination); storage being
	// unavailable never poisons (TestStorageOutageNeverPoisonsPendingJobs).
	h.Blobs.FailAlways(copyjobtest.OpCopyState, fmt.Errorf("403 AuthorizationPermissionMismatch: %w", copyjob.ErrForbidden))

	at := h.Clock.Now().Add(time.Hour)
	h.Clock.Set(at)
	for i := range cfg.MaxFailures {
		r := h.tick()
		if r.Failed != 1 {
			t.Fatalf("attempt %d: report = %+v", i, r)
		}
		h.wantMessages(1)
		h.Clock.Advance(cfg.ProcessingVisibility)
	}
	r := h.tick()
	if r.Poisoned != 1 {
		t.Fatalf("report = %+v", r)
	}
	h.wantMessages(0)
	p := h.Queue.Poisoned()
	if len(p) != 1 || !strings.Contains(p[0].Reason, fmt.Sprintf("%d attempts", cfg.MaxFailures)) {
		t.Fatalf("poisoned = %+v", p)
	}
	rec := h.record(job.ID)
	if rec.PoisonReason != p[0].Reason {
		t.Fatalf("PoisonReason = %q, want %q", rec.PoisonReason, p[0].Reason)
	}
	// The copy may still run (its state could not be read): its lease is kept, and
	// named in the record and the poison entry for the operator.
	if rec.Status != copyjob.StatusPending || rec.Lease.State != copyjob.LeaseHeld || h.Blobs.LeaseHolder(srcRef) != rec.Lease.ID {
		t.Fatalf("record %s lease %+v holder %q", rec.Status, rec.Lease, h.Blobs.LeaseHolder(srcRef))
	}
}

// Failures that are not consecutive never poison a healthy long copy.
func TestTickFailuresNotInARowDoNotPoison(t *testing.T) {
	h := newHarness(t)
	job := h.start(leasedReq())
	cfg := h.svc.Config()
	for round := range 5 {
		for range cfg.MaxFailures - 1 {
			h.Blobs.FailNext(copyjobtest.OpCopyState, errBusy)
			if r := h.tickAfter(time.Hour); r.Failed != 1 {
				t.Fatalf("round %d: report = %+v", round, r)
			}
		}
		if r := h.tickAfter(time.Hour); r.Pending != 1 {
			t.Fatalf("round %d: report after a good poll = %+v (poison: %+v)", round, r, h.Queue.Poisoned())
		}
	}
	h.wantStatus(job.ID, copyjob.StatusPending)
	if len(h.Queue.Poisoned()) != 0 {
		t.Fatalf("poisoned: %+v", h.Queue.Poisoned())
	}
	_ = h.Blobs.CompleteCopy(dstRef)
	h.tickAfter(time.Hour)
	h.wantLeaseReleased(h.wantStatus(job.ID, copyjob.StatusSuccess))
}

func TestTickRetriesTransientErrors(t *testing.T) {
	tests := []struct {
		name  string
		fault func(*harness)
	}{
		{name: "records read", fault: func(h *harness) { h.Records.FailNext(copyjobtest.OpGet, errBusy) }},
		{name: "outcome write", fault: func(h *harness) { h.Records.FailNext(copyjobtest.OpUpdate, errBusy) }},
		{name: "message delete", fault: func(h *harness) { h.Queue.FailNext(copyjobtest.OpDelete, errBusy) }},
		// Twice: the poll's release before the terminal write, then the effects claim's
		// (see releaseFirst); a single failure is retried within the same visit.
		{name: "lease release", fault: func(h *harness) {
			h.Blobs.FailNext(copyjobtest.OpReleaseLease, errBusy)
			h.Blobs.FailNext(copyjobtest.OpReleaseLease, errBusy)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			job := h.start(leasedReq())
			_ = h.Blobs.CompleteCopy(dstRef)
			tt.fault(h)
			h.tickAfter(time.Minute)
			h.wantMessages(1)
			h.tickAfter(time.Hour)
			h.wantLeaseReleased(h.wantStatus(job.ID, copyjob.StatusSuccess))
			h.wantMessages(0)
			if len(h.Queue.Poisoned()) != 0 {
				t.Fatal("poisoned")
			}
		})
	}
}

func TestTickDequeueErrorIsReported(t *testing.T) {
	h := newHarness(t)
	h.Queue.FailNext(copyjobtest.OpDequeue, errBusy)
	if _, err := h.svc.Tick(h.ctx); err == nil {
		t.Fatal("no error")
	}
}

func TestTickManyJobs(t *testing.T) {
	h := newHarness(t)
	const n = 40
	var ids []string
	for i := range n {
		src := copyjob.BlobRef{Container: "src", Blob: fmt.Sprintf("many/%02d", i)}
		h.Blobs.Put(src, int64(i+1), nil)
		dst := copyjob.BlobRef{Container: "dst", Blob: fmt.Sprintf("many/%02d", i)}
		u, _ := h.Blobs.URL(src)
		job := h.start(copyjob.StartRequest{Source: u, Destination: dst, Options: copyjob.Options{LeaseSource: true}})
		ids = append(ids, job.ID)
	}
	r := h.tickAfter(time.Minute)
	if r.Dequeued != n || r.Pending != n {
		t.Fatalf("report = %+v", r)
	}
	for i := range n {
		dst := copyjob.BlobRef{Container: "dst", Blob: fmt.Sprintf("many/%02d", i)}
		if i%2 == 0 {
			_ = h.Blobs.CompleteCopy(dst)
		} else {
			_ = h.Blobs.FailCopy(dst, "nope")
		}
	}
	r = h.tickAfter(time.Hour)
	if r.Completed != n {
		t.Fatalf("report = %+v", r)
	}
	for i, id := range ids {
		want := copyjob.StatusSuccess
		if i%2 == 1 {
			want = copyjob.StatusFailed
		}
		h.wantStatus(id, want)
	}
	h.wantNoLeases()
	h.wantMessages(0)
}

// A job still "starting" within StartGrace is left to its starter.
func TestTickLeavesStartingJobAloneDuringGrace(t *testing.T) {
	h := newHarness(t)
	job := startingJob(h, "s1", true)
	enqueueTicket(t, h, job.ID)
	h.tickAfter(time.Minute)
	h.wantStatus(job.ID, copyjob.StatusStarting)
	h.wantStartCopies(0)
	if h.Blobs.Calls(copyjobtest.OpAcquireLease) != 0 {
		t.Fatal("lease taken during grace")
	}
	h.wantMessages(1)
}

// startingJob stores a record as Start writes it before taking the lease.
func startingJob(h *harness, id string, lease bool) *copyjob.Job {
	now := h.Clock.Now().UTC()
	u, _ := h.Blobs.URL(dstRef)
	ref := srcRef
	job := &copyjob.Job{
		ID:          id,
		Source:      copyjob.Source{URL: srcURL, Kind: copyjob.SourceSameAccount, Ref: &ref},
		Destination: copyjob.Destination{BlobRef: dstRef, URL: u},
		Options:     copyjob.Options{LeaseSource: lease},
		Status:      copyjob.StatusStarting,
		CreatedAt:   now,
		UpdatedAt:   now,
		Claim:       &copyjob.Claim{Token: "crashed-start", Actor: copyjob.ActorStart, Until: now.Add(h.svc.Config().StartGrace)},
	}
	if lease {
		job.Lease = &copyjob.Lease{ID: "lease-" + id, State: copyjob.LeaseAcquiring}
	}
	h.Records.Put(job)
	return job
}

func enqueueTicket(t *testing.T, h *harness, id string) {
	t.Helper()
	text, _ := json.Marshal(map[string]any{"jobId": id, "destination": dstRef, "created": h.Clock.Now().UTC()})
	if _, err := h.Queue.Enqueue(h.ctx, string(text), h.svc.Config().FirstPoll); err != nil {
		t.Fatal(err)
	}
}

// wantTracked checks that a pending job is followed by one message, or two when the
// crashed start's own message and the sweep's both exist.
func wantTracked(t *testing.T, h *harness, startEnqueued bool) {
	t.Helper()
	if n := h.Queue.Len(); n != 1 && !(startEnqueued && n == 2) {
		t.Fatalf("queue holds %d messages: %+v", n, h.Queue.Messages())
	}
}

// trackedStartingJob is a "starting" record its tracking message follows (a postponed
// start, or one a message was enqueued for before it crashed).
func trackedStartingJob(t *testing.T, h *harness, id string, lease bool) *copyjob.Job {
	enqueueTicket(t, h, id)
	job := startingJob(h, id, lease)
	job.Tracked = true
	h.Records.Put(job)
	return job
}

// A crash between any two steps of Start leaves a state the tick resolves: exactly one
// copy started (a copy begun before the crash is adopted), and no lease held by nobody.
func TestTickResumesCrashedStarts(t *testing.T) {
	tests := []struct {
		name       string
		record     bool // the record was created
		leaseHeld  bool // the lease was acquired
		copyStatus copyjob.Status
		message    bool // a tracking message was enqueued
		want       copyjob.Status
	}{
		// Start enqueues no message before its record any more; a message of an older
		// version, whose start crashed before the record, is still dropped.
		{name: "legacy message without record", record: false, message: true},
		// No message: the tick's sweep finds the "starting" record once its claim ended.
		{name: "after record create", record: true, want: copyjob.StatusPending},
		{name: "after lease acquire", record: true, leaseHeld: true, want: copyjob.StatusPending},
		{name: "after copy start, pending", record: true, leaseHeld: true, copyStatus: copyjob.StatusPending, want: copyjob.StatusPending},
		{name: "after copy start, finished", record: true, leaseHeld: true, copyStatus: copyjob.StatusSuccess, want: copyjob.StatusSuccess},
		{name: "after copy start, failed", record: true, leaseHeld: true, copyStatus: copyjob.StatusFailed, want: copyjob.StatusFailed},
		// The message was enqueued, the record not yet updated: the sweep may add a
		// second message (harmless: both end with the job).
		{name: "after enqueue, pending", record: true, leaseHeld: true, copyStatus: copyjob.StatusPending, message: true, want: copyjob.StatusPending},
		{name: "after enqueue, finished", record: true, leaseHeld: true, copyStatus: copyjob.StatusSuccess, message: true, want: copyjob.StatusSuccess},
	}
	for _, tt := range tests {
		for _, lease := range []bool{true, false} {
			if tt.leaseHeld && !lease {
				continue
			}
			t.Run(fmt.Sprintf("%s/lease=%v", tt.name, lease), func(t *testing.T) {
				h := newHarness(t)
				const id = "crashed"
				if tt.message {
					enqueueTicket(t, h, id)
				}
				job := startingJob(h, id, lease)
				if !tt.record {
					h.Records.Delete(id)
				}
				if tt.leaseHeld {
					h.Blobs.SetLease(srcRef, job.Lease.ID)
				}
				var copyID string
				if tt.copyStatus != "" {
					h.Blobs.SetStartStatus(tt.copyStatus)
					st, err := h.Blobs.StartCopy(h.ctx, dstRef, srcURL, copyjob.StartCopyOptions{IfNotExists: true})
					if err != nil {
						t.Fatal(err)
					}
					copyID = st.CopyID
					h.Blobs.SetStartStatus(copyjob.StatusPending)
				}
				startsBefore := len(h.Blobs.StartCopyCalls())

				h.tickAfter(h.svc.Config().StartGrace + time.Second)
				h.tickAfter(time.Hour) // and once more: nothing changes

				if !tt.record {
					// Nothing was started: the message is dropped, not poisoned (issue 10, case 8).
					if p := h.Queue.Poisoned(); len(p) != 0 {
						t.Fatalf("poisoned = %+v", p)
					}
					h.wantStartCopies(0)
					h.wantMessages(0)
					h.wantNoLeases()
					return
				}
				rec := h.wantStatus(id, tt.want)
				if rec.Attempts != 1 {
					t.Fatalf("attempts = %d", rec.Attempts)
				}
				h.wantStartCopies(1)
				if startsBefore == 1 && rec.CopyID != copyID {
					t.Fatalf("copy id = %s, want the adopted %s", rec.CopyID, copyID)
				}
				if rec.CopyID == "" || rec.StartedAt == nil {
					t.Fatalf("record = %+v", rec)
				}
				switch {
				case tt.want.Terminal():
					if lease {
						h.wantLeaseReleased(rec)
					}
					h.wantNoLeases()
					h.wantMessages(0)
				case lease:
					if rec.Lease.State != copyjob.LeaseHeld || h.Blobs.LeaseHolder(srcRef) != rec.Lease.ID {
						t.Fatalf("lease %+v, holder %q", rec.Lease, h.Blobs.LeaseHolder(srcRef))
					}
					wantTracked(t, h, tt.message)
				default:
					h.wantNoLeases()
					wantTracked(t, h, tt.message)
				}
				if len(h.Queue.Poisoned()) != 0 {
					t.Fatalf("poisoned: %+v", h.Queue.Poisoned())
				}

				if !tt.want.Terminal() { // and the resumed job runs to its end
					_ = h.Blobs.CompleteCopy(dstRef)
					h.tickAfter(time.Hour)
					h.wantStatus(id, copyjob.StatusSuccess)
					h.wantNoLeases()
					h.wantMessages(0)
				}
			})
		}
	}
}

// The destination already carries someone else's copy when the start resumes: the job
// does not adopt it.
func TestTickResumeDoesNotAdoptForeignCopy(t *testing.T) {
	h := newHarness(t)
	trackedStartingJob(t, h, "j", true)
	h.Blobs.ForeignCopy(dstRef, externalURL)
	h.tickAfter(h.svc.Config().StartGrace + time.Second)
	rec := h.record("j")
	if rec.Status != copyjob.StatusStartFailed || !strings.Contains(rec.StatusDescription, string(copyjob.CodePendingCopyOperation)) {
		t.Fatalf("record = %+v", rec)
	}
	h.wantNoLeases()
	h.wantMessages(0)
}

// The starter crashed (or its writes failed) after Copy Blob: Start answered, but the record
// still says "starting". The tick adopts the copy; no second copy starts.
func TestStartRecordUpdateFailsThenTickAdopts(t *testing.T) {
	for _, status := range []copyjob.Status{copyjob.StatusPending, copyjob.StatusSuccess} {
		t.Run(string(status), func(t *testing.T) {
			h := newHarness(t)
			h.Blobs.SetStartStatus(status)
			h.Records.FailAlways(copyjobtest.OpUpdate, copyjobtest.ErrCrash)
			job, _, _ := h.svc.Start(h.ctx, keyed(leasedReq()))
			h.Records.Heal("")
			h.Blobs.SetStartStatus(copyjob.StatusPending)
			h.wantStatus(job.ID, copyjob.StatusStarting)

			h.tickAfter(h.svc.Config().StartGrace + time.Second)
			rec := h.wantStatus(job.ID, status)
			h.wantStartCopies(1)
			if rec.CopyID != job.CopyID {
				t.Fatalf("copy id %s, want %s", rec.CopyID, job.CopyID)
			}
			if status == copyjob.StatusPending {
				_ = h.Blobs.CompleteCopy(dstRef)
				h.tickAfter(time.Hour)
				rec = h.wantStatus(job.ID, copyjob.StatusSuccess)
			}
			h.wantLeaseReleased(rec)
			h.wantMessages(0)
		})
	}
}

// A start resumed after several polls during its grace period keeps a healthy failure
// count: the message is not poisoned by the polls it spent waiting.
func TestTickResumeAfterManyPollsIsNotPoisoned(t *testing.T) {
	h := newHarness(t)
	trackedStartingJob(t, h, "j", true)
	cfg := h.svc.Config()
	for h.Clock.Now().Sub(copyjobtest.Epoch) <= cfg.StartGrace {
		h.tickAfter(cfg.FirstPoll)
	}
	if dc := h.wantMessages(1)[0].DequeueCount; dc <= int64(cfg.MaxFailures) {
		t.Fatalf("dequeue count %d: the test needs more polls during grace", dc)
	}
	if r := h.tickAfter(time.Hour); r.Resumed != 1 {
		t.Fatalf("report = %+v", r)
	}
	h.wantStatus("j", copyjob.StatusPending)
	for range 3 {
		if r := h.tickAfter(time.Hour); r.Pending != 1 {
			t.Fatalf("report = %+v, poisoned %+v", r, h.Queue.Poisoned())
		}
	}
	h.wantStartCopies(1)
}

// A message can become visible before Start has written its record (slow storage): the
// tick keeps it through StartGrace, and only then decides it was orphaned.
func TestTickWaitsForARecordDuringStartGrace(t *testing.T) {
	for _, tc := range []struct {
		name   string
		ticket map[string]any
		poison bool
	}{
		// As Start enqueues it: the destination shows no copy of the job, so the start
		// crashed before its record and started nothing: dropped, nothing to poison.
		{"as Start writes it", map[string]any{"jobId": "not-yet", "destination": dstRef}, false},
		// A message from before tickets named their destination: nothing to look at.
		{"without a destination", map[string]any{"jobId": "not-yet"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			tc.ticket["created"] = h.Clock.Now()
			text, _ := json.Marshal(tc.ticket)
			if _, err := h.Queue.Enqueue(h.ctx, string(text), 0); err != nil {
				t.Fatal(err)
			}
			if r := h.tickAfter(time.Second); r.Pending != 1 || r.Poisoned != 0 {
				t.Fatalf("within the grace period: %+v", r)
			}
			h.wantMessages(1)
			r := h.tickAfter(h.svc.Config().StartGrace + time.Second)
			if (r.Poisoned == 1) != tc.poison || (r.Dropped == 1) == tc.poison {
				t.Fatalf("after the grace period: %+v", r)
			}
			h.wantMessages(0)
		})
	}
}

// The destination snapshot is recorded before the copy starts, so a start resumed after
// a crash restores the snapshot of the original content.
func TestSnapshotRecordedBeforeCopyStarts(t *testing.T) {
	h := newHarness(t)
	h.Blobs.Put(dstRef, 5, nil)
	var seen string
	var once sync.Once
	h.Blobs.OnNext(copyjobtest.OpStartCopy, func() {
		once.Do(func() {
			for _, j := range h.Records.Jobs() {
				seen = j.DestinationSnapshot
			}
		})
	})
	job := h.start(keyed(copyjob.StartRequest{Source: srcURL, Destination: dstRef, Options: copyjob.Options{SnapshotDestination: true, Overwrite: true}}))
	if job.DestinationSnapshot == "" || seen != job.DestinationSnapshot {
		t.Fatalf("snapshot %q, recorded before the copy: %q", job.DestinationSnapshot, seen)
	}
}

// A job record deleted behind the app's back while its copy runs: the tick follows the
// copy through the message, releases the lease the message names once the copy ended
// (never while it runs), then poisons the message with the reason.
func TestTickReleasesLeaseOfDeletedRecord(t *testing.T) {
	h := newHarness(t)
	h.Blobs.Put(srcRef, 10, nil)
	job := h.start(copyjob.StartRequest{Source: srcURL, Destination: dstRef, Options: copyjob.Options{LeaseSource: true, Overwrite: true}})
	if h.Blobs.LeaseHolder(srcRef) != job.Lease.ID {
		t.Fatalf("lease not held by the job")
	}
	h.tickAfter(h.svc.Config().FirstPoll) // the first visit: the message no longer carries the job
	h.Records.Delete(job.ID)
	if r := h.tickAfter(h.svc.Config().StartGrace + time.Second); r.Poisoned != 0 || r.Pending != 1 {
		t.Fatalf("while the copy runs: report = %+v", r)
	}
	if h.Blobs.LeaseHolder(srcRef) != job.Lease.ID {
		t.Fatal("the lease was released while the copy runs")
	}
	_ = h.Blobs.CompleteCopy(dstRef)
	if r := h.tickAfter(time.Hour); r.Poisoned != 1 {
		t.Fatalf("after the copy ended: report = %+v", r)
	}
	h.wantNoLeases()
	h.wantMessages(0)
	if p := h.Queue.Poisoned(); len(p) != 1 || !strings.Contains(p[0].Reason, "deleted while copy "+job.CopyID) {
		t.Fatalf("poisoned = %+v", p)
	}
}

// A visit that fails (storage throttled) brings the message back after a short backoff,
// not after the whole processing visibility, and still counts as a failure.
func TestTickRetriesFailedVisitSoon(t *testing.T) {
	h := newHarness(t)
	h.Blobs.Put(srcRef, 10, nil)
	job := h.start(copyjob.StartRequest{Source: srcURL, Destination: dstRef, Options: copyjob.Options{Overwrite: true}})
	h.tickAfter(time.Minute) // first poll: the ticket learns the copy id
	h.Blobs.FailNext(copyjobtest.OpCopyState, errors.New("503 ServerBusy"))
	if r := h.tickAfter(time.Hour); r.Failed != 1 {
		t.Fatalf("report = %+v", r)
	}
	msgs := h.wantMessages(1)
	if wait := msgs[0].VisibleAt.Sub(h.Clock.Now()); wait <= 0 || wait > h.svc.Config().ProcessingVisibility/2 {
		t.Fatalf("failed message visible again in %s", wait)
	}
	_ = h.Blobs.CompleteCopy(dstRef)
	h.tickAfter(time.Minute)
	h.wantStatus(job.ID, copyjob.StatusSuccess)
}

// Once a pending copy's backoff reaches the longest interval, a poll is one Get Blob
// Properties and no queue write: the dequeue already hid the message for that long.
func TestSteadyPollWritesNothingToTheQueue(t *testing.T) {
	h := newHarness(t)
	job := h.start(copyjob.StartRequest{Source: srcURL, Destination: dstRef, Options: copyjob.Options{Overwrite: true}})
	for range 12 { // young job: every visit reschedules it sooner than the longest interval
		h.tickAfter(time.Hour)
	}
	updates, reads := h.Queue.Calls(copyjobtest.OpUpdateMessage), h.Blobs.Calls(copyjobtest.OpCopyState)
	for range 5 {
		if r := h.tickAfter(time.Hour); r.Pending != 1 {
			t.Fatalf("report = %+v", r)
		}
	}
	if got := h.Queue.Calls(copyjobtest.OpUpdateMessage) - updates; got != 0 {
		t.Errorf("steady polls rewrote the message %d times", got)
	}
	if got := h.Blobs.Calls(copyjobtest.OpCopyState) - reads; got != 5 {
		t.Errorf("steady polls read the copy state %d times, want 5", got)
	}
	// Moving progress costs nothing more: one Get Blob Properties, no record or queue
	// write (issue 13: it cost four requests).
	writes, updates := h.Records.Calls(copyjobtest.OpUpdate)+h.Records.Calls(copyjobtest.OpGet), h.Queue.Calls(copyjobtest.OpUpdateMessage)
	for i := range 5 {
		if err := h.Blobs.SetCopyProgress(dstRef, int64(7+i), srcSize); err != nil {
			t.Fatal(err)
		}
		h.tickAfter(time.Hour)
	}
	if got := h.Records.Calls(copyjobtest.OpUpdate) + h.Records.Calls(copyjobtest.OpGet) - writes; got != 0 {
		t.Errorf("polls with moving progress touched the record %d times", got)
	}
	if got := h.Queue.Calls(copyjobtest.OpUpdateMessage) - updates; got != 0 {
		t.Errorf("polls with moving progress rewrote the message %d times", got)
	}
	_ = h.Blobs.CompleteCopy(dstRef)
	h.tickAfter(time.Hour)
	h.wantStatus(job.ID, copyjob.StatusSuccess)
	h.wantMessages(0)
}

// A panic while processing one message is a counted failure, not a crash of the tick.
func TestTickSurvivesAPanic(t *testing.T) {
	h := newHarness(t)
	job := h.start(copyjob.StartRequest{Source: srcURL, Destination: dstRef, Options: copyjob.Options{Overwrite: true}})
	h.tickAfter(time.Minute)
	h.Blobs.OnNext(copyjobtest.OpCopyState, func() { panic("boom") })
	if r := h.tickAfter(time.Hour); r.Failed != 1 {
		t.Fatalf("report = %+v", r)
	}
	_ = h.Blobs.CompleteCopy(dstRef)
	h.tickAfter(time.Hour)
	h.wantStatus(job.ID, copyjob.StatusSuccess)
}

// A steady poll writes its message once per 50 polls (the checkpoint that tells its
// visits from dying ones): 0.02 Update Message per pending job per tick on top of its
// one Get Blob Properties.
func TestSteadyPollsCheckpointOncePerFiftyPolls(t *testing.T) {
	h := newHarness(t)
	h.Blobs.SetStartStatus(copyjob.StatusPending)
	h.start(copyjob.StartRequest{Source: srcURL, Destination: dstRef, Options: copyjob.Options{Overwrite: true}})
	for range 12 { // young: every visit reschedules it
		h.tickAfter(time.Hour)
	}
	updates, reads := h.Queue.Calls(copyjobtest.OpUpdateMessage), h.Blobs.Calls(copyjobtest.OpCopyState)
	for range 500 {
		h.tickAfter(time.Hour)
	}
	if got := h.Queue.Calls(copyjobtest.OpUpdateMessage) - updates; got < 9 || got > 10 {
		t.Errorf("500 steady polls rewrote the message %d times, want 10 (one per 50)", got)
	}
	if got := h.Blobs.Calls(copyjobtest.OpCopyState) - reads; got != 500 {
		t.Errorf("500 steady polls read the copy state %d times", got)
	}
}

// Review 10: a visit that dies without reporting its failure (the process killed
// mid-visit, every time) ends in the poison queue after a bounded number of visits,
// whatever the poll interval. The cap on all visits alone, scaled so that a copy
// pending two weeks stays below it, took 60 days at a one-minute interval. Review 11:
// visits that finish but cannot write (Update Message refused), an earlier version's
// steady polls, and a message requeued from the poison queue are told apart from dying
// ones.
func TestVisitsThatNeverFinishArePoisonedAndOnlyThey(t *testing.T) {
	interval := testConfig().MaxPollInterval
	steadyCopy := func(t *testing.T, polls int) (*harness, *copyjob.Job) {
		h := newHarness(t)
		h.Blobs.SetStartStatus(copyjob.StatusPending)
		job := h.start(copyjob.StartRequest{Source: srcURL, Destination: dstRef, Options: copyjob.Options{Overwrite: true}})
		for range polls { // a long steady copy first: its visits never count as dying ones
			h.tickAfter(interval)
		}
		if p := h.Queue.Poisoned(); len(p) != 0 {
			t.Fatalf("a steady copy was poisoned: %+v", p[0])
		}
		return h, job
	}
	// dyingVisits lets n visits die: each dies at its first read of the copy or the
	// record, after whatever it wrote to the message before (a probe).
	dyingVisits := func(t *testing.T, h *harness, n int) {
		h.Blobs.FailAlways(copyjobtest.OpCopyState, copyjobtest.ErrCrash)
		h.Records.FailAlways(copyjobtest.OpGet, copyjobtest.ErrCrash)
		kill := func() { h.Queue.FailAlways(copyjobtest.OpUpdateMessage, copyjobtest.ErrCrash) }
		for range n {
			h.Queue.Heal(copyjobtest.OpUpdateMessage)
			h.Blobs.OnNext(copyjobtest.OpCopyState, kill)
			h.Records.OnNext(copyjobtest.OpGet, kill)
			h.tickAfter(interval)
		}
		h.Blobs.Heal("")
		h.Records.Heal("")
		h.Queue.Heal("")
	}
	t.Run("visits that die", func(t *testing.T) {
		h, job := steadyCopy(t, 200)
		dyingVisits(t, h, 30) // a few crashes, then visits that finish: nothing to poison
		h.tickAfter(interval)
		if p := h.Queue.Poisoned(); len(p) != 0 {
			t.Fatalf("poisoned after 30 dying visits: %+v", p[0])
		}
		dyingVisits(t, h, 250) // every visit dies
		p := h.Queue.Poisoned()
		if len(p) != 1 || !strings.Contains(p[0].Reason, "never finished") {
			t.Fatalf("poisoned %+v after 250 dying visits in a row, want the message, saying why", p)
		}
		h.wantStatus(job.ID, copyjob.StatusPending) // the copy may still run: its lease kept, an operator decides
		// Requeued by an operator (requeue-poison resets "seen"; an older tool kept it):
		// dying again, it is poisoned again.
		if _, err := h.Queue.Enqueue(h.ctx, p[0].Text, 0); err != nil {
			t.Fatal(err)
		}
		dyingVisits(t, h, 250)
		if got := h.Queue.Poisoned(); len(got) != 2 {
			t.Fatalf("a requeued message that died 250 times in a row was not poisoned again: %d entries", len(got))
		}
	})
	t.Run("Update Message refused for hours", func(t *testing.T) {
		h, job := steadyCopy(t, 200)
		h.Queue.FailAlways(copyjobtest.OpUpdateMessage, errBusy)
		for range 400 {
			h.tickAfter(interval)
		}
		if p := h.Queue.Poisoned(); len(p) != 0 {
			t.Fatalf("poisoned while Update Message was refused: %s", p[0].Reason)
		}
		h.Queue.Heal("")
		h.tickAfter(interval)
		h.wantStatus(job.ID, copyjob.StatusPending)
	})
	t.Run("an earlier version's steady polls", func(t *testing.T) {
		h, job := steadyCopy(t, 200)
		for range 150 { // a rollback: polls that never rewrite a steady message
			h.Clock.Advance(interval)
			if _, err := h.Queue.Dequeue(h.ctx, 1, interval); err != nil {
				t.Fatal(err)
			}
		}
		for range 300 { // forward again
			h.tickAfter(interval)
		}
		if p := h.Queue.Poisoned(); len(p) != 0 {
			t.Fatalf("a healthy copy was poisoned after a rollback: %s", p[0].Reason)
		}
		h.wantStatus(job.ID, copyjob.StatusPending)
	})
}
