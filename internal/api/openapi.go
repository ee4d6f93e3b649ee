package api

import (
	_ "embed"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// openAPISpec is the OpenAPI 3.0.3 description of the HTTP API, written for the
// default route prefix "/api". openapi_test.go keeps it in step with Routes and with
// the request and response types.
//
//go:embed openapi.json
var openAPISpec []byte

// OpenAPISpec returns the embedded OpenAPI document (paths under "/api").
func OpenAPISpec() []byte { return openAPISpec }

// specByPrefix caches the document rewritten for other route prefixes.
var specByPrefix sync.Map // prefix -> []byte

// openAPIFor returns the document with its paths under prefix ("" or "/x").
func openAPIFor(prefix string) []byte {
	if prefix == "/api" {
		return openAPISpec
	}
	if b, ok := specByPrefix.Load(prefix); ok {
		return b.([]byte)
	}
	var doc map[string]json.RawMessage
	var paths map[string]json.RawMessage
	if json.Unmarshal(openAPISpec, &doc) != nil || json.Unmarshal(doc["paths"], &paths) != nil {
		return openAPISpec // cannot happen: the test parses the same document
	}
	moved := make(map[string]json.RawMessage, len(paths))
	for p, item := range paths {
		moved[prefix+strings.TrimPrefix(p, "/api")] = item
	}
	doc["paths"], _ = json.Marshal(moved)
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return openAPISpec
	}
	specByPrefix.Store(prefix, b)
	return b
}

// handleOpenAPI serves the OpenAPI document (no key needed: it holds no secrets).
func (s *Server) handleOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	doc := openAPIFor(s.resp.prefix)
	w.Header().Set("Content-Length", strconv.Itoa(len(doc)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(doc)
	}
}
