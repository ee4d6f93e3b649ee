package copyjob_test

import (
	"testing"
	"time"

	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/copyjob/copyjobtest"
)

// A start without a job id whose record storage refuses after Copy Blob: the copy runs,
// so the start is answered as accepted, and its message (which carries the job and now
// names the copy) lets the tick record it at its first visit: one Copy Blob, the lease
// held while it runs and released after, one message.
func TestUnkeyedStartWhoseRecordFailsIsRecordedByTheTick(t *testing.T) {
	for _, status := range []copyjob.Status{copyjob.StatusPending, copyjob.StatusSuccess} {
		t.Run(string(status), func(t *testing.T) {
			h := newHarness(t)
			job := h.startUnrecorded(status, leasedReq())
			if _, gerr := h.svc.Get(h.ctx, job.ID); gerr == nil {
				t.Fatal("a record exists although storage refused it")
			}
			h.wantMessages(1)

			h.tickAfter(h.svc.Config().FirstPoll) // the first visit: no need to wait for the start grace
			rec := h.wantStatus(job.ID, status)
			h.wantStartCopies(1)
			if rec.CopyID != job.CopyID {
				t.Fatalf("recorded copy %s, the start's %s", rec.CopyID, job.CopyID)
			}
			if status == copyjob.StatusPending {
				if h.Blobs.LeaseHolder(srcRef) != rec.Lease.ID {
					t.Fatal("the lease is not held while the copy runs")
				}
				_ = h.Blobs.CompleteCopy(dstRef)
				h.tickAfter(time.Hour)
				rec = h.wantStatus(job.ID, copyjob.StatusSuccess)
			}
			h.wantLeaseReleased(rec)
			h.wantNoLeases()
			h.wantMessages(0)
		})
	}
}

// A record deleted before its job's first visit, while the message still carries the
// job: the tick writes it again from the message and follows the copy (it does not
// start a second one).
func TestRecordDeletedBeforeTheFirstVisit(t *testing.T) {
	h := newHarness(t)
	job := h.start(leasedReq())
	h.Records.Delete(job.ID)
	if r := h.tickAfter(h.svc.Config().StartGrace + time.Second); r.Pending != 1 {
		t.Fatalf("report = %+v", r)
	}
	rec := h.wantStatus(job.ID, copyjob.StatusPending)
	h.wantStartCopies(1)
	if rec.CopyID != job.CopyID || h.Blobs.LeaseHolder(srcRef) != rec.Lease.ID {
		t.Fatalf("record %+v: want copy %s and the lease held", rec, job.CopyID)
	}
	_ = h.Blobs.CompleteCopy(dstRef)
	h.tickAfter(time.Hour)
	h.wantLeaseReleased(h.wantStatus(job.ID, copyjob.StatusSuccess))
	h.wantMessages(0)
}

// Within the start grace a message without its record belongs to a start that may still
// be running: the tick leaves it (no record written, no Copy Blob) and comes back.
func TestUnrecordedStartIsLeftAloneWithinItsGrace(t *testing.T) {
	h := newHarness(t)
	var report copyjob.TickReport
	h.Blobs.OnNext(copyjobtest.OpStartCopy, func() {
		// Storage is slow: the message becomes visible before Copy Blob returns.
		h.Clock.Advance(h.svc.Config().FirstPoll)
		report = h.tick()
	})
	job := h.start(copyjob.StartRequest{Source: srcURL, Destination: dstRef})
	if report.Dequeued != 1 || report.Resumed != 0 || report.Pending != 1 {
		t.Fatalf("tick during the start: %+v", report)
	}
	h.wantStatus(job.ID, copyjob.StatusPending)
	h.wantStartCopies(1)
	h.wantMessages(1)
}

