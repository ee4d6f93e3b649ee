package app_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/blobcopy/blobcopy/internal/api"
	"github.com/blobcopy/blobcopy/internal/app"
	"github.com/blobcopy/blobcopy/internal/funchost"
)

// clientPrincipal is what App Service Authentication would forward for an Entra object
// id holding the given app roles.
func clientPrincipal(oid string, roles ...string) map[string]string {
	claims := []map[string]string{{"typ": "http://schemas.microsoft.com/identity/claims/objectidentifier", "val": oid}}
	for _, r := range roles {
		claims = append(claims, map[string]string{"typ": "roles", "val": r})
	}
	b, _ := json.Marshal(map[string]any{"auth_typ": "aad", "claims": claims,
		"name_typ": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
		"role_typ": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"})
	return map[string]string{api.PrincipalHeader: base64.StdEncoding.EncodeToString(b)}
}

func (h *harness) listIDs(header map[string]string) []string {
	h.t.Helper()
	r := h.do(http.MethodGet, "/api/copies?limit=1000", nil, header)
	if r.status != http.StatusOK {
		h.t.Fatalf("list: %d %s", r.status, r.body)
	}
	var l api.ListView
	decodeJSON(h.t, r.body, &l)
	var ids []string
	for _, j := range l.Value {
		ids = append(ids, j.ID)
	}
	slices.Sort(ids)
	return ids
}

// TestOwnersOnAzurite: the whole app in standalone mode on loopback with
// BLOBCOPY_TRUST_CLIENT_PRINCIPAL=true, records on Azurite and pending copies on the
// simulator: owners read, list and abort their own copies only; a reader lists all; an
// admin aborts another's; the owner is in the record's blob metadata, which the listing
// filters on.
func TestOwnersOnAzurite(t *testing.T) {
	h := newHarness(t, map[string]string{"BLOBCOPY_TRUST_CLIENT_PRINCIPAL": "true"})
	alice := clientPrincipal("aaaaaaaa-1111-4111-8111-000000000001")
	bob := clientPrincipal("bbbbbbbb-2222-4222-8222-000000000002")
	reader := clientPrincipal("cccccccc-3333-4333-8333-000000000003", api.RoleReadAll)
	admin := clientPrincipal("dddddddd-4444-4444-8444-000000000004", api.RoleAdmin)

	h.sim.PutBlob(simAccount, "src", "owned.bin", []byte("owned data"), nil)
	src := h.sim.AccountEndpoint(simAccount) + "/src/owned.bin"
	start := func(header map[string]string, blob string) string {
		t.Helper()
		body := map[string]any{"source": src, "destination": map[string]any{"account": "sim", "container": "dst", "blob": blob}}
		r := h.do(http.MethodPost, "/api/copies", body, header)
		if r.status != http.StatusAccepted {
			t.Fatalf("start %s: %d %s", blob, r.status, r.body)
		}
		return r.job(t).ID
	}
	aliceJob := start(alice, "alice.bin")
	bobJob := start(bob, "bob.bin")
	keyJob := start(nil, "key.bin")

	// The record's metadata carries the owner (query-escaped) beside the status.
	md := map[string]string{}
	c := h.blobClient("devstoreaccount1")
	pager := c.NewListBlobsFlatPager(app.DefaultRecords, &container.ListBlobsFlatOptions{Include: container.ListBlobsInclude{Metadata: true}})
	for pager.More() {
		page, err := pager.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range page.Segment.BlobItems {
			for k, v := range it.Metadata {
				if k == "owner" && v != nil {
					md[*it.Name] = *v
				}
			}
		}
	}
	if got, want := md["jobs/"+aliceJob+".json"], url.QueryEscape("oid:aaaaaaaa-1111-4111-8111-000000000001"); got != want {
		t.Errorf("alice's record metadata owner %q, want %q", got, want)
	}
	if v, ok := md["jobs/"+keyJob+".json"]; ok {
		t.Errorf("the key job's record carries owner metadata %q", v)
	}

	if got := h.listIDs(alice); !slices.Equal(got, []string{aliceJob}) {
		t.Errorf("alice lists %v, want %v", got, []string{aliceJob})
	}
	if got := h.listIDs(nil); !slices.Equal(got, []string{keyJob}) {
		t.Errorf("a key caller lists %v, want %v", got, []string{keyJob})
	}
	all := []string{aliceJob, bobJob, keyJob}
	slices.Sort(all)
	if got := h.listIDs(reader); !slices.Equal(got, all) {
		t.Errorf("a reader lists %v, want %v", got, all)
	}
	if r := h.do(http.MethodGet, "/api/copies/"+aliceJob, nil, bob); r.status != http.StatusNotFound || r.errorResponse(t).Error.Code != "JobNotFound" {
		t.Errorf("bob reads alice's job: %d %s", r.status, r.body)
	}
	if r := h.do(http.MethodGet, "/api/copies/"+aliceJob, nil, admin); r.status != http.StatusOK || r.job(t).Owner == "" {
		t.Errorf("admin reads alice's job: %d %s (want the owner shown)", r.status, r.body)
	}
	if r := h.do(http.MethodGet, "/api/copies/"+aliceJob, nil, alice); r.status != http.StatusOK || r.job(t).Owner != "" {
		t.Errorf("alice reads her job: %d %s (owner shown to admins only)", r.status, r.body)
	}
	if r := h.do(http.MethodPost, "/api/copies/"+aliceJob+"/abort", nil, bob); r.status != http.StatusNotFound {
		t.Errorf("bob aborts alice's job: %d %s", r.status, r.body)
	}
	if r := h.do(http.MethodPost, "/api/copies/"+aliceJob+"/abort", nil, reader); r.status != http.StatusForbidden {
		t.Errorf("a reader aborts alice's job: %d %s", r.status, r.body)
	}
	if cs, _ := h.sim.Copy(simAccount, "dst", "alice.bin"); cs.Status != "pending" {
		t.Fatalf("alice's copy is %q after refused aborts", cs.Status)
	}
	if r := h.do(http.MethodPost, "/api/copies/"+bobJob+"/abort", nil, bob); r.status != http.StatusOK || r.job(t).Status != "aborted" {
		t.Errorf("bob aborts his job: %d %s", r.status, r.body)
	}
	if r := h.do(http.MethodPost, "/api/copies/"+aliceJob+"/abort", nil, admin); r.status != http.StatusOK || r.job(t).Status != "aborted" {
		t.Errorf("admin aborts alice's job: %d %s", r.status, r.body)
	}
	if cs, _ := h.sim.Copy(simAccount, "dst", "alice.bin"); cs.Status != "aborted" {
		t.Errorf("alice's copy is %q after the admin's abort", cs.Status)
	}
	// The owner survives the record's updates: still alice's, and still hidden from bob.
	if got := h.listIDs(alice); !slices.Equal(got, []string{aliceJob}) {
		t.Errorf("after the abort alice lists %v", got)
	}
	if r := h.do(http.MethodGet, "/api/copies?status=aborted", nil, bob); r.status != http.StatusOK {
		t.Fatalf("bob lists aborted: %d %s", r.status, r.body)
	} else {
		var l api.ListView
		decodeJSON(t, r.body, &l)
		if len(l.Value) != 1 || l.Value[0].ID != bobJob {
			t.Errorf("bob's aborted jobs: %s", r.body)
		}
	}
}

// TestTrustClientPrincipalSetting: the header is believed only where nothing but the
// platform can set it. Standalone off loopback the setting is refused at start-up;
// under the host it takes effect only with WEBSITE_AUTH_ENABLED=True, and is otherwise
// ignored (a forged admin principal is a key caller).
func TestTrustClientPrincipalSetting(t *testing.T) {
	t.Run("standalone off loopback", func(t *testing.T) {
		values := map[string]string{
			"FUNCTIONS_WORKER_RUNTIME":        "custom",
			"AzureWebJobsStorage":             "UseDevelopmentStorage=true",
			"BLOBCOPY_LISTEN_ADDRESS":         "0.0.0.0:7071",
			"BLOBCOPY_FUNCTION_KEYS":          "k1",
			"BLOBCOPY_TRUST_CLIENT_PRINCIPAL": "true",
		}
		_, err := app.New(repoRoot(t), funchost.NewSettings(values), app.Options{Logger: slog.New(slog.DiscardHandler)})
		if err == nil {
			t.Fatal("BLOBCOPY_TRUST_CLIENT_PRINCIPAL=true accepted on 0.0.0.0")
		}
	})
	forged := clientPrincipal("eeeeeeee-5555-4555-8555-000000000005", api.RoleAdmin)
	unreadable := map[string]string{api.PrincipalHeader: "%%% not base64"}
	for _, tt := range []struct {
		name        string
		authEnabled string
		trusted     bool
	}{
		{"hosted, platform authentication off", "", false},
		{"hosted, platform authentication False", "False", false},
		{"hosted, platform authentication True", "True", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			extra := map[string]string{"FUNCTIONS_CUSTOMHANDLER_PORT": "7999", "BLOBCOPY_TRUST_CLIENT_PRINCIPAL": "true"}
			if tt.authEnabled != "" {
				extra["WEBSITE_AUTH_ENABLED"] = tt.authEnabled
			}
			h := newHarness(t, extra)
			if !h.app.Hosted() {
				t.Fatal("not hosted")
			}
			r := h.do(http.MethodGet, "/api/copies", nil, unreadable)
			if tt.trusted && r.status != http.StatusUnauthorized {
				t.Errorf("trusted, unreadable principal: %d %s, want 401", r.status, r.body)
			}
			if !tt.trusted && r.status != http.StatusOK {
				t.Errorf("untrusted, unreadable principal: %d %s, want it ignored", r.status, r.body)
			}
			h.upload("devstoreaccount1", "src", "t.txt", []byte("x"))
			body := map[string]any{"source": h.az.BlobEndpoint("devstoreaccount1") + "/src/t.txt", "destination": map[string]any{"container": "dst", "blob": "t.txt"}}
			started := h.do(http.MethodPost, "/api/copies", body, forged)
			if started.status != http.StatusOK && started.status != http.StatusAccepted {
				t.Fatalf("start: %d %s", started.status, started.body)
			}
			id := started.job(t).ID
			// A key caller sees the job only if the principal was ignored.
			if r := h.do(http.MethodGet, "/api/copies/"+id, nil, nil); (r.status == http.StatusOK) == tt.trusted {
				t.Errorf("key caller reads the job started with an admin principal: %d (trusted %v)", r.status, tt.trusted)
			}
		})
	}
}
