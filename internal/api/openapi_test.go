package api

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/blobcopy/blobcopy/internal/batch"
	"github.com/blobcopy/blobcopy/internal/batch/batchtest"
	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/copyjob/copyjobtest"
	"github.com/blobcopy/blobcopy/internal/eventgrid"
)

// openAPIDoc is the part of openapi.json the tests read.
type openAPIDoc struct {
	OpenAPI  string                                `json:"openapi"`
	Security []map[string][]string                 `json:"security"`
	Paths    map[string]map[string]json.RawMessage `json:"paths"`
	Comps    struct {
		Schemas         map[string]openAPISchema   `json:"schemas"`
		SecuritySchemes map[string]json.RawMessage `json:"securitySchemes"`
	} `json:"components"`
}

type openAPISchema struct {
	Properties map[string]json.RawMessage `json:"properties"`
	Required   []string                   `json:"required"`
}

// openAPIOperation is one operation; Security is nil when the operation inherits the
// document's security and empty when it needs no key.
type openAPIOperation struct {
	Security  *[]map[string][]string     `json:"security"`
	Responses map[string]json.RawMessage `json:"responses"`
}

var specHTTPMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

func loadSpec(t *testing.T) openAPIDoc {
	t.Helper()
	var doc openAPIDoc
	if err := json.Unmarshal(OpenAPISpec(), &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if doc.OpenAPI != "3.0.3" {
		t.Fatalf("openapi = %q, want 3.0.3", doc.OpenAPI)
	}
	return doc
}

// operations lists "METHOD /path" -> operation.
func (d openAPIDoc) operations(t *testing.T) map[string]openAPIOperation {
	t.Helper()
	ops := map[string]openAPIOperation{}
	for p, item := range d.Paths {
		for key, raw := range item {
			if !slices.Contains(specHTTPMethods, key) {
				continue // "parameters", "summary"...
			}
			var op openAPIOperation
			if err := json.Unmarshal(raw, &op); err != nil {
				t.Fatalf("%s %s: %v", key, p, err)
			}
			ops[strings.ToUpper(key)+" "+p] = op
		}
	}
	return ops
}

func newSpecServer(t *testing.T, auth Auth) (*Server, *http.ServeMux) {
	t.Helper()
	env := copyjobtest.NewEnv()
	quiet := slog.New(slog.DiscardHandler)
	copies := env.Service(copyjob.Config{})
	batches := batch.NewService(batch.Deps{Copies: copies, Records: env.Records, Blobs: env.Blobs,
		Store: batchtest.NewStore(env.Records), Storage: batchtest.NewStorage(env.Blobs)}, batch.Config{}, quiet)
	srv := NewServer(copies, Options{
		Auth:    auth,
		Logger:  quiet,
		Batches: batches,
	})
	mux := http.NewServeMux()
	srv.Routes(mux)
	return srv, mux
}

// specRequest builds a request for a documented operation: path parameters filled in
// and a body that fails validation, so no handler reaches storage with a real copy.
func specRequest(method, path string) *http.Request {
	path = strings.ReplaceAll(path, "{id}", "no-such-job")
	var body io.Reader
	if method == http.MethodPost {
		body = strings.NewReader(`{}`)
	}
	r := httptest.NewRequest(method, path, body)
	if body != nil {
		r.Header.Set("Content-Type", "application/json")
	}
	return r
}

// TestOpenAPIPathsAreServed: every documented operation reaches its own route (not a
// catch-all, not the mux's 404) and answers with a status the spec documents.
func TestOpenAPIPathsAreServed(t *testing.T) {
	doc := loadSpec(t)
	_, mux := newSpecServer(t, Auth{Disabled: true})
	for key, op := range doc.operations(t) {
		method, path, _ := strings.Cut(key, " ")
		t.Run(key, func(t *testing.T) {
			r := specRequest(method, path)
			_, pattern := mux.Handler(r)
			if pattern != key {
				t.Fatalf("the mux routes %s to pattern %q, want %q", key, pattern, key)
			}
			w := httptest.NewRecorder()
			mux.ServeHTTP(w, r)
			if w.Code == http.StatusNotFound || w.Code == http.StatusMethodNotAllowed {
				var e ErrorResponse
				_ = json.Unmarshal(w.Body.Bytes(), &e)
				if e.Error.Code == "" || e.Error.Code == CodeNotFound || e.Error.Code == CodeMethodNotAllowed {
					t.Fatalf("%s answered %d %q: not served", key, w.Code, w.Body.String())
				}
			}
			if _, ok := op.Responses[strconv.Itoa(w.Code)]; !ok {
				t.Errorf("%s answered %d, which the spec does not document (%v)", key, w.Code, specKeys(op.Responses))
			}
		})
	}
}

// TestRoutesAreDocumented: every method-specific route of Routes is in the spec, and
// every path with a catch-all route is a documented path.
func TestRoutesAreDocumented(t *testing.T) {
	doc := loadSpec(t)
	ops := doc.operations(t)
	srv, _ := newSpecServer(t, Auth{Disabled: true})
	table := srv.routeTable()
	if len(table) == 0 {
		t.Fatal("routeTable is empty")
	}
	for _, rt := range table {
		path := "/api" + rt.path
		if rt.method == "" {
			if _, ok := doc.Paths[path]; !ok {
				t.Errorf("route %s (methodNotAllowed) is not a documented path", path)
			}
			continue
		}
		if _, ok := ops[rt.method+" "+path]; !ok {
			t.Errorf("route %s %s is not documented in openapi.json", rt.method, path)
		}
	}
}

// TestOpenAPISecurity: operations that declare no security answer without a key;
// every other operation is refused without one (standalone mode with keys).
func TestOpenAPISecurity(t *testing.T) {
	doc := loadSpec(t)
	if len(doc.Security) == 0 {
		t.Fatal("the document declares no default security")
	}
	for _, req := range doc.Security {
		for name := range req {
			if _, ok := doc.Comps.SecuritySchemes[name]; !ok {
				t.Errorf("security requirement %q has no scheme", name)
			}
		}
	}
	var schemes map[string]struct{ Type, In, Name string }
	raw, _ := json.Marshal(doc.Comps.SecuritySchemes)
	_ = json.Unmarshal(raw, &schemes)
	if s := schemes["functionKey"]; s.Type != "apiKey" || s.In != "header" || s.Name != "x-functions-key" {
		t.Errorf("functionKey scheme = %+v, want apiKey header x-functions-key", s)
	}
	if s := schemes["functionKeyQuery"]; s.Type != "apiKey" || s.In != "query" || s.Name != "code" {
		t.Errorf("functionKeyQuery scheme = %+v, want apiKey query code", s)
	}

	_, mux := newSpecServer(t, Auth{Keys: []string{"secret-key"}})
	for key, op := range doc.operations(t) {
		method, path, _ := strings.Cut(key, " ")
		open := op.Security != nil && len(*op.Security) == 0
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, specRequest(method, path))
		switch {
		case open && w.Code == http.StatusUnauthorized:
			t.Errorf("%s declares no security but answered 401 without a key", key)
		case !open && w.Code != http.StatusUnauthorized:
			t.Errorf("%s needs a key per the spec but answered %d without one", key, w.Code)
		}
		if !open {
			if _, ok := op.Responses["401"]; !ok {
				t.Errorf("%s needs a key but documents no 401", key)
			}
			// With the key in either documented place, the key check passes.
			for _, withKey := range []func(*http.Request){
				func(r *http.Request) { r.Header.Set("x-functions-key", "secret-key") },
				func(r *http.Request) { q := r.URL.Query(); q.Set("code", "secret-key"); r.URL.RawQuery = q.Encode() },
			} {
				r := specRequest(method, path)
				withKey(r)
				w := httptest.NewRecorder()
				mux.ServeHTTP(w, r)
				if w.Code == http.StatusUnauthorized {
					t.Errorf("%s refused a valid key: %s", key, w.Body.String())
				}
			}
		}
	}
}