// A start without a key whose record fails after Copy Blob, and whose message a tick
// holds (or cannot be rewritten), names its copy in a second message: the first one does
// not name it. When the named copy cannot be recorded at its first visit, and the copy
// then ends and another job's copy replaces it, the message that does not name it must
// not take the start over as if nothing had started (a second Copy Blob, refused by the
// other job's pending copy, would leave the job's own copy untracked): the message
// naming the copy records it (pending, without reading the destination) within the
// grace, and the job ends with its own copy's outcome (copyIdMismatch: replaced); Copy
// Blob ran once for it. (Found by make stress.)
func TestTwoMessagesOfAStartRecordTheNamedCopy(t *testing.T) {
	h := newHarness(t)
	h.Records.FailAlways(copyjobtest.OpCreate, errBusy) // every try (createRecord tries three times)
	h.Queue.FailNext(copyjobtest.OpUpdateMessage, errBusy)
	job, _, err := h.svc.Start(h.ctx, copyjob.StartRequest{Source: srcURL, Destination: dstRef, Options: copyjob.Options{Overwrite: true}})
	h.Records.Heal("")
	if err != nil || job.CopyID == "" {
		t.Fatalf("start: %+v %v", job, err)
	}
	h.wantMessages(2)
	h.Records.FailAlways(copyjobtest.OpCreate, errBusy) // the named copy's first recovery cannot record it
	h.tickAfter(h.svc.Config().FirstPoll)
	h.Records.Heal("")
	h.tickAfter(time.Minute) // within the grace: the message naming the copy records it
	_ = h.Blobs.CompleteCopy(dstRef)
	other := h.start(keyed(copyjob.StartRequest{Source: srcURL, Destination: dstRef, Options: copyjob.Options{Overwrite: true}}))
	for range 4 {
		h.tickAfter(h.svc.Config().StartGrace + time.Second)
	}
	rec := h.Records.Job(job.ID)
	if rec == nil || rec.CopyID != job.CopyID || rec.Status != copyjob.StatusCopyIDMismatch {
		t.Fatalf("record %+v: want the job's own copy %s, replaced (copyIdMismatch)", rec, job.CopyID)
	}
	if n := len(h.Blobs.StartCopyCalls()); n != 2 {
		t.Fatalf("%d Copy Blob calls, want 2 (the job's, then %s's)", n, other.ID)
	}
	h.wantNoLeases()
}

// The record of a start without a key is the one write that names its copy: a transient
// refusal of it is tried again before the start falls back on its message.
func TestUnkeyedStartTriesItsRecordAgain(t *testing.T) {
	h := newHarness(t)
	h.Records.FailNext(copyjobtest.OpCreate, errBusy)
	job := h.start(copyjob.StartRequest{Source: srcURL, Destination: dstRef})
	rec := h.wantStatus(job.ID, copyjob.StatusPending)
	if rec.CopyID != job.CopyID || h.Records.Calls(copyjobtest.OpCreate) != 2 {
		t.Fatalf("record %+v after %d creates: want the copy recorded on the second try", rec, h.Records.Calls(copyjobtest.OpCreate))
	}
	h.wantMessages(1)
}

// startUnrecorded starts req, whose Copy Blob answers status, while storage refuses
// every record write: the copy runs (or ran) and the start must answer it as accepted,
// its record left to the tick. Storage heals before it returns.
func (h *harness) startUnrecorded(status copyjob.Status, req copyjob.StartRequest) *copyjob.Job {
	h.t.Helper()
	h.Blobs.SetStartStatus(status)
	h.Records.FailAlways(copyjobtest.OpCreate, errBusy)
	job, created, err := h.svc.Start(h.ctx, req)
	h.Records.Heal("")
	h.Blobs.SetStartStatus(copyjob.StatusPending)
	if err != nil || !created || job.CopyID == "" {
		h.t.Fatalf("start answered %+v created %v err %v: want the running copy accepted", job, created, err)
	}
	return job
}

// A start whose job is recorded in its outcome answers before its tracking message is
// deleted (issue 13: Delete Message is the last call of a copy that ends at once, and
// nothing the client reads depends on it): the answer does not wait for it, the record
// is already in its outcome, and the deletion lands after. Both orders: a start
// without a key whose copy ended at once (its message is the trail), and a keyed start
// with a source lease that Copy Blob refused (its message was enqueued for the lease).
func TestStartAnswersBeforeDeletingItsMessage(t *testing.T) {
	for _, tt := range []struct {
		name  string
		req   copyjob.StartRequest
		setup func(h *harness)
		code  copyjob.Code
		want  copyjob.Status
	}{
		{name: "no key, ended at once", req: copyjob.StartRequest{Source: srcURL, Destination: dstRef},
			setup: func(h *harness) { h.Blobs.SetStartStatus(copyjob.StatusSuccess) }, want: copyjob.StatusSuccess},
		{name: "keyed, leaseSource, refused", req: keyed(leasedReq()),
			setup: func(h *harness) { h.Blobs.Put(dstRef, 10, nil) }, code: copyjob.CodeDestinationExists, want: copyjob.StatusStartFailed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			tt.setup(h)
			held, job, err := h.answerWhileDeleteHeld(func() (*copyjob.Job, error) {
				job, _, err := h.svc.Start(h.ctx, tt.req)
				return job, err
			})
			if got := copyjob.CodeOf(err); got != tt.code || job == nil {
				t.Fatalf("Start: %+v %v, want code %q", job, err, tt.code)
			}
			h.wantStatus(job.ID, tt.want)
			held.release()
			h.wantMessages(0)
			if n := h.Queue.Calls(copyjobtest.OpDelete); n != 1 {
				t.Fatalf("%d Delete Message calls, want 1", n)
			}
		})
	}
}
