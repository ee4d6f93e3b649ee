package copyjob_test

import (
	"strings"
	"testing"
	"time"

	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/copyjob/copyjobtest"
)

// TestLeaseNeverAcquiredIsNeverReleased (review R3): a source account the app's identity may read but not lease (docs/
// permissions.md: "lease: false" per source account drops the custom lease role; Lease
// Blob needs blobs/write): a start with leaseSource gets 403 from Acquire Lease, and is
// rightly refused (403 AuthorizationFailure). But the lease stays recorded "acquiring",
// and the refusal's effects try to release it: Release Lease needs the same permission
// and answers 403 too. releaseLease treats ErrForbidden as a transient failure ("will
// retry"), so the refused job keeps a leftover for ever: the tick takes an effects claim
// and calls Release Lease again at every visit (every FirstPoll, never counted towards
// poisoning), the tracking message is never deleted, and POST .../retry answered 409
// CopyNotRetryable ("the last attempt is still being finished") for ever, although no
// lease was ever acquired. Now an acquire storage refused for certain records the lease
// as not acquired.
func TestLeaseNeverAcquiredIsNeverReleased(t *testing.T) {
	for _, tc := range []struct {
		name string
		req  copyjob.StartRequest
	}{
		{"unkeyed", leasedReq()},
		{"keyed", keyed(leasedReq())},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.Blobs.FailAlways(copyjobtest.OpAcquireLease, errDenied)
			h.Blobs.FailAlways(copyjobtest.OpReleaseLease, errDenied)
			job, _, err := h.svc.Start(h.ctx, tc.req)
			if copyjob.CodeOf(err) != copyjob.CodeForbidden || job == nil {
				t.Fatalf("start: job %+v err %v, want refused %s", job, err, copyjob.CodeForbidden)
			}
			for range 30 {
				h.tickAfter(time.Minute)
			}
			h.svc.Wait()
			j := h.record(job.ID)
			releases := h.Blobs.Calls(copyjobtest.OpReleaseLease)
			if j.Lease != nil && (j.Lease.State == copyjob.LeaseAcquiring || j.Lease.State == copyjob.LeaseHeld) {
				t.Errorf("30 minutes after a start refused because the source could not be leased: job %s, lease %s (never acquired), "+
					"%d Release Lease calls, %d tracking message(s) left", j.Status, j.Lease.State, releases, len(h.Queue.Messages()))
			}
			if _, rerr := h.svc.Retry(h.ctx, job.ID, copyjob.RetryOptions{}); copyjob.CodeOf(rerr) == copyjob.CodeCopyNotRetryable {
				t.Errorf("retry of the refused start: %v", rerr)
			}
		})
	}
}

// TestLeaseReleaseRefusedIsAttemptedUntilItSucceeds: a lease the start acquired, whose
// release storage then refuses (the app's lease permission was removed while the copy
// ran: 403 at every visit), was released again at every visit for ever, and the job's
// callback and message never ended. Given up after a few refusals, a lease back in reach
// stayed held for good (review R6). Now the release backs off on the callbacks'
// schedule, the callback is delivered meanwhile, an Error line is written once the
// refusals reach MaxFailures, a retry answers 409 naming the lease, and once storage
// allows it again the lease is released and the message deleted.
func TestLeaseReleaseRefusedIsAttemptedUntilItSucceeds(t *testing.T) {
	h := newHarness(t)
	req := leasedReq()
	req.CallbackURL = hook
	job := h.start(req)
	h.tickAfter(h.svc.Config().FirstPoll)
	if err := h.Blobs.FailCopy(dstRef, "500 InternalError: simulated"); err != nil {
		t.Fatal(err)
	}
	h.Blobs.FailAlways(copyjobtest.OpReleaseLease, errDenied)
	visits := 0
	for range 6 * 60 { // six hours of ticks every minute
		visits += h.tickAfter(time.Minute).Dequeued
	}
	h.svc.Wait()
	j := h.wantStatus(job.ID, copyjob.StatusFailed)
	releases := h.Blobs.Calls(copyjobtest.OpReleaseLease)
	if j.Lease == nil || j.Lease.State != copyjob.LeaseHeld || j.Lease.Refusals < h.svc.Config().MaxFailures || releases > 8 || visits > 12 {
		t.Fatalf("six hours of refused releases: lease %+v, %d Release Lease calls, %d visits", j.Lease, releases, visits)
	}
	if p := h.Queue.Poisoned(); len(p) != 0 || len(h.Queue.Messages()) != 1 {
		t.Fatalf("%d poisoned, %d messages (want the one following the lease)", len(p), len(h.Queue.Messages()))
	}
	if j.Callback == nil || j.Callback.DeliveredAt == nil {
		t.Fatalf("the callback waited for the lease: %+v", j.Callback)
	}
	if _, err := h.svc.Retry(h.ctx, job.ID, copyjob.RetryOptions{}); copyjob.CodeOf(err) != copyjob.CodeCopyNotRetryable || !strings.Contains(err.Error(), j.Lease.ID) {
		t.Fatalf("retry while the lease may be held: %v", err)
	}
	h.Blobs.Heal(copyjobtest.OpReleaseLease)
	for range 11 * 60 { // the backoff reaches 10 hours
		h.tickAfter(time.Minute)
	}
	j = h.record(job.ID)
	if j.Lease.State != copyjob.LeaseReleased || len(h.Queue.Messages()) != 0 {
		t.Fatalf("after storage allowed it again: lease %+v, %d messages", j.Lease, len(h.Queue.Messages()))
	}
	h.wantNoLeases()
}

// TestLeaseAnEarlierAttemptMayHoldIsNeverRecordedNotAcquired: a takeover reads the lease
// from the record, and an earlier attempt that died may have acquired it. A certain
// refusal of the takeover's acquire (a 403: the permission removed since) proves nothing
// about that earlier acquire, so the lease is kept as possibly held (never recorded
// notAcquired, which would strand it unnamed), and its release is attempted until
// storage allows it.
func TestLeaseAnEarlierAttemptMayHoldIsNeverRecordedNotAcquired(t *testing.T) {
	h := newHarness(t)
	h.Blobs.FailNext(copyjobtest.OpAcquireLease, errBusy) // the first attempt fails transiently: the record stays starting
	job, _, _ := h.svc.Start(h.ctx, keyed(leasedReq()))
	if job == nil {
		t.Fatal("no job")
	}
	h.Blobs.FailAlways(copyjobtest.OpAcquireLease, errDenied)
	h.Blobs.FailAlways(copyjobtest.OpReleaseLease, errDenied)
	for range 40 {
		h.tickAfter(time.Minute)
	}
	h.svc.Wait()
	j := h.record(job.ID)
	if j.Lease == nil || j.Lease.State != copyjob.LeaseAcquiring || j.Lease.Refusals == 0 {
		t.Fatalf("a lease an earlier attempt may hold was recorded %+v", j.Lease)
	}
}
