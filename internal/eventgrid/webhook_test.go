package eventgrid

import (
	"encoding/json"
	"net/http"
	"testing"
)

func TestAbuseProtectionResponse(t *testing.T) {
	tests := []struct {
		name   string
		header http.Header
		want   string
		ok     bool
	}{
		{"event grid", header(HeaderRequestOrigin, "eventgrid.azure.net"), "eventgrid.azure.net", true},
		{"lower-case header name", http.Header{"Webhook-Request-Origin": {"eventgrid.azure.net"}}, "eventgrid.azure.net", true},
		{"with callback and rate", header(HeaderRequestOrigin, "eventemitter.example.com",
			HeaderRequestCallback, "https://example.com/confirm?id=12345&key=k", HeaderRequestRate, "120"),
			"eventemitter.example.com", true},
		{"missing", http.Header{}, "", false},
		{"blank", header(HeaderRequestOrigin, "  "), "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := AbuseProtectionResponse(tt.header)
			if got != tt.want || ok != tt.ok {
				t.Errorf("= %q, %v; want %q, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

// The answer to the documentation's validation event is the documentation's
// validation response.
func TestValidationResponse(t *testing.T) {
	d, err := ParseDelivery(header(HeaderEventType, EventTypeSubscriptionValidation),
		readFixture(t, "eventgrid-subscription-validation.json"))
	if err != nil {
		t.Fatal(err)
	}
	if d.Validation == nil {
		t.Fatal("no Validation")
	}
	out, err := json.Marshal(NewValidationResponse(*d.Validation))
	if err != nil {
		t.Fatal(err)
	}
	assertJSONEqual(t, out, readFixture(t, "validation-response.json"))
}
