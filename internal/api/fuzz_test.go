package api_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/blobcopy/blobcopy/internal/api"
	"github.com/blobcopy/blobcopy/internal/rules"
)

// FuzzCopyRequest posts arbitrary bodies to POST /api/copies: never a panic, never a
// 500, and every 4xx carries the Azure error shape.
func FuzzCopyRequest(f *testing.F) {
	for _, seed := range []string{
		string(copyBody("")),
		string(copyBody(`,"metadata":{"a":"b"},"tags":{"t":"v"},"tier":"Cool","overwrite":false,"leaseSource":true,"snapshotDestination":true,"sasLifetime":"2h"`)),
		`{"rule":"r","source":"https://h/c/b"}`,
		`{"source":"https://h/c/b?sig=abc&se=2026-01-01T00:00:00Z","destination":{"account":"other","container":"abc","blob":"a/b/c"}}`,
		`[{"id":"1","eventType":"Microsoft.Storage.BlobCreated","subject":"/blobServices/default/containers/in/blobs/a","eventTime":"2024-01-01T00:00:00Z","data":{},"dataVersion":""}]`,
		`{"specversion":"1.0","id":"1","source":"s","type":"t"}`,
		`{}`, `null`, `[]`, `"x"`, `{"source":null}`,
	} {
		f.Add([]byte(seed))
	}
	fx := newFixture(f, api.Policy{}, []rules.Rule{rule("r", "inbox", "outbox", "", false)})
	f.Fuzz(func(t *testing.T, body []byte) {
		r := fx.do(t, http.MethodPost, "/api/copies", body, nil)
		if r.status >= 500 && r.status != http.StatusServiceUnavailable {
			t.Fatalf("status %d for %q: %s", r.status, body, r.body)
		}
		if r.status >= 400 {
			var e api.ErrorResponse
			if err := json.Unmarshal(r.body, &e); err != nil || e.Error.Code == "" {
				t.Fatalf("status %d without an Azure error body for %q: %s", r.status, body, r.body)
			}
		}
	})
}
