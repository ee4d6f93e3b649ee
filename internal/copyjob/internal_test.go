package copyjob_test

import (
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
