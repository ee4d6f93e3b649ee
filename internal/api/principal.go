package api

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// PrincipalHeader is where App Service Authentication ("Easy Auth") hands the app the
// caller's claims: base64 of {"auth_typ","claims":[{"typ","val"}],"name_typ","role_typ"}
// ("Work with user identities in Azure App Service authentication", Decode the client
// principal header). The platform strips it from incoming requests when its
// authentication is on; otherwise anyone can send it, so the app reads it only when
// told to trust it (Auth.TrustClientPrincipal).
const PrincipalHeader = "X-MS-CLIENT-PRINCIPAL"

// App roles (declared on the API's Entra app registration, see README "Callers and
// owners"). A caller without either sees and aborts only its own copies.
const (
	// RoleReadAll reads every copy (GET one, list) but aborts only its own.
	RoleReadAll = "Copies.ReadAll"
	// RoleAdmin reads and aborts every copy, and sees each job's owner.
	RoleAdmin = "Copies.Admin"
)

// Claim types as App Service maps Entra tokens' claims (its default claim mapping turns
// "oid" into the objectidentifier URI, "sub" into nameidentifier, "roles" into role_typ).
const (
	claimObjectID      = "http://schemas.microsoft.com/identity/claims/objectidentifier"
	claimNameID        = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier"
	claimRoleURI       = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"
	maxPrincipalHeader = 64 << 10
)

// Principal is the decoded client principal.
type Principal struct {
	AuthType string           `json:"auth_typ"`
	Claims   []PrincipalClaim `json:"claims"`
	NameType string           `json:"name_typ"`
	RoleType string           `json:"role_typ"`
}

// PrincipalClaim is one claim. Val is kept raw: App Service writes strings, and a claim
// of another JSON type is ignored rather than refused.
type PrincipalClaim struct {
	Type string          `json:"typ"`
	Val  json.RawMessage `json:"val"`
}

// ErrPrincipal is wrapped by every ParsePrincipal and Principal.Owner error.
var ErrPrincipal = errors.New("invalid client principal")

// ParsePrincipal decodes the header's value (standard base64, padded or not).
func ParsePrincipal(header string) (*Principal, error) {
	header = strings.TrimSpace(header)
	if header == "" {
		return nil, fmt.Errorf("%w: empty", ErrPrincipal)
	}
	if len(header) > maxPrincipalHeader {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrPrincipal, maxPrincipalHeader)
	}
	raw, err := base64.StdEncoding.DecodeString(header)
	if err != nil {
		raw, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(header, "="))
	}
	if err != nil {
		return nil, fmt.Errorf("%w: not base64", ErrPrincipal)
	}
	var p Principal
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, fmt.Errorf("%w: not the App Service client principal JSON", ErrPrincipal)
	}
	if p.Claims == nil {
		return nil, fmt.Errorf("%w: no claims array", ErrPrincipal)
	}
	return &p, nil
}

// values returns the string values of the claims of the given types, in order.
func (p *Principal) values(types ...string) []string {
	var out []string
	for _, c := range p.Claims {
		for _, t := range types {
			if t == "" || !strings.EqualFold(c.Type, t) {
				continue
			}
			var v string
			if json.Unmarshal(c.Val, &v) == nil && v != "" {
				out = append(out, v)
			}
			break
		}
	}
	return out
}

// Owner is the stable identity a job records for this caller: the Entra object id
// ("oid:<guid>"), which stays the same for a user or an application's service principal
// across sign-ins, apps and name changes; without one, the subject ("sub:<value>",
// stable per app registration). The prefix keeps an object id and a subject that
// happened to share a value apart. Names, e-mail addresses and UPNs are never used:
// they can be reassigned to someone else.
func (p *Principal) Owner() (string, error) {
	if v := p.values(claimObjectID, "oid"); len(v) > 0 {
		return "oid:" + v[0], nil
	}
	if v := p.values(claimNameID, "sub"); len(v) > 0 {
		return "sub:" + v[0], nil
	}
	return "", fmt.Errorf("%w: no object id (oid) or subject (sub, nameidentifier) claim", ErrPrincipal)
}

// Roles are the caller's app roles: the claims of the principal's role_typ, "roles" or
// the role URI. A value that is a JSON array (as some token versions carry "roles") is
// split into its elements.
func (p *Principal) Roles() []string {
	var out []string
	for _, v := range p.values(p.RoleType, "roles", claimRoleURI) {
		var many []string
		if strings.HasPrefix(v, "[") && json.Unmarshal([]byte(v), &many) == nil {
			out = append(out, many...)
			continue
		}
		out = append(out, v)
	}
	return out
}

// HasRole reports whether the caller holds the app role (exact, case-sensitive, as
// Entra compares role values).
func (p *Principal) HasRole(role string) bool {
	for _, r := range p.Roles() {
		if r == role {
			return true
		}
	}
	return false
}
