package api_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/blobcopy/blobcopy/internal/api"
	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/copyjob/copyjobtest"
)

// TestRoutePrefixReachesEveryPathAndLink: the routes, Location, the views' links,
// nextLink, the API description's paths and the 404's pointer all carry the same route
// prefix: "/api" when none is given (the host's default), the given one, and none at
// all for NoRoutePrefix, which is what host.json's "routePrefix": "" asks of the host
// (it then forwards /copies, not /api/copies).
func TestRoutePrefixReachesEveryPathAndLink(t *testing.T) {
	tests := []struct {
		name, option, want string
	}{
		{"unset: the host's default", "", "/api"},
		{"set", "v1/blobcopy", "/v1/blobcopy"},
		{"set with slashes", "/v1/", "/v1"},
		{"none (host.json routePrefix \"\")", api.NoRoutePrefix, ""},
		{"none, through HostRoutePrefix", api.HostRoutePrefix(""), ""},
		{"api, through HostRoutePrefix", api.HostRoutePrefix("api"), "/api"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := copyjobtest.NewEnv()
			env.Blobs.Put(copyjob.BlobRef{Container: "src", Blob: "a.txt"}, 10, nil)
			env.Blobs.Put(copyjob.BlobRef{Container: "src", Blob: "b.txt"}, 10, nil)
			s := api.NewServer(env.Service(copyjob.Config{}), api.Options{
				RoutePrefix: tt.option,
				Policy:      api.Policy{Accounts: []api.Account{appAccount}},
				Auth:        api.Auth{Keys: []string{key}},
				Logger:      quiet,
			})
			mux := http.NewServeMux()
			s.Routes(mux)
			srv := httptest.NewServer(mux)
			defer srv.Close()
			f := &fixture{env: env, srv: srv}

			var first api.JobView
			for _, blob := range []string{"a.txt", "b.txt"} {
				body := []byte(`{"source":"https://` + copyjobtest.DefaultHost + `/src/` + blob + `","destination":{"container":"dst","blob":"` + blob + `"}}`)
				r := f.do(t, http.MethodPost, tt.want+"/copies", body, nil)
				if r.status != http.StatusAccepted {
					t.Fatalf("POST %s/copies = %d %s", tt.want, r.status, r.body)
				}
				var v api.JobView
				if err := json.Unmarshal(r.body, &v); err != nil {
					t.Fatal(err)
				}
				if loc := r.header.Get("Location"); loc != tt.want+"/copies/"+v.ID {
					t.Errorf("Location %q, want %q", loc, tt.want+"/copies/"+v.ID)
				}
				if v.StatusQueryGetURI != tt.want+"/copies/"+v.ID {
					t.Errorf("statusQueryGetUri %q", v.StatusQueryGetURI)
				}
				if blob == "a.txt" {
					first = v
				}
			}
			if r := f.do(t, http.MethodGet, first.StatusQueryGetURI, nil, nil); r.status != http.StatusOK {
				t.Errorf("GET statusQueryGetUri %s = %d %s", first.StatusQueryGetURI, r.status, r.body)
			}

			r := f.do(t, http.MethodGet, tt.want+"/copies?limit=1", nil, nil)
			var page api.ListView
			if err := json.Unmarshal(r.body, &page); r.status != http.StatusOK || err != nil {
				t.Fatalf("GET %s/copies?limit=1 = %d %s", tt.want, r.status, r.body)
			}
			if !strings.HasPrefix(page.NextLink, tt.want+"/copies?") {
				t.Errorf("nextLink %q does not start with %s/copies?", page.NextLink, tt.want)
			} else if r := f.do(t, http.MethodGet, page.NextLink, nil, nil); r.status != http.StatusOK {
				t.Errorf("GET nextLink %s = %d %s", page.NextLink, r.status, r.body)
			}

			r = f.do(t, http.MethodGet, tt.want+"/openapi.json", nil, nil)
			var doc struct {
				Paths map[string]json.RawMessage `json:"paths"`
			}
			if err := json.Unmarshal(r.body, &doc); r.status != http.StatusOK || err != nil {
				t.Fatalf("GET %s/openapi.json = %d", tt.want, r.status)
			}
			if _, ok := doc.Paths[tt.want+"/copies/{id}/abort"]; !ok || len(doc.Paths) == 0 {
				t.Errorf("openapi.json paths lack %s/copies/{id}/abort", tt.want)
			}
			for p := range doc.Paths {
				if !strings.HasPrefix(p, tt.want+"/") {
					t.Errorf("openapi.json path %s is not under %q", p, tt.want)
				}
			}

			for _, p := range s.Paths() {
				if !strings.HasPrefix(p, tt.want+"/") || strings.HasPrefix(p, "//") {
					t.Errorf("Paths() has %q, want it under %q", p, tt.want)
				}
			}
			rec := httptest.NewRecorder()
			s.NotFound().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/nowhere", nil))
			if !strings.Contains(rec.Body.String(), "see "+tt.want+"/openapi.json") {
				t.Errorf("404 body %s does not point at %s/openapi.json", rec.Body, tt.want)
			}
		})
	}
}