func TestOpenAPIServed(t *testing.T) {
	for _, prefix := range []string{"api", "v1/blobcopy"} {
		env := copyjobtest.NewEnv()
		srv := NewServer(env.Service(copyjob.Config{}), Options{RoutePrefix: prefix, Auth: Auth{Keys: []string{"k"}}, Logger: slog.New(slog.DiscardHandler)})
		mux := http.NewServeMux()
		srv.Routes(mux)
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/"+prefix+"/openapi.json", nil))
		if w.Code != http.StatusOK {
			t.Fatalf("GET /%s/openapi.json = %d %s", prefix, w.Code, w.Body.String())
		}
		if ct := w.Header().Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type = %q, want application/json", ct)
		}
		var doc openAPIDoc
		if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil {
			t.Fatalf("served document: %v", err)
		}
		want := "/" + prefix + "/copies/{id}/abort"
		if _, ok := doc.Paths[want]; !ok {
			t.Errorf("served document for prefix %q lacks %s: %v", prefix, want, specKeys(doc.Paths))
		}
		w = httptest.NewRecorder()
		mux.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/"+prefix+"/openapi.json", nil))
		if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET" {
			t.Errorf("POST openapi.json = %d Allow %q, want 405 Allow GET", w.Code, w.Header().Get("Allow"))
		}
	}
}

