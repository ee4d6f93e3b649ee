package eventgrid

import (
	"encoding/json"
	"errors"
	"net/http"
	"testing"
)

// FuzzParseDelivery checks that ParseDelivery never panics, refuses only with
// a *DeliveryError, and that what it accepts has the attributes it promises.
// Run briefly with:
//
//	go test -fuzz=FuzzParseDelivery -fuzztime=20s ./internal/eventgrid/
func FuzzParseDelivery(f *testing.F) {
	for _, name := range []string{
		"eventgrid-blob-created.json",
		"eventgrid-blob-created-sftp.json",
		"eventgrid-subscription-validation.json",
		"cloudevents-blob-created.json",
		"cloudevents-blob-created-batch.json",
		"composed/eventgrid-mixed-batch.json",
		"composed/eventgrid-validation-mixed.json",
		"composed/cloudevents-data-base64.json",
	} {
		body := readFixture(f, name)
		f.Add("application/json", EventTypeNotification, body)
		f.Add(ContentTypeCloudEvents, "", body)
		f.Add(ContentTypeCloudEventsBatch, EventTypeSubscriptionValidation, body)
	}
	f.Fuzz(func(t *testing.T, contentType, eventType string, body []byte) {
		h := http.Header{}
		if contentType != "" {
			h.Set("Content-Type", contentType)
		}
		if eventType != "" {
			h.Set(HeaderEventType, eventType)
		}
		IsDelivery(h, body)
		d, err := ParseDelivery(h, body)
		if err != nil {
			var de *DeliveryError
			if !errors.As(err, &de) {
				t.Fatalf("error %T is not a *DeliveryError: %v", err, err)
			}
			if de.Reason == "" {
				t.Fatalf("DeliveryError without a reason: %#v", de)
			}
			return
		}
		if len(d.Events) == 0 || len(d.Events) > MaxEvents {
			t.Fatalf("accepted %d events", len(d.Events))
		}
		if d.Schema != SchemaEventGrid && d.Schema != SchemaCloudEvents {
			t.Fatalf("Schema = %q", d.Schema)
		}
		for i, e := range d.Events {
			if e.ID == "" || e.Type == "" {
				t.Fatalf("event[%d] accepted with ID %q, Type %q", i, e.ID, e.Type)
			}
			if e.Schema != d.Schema {
				t.Fatalf("event[%d].Schema = %q in a %q delivery", i, e.Schema, d.Schema)
			}
			if d.Schema == SchemaEventGrid && e.Data == nil {
				t.Fatalf("event grid event[%d] accepted without data", i)
			}
			if d.Schema == SchemaCloudEvents && e.Source == "" {
				t.Fatalf("cloudevent[%d] accepted without source", i)
			}
			if _, err := ParseBlobCreated(e); err == nil && e.Type != TypeBlobCreated {
				t.Fatalf("ParseBlobCreated accepted type %q", e.Type)
			}
		}
		if d.Validation != nil && (len(d.Events) != 1 || d.Validation.ValidationCode == "") {
			t.Fatalf("validation accepted with %d events, code %q", len(d.Events), d.Validation.ValidationCode)
		}
	})
}

// FuzzSpecVersionProbe checks IsDelivery's shortcut against the parse it skips: a
// body the shortcut passes over never has a "specversion" attribute as encoding/json
// reads one.
//
//	go test -fuzz=FuzzSpecVersionProbe -fuzztime=20s ./internal/eventgrid/
func FuzzSpecVersionProbe(f *testing.F) {
	for _, body := range []string{
		`{"source":"https://a.blob.core.windows.net/c/b","destination":{"container":"c","blob":"b"}}`,
		`{"specversion":"1.0"}`, `{"SpecVersion":1}`, `{"spec\u0076ersion":"1.0"}`, `{"ſpecversion":"1.0"}`,
		`{"a":{"specversion":1}}`, `{"specversion":null}`,
	} {
		f.Add([]byte(body))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var probe struct {
			SpecVersion json.RawMessage `json:"specversion"`
		}
		want := json.Unmarshal(body, &probe) == nil && probe.SpecVersion != nil
		if got := hasSpecVersion(body); got != want {
			t.Errorf("hasSpecVersion(%q) = %v, the parse says %v", body, got, want)
		}
	})
}
