package notify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
)

// Secret is a Standard Webhooks signing secret: "whsec_" followed by the base64 of the
// key bytes (the prefix is optional here, as in the reference libraries).
type Secret struct{ key []byte }

// ParseSecret reads a COPY_CALLBACK_SECRET value. The key must decode from base64 and
// hold 24 to 64 bytes, the range the specification recommends.
func ParseSecret(s string) (*Secret, error) {
	raw := strings.TrimPrefix(strings.TrimSpace(s), "whsec_")
	key, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		return nil, errors.New("not whsec_ followed by base64 (e.g. whsec_$(openssl rand -base64 32))")
	}
	if len(key) < 24 || len(key) > 64 {
		return nil, errors.New("the key must be 24 to 64 bytes (32 random bytes, base64, recommended)")
	}
	return &Secret{key: key}, nil
}

// Sign returns the webhook-signature value for a message: "v1," followed by the base64
// of HMAC-SHA256(key, "<id>.<timestamp>.<body>").
func (s *Secret) Sign(id string, timestamp int64, body []byte) string {
	mac := hmac.New(sha256.New, s.key)
	mac.Write([]byte(id + "." + strconv.FormatInt(timestamp, 10) + "."))
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// String never shows the key.
func (s *Secret) String() string { return "whsec_REDACTED" }
