package api

import (
	"context"
	"net/http"

	"github.com/blobcopy/blobcopy/internal/copyjob"
)

// Caller is who sends a request, as far as the app can tell. Function keys identify no
// one: a caller without a trusted client principal is a key caller, and every key
// caller is the same caller.
//
// What a caller may do with a job (README "Callers and owners" holds the same table):
//
//	caller                      | jobs it starts | own jobs     | another owner's    | jobs without owner
//	key only (no principal)     | no owner       | -            | 404 JobNotFound    | read, abort
//	principal, no app role      | owned by it    | read, abort  | 404 JobNotFound    | 404 JobNotFound
//	principal + Copies.ReadAll  | owned by it    | read, abort  | read; abort 403    | read; abort 403
//	principal + Copies.Admin    | owned by it    | read, abort  | read, abort        | read, abort
//
// Jobs without an owner are those started with a key alone, by Event Grid and by the
// webhook form. A job a caller may not read answers exactly as a missing job does, so
// its existence is not revealed; a reader who can see a job but not abort it is told
// 403, since it knows the job exists anyway.
type Caller struct {
	// Owner is the identity jobs started by this caller record; "" for a key caller.
	Owner string
	// ReadAll and Admin are the app roles Copies.ReadAll and Copies.Admin.
	ReadAll, Admin bool
}

type callerKey struct{}

// callerFrom returns the request's caller (a key caller when none was identified).
func callerFrom(ctx context.Context) Caller {
	c, _ := ctx.Value(callerKey{}).(Caller)
	return c
}

// identify reads the client principal when the deployment trusts it and puts the caller
// in the request's context. An untrusted header is ignored entirely: anyone can send
// one. A trusted header that cannot be read, or names no stable identity, is refused
// (401): the platform wrote it, so the request is not what it seems.
func (a Auth) identify(resp responder, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var c Caller
		if v := r.Header.Get(PrincipalHeader); a.TrustClientPrincipal && v != "" {
			p, err := ParsePrincipal(v)
			if err == nil {
				c.Owner, err = p.Owner()
			}
			if err != nil {
				resp.writeError(w, r, &requestError{status: http.StatusUnauthorized,
					detail: ErrorDetail{Code: CodeUnauthorized, Message: "the client principal cannot be used: " + err.Error()}})
				return
			}
			c.Admin = p.HasRole(RoleAdmin)
			c.ReadAll = c.Admin || p.HasRole(RoleReadAll)
		}
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), callerKey{}, c)))
	})
}

// canRead reports whether the caller may see the job.
func (c Caller) canRead(j *copyjob.Job) bool { return c.ReadAll || j.Owner == c.Owner }

// allowAbort is copyjob.AbortOptions.Allow for this caller.
func (c Caller) allowAbort(j *copyjob.Job) error {
	switch {
	case c.Admin || j.Owner == c.Owner:
		return nil
	case c.ReadAll:
		return &requestError{status: http.StatusForbidden, detail: ErrorDetail{Code: string(copyjob.CodeForbidden), Target: "id",
			Message: "the " + RoleReadAll + " role reads every copy but aborts only the caller's own; aborting another's needs " + RoleAdmin}}
	}
	return jobNotFound(j.ID)
}

// listScope is the owner filter of the caller's listings.
func (c Caller) listScope(opts *copyjob.ListOptions) {
	if !c.ReadAll {
		opts.ByOwner, opts.Owner = true, c.Owner
	}
}

// jobIDKey is what a caller's idempotency key is hashed with: the key alone for a key
// caller (as before owners existed), the owner and the key otherwise, so two owners
// using the same key never meet the same job and a replay is always of the caller's own.
func (c Caller) jobIDKey(key string) (kind, value string) {
	if c.Owner == "" {
		return "idempotency-key", key
	}
	return "owner-idempotency-key", c.Owner + "\x00" + key
}

// jobNotFound is the answer for a job that is absent or that the caller may not see:
// the same code, target and message either way.
func jobNotFound(id string) error {
	return &copyjob.Error{Code: copyjob.CodeJobNotFound, Target: "id", Message: "no copy job with id " + id}
}
