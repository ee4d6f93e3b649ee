package api

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"

	"github.com/google/uuid"

	"github.com/blobcopy/blobcopy/internal/copyjob"
)

// jobIDSpace namespaces deterministic job ids (UUIDv5 over an idempotency key or an
// event id), so a retried request or a redelivered event maps onto the same record.
var jobIDSpace = uuid.MustParse("5b7c3c53-3f4b-4f4c-9d2e-6f0e3c1a9b11")

// JobIDFor derives a job id from a kind of key and the key.
func JobIDFor(kind, key string) string {
	return uuid.NewSHA1(jobIDSpace, []byte(kind+"\x00"+key)).String()
}

// requestHash identifies a request body, so the same idempotency key with another body
// is refused.
func requestHash(req *CopyRequest) string {
	b, _ := json.Marshal(req) // canonical: struct order, sorted map keys
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

func validJobID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

// pathJobID reads and checks the {id} path segment.
func pathJobID(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if !validJobID(id) {
		return "", badRequest(string(copyjob.CodeInvalidRequest), "id", "a job id is 1-64 letters, digits or hyphens")
	}
	return id, nil
}
