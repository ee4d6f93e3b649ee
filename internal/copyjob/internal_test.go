package copyjob_test

import (
	"strings"
	"testing"

	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/copyjob/copyjobtest"
)

// The app's own containers are never a copy's source or destination, through any
// alias that names them, whatever the letter case: the check is on the blob the SAS
// would be signed for. Nothing is written or started.
func TestInternalContainersAreNeitherSourceNorDestination(t *testing.T) {
	h := newHarness(t, func(cfg *copyjob.Config, env *copyjobtest.Env) {
		env.Blobs.AddAccount("same", "same.blob.core.windows.net")
		cfg.InternalContainers = []copyjob.BlobRef{{Container: "copyjobs"}, {Account: "same", Container: "copyjobs"}}
	})
	record := copyjob.BlobRef{Container: "copyjobs", Blob: "jobs/x.json"}
	h.Blobs.Put(record, 10, nil)
	h.Blobs.Put(copyjob.BlobRef{Account: "same", Container: "copyjobs", Blob: "jobs/x.json"}, 10, nil)
	for _, tt := range []struct {
		name string
		req  copyjob.StartRequest
		code copyjob.Code
	}{
		{"source in the app's account", copyjob.StartRequest{Source: "https://" + copyjobtest.DefaultHost + "/copyjobs/jobs/x.json", Destination: dstRef}, copyjob.CodeSourceNotAllowed},
		{"source through another alias", copyjob.StartRequest{Source: "https://same.blob.core.windows.net/copyjobs/jobs/x.json", Destination: dstRef}, copyjob.CodeSourceNotAllowed},
		{"source in capitals", copyjob.StartRequest{Source: "https://" + copyjobtest.DefaultHost + "/COPYJOBS/jobs/x.json", Destination: dstRef}, copyjob.CodeSourceNotAllowed},
		{"destination", copyjob.StartRequest{Source: srcURL, Destination: record}, copyjob.CodeDestinationNotAllowed},
		{"destination through another alias", copyjob.StartRequest{Source: srcURL, Destination: copyjob.BlobRef{Account: "same", Container: "copyjobs", Blob: "y"}}, copyjob.CodeDestinationNotAllowed},
		{"keyed source", keyed(copyjob.StartRequest{Source: "https://" + copyjobtest.DefaultHost + "/copyjobs/jobs/x.json", Destination: dstRef}), copyjob.CodeSourceNotAllowed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			job, _, err := h.svc.Start(h.ctx, tt.req)
			if got := copyjob.CodeOf(err); got != tt.code || job != nil {
				t.Fatalf("Start: %+v, %v; want no job and %s", job, err, tt.code)
			}
		})
	}
	if n := h.Blobs.Calls(copyjobtest.OpStartCopy) + h.Queue.Calls(copyjobtest.OpEnqueue) + h.Records.Calls(copyjobtest.OpCreate); n != 0 {
		t.Errorf("%d storage writes for refused starts", n)
	}
}

// Review 8: a job recorded before that check (or by an older version) is checked again
// wherever its source is prepared again: the tick resuming its start, POST .../retry,
// a batch's child. None of them calls Copy Blob on the app's own containers.
func TestInternalSourceIsRefusedOnEveryLaterAttempt(t *testing.T) {
	internal := func(cfg *copyjob.Config, env *copyjobtest.Env) {
		cfg.InternalContainers = []copyjob.BlobRef{{Container: "copyjobs"}}
		env.Blobs.Put(copyjob.BlobRef{Container: "copyjobs", Blob: "jobs/x.json"}, 10, nil)
	}
	recordURL := "https://" + copyjobtest.DefaultHost + "/copyjobs/jobs/x.json"
	intoRecords := func(j *copyjob.Job) {
		j.Source.URL, j.Source.Ref = recordURL, &copyjob.BlobRef{Container: "copyjobs", Blob: "jobs/x.json"}
	}
	t.Run("the tick", func(t *testing.T) {
		h := newHarness(t, internal)
		h.Blobs.FailAlways(copyjobtest.OpStartCopy, errBusy)
		if _, _, err := h.svc.Start(h.ctx, keyed(copyjob.StartRequest{Source: srcURL, Destination: dstRef})); copyjob.CodeOf(err) != copyjob.CodeStorageUnavailable {
			t.Fatalf("start: %v", err)
		}
		h.Blobs.Heal(copyjobtest.OpStartCopy)
		h.Records.Modify("keyed-job", intoRecords)
		before := len(h.Blobs.StartCopyCalls())
		h.tickAfter(testConfig().MaxPollInterval * 10)
		if job := h.wantStatus("keyed-job", copyjob.StatusStartFailed); !strings.Contains(job.StatusDescription, string(copyjob.CodeSourceNotAllowed)) {
			t.Errorf("description %q, want SourceNotAllowed", job.StatusDescription)
		}
		if n := len(h.Blobs.StartCopyCalls()) - before; n != 0 {
			t.Errorf("%d Copy Blob calls read the app's records", n)
		}
	})
	t.Run("POST retry", func(t *testing.T) {
		h := newHarness(t, internal)
		h.Blobs.SetStartStatus(copyjob.StatusFailed)
		job := h.start(keyed(copyjob.StartRequest{Source: srcURL, Destination: dstRef}))
		h.tickAfter(testConfig().MaxPollInterval)
		h.wantStatus(job.ID, copyjob.StatusFailed)
		h.Records.Modify(job.ID, intoRecords)
		before := len(h.Blobs.StartCopyCalls())
		if _, err := h.svc.Retry(h.ctx, job.ID, copyjob.RetryOptions{}); copyjob.CodeOf(err) != copyjob.CodeSourceNotAllowed {
			t.Errorf("retry: %v, want SourceNotAllowed", err)
		}
		if n := len(h.Blobs.StartCopyCalls()) - before; n != 0 {
			t.Errorf("%d Copy Blob calls read the app's records", n)
		}
	})
}
