package eventgrid

import (
	"net/http"
	"strings"
)

// AbuseProtectionResponse reads the OPTIONS validation request of the
// CloudEvents webhook abuse protection (used by Event Grid for subscriptions
// with the CloudEvents schema) and returns the origin to echo in
// WebHook-Allowed-Origin. ok is false when the request has no
// WebHook-Request-Origin header, in which case the answer must not carry the
// grant headers.
//
// The caller answers 200 with
//
//	WebHook-Allowed-Origin: <allowedOrigin>
//	WebHook-Allowed-Rate: *
//	Allow: POST
//
// The package does not decide which origins to trust; Event Grid's is
// "eventgrid.azure.net".
func AbuseProtectionResponse(h http.Header) (allowedOrigin string, ok bool) {
	origin := strings.TrimSpace(h.Get(HeaderRequestOrigin))
	if origin == "" {
		return "", false
	}
	return origin, true
}

// NewValidationResponse returns the body answering a subscription validation
// delivery.
func NewValidationResponse(v SubscriptionValidationData) ValidationResponse {
	return ValidationResponse{ValidationResponse: v.ValidationCode}
}
