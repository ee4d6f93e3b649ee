package azstorage_test

import (
	"strings"
	"testing"
	"time"

	"github.com/blobcopy/blobcopy/internal/azstorage"
	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/testenv/azurite"
)

// TestBatchLocateRefusesUserInfoAsPrepareSourceDoes: a single copy's source with user
// info (https://user:password@...) is refused by Blobs.PrepareSource ("credentials in
// the URL's user info are not supported"); a batch's source goes through
// BatchStorage.Locate instead, which refuses it too (batch.newBatch refuses it before,
// and the API before that), so it never reaches a batch record, an answer or a log.
func TestBatchLocateRefusesUserInfoAsPrepareSourceDoes(t *testing.T) {
	az := azurite.Start(t, azurite.Options{})
	a, cfg, _ := azuriteAccount(t, az, nil)
	blobs := azstorage.NewBlobs(a)
	storage := azstorage.NewBatchStorage(blobs)
	plain := cfg.BlobEndpoint + "/src/in/"
	if _, ok := storage.Locate(plain); !ok {
		t.Fatalf("BatchStorage.Locate(%q): not located", plain)
	}
	for _, userinfo := range []string{"svc:S3cretPassw0rd@", "svc@", ":S3cretPassw0rd@"} {
		withUser := strings.Replace(cfg.BlobEndpoint, "://", "://"+userinfo, 1) + "/src/in/"
		_, err := blobs.PrepareSource(testCtx(t), withUser+"a.bin", copyjob.BlobRef{Container: "dst", Blob: "a.bin"}, time.Hour)
		if err == nil {
			t.Errorf("single copy PrepareSource(%s) accepted", withUser+"a.bin")
		}
		if loc, ok := storage.Locate(withUser); ok {
			t.Errorf("BatchStorage.Locate(%q) = %+v, true: a batch source with user info is accepted (a single copy's is refused: %v)", withUser, loc, err)
		}
	}
}
