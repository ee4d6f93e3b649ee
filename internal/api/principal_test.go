package api_test

import (
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/blobcopy/blobcopy/internal/api"
)

// principalHeader is the header value App Service would send for a testdata document.
func principalHeader(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "principal", name))
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestParsePrincipalFixtures(t *testing.T) {
	tests := []struct {
		file        string
		owner       string
		roles       []string
		admin, read bool
	}{
		{"entra-user.json", "oid:5f8c2b1e-0d3a-4c6b-9a7e-2f1d4b3c6a8e", []string{api.RoleReadAll}, false, true},
		{"entra-app.json", "oid:9d3e7a21-4c5b-4f8e-b1a2-6e0f3d9c8b7a", []string{api.RoleAdmin}, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			p, err := api.ParsePrincipal(principalHeader(t, tt.file))
			if err != nil {
				t.Fatalf("ParsePrincipal: %v", err)
			}
			if p.AuthType != "aad" || p.RoleType == "" || p.NameType == "" {
				t.Errorf("auth_typ %q, role_typ %q, name_typ %q", p.AuthType, p.RoleType, p.NameType)
			}
			owner, err := p.Owner()
			if err != nil || owner != tt.owner {
				t.Errorf("Owner = %q, %v; want %q", owner, err, tt.owner)
			}
			if got := p.Roles(); !slices.Equal(got, tt.roles) {
				t.Errorf("Roles = %v, want %v", got, tt.roles)
			}
			if p.HasRole(api.RoleAdmin) != tt.admin || p.HasRole(api.RoleReadAll) != tt.read {
				t.Errorf("HasRole admin %v, readAll %v", p.HasRole(api.RoleAdmin), p.HasRole(api.RoleReadAll))
			}
		})
	}
}

func TestParsePrincipalMalformed(t *testing.T) {
	tests := []struct {
		name, header string
	}{
		{"empty", ""},
		{"blank", "   "},
		{"not base64", "not*base64!"},
		{"base64 of text", b64("hello")},
		{"base64 of a JSON array", b64(`[{"typ":"oid","val":"x"}]`)},
		{"claims not an array", b64(`{"auth_typ":"aad","claims":{"typ":"oid"}}`)},
		{"no claims", b64(`{"auth_typ":"aad","name_typ":"n","role_typ":"r"}`)},
		{"truncated JSON", b64(`{"auth_typ":"aad","claims":[{"typ":"oid","val":"x"}`)},
		{"too long", strings.Repeat("A", 64<<10+4)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := api.ParsePrincipal(tt.header)
			if !errors.Is(err, api.ErrPrincipal) {
				t.Errorf("ParsePrincipal = %+v, %v; want ErrPrincipal", p, err)
			}
		})
	}
}

func TestPrincipalOwner(t *testing.T) {
	const oidURI = "http://schemas.microsoft.com/identity/claims/objectidentifier"
	const nameID = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier"
	tests := []struct {
		name, json, owner string
	}{
		{"object id URI wins over subject", `{"claims":[{"typ":"` + nameID + `","val":"s1"},{"typ":"` + oidURI + `","val":"o1"}]}`, "oid:o1"},
		{"short oid", `{"claims":[{"typ":"oid","val":"o2"}]}`, "oid:o2"},
		{"claim types compare without case", `{"claims":[{"typ":"` + strings.ToUpper(oidURI) + `","val":"o3"}]}`, "oid:o3"},
		{"subject when no object id", `{"claims":[{"typ":"` + nameID + `","val":"s4"}]}`, "sub:s4"},
		{"short sub", `{"claims":[{"typ":"sub","val":"s5"}]}`, "sub:s5"},
		{"empty oid falls back", `{"claims":[{"typ":"oid","val":""},{"typ":"sub","val":"s6"}]}`, "sub:s6"},
		{"non-string oid ignored", `{"claims":[{"typ":"oid","val":42},{"typ":"sub","val":"s7"}]}`, "sub:s7"},
		{"name, e-mail and upn are never identities", `{"claims":[{"typ":"name","val":"Alva"},{"typ":"preferred_username","val":"a@x"},{"typ":"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn","val":"a@x"}]}`, ""},
		{"no claims at all", `{"claims":[]}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := api.ParsePrincipal(b64(tt.json))
			if err != nil {
				t.Fatalf("ParsePrincipal: %v", err)
			}
			owner, err := p.Owner()
			if tt.owner == "" {
				if !errors.Is(err, api.ErrPrincipal) {
					t.Errorf("Owner = %q, %v; want ErrPrincipal", owner, err)
				}
				return
			}
			if err != nil || owner != tt.owner {
				t.Errorf("Owner = %q, %v; want %q", owner, err, tt.owner)
			}
		})
	}
	// The documented shape names nobody.
	p, err := api.ParsePrincipal(principalHeader(t, "docs-shape.json"))
	if err != nil {
		t.Fatalf("the documented shape does not parse: %v", err)
	}
	if owner, err := p.Owner(); !errors.Is(err, api.ErrPrincipal) {
		t.Errorf("documented shape: Owner = %q, %v; want ErrPrincipal", owner, err)
	}
}

func TestPrincipalRoles(t *testing.T) {
	const roleURI = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"
	tests := []struct {
		name, json string
		roles      []string
	}{
		{"role_typ claims", `{"role_typ":"` + roleURI + `","claims":[{"typ":"` + roleURI + `","val":"Copies.Admin"},{"typ":"` + roleURI + `","val":"Other"}]}`, []string{"Copies.Admin", "Other"}},
		{"custom role_typ", `{"role_typ":"myroles","claims":[{"typ":"myroles","val":"Copies.ReadAll"}]}`, []string{"Copies.ReadAll"}},
		{"roles claim", `{"claims":[{"typ":"roles","val":"Copies.ReadAll"}]}`, []string{"Copies.ReadAll"}},
		{"roles as a JSON array", `{"claims":[{"typ":"roles","val":"[\"Copies.ReadAll\",\"Copies.Admin\"]"}]}`, []string{"Copies.ReadAll", "Copies.Admin"}},
		{"role_typ equal to roles counted once", `{"role_typ":"roles","claims":[{"typ":"roles","val":"A"}]}`, []string{"A"}},
		{"groups and scopes are not roles", `{"claims":[{"typ":"groups","val":"Copies.Admin"},{"typ":"scp","val":"Copies.Admin"}]}`, nil},
		{"non-string role ignored", `{"claims":[{"typ":"roles","val":true}]}`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := api.ParsePrincipal(b64(tt.json))
			if err != nil {
				t.Fatalf("ParsePrincipal: %v", err)
			}
			if got := p.Roles(); !slices.Equal(got, tt.roles) {
				t.Errorf("Roles = %v, want %v", got, tt.roles)
			}
		})
	}
	// Role values compare exactly, as Entra issues them.
	p, _ := api.ParsePrincipal(b64(`{"claims":[{"typ":"roles","val":"copies.admin"}]}`))
	if p.HasRole(api.RoleAdmin) {
		t.Error("copies.admin taken for Copies.Admin")
	}
}

func TestParsePrincipalUnpaddedBase64(t *testing.T) {
	padded := b64(`{"claims":[{"typ":"oid","val":"o1"}]}`)
	if !strings.HasSuffix(padded, "=") {
		t.Fatalf("fixture %q needs padding to test its absence", padded)
	}
	p, err := api.ParsePrincipal(strings.TrimRight(padded, "="))
	if err != nil {
		t.Fatalf("unpadded: %v", err)
	}
	if o, _ := p.Owner(); o != "oid:o1" {
		t.Errorf("owner %q", o)
	}
}
