package api

import (
	"crypto/subtle"
	"net/http"
)

// Auth is the standalone-mode key check, and whether the client principal header is
// trusted. Under the Functions host the host checks keys before forwarding, so Keys is
// empty and Disabled true.
type Auth struct {
	Keys     []string
	Disabled bool
	// TrustClientPrincipal: read X-MS-CLIENT-PRINCIPAL (caller.go). Only where nobody but
	// the platform can set it: under the host with App Service Authentication on, or
	// standalone on loopback for tests (internal/app decides).
	TrustClientPrincipal bool
}

// requireKey checks the function key in standalone mode (x-functions-key or ?code=), in
// constant time against every configured key.
func (a Auth) requireKey(resp responder, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.Disabled && !a.keyOK(r) {
			resp.writeError(w, r, &requestError{status: http.StatusUnauthorized,
				detail: ErrorDetail{Code: CodeUnauthorized, Message: "a function key is required (x-functions-key header or code query parameter)"}})
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (a Auth) keyOK(r *http.Request) bool {
	given := r.Header.Get("x-functions-key")
	if given == "" {
		given = r.URL.Query().Get("code")
	}
	if given == "" {
		return false
	}
	ok := 0
	for _, k := range a.Keys {
		ok |= subtle.ConstantTimeCompare([]byte(given), []byte(k))
	}
	return ok == 1
}
