package app_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/blobcopy/blobcopy/internal/copyjob"
)

// Issue 14's input polish, on Azurite: a raw non-ASCII source URL is percent-encoded
// (it used to answer a misleading 403), createContainer false refuses a missing
// container, errors are one line, and an unknown nested field names its path.
func TestInputPolish(t *testing.T) {
	h := newHarness(t, nil)
	h.upload("devstoreaccount1", "source", "dir/été 1.txt", []byte("accents"))
	raw := h.az.BlobEndpoint("devstoreaccount1") + "/source/dir/été 1.txt"

	r := h.startCopy(map[string]any{"source": raw, "destination": map[string]any{"container": "backup", "blob": "ete.txt"}})
	if r.status != http.StatusOK {
		t.Fatalf("raw non-ASCII source: %d %s", r.status, r.body)
	}
	if j := r.job(t); j.Status != copyjob.StatusSuccess || !strings.Contains(j.Source.URL, "/dir/%C3%A9t%C3%A9%201.txt") {
		t.Fatalf("job %+v", j)
	}

	r = h.startCopy(map[string]any{"source": raw, "createContainer": false,
		"destination": map[string]any{"container": "no-such-container", "blob": "x.txt"}})
	e := r.errorResponse(t)
	if r.status != http.StatusNotFound || e.Error.Code != string(copyjob.CodeContainerNotFound) {
		t.Fatalf("createContainer false: %d %s", r.status, r.body)
	}
	for _, d := range e.Error.Details {
		if strings.Contains(d.Message, "\n") || len(d.Message) > 300 {
			t.Errorf("details not one short line: %q", d.Message)
		}
	}
	if e.Job == nil || strings.Contains(e.Job.StatusDescription, "\n") {
		t.Errorf("statusDescription not one line: %+v", e.Job)
	}
	// The default creates it, like AzCopy.
	r = h.startCopy(map[string]any{"source": raw, "destination": map[string]any{"container": "created-on-demand", "blob": "x.txt"}})
	if r.status != http.StatusOK {
		t.Fatalf("default createContainer: %d %s", r.status, r.body)
	}

	r = h.startCopy(map[string]any{"source": raw, "destination": map[string]any{"container": "backup", "blob": "y.txt", "name": "oops"}})
	if e := r.errorResponse(t); r.status != http.StatusBadRequest || e.Error.Code != "UnknownField" || e.Error.Target != "destination.name" {
		t.Fatalf("unknown nested field: %d %s", r.status, r.body)
	}
}
