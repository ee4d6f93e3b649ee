package copyjob_test

import (
	"testing"
	"time"

	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/copyjob/copyjobtest"
)

// TestStartRecordedNotStartedIsCorrectedByItsOtherMessage (found by the invariants test
// in CI: "copy copy-1 onto d5.bin is tracked by no job"): a start without a key whose
// record could not be created names its copy in its tracking message; when a tick holds
// that message (it visited it during a slow start), the copy is named in a second
// message. Once the grace has passed, the two may be visited in either order. Visited
// first, the message that names no copy looks at the destination; when another copy has
// replaced this one meanwhile, it records the job startFailed ("it ended before Copy
// Blob"), and the second message found a record and followed it: a copy that ran was
// recorded as never started, and it was tracked by no job. Now that record is a guess:
// its callback waits a grace, and the message naming the copy corrects it to the copy's
// truth (here copyIdMismatch: another copy replaced it), with one callback.
func TestStartRecordedNotStartedIsCorrectedByItsOtherMessage(t *testing.T) {
	// One message a visit, in order: the one that names no copy comes first.
	h := newHarness(t, func(c *copyjob.Config, _ *copyjobtest.Env) { c.BatchSize, c.Concurrency = 1, 1 })
	h.Records.FailAlways(copyjobtest.OpCreate, errBusy)    // the record, after Copy Blob
	h.Queue.FailNext(copyjobtest.OpUpdateMessage, errBusy) // naming the copy in the first message: a second one names it
	job, _, err := h.svc.Start(h.ctx, copyjob.StartRequest{Source: srcURL, Destination: dstRef, Options: copyjob.Options{Overwrite: true},
		CallbackURL: hook})
	h.Records.Heal("")
	if err != nil || job == nil {
		t.Fatalf("start: %v", err)
	}
	if n := len(h.Queue.Messages()); n != 2 {
		t.Fatalf("%d messages, want the first (no copy named) and the second (naming it): %+v", n, h.Queue.Messages())
	}
	first := job.CopyID
	// Another client's copy replaces this one on the destination.
	if err := h.Blobs.CompleteCopy(dstRef); err != nil {
		t.Fatal(err)
	}
	h.Blobs.ForeignCopy(dstRef, externalURL)
	// The grace passes; the message that names no copy is visited first.
	h.Clock.Advance(h.svc.Config().StartGrace + time.Second)
	for range 10 {
		h.tickAfter(time.Minute)
	}
	h.svc.Wait()
	j := h.record(job.ID)
	if j.CopyID != first || j.Status != copyjob.StatusCopyIDMismatch {
		t.Fatalf("job %s copy %q (%s), want copy %s recorded copyIdMismatch", j.Status, j.CopyID, j.StatusDescription, first)
	}
	if d := h.Notifier.Deliveries(); len(d) != 1 || d[0].Job.Status != copyjob.StatusCopyIDMismatch {
		t.Fatalf("callbacks %+v, want one, of the corrected outcome", d)
	}
	h.wantMessages(0)
}
