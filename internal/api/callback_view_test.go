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

// TestCallbackPathNeverInAnswers (review R1): a rule's callbackUrl is an operator
// setting (COPY_RULES). Webhook receivers such as Slack, Teams and Discord carry their
// credential in the PATH (notify.go's own comment; commit ac8d0e0 kept it out of
// errors). Yet every answer about an Event Grid job (owner-less: readable by any
// function-key caller and by Copies.ReadAll principals) shows the rule's callback URL
// with its path as given, so any reader of the job learned the receiver's token. Answers now show the origin only.
func TestCallbackPathNeverInAnswers(t *testing.T) {
	const token = "B0123456789/AbCdEfGhIjKlMnOpQrStUvWx"
	r := rule("uploads", "uploads", "mirror", "", false)
	r.CallbackURL = "https://hooks.example.com/services/T0001/" + token
	f := newFixture(t, api.Policy{}, []rules.Rule{r})
	f.env.Blobs.Put(copyjob.BlobRef{Container: "uploads", Blob: "in/a.txt"}, 5, nil)
	app := "https://" + copyjobtest.DefaultHost
	d := f.do(t, http.MethodPost, "/api/copies", batch(
		blobCreated("e1", "app", "uploads", "in/a.txt", "PutBlob", app+"/uploads/in/a.txt", `"0x1"`)), eventGridHeaders)
	res := deliveryResult(t, d)["e1"]
	if res.JobID == "" {
		t.Fatalf("no job: %s", d.body)
	}
	for _, path := range []string{"/api/copies/" + res.JobID, "/api/copies"} {
		g := f.do(t, http.MethodGet, path, nil, nil)
		if strings.Contains(string(g.body), token) {
			t.Errorf("GET %s (a function-key caller) shows the rule's callback token: %s", path, excerpt(string(g.body), token))
		}
	}
}

func excerpt(s, sub string) string {
	i := strings.Index(s, sub)
	lo := max(0, i-60)
	return s[lo:min(len(s), i+len(sub)+5)]
}
