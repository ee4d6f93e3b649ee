package api

import (
	"net/http"
	"strings"
)

// Paths lists the path of every route Routes registers (with the route
// prefix, "{id}" for parameters, each once), for middleware that matches
// paths the way the Functions host does before the mux sees them.
func (s *Server) Paths() []string {
	seen := map[string]bool{}
	var out []string
	for _, rt := range s.routeTable() {
		p := s.resp.prefix + rt.path
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

// NotFound answers a path no route serves with Azure's error JSON (404
// ResourceNotFound), as every other error of the API.
func (s *Server) NotFound() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.resp.writeError(w, r, &requestError{status: http.StatusNotFound, detail: ErrorDetail{
			Code:    CodeNotFound,
			Message: "no function serves " + strings.ToValidUTF8(r.URL.Path, "?") + "; see " + s.resp.prefix + "/openapi.json",
		}})
	})
}
