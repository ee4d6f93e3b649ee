package copyjob_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/copyjob/copyjobtest"
)

// The tests in this file reproduce defects review R6 found in a first version of the
// refused-release handling, which recorded a lease "releaseRefused" after a few refusals
// and stopped asking storage; that state is gone: a refused release backs off on the
// callbacks' schedule until storage allows it.

// TestLeaseReleasedAfterAShort403Burst (review R6): with the app's
// defaults (MaxFailures 5, FirstPoll 5 s) the release backoff is 10 s, 20 s, 40 s, 80 s
// (rounded up to the 30 s ticks: the 5th refusal lands 4 minutes after the first): a
// 403 from Release Lease lasting 5 minutes (a role assignment or a
// network rule being re-propagated) records the lease releaseRefused, and nothing ever
// asks storage again: the source keeps an infinite lease held by nobody, although the
// very next release would have succeeded.
func TestLeaseReleasedAfterAShort403Burst(t *testing.T) {
	h := newHarness(t, func(c *copyjob.Config, _ *copyjobtest.Env) { *c = copyjob.Config{} }) // the app's defaults
	job := h.start(leasedReq())
	h.tickAfter(h.svc.Config().FirstPoll)
	if err := h.Blobs.CompleteCopy(dstRef); err != nil {
		t.Fatal(err)
	}
	h.Blobs.FailAlways(copyjobtest.OpReleaseLease, errDenied)
	for range 10 { // 5 minutes of 403s, ticks every 30 s
		h.tickAfter(30 * time.Second)
	}
	h.Blobs.Heal(copyjobtest.OpReleaseLease)
	for range 120 { // one more hour, storage releasing again
		h.tickAfter(30 * time.Second)
	}
	h.svc.Wait()
	rec := h.record(job.ID)
	if held := h.Blobs.LeaseHolder(srcRef); held != "" {
		t.Fatalf("an hour after a 5-minute 403 burst ended, the source is still leased by %s: record lease %+v, %d Release Lease calls, %d messages left",
			held, *rec.Lease, h.Blobs.Calls(copyjobtest.OpReleaseLease), len(h.Queue.Messages()))
	}
}

// TestRetryWhileARefusedLeaseMayBeHeldKeepsItNamed (review R6): a failed copy whose
// lease is recorded releaseRefused ("the record names it; release it by hand") can be
// retried (releaseRefused is not held). The retry replaces the record's lease with a
// new one and the earlier outcome in History carries no lease: the id of the lease
// still held on the source disappears from the record. The new attempt's Acquire Lease
// then meets that very lease (the job's own) and the retry fails SourceLeased, "the
// source holds another lease", with nothing left in the record to release.
func TestRetryWhileARefusedLeaseMayBeHeldKeepsItNamed(t *testing.T) {
	h := newHarness(t)
	job := h.start(leasedReq())
	h.tickAfter(h.svc.Config().FirstPoll)
	if err := h.Blobs.FailCopy(dstRef, "403 AuthenticationFailed: the source SAS expired"); err != nil {
		t.Fatal(err)
	}
	h.Blobs.FailAlways(copyjobtest.OpReleaseLease, errDenied)
	for range 30 {
		h.tickAfter(time.Minute)
	}
	h.svc.Wait()
	rec := h.wantStatus(job.ID, copyjob.StatusFailed)
	if rec.Lease == nil || rec.Lease.Refusals == 0 {
		t.Fatalf("setup: lease %+v, want its release refused", rec.Lease)
	}
	refused := rec.Lease.ID
	retried, err := h.svc.Retry(h.ctx, job.ID, copyjob.RetryOptions{})
	h.svc.Wait()
	after := h.record(job.ID)
	history, _ := json.Marshal(after.History)
	if (after.Lease == nil || after.Lease.ID != refused) && !strings.Contains(string(history), refused) {
		t.Fatalf("after the retry (answer %v, status %s: %s) the record no longer names lease %s, still held on the source (holder %s); record lease %+v",
			err, retried.Status, after.StatusDescription, refused, h.Blobs.LeaseHolder(srcRef), *after.Lease)
	}
}

// (Review R6 also found a lease never acquired recorded as one to release by hand:
// TestLeaseAnEarlierAttemptMayHoldIsNeverRecordedNotAcquired now holds that such a
// lease stays "acquiring", what it is.)

// TestOrphanPoisonReasonNeverSaysARefusedLeaseWasReleased (review R6): with
// COPY_MAX_FAILURES=1 (a valid setting: 1 to 1000) one 403 makes releaseLease record
// releaseRefused and answer nil ("certainly not held by this job"). The orphan path
// (record deleted while its copy ran) takes nil as "released" and poisons the message
// saying "its source lease (if any) was released" while the source still holds it.
func TestOrphanPoisonReasonNeverSaysARefusedLeaseWasReleased(t *testing.T) {
	h := newHarness(t, func(c *copyjob.Config, _ *copyjobtest.Env) { c.MaxFailures = 1 })
	job := h.start(leasedReq())
	h.tickAfter(h.svc.Config().FirstPoll)
	h.Records.Delete(job.ID)
	if err := h.Blobs.CompleteCopy(dstRef); err != nil {
		t.Fatal(err)
	}
	h.Blobs.FailAlways(copyjobtest.OpReleaseLease, errDenied)
	for range 10 {
		h.tickAfter(time.Minute)
	}
	h.svc.Wait()
	held := h.Blobs.LeaseHolder(srcRef)
	for _, p := range h.Queue.Poisoned() {
		if held != "" && strings.Contains(p.Reason, "was released") {
			t.Fatalf("poison reason %q, but the source is still leased by %s (Release Lease answered 403)", p.Reason, held)
		}
	}
}