// TestOpenAPISchemasMatchTypes: each schema's properties are exactly the JSON fields of
// the Go type it describes, and its required properties exist.
func TestOpenAPISchemasMatchTypes(t *testing.T) {
	doc := loadSpec(t)
	types := map[string]reflect.Type{
		"CopyRequest":           reflect.TypeFor[CopyRequest](),
		"DestinationInput":      reflect.TypeFor[DestinationInput](),
		"AbortRequest":          reflect.TypeFor[AbortRequest](),
		"ErrorResponse":         reflect.TypeFor[ErrorResponse](),
		"ErrorDetail":           reflect.TypeFor[ErrorDetail](),
		"JobView":               reflect.TypeFor[JobView](),
		"ListView":              reflect.TypeFor[ListView](),
		"JobSource":             reflect.TypeFor[SourceView](),
		"JobDestination":        reflect.TypeFor[DestinationView](),
		"BlobRef":               reflect.TypeFor[BlobView](),
		"CopyOptions":           reflect.TypeFor[OptionsView](),
		"Progress":              reflect.TypeFor[ProgressView](),
		"Lease":                 reflect.TypeFor[LeaseView](),
		"Callback":              reflect.TypeFor[CallbackView](),
		"EventResult":           reflect.TypeFor[EventResult](),
		"DeliveryResult":        reflect.TypeFor[DeliveryResult](),
		"ValidationResponse":    reflect.TypeFor[eventgrid.ValidationResponse](),
		"BatchRequest":          reflect.TypeFor[BatchRequest](),
		"BatchDestinationInput": reflect.TypeFor[BatchDestinationInput](),
		"BatchFilterInput":      reflect.TypeFor[BatchFilterInput](),
		"BatchView":             reflect.TypeFor[BatchView](),
		"BatchFailureView":      reflect.TypeFor[BatchFailureView](),
		"BatchListView":         reflect.TypeFor[BatchListView](),
	}
	for name, typ := range types {
		schema, ok := doc.Comps.Schemas[name]
		if !ok {
			t.Errorf("schema %s is missing", name)
			continue
		}
		want := specJSONFields(typ)
		got := specKeys(schema.Properties)
		if !slices.Equal(got, want) {
			t.Errorf("schema %s properties %v, Go type %s has JSON fields %v", name, got, typ, want)
		}
		for _, r := range schema.Required {
			if !slices.Contains(got, r) {
				t.Errorf("schema %s requires %q, which it does not define", name, r)
			}
		}
		// A field without omitempty is always encoded; a response schema should say so.
		if strings.HasSuffix(name, "Request") || name == "DestinationInput" {
			continue // request schemas: required is about what callers must send
		}
		for _, f := range specAlwaysEncoded(typ) {
			if !slices.Contains(schema.Required, f) {
				t.Errorf("schema %s: %q is always encoded but not required", name, f)
			}
		}
	}
}

// TestOpenAPIEnumsMatchDomain: the status enum is the domain's set of statuses.
func TestOpenAPIEnumsMatchDomain(t *testing.T) {
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Enum []string `json:"enum"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(OpenAPISpec(), &doc); err != nil {
		t.Fatal(err)
	}
	enum := doc.Components.Schemas["JobStatus"].Enum
	if len(enum) == 0 {
		t.Fatal("JobStatus has no enum")
	}
	for _, s := range enum {
		if !copyjob.Status(s).Valid() {
			t.Errorf("JobStatus enum has %q, not a copyjob.Status", s)
		}
	}
	for _, s := range []copyjob.Status{copyjob.StatusStarting, copyjob.StatusPending, copyjob.StatusSuccess, copyjob.StatusFailed,
		copyjob.StatusAborted, copyjob.StatusDestinationMissing, copyjob.StatusCopyIDMismatch, copyjob.StatusStartFailed} {
		if !slices.Contains(enum, string(s)) {
			t.Errorf("JobStatus enum lacks %q", s)
		}
	}
}

// specJSONFields lists the JSON object keys encoding/json writes for a struct type, with
// embedded structs flattened the way encoding/json does, sorted.
func specJSONFields(t reflect.Type) []string {
	var out []string
	for _, f := range specStructFields(t) {
		out = append(out, f.name)
	}
	sort.Strings(out)
	return out
}

// specAlwaysEncoded lists the keys without omitempty, sorted.
func specAlwaysEncoded(t reflect.Type) []string {
	var out []string
	for _, f := range specStructFields(t) {
		if !f.omitEmpty {
			out = append(out, f.name)
		}
	}
	sort.Strings(out)
	return out
}

type specField struct {
	name      string
	omitEmpty bool
}

func specStructFields(t reflect.Type) []specField {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var out []specField
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if f.Anonymous && name == "" && ft.Kind() == reflect.Struct {
			out = append(out, specStructFields(ft)...)
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, specField{name: name, omitEmpty: strings.Contains(","+opts+",", ",omitempty,")})
	}
	return out
}

func specKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
