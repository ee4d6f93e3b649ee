package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/blobcopy/blobcopy/internal/config"
	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/rules"
)

// MaxBodyBytes caps request bodies: a copy request is a few hundred bytes, an Event
// Grid batch at most 1 MiB (Event Grid's own limit).
const MaxBodyBytes = 1 << 20

// CopyRequest is the body of POST /api/copies.
type CopyRequest struct {
	Source      string            `json:"source"`
	Destination *DestinationInput `json:"destination,omitempty"`
	Rule        string            `json:"rule,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
	Tags        map[string]string `json:"tags,omitempty"`
	Tier        string            `json:"tier,omitempty"`
	Overwrite   *bool             `json:"overwrite,omitempty"`
	RequireSync bool              `json:"requiresSync,omitempty"`
	LeaseSource bool              `json:"leaseSource,omitempty"`
	Snapshot    bool              `json:"snapshotDestination,omitempty"`
	SASLifetime string            `json:"sasLifetime,omitempty"`
	CallbackURL string            `json:"callbackUrl,omitempty"`
	// CreateContainer (default true, like AzCopy) creates a missing destination
	// container; false answers 404 ContainerNotFound instead.
	CreateContainer *bool `json:"createContainer,omitempty"`
}

// DestinationInput names the destination blob.
type DestinationInput struct {
	Account   string `json:"account,omitempty"`
	Container string `json:"container"`
	Blob      string `json:"blob"`
}

// readBody reads a capped body.
func readBody(r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxBodyBytes+1))
	if err != nil {
		return nil, badRequest(CodeInvalidJSON, "", "cannot read the request body: "+err.Error())
	}
	if len(body) > MaxBodyBytes {
		return nil, &requestError{status: http.StatusRequestEntityTooLarge,
			detail: ErrorDetail{Code: CodeRequestTooLarge, Message: fmt.Sprintf("the body exceeds %d bytes", MaxBodyBytes)}}
	}
	return body, nil
}

// decodeStrict decodes one JSON object, refusing unknown fields, wrong types and
// trailing data, with an error that names the field.
func decodeStrict(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return badRequest(CodeInvalidJSON, "", "the request body is empty; send a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var (
			syn *json.SyntaxError
			typ *json.UnmarshalTypeError
		)
		switch {
		case errors.As(err, &syn):
			return badRequest(CodeInvalidJSON, "", fmt.Sprintf("malformed JSON at byte %d: %v", syn.Offset, err))
		case errors.As(err, &typ):
			return badRequest(CodeInvalidJSON, typ.Field, fmt.Sprintf("%s must be a JSON %s, not %s", fieldName(typ.Field), typ.Type.Kind(), typ.Value))
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			path := unknownFieldPath(body, reflect.TypeOf(v), f)
			return badRequest(CodeUnknownField, path, fmt.Sprintf("unknown field %q", path))
		case errors.Is(err, io.ErrUnexpectedEOF):
			return badRequest(CodeInvalidJSON, "", "truncated JSON")
		}
		return badRequest(CodeInvalidJSON, "", "invalid JSON: "+err.Error())
	}
	if dec.More() {
		return badRequest(CodeInvalidJSON, "", "trailing data after the JSON object")
	}
	return nil
}

// unknownFieldPath finds where an unknown field stands in body, as a dotted path
// ("destination.name"): encoding/json names only the key. It walks the JSON against
// the type the body decodes into; name alone when it cannot tell.
func unknownFieldPath(body []byte, t reflect.Type, name string) string {
	var doc any
	if json.Unmarshal(body, &doc) != nil {
		return name
	}
	if path, ok := findUnknown(doc, t, name, ""); ok {
		return path
	}
	return name
}

func findUnknown(doc any, t reflect.Type, name, prefix string) (string, bool) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	obj, ok := doc.(map[string]any)
	if !ok || t.Kind() != reflect.Struct {
		return "", false
	}
	known := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if tag == "-" {
			continue
		}
		if tag == "" {
			tag = f.Name
		}
		known[strings.ToLower(tag)] = f.Type
	}
	for key, val := range obj {
		ft, ok := known[strings.ToLower(key)]
		if !ok {
			if key == name {
				return prefix + key, true
			}
			continue
		}
		if path, ok := findUnknown(val, ft, name, prefix+key+"."); ok {
			return path, true
		}
	}
	return "", false
}

// requireJSON refuses a body sent as anything but JSON (415); no Content-Type is
// taken as JSON.
func requireJSON(r *http.Request) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.Contains(strings.ToLower(ct), "json") {
		return &requestError{status: http.StatusUnsupportedMediaType,
			detail: ErrorDetail{Code: CodeUnsupportedMedia, Message: "send application/json"}}
	}
	return nil
}

// idempotencyKey is the request's Idempotency-Key (or Repeatability-Request-ID), ""
// when it names none; a key over 256 characters is refused.
func idempotencyKey(r *http.Request) (string, error) {
	key := r.Header.Get("Idempotency-Key")
	if key == "" {
		key = r.Header.Get("Repeatability-Request-ID")
	}
	if len(key) > 256 {
		return "", badRequest(string(copyjob.CodeInvalidRequest), "Idempotency-Key", "the idempotency key is longer than 256 characters")
	}
	return key, nil
}

func fieldName(f string) string {
	if f == "" {
		return "the body"
	}
	return f
}

var (
	metadataName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	tagChars     = regexp.MustCompile(`^[A-Za-z0-9 +\-./:=_]*$`)
	accessTiers  = map[string]string{"hot": "Hot", "cool": "Cool", "cold": "Cold", "archive": "Archive"}
)

// ValidateContainerName applies Azure's container naming rules.
func ValidateContainerName(name, target string) error {
	if rules.ValidContainerName(name) {
		return nil
	}
	return badRequest(CodeInvalidContainerName, target,
		fmt.Sprintf("container name %q is invalid: 3-63 characters, lowercase letters, digits and single hyphens, starting and ending with a letter or digit", name))
}

// ValidateBlobName applies Azure's blob naming rules.
func ValidateBlobName(name, target string) error {
	switch {
	case name == "":
		return badRequest(CodeInvalidBlobName, target, "blob name is required")
	case !utf8.ValidString(name):
		return badRequest(CodeInvalidBlobName, target, "blob name is not valid UTF-8")
	case len(name) > 1024:
		return badRequest(CodeInvalidBlobName, target, "blob name is longer than 1024 characters")
	case strings.HasSuffix(name, ".") || strings.HasSuffix(name, "/") || strings.HasSuffix(name, `\`):
		return badRequest(CodeInvalidBlobName, target, "blob name must not end with a dot or a slash")
	case strings.Count(name, "/") >= 254:
		return badRequest(CodeInvalidBlobName, target, "blob name has more than 254 path segments")
	case config.HasDotSegment(name):
		// Azure's rules: no path segment ends with a dot. Such a name's URL reads as
		// another blob's wherever an HTTP stack resolves the segments.
		return badRequest(CodeInvalidBlobName, target, `blob name must not have a "." or ".." segment`)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return badRequest(CodeInvalidBlobName, target, "blob name holds control characters")
		}
	}
	return nil
}

// toOptions validates the options and turns them into the domain's.
func (c *CopyRequest) toOptions() (copyjob.Options, error) {
	o := copyjob.Options{
		Metadata:            c.Metadata,
		Tags:                c.Tags,
		Overwrite:           c.Overwrite == nil || *c.Overwrite,
		ContainerMustExist:  c.CreateContainer != nil && !*c.CreateContainer,
		RequiresSync:        c.RequireSync,
		LeaseSource:         c.LeaseSource,
		SnapshotDestination: c.Snapshot,
	}
	if c.Tier != "" {
		t, ok := accessTiers[strings.ToLower(c.Tier)]
		if !ok {
			return o, badRequest("InvalidTier", "tier", fmt.Sprintf("tier %q is not one of Hot, Cool, Cold, Archive", c.Tier))
		}
		o.Tier = t
	}
	size := 0
	for k, v := range c.Metadata {
		if !metadataName.MatchString(k) {
			return o, badRequest("InvalidMetadata", "metadata."+k, fmt.Sprintf("metadata name %q must be a C# identifier", k))
		}
		size += len(k) + len(v)
		for _, r := range v {
			if r > 0x7e || r < 0x20 {
				return o, badRequest("InvalidMetadata", "metadata."+k, "metadata values must be printable ASCII (HTTP headers)")
			}
		}
	}
	if size > 8<<10 {
		return o, badRequest("InvalidMetadata", "metadata", "metadata exceeds 8 KiB")
	}
	if len(c.Tags) > 10 {
		return o, badRequest("InvalidTags", "tags", "a blob holds at most 10 tags")
	}
	for k, v := range c.Tags {
		if len(k) < 1 || len(k) > 128 || len(v) > 256 || !tagChars.MatchString(k) || !tagChars.MatchString(v) {
			return o, badRequest("InvalidTags", "tags."+k, "tag keys are 1-128 and values 0-256 characters of letters, digits, space and + - . / : = _")
		}
	}
	if c.SASLifetime != "" {
		d, err := time.ParseDuration(c.SASLifetime)
		if err != nil || d <= 0 {
			return o, badRequest(string(copyjob.CodeInvalidRequest), "sasLifetime", fmt.Sprintf("sasLifetime %q is not a duration such as \"36h\"", c.SASLifetime))
		}
		o.SASLifetime = copyjob.Duration(d)
	}
	return o, nil
}
