package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/blobcopy/blobcopy/internal/api"
	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/copyjob/copyjobtest"
)

// newOwnersFixture is newFixture with the client principal trusted or not.
func newOwnersFixture(t *testing.T, trust bool) *fixture {
	t.Helper()
	env := copyjobtest.NewEnv()
	svc := env.Service(copyjob.Config{})
	s := api.NewServer(svc, api.Options{
		Policy: api.Policy{Accounts: []api.Account{appAccount}},
		Auth:   api.Auth{Keys: []string{key}, TrustClientPrincipal: trust},
		Logger: quiet,
	})
	mux := http.NewServeMux()
	s.Routes(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	for i := range 8 {
		env.Blobs.Put(copyjob.BlobRef{Container: "src", Blob: fmt.Sprintf("s%d.bin", i)}, 10, nil)
	}
	return &fixture{env: env, srv: srv}
}

// principal is the X-MS-CLIENT-PRINCIPAL value for an object id and app roles.
func principal(oid string, roles ...string) string {
	claims := []map[string]string{{"typ": "http://schemas.microsoft.com/identity/claims/objectidentifier", "val": oid}, {"typ": "name", "val": "user " + oid}}
	for _, r := range roles {
		claims = append(claims, map[string]string{"typ": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role", "val": r})
	}
	b, _ := json.Marshal(map[string]any{"auth_typ": "aad", "claims": claims,
		"name_typ": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
		"role_typ": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"})
	return b64(string(b))
}

// The callers of the scope table (api/caller.go): "" is a key caller.
var (
	alice  = principal("aaaaaaaa-0000-0000-0000-000000000001")
	bob    = principal("bbbbbbbb-0000-0000-0000-000000000002")
	reader = principal("cccccccc-0000-0000-0000-000000000003", api.RoleReadAll)
	admin  = principal("dddddddd-0000-0000-0000-000000000004", api.RoleAdmin)
)

func as(p string) map[string]string { return map[string]string{api.PrincipalHeader: p} }

// start starts a pending copy as the caller and returns its id.
func (f *fixture) startAs(t *testing.T, p string, n int) string {
	t.Helper()
	body := fmt.Sprintf(`{"source":"https://%s/src/s%d.bin","destination":{"container":"dst","blob":"d%d.bin"}}`, copyjobtest.DefaultHost, n, n)
	r := f.do(t, "POST", "/api/copies", []byte(body), as(p))
	if r.status != http.StatusAccepted {
		t.Fatalf("start as %q: %d %s", p, r.status, r.body)
	}
	var v api.JobView
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatal(err)
	}
	return v.ID
}

func (f *fixture) listAs(t *testing.T, p string) []string {
	t.Helper()
	r := f.do(t, "GET", "/api/copies?limit=1000", nil, as(p))
	if r.status != http.StatusOK {
		t.Fatalf("list as %q: %d %s", p, r.status, r.body)
	}
	var l api.ListView
	if err := json.Unmarshal(r.body, &l); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, j := range l.Value {
		ids = append(ids, j.ID)
	}
	slices.Sort(ids)
	return ids
}

func sorted(ids ...string) []string { slices.Sort(ids); return ids }

// TestOwnerScope walks the scope table: each caller reads, lists and aborts each kind
// of job (its own, another owner's, one without an owner).
func TestOwnerScope(t *testing.T) {
	f := newOwnersFixture(t, true)
	jobs := map[string]string{
		"alice": f.startAs(t, alice, 0),
		"bob":   f.startAs(t, bob, 1),
		"key":   f.startAs(t, "", 2),
	}
	for who, id := range jobs {
		if got := f.env.Records.Job(id).Owner; (who == "key") != (got == "") {
			t.Errorf("%s's job recorded owner %q", who, got)
		}
	}
	if got := f.env.Records.Job(jobs["alice"]).Owner; got != "oid:aaaaaaaa-0000-0000-0000-000000000001" {
		t.Errorf("alice's job owner %q", got)
	}

	callers := []struct {
		name, principal string
		reads           []string // job names it can GET; the rest answer 404
		aborts          []string // job names it can abort
		forbidden       []string // job names it reads but may not abort (403)
	}{
		{"key caller", "", []string{"key"}, []string{"key"}, nil},
		{"alice", alice, []string{"alice"}, []string{"alice"}, nil},
		{"bob", bob, []string{"bob"}, []string{"bob"}, nil},
		{"reader", reader, []string{"alice", "bob", "key"}, nil, []string{"alice", "bob", "key"}},
		{"admin", admin, []string{"alice", "bob", "key"}, []string{"alice", "bob", "key"}, nil},
	}
	for _, c := range callers {
		t.Run(c.name+" reads", func(t *testing.T) {
			var want []string
			for _, name := range []string{"alice", "bob", "key"} {
				id := jobs[name]
				r := f.do(t, "GET", "/api/copies/"+id, nil, as(c.principal))
				if slices.Contains(c.reads, name) {
					want = append(want, id)
					if r.status != http.StatusOK {
						t.Errorf("GET %s's job: %d %s", name, r.status, r.body)
					}
					var v api.JobView
					_ = json.Unmarshal(r.body, &v)
					if showsOwner := v.Owner != ""; showsOwner != (c.principal == admin && name != "key") {
						t.Errorf("GET %s's job shows owner %q", name, v.Owner)
					}
					continue
				}
				if r.status != http.StatusNotFound || r.azureError(t).Error.Code != "JobNotFound" {
					t.Errorf("GET %s's job: %d %s, want 404 JobNotFound", name, r.status, r.body)
				}
			}
			if got := f.listAs(t, c.principal); !slices.Equal(got, sorted(want...)) {
				t.Errorf("list = %v, want %v", got, sorted(want...))
			}
		})
	}
	// Aborts last (they end the jobs): refusals first, then each job by a caller allowed to.
	for _, c := range callers {
		for _, name := range []string{"alice", "bob", "key"} {
			if slices.Contains(c.aborts, name) {
				continue
			}
			r := f.do(t, "POST", "/api/copies/"+jobs[name]+"/abort", nil, as(c.principal))
			want, code := http.StatusNotFound, "JobNotFound"
			if slices.Contains(c.forbidden, name) {
				want, code = http.StatusForbidden, "AuthorizationFailure"
			}
			if r.status != want || r.azureError(t).Error.Code != code {
				t.Errorf("%s aborts %s's job: %d %s, want %d %s", c.name, name, r.status, r.body, want, code)
			}
			if st := f.env.Records.Job(jobs[name]).Status; st != copyjob.StatusPending {
				t.Errorf("%s's job is %s after a refused abort by %s", name, st, c.name)
			}
		}
	}
	// Retries are scoped like aborts (these jobs are pending: the allowed caller gets
	// 409 CopyNotRetryable, the others the same 404 or 403 as for an abort).
	for _, c := range callers {
		for _, name := range []string{"alice", "bob", "key"} {
			r := f.do(t, "POST", "/api/copies/"+jobs[name]+"/retry", nil, as(c.principal))
			want, code := http.StatusNotFound, "JobNotFound"
			switch {
			case slices.Contains(c.aborts, name):
				want, code = http.StatusConflict, "CopyNotRetryable"
			case slices.Contains(c.forbidden, name):
				want, code = http.StatusForbidden, "AuthorizationFailure"
			}
			if r.status != want || r.azureError(t).Error.Code != code {
				t.Errorf("%s retries %s's job: %d %s, want %d %s", c.name, name, r.status, r.body, want, code)
			}
		}
	}
	for name, p := range map[string]string{"alice": alice, "bob": admin, "key": ""} {
		r := f.do(t, "POST", "/api/copies/"+jobs[name]+"/abort", nil, as(p))
		if r.status != http.StatusOK {
			t.Errorf("abort %s's job: %d %s", name, r.status, r.body)
		}
		if st := f.env.Records.Job(jobs[name]).Status; st != copyjob.StatusAborted {
			t.Errorf("%s's job is %s after its abort", name, st)
		}
	}
}

// TestOtherOwnersJobAnswersAsMissing: the 404 for another owner's job is byte for byte
// the 404 for an id no job has.
func TestOtherOwnersJobAnswersAsMissing(t *testing.T) {
	f := newOwnersFixture(t, true)
	id := f.startAs(t, alice, 0)
	const missing = "00000000-0000-0000-0000-00000000abcd"
	for _, path := range []string{"/api/copies/%s", "/api/copies/%s/abort", "/api/copies/%s/retry"} {
		method := "GET"
		if strings.HasSuffix(path, "abort") || strings.HasSuffix(path, "retry") {
			method = "POST"
		}
		hidden := f.do(t, method, fmt.Sprintf(path, id), nil, as(bob))
		absent := f.do(t, method, fmt.Sprintf(path, missing), nil, as(bob))
		want := strings.ReplaceAll(string(absent.body), missing, id)
		if hidden.status != http.StatusNotFound || absent.status != http.StatusNotFound || string(hidden.body) != want {
			t.Errorf("%s %s: hidden %d %s\nabsent %d %s", method, path, hidden.status, hidden.body, absent.status, absent.body)
		}
	}
}

// TestIdempotentReplayScopedToOwner: the same Idempotency-Key from two owners starts two
// jobs; each owner's retry replays its own.
func TestIdempotentReplayScopedToOwner(t *testing.T) {
	f := newOwnersFixture(t, true)
	ids := map[string]string{}
	for _, c := range []struct{ name, p string }{{"alice", alice}, {"bob", bob}, {"key", ""}} {
		body := []byte(`{"source":"https://` + copyjobtest.DefaultHost + `/src/s0.bin","destination":{"container":"dst","blob":"` + c.name + `.bin"}}`)
		h := as(c.p)
		h["Idempotency-Key"] = "order-42"
		first := f.do(t, "POST", "/api/copies", body, h)
		var v api.JobView
		_ = json.Unmarshal(first.body, &v)
		if first.header.Get("Idempotent-Replayed") != "" {
			t.Errorf("%s's first request replayed %s", c.name, v.ID)
		}
		again := f.do(t, "POST", "/api/copies", body, h)
		var w api.JobView
		_ = json.Unmarshal(again.body, &w)
		if again.header.Get("Idempotent-Replayed") != "true" || w.ID != v.ID {
			t.Errorf("%s's retry: %d replayed=%q id %s, want a replay of %s", c.name, again.status, again.header.Get("Idempotent-Replayed"), w.ID, v.ID)
		}
		ids[c.name] = v.ID
	}
	if ids["alice"] == ids["bob"] || ids["alice"] == ids["key"] || ids["bob"] == ids["key"] {
		t.Errorf("one key, three callers, ids %v: want three jobs", ids)
	}
	// A key caller's id is derived as before owners existed.
	if ids["key"] != api.JobIDFor("idempotency-key", "order-42") {
		t.Errorf("key caller's job id %s changed", ids["key"])
	}
}

// TestClientPrincipalNotTrusted: without trust the header is ignored entirely: a forged
// admin principal is a key caller, starts jobs without an owner and sees no owned job.
func TestClientPrincipalNotTrusted(t *testing.T) {
	trusted := newOwnersFixture(t, true)
	owned := trusted.startAs(t, alice, 0)

	f := newOwnersFixture(t, false)
	f.env.Records.Put(trusted.env.Records.Job(owned)) // alice's job, as stored
	id := f.startAs(t, admin, 1)
	if got := f.env.Records.Job(id).Owner; got != "" {
		t.Errorf("a job started with an untrusted principal recorded owner %q", got)
	}
	for _, p := range []string{admin, alice, "%%%not base64"} {
		if r := f.do(t, "GET", "/api/copies/"+owned, nil, as(p)); r.status != http.StatusNotFound {
			t.Errorf("untrusted %q read alice's job: %d %s", p, r.status, r.body)
		}
		if got := f.listAs(t, p); !slices.Equal(got, []string{id}) {
			t.Errorf("untrusted %q lists %v, want only the key job %s", p, got, id)
		}
	}
	if r := f.do(t, "POST", "/api/copies/"+owned+"/abort", nil, as(admin)); r.status != http.StatusNotFound {
		t.Errorf("forged admin aborted alice's job: %d %s", r.status, r.body)
	}
}

// TestTrustedPrincipalUnusable: a trusted header that cannot be read or names nobody is
// refused with 401, never taken for a key caller.
func TestTrustedPrincipalUnusable(t *testing.T) {
	f := newOwnersFixture(t, true)
	for name, p := range map[string]string{
		"not base64": "%%%",
		"not JSON":   b64("hello"),
		"no claims":  b64(`{"auth_typ":"aad"}`),
		"nobody":     principalHeader(t, "docs-shape.json"),
		"name only":  b64(`{"auth_typ":"aad","claims":[{"typ":"name","val":"Alva"},{"typ":"roles","val":"Copies.Admin"}]}`),
	} {
		for _, req := range []struct{ method, path string }{{"GET", "/api/copies"}, {"GET", "/api/copies/x"}, {"POST", "/api/copies/x/abort"}, {"POST", "/api/copies"}} {
			r := f.do(t, req.method, req.path, copyBody(""), as(p))
			if r.status != http.StatusUnauthorized || r.azureError(t).Error.Code != api.CodeUnauthorized {
				t.Errorf("%s: %s %s = %d %s, want 401", name, req.method, req.path, r.status, r.body)
			}
		}
	}
	// Without a key the key check answers first, principal or not.
	req, _ := http.NewRequest("GET", f.srv.URL+"/api/copies", nil)
	req.Header.Set(api.PrincipalHeader, admin)
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a principal without a key: %d, want 401", resp.StatusCode)
	}
}

// TestConflictHidesAnotherOwnersJob: a start refused because another owner's copy is
// pending on the destination does not show that job.
func TestConflictHidesAnotherOwnersJob(t *testing.T) {
	f := newOwnersFixture(t, true)
	aliceJob := f.startAs(t, alice, 0)
	body := []byte(`{"source":"https://` + copyjobtest.DefaultHost + `/src/s1.bin","destination":{"container":"dst","blob":"d0.bin"},"overwrite":true}`)
	for _, c := range []struct {
		name, p string
		seesJob bool
	}{{"bob", bob, false}, {"key caller", "", false}, {"alice", alice, true}, {"admin", admin, true}} {
		r := f.do(t, "POST", "/api/copies", body, as(c.p))
		if r.status != http.StatusConflict {
			t.Fatalf("%s: start onto alice's pending copy: %d %s", c.name, r.status, r.body)
		}
		e := r.azureError(t)
		if (e.Job != nil) != c.seesJob {
			t.Errorf("%s: error body job %+v, want shown=%v", c.name, e.Job, c.seesJob)
		}
		if !c.seesJob && strings.Contains(string(r.body), aliceJob) {
			t.Errorf("%s: the answer names alice's job: %s", c.name, r.body)
		}
	}
}
