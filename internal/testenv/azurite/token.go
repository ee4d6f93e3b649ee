package azurite

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// storageAudience is the audience Azurite's basic OAuth mode accepts for any
// account (it also accepts https://<account>.blob.core.windows.net).
const storageAudience = "https://storage.azure.com"

// fakeTokenCredential hands out unsigned JWTs. Azurite's "--oauth basic" only
// decodes the token and checks nbf/iat/exp, iss and aud; it never verifies
// the signature, so no key is needed.
type fakeTokenCredential struct {
	tenantID string
	objectID string
	alg      string // "none" (no signature) or e.g. "HS256" (junk signature)
}

var _ azcore.TokenCredential = (*fakeTokenCredential)(nil)

func newFakeTokenCredential(alg string) *fakeTokenCredential {
	return &fakeTokenCredential{tenantID: randomUUID(), objectID: randomUUID(), alg: alg}
}

// GetToken implements azcore.TokenCredential.
func (c *fakeTokenCredential) GetToken(_ context.Context, _ policy.TokenRequestOptions) (azcore.AccessToken, error) {
	now := time.Now()
	exp := now.Add(time.Hour)
	tok, err := unsignedJWT(c.alg, map[string]any{
		"aud": storageAudience,
		"iss": "https://sts.windows.net/" + c.tenantID + "/",
		// Backdated so that clock skew between Go and Node cannot trip the
		// "Lifetime validation failed" check.
		"iat": now.Add(-5 * time.Minute).Unix(),
		"nbf": now.Add(-5 * time.Minute).Unix(),
		"exp": exp.Unix(),
		"oid": c.objectID,
		"tid": c.tenantID,
		"sub": c.objectID,
		"scp": "user_impersonation",
		"ver": "1.0",
	})
	if err != nil {
		return azcore.AccessToken{}, err
	}
	return azcore.AccessToken{Token: tok, ExpiresOn: exp}, nil
}

func unsignedJWT(alg string, claims map[string]any) (string, error) {
	header, err := json.Marshal(map[string]string{"alg": alg, "typ": "JWT"})
	if err != nil {
		return "", fmt.Errorf("marshal JWT header: %w", err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("marshal JWT claims: %w", err)
	}
	enc := base64.RawURLEncoding
	tok := enc.EncodeToString(header) + "." + enc.EncodeToString(payload) + "."
	if alg != "none" {
		tok += enc.EncodeToString([]byte("not-a-real-signature"))
	}
	return tok, nil
}

func randomUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
