package copyjob_test

import (
	"strings"
	"testing"

	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/copyjob/copyjobtest"
)

// A start whose source carries the caller's SAS keeps it nowhere. When it fails
// transiently, only a replay of the request (which brings the SAS back) may attempt it
// again; the tick and POST .../retry cannot, and must not try without it: storage
// would refuse for want of the SAS, a false CannotVerifyCopySource.
func TestCallerSASStartIsAttemptedAgainOnlyWithItsSAS(t *testing.T) {
	const sas = "?sv=2025-01-05&sp=r&sig=callersecret"
	t.Run("a replay brings the SAS back", func(t *testing.T) {
		h := newHarness(t)
		h.Blobs.SetStartStatus(copyjob.StatusSuccess)
		req := keyed(copyjob.StartRequest{Source: otherURL + sas, Destination: dstRef})
		h.Blobs.FailAlways(copyjobtest.OpStartCopy, errBusy)
		if _, _, err := h.svc.Start(h.ctx, req); copyjob.CodeOf(err) != copyjob.CodeStorageUnavailable {
			t.Fatalf("first start: %v, want StorageUnavailable", err)
		}
		h.Blobs.Heal(copyjobtest.OpStartCopy)
		job, _, err := h.svc.Start(h.ctx, req) // the client's retry of the same request
		if err != nil || job.Status != copyjob.StatusSuccess {
			t.Fatalf("replay: %+v, %v; want success", job, err)
		}
		calls := h.Blobs.StartCopyCalls()
		if last := calls[len(calls)-1]; !strings.Contains(last.ReadURL, "sig=callersecret") {
			t.Errorf("the replay's Copy Blob read %q, without the caller's SAS", last.ReadURL)
		}
	})
	t.Run("an external URL's token: the tick ends the job", func(t *testing.T) {
		h := newHarness(t)
		req := keyed(copyjob.StartRequest{Source: externalURL + "?token=callersecret", Destination: dstRef})
		h.Blobs.FailAlways(copyjobtest.OpStartCopy, errBusy)
		if _, _, err := h.svc.Start(h.ctx, req); copyjob.CodeOf(err) != copyjob.CodeStorageUnavailable {
			t.Fatalf("first start: %v, want StorageUnavailable", err)
		}
		h.Blobs.Heal(copyjobtest.OpStartCopy)
		before := len(h.Blobs.StartCopyCalls())
		h.tickAfter(testConfig().MaxPollInterval * 10)
		if job := h.wantStatus("keyed-job", copyjob.StatusStartFailed); !strings.Contains(job.StatusDescription, string(copyjob.CodeSourceQueryNotKept)) {
			t.Errorf("description %q, want it to say the query is not kept", job.StatusDescription)
		}
		if n := len(h.Blobs.StartCopyCalls()) - before; n != 0 {
			t.Errorf("the tick called Copy Blob %d times without the URL's token", n)
		}
	})
	t.Run("the tick ends the job, saying why", func(t *testing.T) {
		h := newHarness(t)
		req := keyed(copyjob.StartRequest{Source: externalURL + sas, Destination: dstRef})
		h.Blobs.FailAlways(copyjobtest.OpStartCopy, errBusy)
		if _, _, err := h.svc.Start(h.ctx, req); copyjob.CodeOf(err) != copyjob.CodeStorageUnavailable {
			t.Fatalf("first start: %v, want StorageUnavailable", err)
		}
		h.Blobs.Heal(copyjobtest.OpStartCopy)
		before := len(h.Blobs.StartCopyCalls())
		h.tickAfter(testConfig().MaxPollInterval * 10)
		job := h.wantStatus("keyed-job", copyjob.StatusStartFailed)
		if n := len(h.Blobs.StartCopyCalls()) - before; n != 0 {
			t.Errorf("the tick called Copy Blob %d times without the caller's SAS", n)
		}
		if !strings.Contains(job.StatusDescription, string(copyjob.CodeSourceQueryNotKept)) || strings.Contains(job.StatusDescription, "CannotVerifyCopySource") {
			t.Errorf("description %q, want it to say the SAS is not kept", job.StatusDescription)
		}
		// A replay now answers the same, and POST .../retry refuses likewise.
		if _, _, err := h.svc.Start(h.ctx, req); copyjob.CodeOf(err) != copyjob.CodeSourceQueryNotKept {
			t.Errorf("replay after the tick: %v, want %s", err, copyjob.CodeSourceQueryNotKept)
		}
		if _, err := h.svc.Retry(h.ctx, "keyed-job", copyjob.RetryOptions{}); copyjob.CodeOf(err) != copyjob.CodeSourceQueryNotKept {
			t.Errorf("retry: %v, want %s", err, copyjob.CodeSourceQueryNotKept)
		}
	})
	// Review 8: a blob in a configured account needs no caller's query: the app signs
	// its own SAS for it on the next attempt, as at any start. Refusing it broke the
	// tick and POST .../retry for a harmless query (a timeout, a tracking parameter)
	// or a caller's SAS the app did not need.
	for _, tt := range []struct{ name, source string }{
		{"a caller's SAS on a configured account", otherURL + sas},
		{"a harmless query on a configured account", otherURL + "?timeout=30"},
		{"a harmless query on the app's account", srcURL + "?utm=x"},
	} {
		t.Run(tt.name+": the tick attempts it again", func(t *testing.T) {
			h := newHarness(t)
			h.Blobs.SetStartStatus(copyjob.StatusSuccess)
			req := keyed(copyjob.StartRequest{Source: tt.source, Destination: dstRef})
			h.Blobs.FailAlways(copyjobtest.OpStartCopy, errBusy)
			if _, _, err := h.svc.Start(h.ctx, req); copyjob.CodeOf(err) != copyjob.CodeStorageUnavailable {
				t.Fatalf("first start: %v, want StorageUnavailable", err)
			}
			h.Blobs.Heal(copyjobtest.OpStartCopy)
			h.tickAfter(testConfig().MaxPollInterval * 10)
			h.wantStatus("keyed-job", copyjob.StatusSuccess)
			calls := h.Blobs.StartCopyCalls()
			if last := calls[len(calls)-1]; strings.Contains(last.ReadURL, "callersecret") {
				t.Errorf("the tick read %q: a SAS it never stored", last.ReadURL)
			}
		})
		t.Run(tt.name+": POST retry attempts it again", func(t *testing.T) {
			h := newHarness(t)
			h.Blobs.SetStartStatus(copyjob.StatusFailed)
			job := h.start(keyed(copyjob.StartRequest{Source: tt.source, Destination: dstRef}))
			h.tickAfter(testConfig().MaxPollInterval)
			h.wantStatus(job.ID, copyjob.StatusFailed)
			h.Blobs.SetStartStatus(copyjob.StatusSuccess)
			if got, err := h.svc.Retry(h.ctx, job.ID, copyjob.RetryOptions{}); err != nil || got.Status != copyjob.StatusSuccess {
				t.Fatalf("retry: %+v, %v; want success", got, err)
			}
		})
	}
}
