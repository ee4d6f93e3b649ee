package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/blobcopy/blobcopy/internal/api"
	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/copyjob/copyjobtest"
	"github.com/blobcopy/blobcopy/internal/rules"
)

// TestBlobNameWithAPercentSequenceIsCopied: the project's own composed fixture
// (testdata/composed/eventgrid-mixed-batch.json) models Event Grid's subject as the raw
// blob name ("report final.csv") and data.url as its percent-encoded URL
// ("report%20final.csv"). readBlobEvent percent-decodes the subject again
// (eventgrid.DecodedName), so a blob whose real name holds "%" followed by two hex
// digits ("50%25off.txt", "a%2Fb.txt") is read as another name, data.url no longer
// matches, and the event is "ignored" (200: Event Grid drops it): the blob is never
// copied (review R1). Whether Azure ever percent-encodes a subject is not verified:
// TestPercentEncodedSubjectIsStillRead keeps that reading working.
func TestBlobNameWithAPercentSequenceIsCopied(t *testing.T) {
	const name = "in/50%25off.txt" // the blob's real name, with a literal '%'
	f := newFixture(t, api.Policy{}, []rules.Rule{rule("uploads", "uploads", "mirror", "", false)})
	f.env.Blobs.Put(copyjob.BlobRef{Container: "uploads", Blob: name}, 5, nil)
	app := "https://" + copyjobtest.DefaultHost
	r := f.do(t, http.MethodPost, "/api/copies", batch(
		blobCreated("pct", "app", "uploads", name, "PutBlob", app+"/uploads/in/50%2525off.txt", `"0x1"`)), eventGridHeaders)
	res := deliveryResult(t, r)["pct"]
	if res.Outcome != api.OutcomeStarted {
		t.Fatalf("blob %q: outcome %s (%s), want started; copies %+v", name, res.Outcome, res.Reason, f.env.Blobs.StartCopyCalls())
	}
	if calls := f.env.Blobs.StartCopyCalls(); len(calls) != 1 || calls[0].Dst.Blob != name {
		t.Fatalf("copies = %+v, want one to %q", calls, name)
	}
}

// TestPercentEncodedSubjectIsStillRead: a subject spelling the name percent-encoded, as
// data.url does, is read decoded when data.url does not name it as written.
func TestPercentEncodedSubjectIsStillRead(t *testing.T) {
	const name = "in/report final.csv"
	f := newFixture(t, api.Policy{}, []rules.Rule{rule("uploads", "uploads", "mirror", "", false)})
	f.env.Blobs.Put(copyjob.BlobRef{Container: "uploads", Blob: name}, 5, nil)
	app := "https://" + copyjobtest.DefaultHost
	r := f.do(t, http.MethodPost, "/api/copies", batch(
		blobCreated("enc", "app", "uploads", "in/report%20final.csv", "PutBlob", app+"/uploads/in/report%20final.csv", `"0x1"`)), eventGridHeaders)
	if res := deliveryResult(t, r)["enc"]; res.Outcome != api.OutcomeStarted {
		t.Fatalf("outcome %s (%s), want started", res.Outcome, res.Reason)
	}
	if calls := f.env.Blobs.StartCopyCalls(); len(calls) != 1 || calls[0].Dst.Blob != name {
		t.Fatalf("copies = %+v, want one to %q", calls, name)
	}
}

// TestPageAndAppendBlobsCreatedEmptyAreNotCopied: Put Blob creates a page or an append
// blob with no content (Put Page and Append Block write it later and raise no event), so
// its BlobCreated is acknowledged and ignored instead of copying an empty blob; a block
// blob's is copied.
func TestPageAndAppendBlobsCreatedEmptyAreNotCopied(t *testing.T) {
	f := newFixture(t, api.Policy{}, []rules.Rule{rule("uploads", "uploads", "mirror", "", false)})
	app := "https://" + copyjobtest.DefaultHost
	var events []string
	for _, kind := range []string{"PageBlob", "AppendBlob", "BlockBlob"} {
		name := "in/" + kind + ".bin"
		f.env.Blobs.Put(copyjob.BlobRef{Container: "uploads", Blob: name}, 5, nil)
		e := blobCreated(kind, "app", "uploads", name, "PutBlob", app+"/uploads/"+name, `"0x1"`)
		events = append(events, strings.Replace(e, `"blobType":"BlockBlob"`, `"blobType":"`+kind+`"`, 1))
	}
	res := deliveryResult(t, f.do(t, http.MethodPost, "/api/copies", batch(events...), eventGridHeaders))
	for kind, want := range map[string]string{"PageBlob": api.OutcomeIgnored, "AppendBlob": api.OutcomeIgnored, "BlockBlob": api.OutcomeStarted} {
		if res[kind].Outcome != want {
			t.Errorf("%s created by PutBlob: outcome %s (%s), want %s", kind, res[kind].Outcome, res[kind].Reason, want)
		}
	}
}
