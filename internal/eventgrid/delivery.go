package eventgrid

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// Delivery is the content of one webhook request from Event Grid.
type Delivery struct {
	Schema Schema
	// Events holds every event in delivery order, the validation event
	// included; it is never empty when ParseDelivery succeeds.
	Events []Event
	// Validation is set when the delivery is a subscription validation (a
	// Microsoft.EventGrid.SubscriptionValidationEvent, alone in its batch):
	// answer 200 with NewValidationResponse(*Validation).
	Validation *SubscriptionValidationData
}

// DeliveryError says why a delivery was refused, naming the event and the
// field, so the HTTP layer can answer 400 with it. Event Grid dead-letters at
// once (or retries after 5 minutes or more when no dead-letter destination is
// set) on 400 and 413.
type DeliveryError struct {
	// Index is the position of the event in the batch (0 for a single
	// CloudEvent), or -1 when the error is about the request as a whole.
	Index int
	// Field is the JSON attribute (a path like "data.validationCode"), or a
	// header name when Index is -1; empty when the whole body or the whole
	// event is at fault.
	Field string
	// Reason says what is wrong: "missing", "must be \"1.0\"", ...
	Reason string
}

// Error returns, e.g., "event[2].eventType: missing", "aeg-event-type:
// ..." or "body: not valid JSON: ...".
func (e *DeliveryError) Error() string {
	var b strings.Builder
	if e.Index >= 0 {
		b.WriteString("event[")
		b.WriteString(strconv.Itoa(e.Index))
		b.WriteString("]")
		if e.Field != "" {
			b.WriteString(".")
			b.WriteString(e.Field)
		}
	} else if e.Field != "" {
		b.WriteString(e.Field)
	} else {
		b.WriteString("body")
	}
	b.WriteString(": ")
	b.WriteString(e.Reason)
	return b.String()
}

func bodyError(format string, args ...any) *DeliveryError {
	return &DeliveryError{Index: -1, Reason: fmt.Sprintf(format, args...)}
}

// IsDelivery tells, cheaply, whether a request to an endpoint that also takes
// plain JSON copy requests ({"source": ...}) is an Event Grid delivery: a
// CloudEvents content type, an aeg-event-type or ce-specversion header, a body
// that is a JSON array, or a JSON object with a "specversion" attribute. It
// does not validate anything: call ParseDelivery for that.
func IsDelivery(h http.Header, body []byte) bool {
	if ct := mediaType(h); ct == ContentTypeCloudEvents || ct == ContentTypeCloudEventsBatch {
		return true
	}
	if h.Get(HeaderEventType) != "" || h.Get("ce-specversion") != "" {
		return true
	}
	switch firstByte(body) {
	case '[':
		return true
	case '{':
		return hasSpecVersion(body)
	}
	return false
}

// hasSpecVersion tells whether a JSON object has a "specversion" attribute, as
// encoding/json matches names: case-insensitively, with Unicode folding ("ſ" is an
// "s") and escapes ("\u0073"). The parse reads the whole body; a plain copy request
// (every start) skips it: ASCII without a backslash cannot hold the name but spelt
// out, in some letter case.
func hasSpecVersion(body []byte) bool {
	if isPlainASCII(body) && !containsFoldASCII(body, "specversion") {
		return false
	}
	var probe struct {
		SpecVersion json.RawMessage `json:"specversion"`
	}
	return json.Unmarshal(body, &probe) == nil && probe.SpecVersion != nil
}

// isPlainASCII: no byte outside ASCII, no backslash.
func isPlainASCII(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 || c == '\\' {
			return false
		}
	}
	return true
}

// containsFoldASCII reports whether b holds word (lower-case ASCII letters) in any
// letter case.
func containsFoldASCII(b []byte, word string) bool {
	for i := 0; i+len(word) <= len(b); i++ {
		j := 0
		for j < len(word) && b[i+j]|0x20 == word[j] {
			j++
		}
		if j == len(word) {
			return true
		}
	}
	return false
}

// ParseDelivery reads the body of an Event Grid webhook request and checks
// the attributes every event must have. It returns a *DeliveryError when the
// delivery is refused.
//
// The schema is chosen by, in order: a CloudEvents content type
// (application/cloudevents+json or application/cloudevents-batch+json; the
// body's first byte then tells a single event from an array, as Azure's
// documentation shows single CloudEvents wrapped in arrays), then the body:
// an object with "specversion" is a CloudEvent, an array whose first element
// has "specversion" and no "eventType" is a CloudEvents batch, any other
// array is an Event Grid batch. A lone object that is not a CloudEvent is
// refused (Event Grid always delivers an array). CloudEvents binary content
// mode (ce-* headers) is refused.
//
// Event Grid events need id, eventType, eventTime (RFC 3339; a time without
// zone is read as UTC), subject and dataVersion present (possibly empty), and
// data. CloudEvents need specversion "1.0", id, source and type; time, when
// present, must parse; data_base64 is decoded into Data when it holds JSON.
//
// A batch holds at least one and at most MaxEvents events. A subscription
// validation event must be alone in its batch; it sets Delivery.Validation.
// An aeg-event-type header of SubscriptionValidation requires exactly that,
// and any other value of the header forbids it.
func ParseDelivery(h http.Header, body []byte) (Delivery, error) {
	if h.Get("ce-specversion") != "" {
		return Delivery{}, &DeliveryError{Index: -1, Field: "ce-specversion",
			Reason: "CloudEvents binary content mode is not supported: use structured mode"}
	}
	ct := mediaType(h)
	first := firstByte(body)
	if first == 0 {
		return Delivery{}, bodyError("empty")
	}
	if first != '[' && first != '{' {
		if json.Valid(body) {
			return Delivery{}, bodyError("want a JSON array or object")
		}
		return Delivery{}, bodyError("not valid JSON")
	}

	d, err := parseBody(ct, first, body)
	if err != nil {
		return Delivery{}, err
	}
	if err := checkValidation(h, &d); err != nil {
		return Delivery{}, err
	}
	return d, nil
}

// parseBody chooses the schema and parses every event; see ParseDelivery.
func parseBody(ct string, first byte, body []byte) (Delivery, error) {
	if ct == ContentTypeCloudEvents || ct == ContentTypeCloudEventsBatch {
		return parseCloudEvents(body, first == '[')
	}
	if first == '{' {
		var probe struct {
			SpecVersion json.RawMessage `json:"specversion"`
		}
		if err := json.Unmarshal(body, &probe); err != nil {
			return Delivery{}, bodyError("not valid JSON: %v", jsonReason(err))
		}
		if probe.SpecVersion == nil {
			return Delivery{}, bodyError("want a JSON array of Event Grid events, got an object")
		}
		return parseCloudEvents(body, false)
	}
	elems, err := splitArray(body)
	if err != nil {
		return Delivery{}, err
	}
	if looksLikeCloudEvent(elems[0]) {
		return cloudEventsFromElements(elems)
	}
	return eventGridFromElements(elems)
}

// checkValidation finds the subscription validation event, enforces that it
// is alone and agrees with the aeg-event-type header, and sets d.Validation.
func checkValidation(h http.Header, d *Delivery) error {
	for i, e := range d.Events {
		if e.Type != TypeSubscriptionValidation {
			continue
		}
		if len(d.Events) != 1 {
			return &DeliveryError{Index: i, Field: eventTypeField(d.Schema),
				Reason: "a subscription validation event must be alone in its batch"}
		}
		var v SubscriptionValidationData
		if err := json.Unmarshal(e.Data, &v); err != nil {
			field, reason := fieldReason(err)
			return &DeliveryError{Index: i, Field: joinField("data", field), Reason: reason}
		}
		if v.ValidationCode == "" {
			return &DeliveryError{Index: i, Field: "data.validationCode", Reason: "missing"}
		}
		d.Validation = &v
	}
	switch hv := strings.TrimSpace(h.Get(HeaderEventType)); {
	case hv == "":
	case strings.EqualFold(hv, EventTypeSubscriptionValidation) && d.Validation == nil:
		return &DeliveryError{Index: -1, Field: HeaderEventType,
			Reason: "SubscriptionValidation, but the body holds no " + TypeSubscriptionValidation}
	case !strings.EqualFold(hv, EventTypeSubscriptionValidation) && d.Validation != nil:
		return &DeliveryError{Index: -1, Field: HeaderEventType,
			Reason: strconv.Quote(hv) + ", but the body is a " + TypeSubscriptionValidation}
	}
	return nil
}

func eventTypeField(s Schema) string {
	if s == SchemaCloudEvents {
		return "type"
	}
	return "eventType"
}

// splitArray splits a JSON array into its elements, refusing an empty array,
// more than MaxEvents elements (without reading past the limit), and trailing
// data.
func splitArray(body []byte) ([]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	if _, err := dec.Token(); err != nil { // '['
		return nil, bodyError("not valid JSON: %v", jsonReason(err))
	}
	var elems []json.RawMessage
	for dec.More() {
		if len(elems) == MaxEvents {
			return nil, bodyError("more than %d events in one delivery", MaxEvents)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, bodyError("not valid JSON: %v", jsonReason(err))
		}
		elems = append(elems, raw)
	}
	if _, err := dec.Token(); err != nil { // ']'
		return nil, bodyError("not valid JSON: %v", jsonReason(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, bodyError("not valid JSON: data after the array")
	}
	if len(elems) == 0 {
		return nil, bodyError("no events: empty array")
	}
	return elems, nil
}

func looksLikeCloudEvent(elem json.RawMessage) bool {
	var probe struct {
		SpecVersion json.RawMessage `json:"specversion"`
		EventType   json.RawMessage `json:"eventType"`
	}
	if json.Unmarshal(elem, &probe) != nil {
		return false
	}
	return probe.SpecVersion != nil && probe.EventType == nil
}

// eventGridWire tells a missing attribute (nil) from an empty one.
type eventGridWire struct {
	ID              *string         `json:"id"`
	Topic           *string         `json:"topic"`
	Subject         *string         `json:"subject"`
	EventType       *string         `json:"eventType"`
	EventTime       *string         `json:"eventTime"`
	Data            json.RawMessage `json:"data"`
	DataVersion     *string         `json:"dataVersion"`
	MetadataVersion *string         `json:"metadataVersion"`
}

func eventGridFromElements(elems []json.RawMessage) (Delivery, error) {
	d := Delivery{Schema: SchemaEventGrid, Events: make([]Event, 0, len(elems))}
	for i, raw := range elems {
		var w eventGridWire
		if err := json.Unmarshal(raw, &w); err != nil {
			field, reason := fieldReason(err)
			return Delivery{}, &DeliveryError{Index: i, Field: field, Reason: reason}
		}
		missing := func(field string) error {
			return &DeliveryError{Index: i, Field: field, Reason: "missing"}
		}
		switch {
		case w.ID == nil || *w.ID == "":
			return Delivery{}, missing("id")
		case w.EventType == nil || *w.EventType == "":
			return Delivery{}, missing("eventType")
		case w.Subject == nil:
			return Delivery{}, missing("subject")
		case w.EventTime == nil || *w.EventTime == "":
			return Delivery{}, missing("eventTime")
		case w.Data == nil || string(w.Data) == "null":
			return Delivery{}, missing("data")
		case w.DataVersion == nil:
			return Delivery{}, missing("dataVersion")
		}
		t, err := parseTime(*w.EventTime)
		if err != nil {
			return Delivery{}, &DeliveryError{Index: i, Field: "eventTime", Reason: err.Error()}
		}
		d.Events = append(d.Events, Event{
			ID:      *w.ID,
			Type:    *w.EventType,
			Source:  deref(w.Topic),
			Subject: *w.Subject,
			Time:    t,
			Data:    w.Data,
			Schema:  SchemaEventGrid,
		})
	}
	return d, nil
}

// cloudEventWire tells a missing attribute (nil) from an empty one.
type cloudEventWire struct {
	SpecVersion     *string         `json:"specversion"`
	ID              *string         `json:"id"`
	Source          *string         `json:"source"`
	Type            *string         `json:"type"`
	Subject         *string         `json:"subject"`
	Time            *string         `json:"time"`
	DataContentType *string         `json:"datacontenttype"`
	Data            json.RawMessage `json:"data"`
	DataBase64      *string         `json:"data_base64"`
}

func parseCloudEvents(body []byte, batch bool) (Delivery, error) {
	if batch {
		elems, err := splitArray(body)
		if err != nil {
			return Delivery{}, err
		}
		return cloudEventsFromElements(elems)
	}
	if !json.Valid(body) {
		var v any
		return Delivery{}, bodyError("not valid JSON: %v", jsonReason(json.Unmarshal(body, &v)))
	}
	return cloudEventsFromElements([]json.RawMessage{body})
}

func cloudEventsFromElements(elems []json.RawMessage) (Delivery, error) {
	d := Delivery{Schema: SchemaCloudEvents, Events: make([]Event, 0, len(elems))}
	for i, raw := range elems {
		e, err := cloudEventFromElement(raw)
		if err != nil {
			err.Index = i
			return Delivery{}, err
		}
		d.Events = append(d.Events, e)
	}
	return d, nil
}

func cloudEventFromElement(raw json.RawMessage) (Event, *DeliveryError) {
	var w cloudEventWire
	if err := json.Unmarshal(raw, &w); err != nil {
		field, reason := fieldReason(err)
		return Event{}, &DeliveryError{Field: field, Reason: reason}
	}
	missing := func(field string) *DeliveryError {
		return &DeliveryError{Field: field, Reason: "missing"}
	}
	switch {
	case w.SpecVersion == nil || *w.SpecVersion == "":
		return Event{}, missing("specversion")
	case *w.SpecVersion != "1.0":
		return Event{}, &DeliveryError{Field: "specversion",
			Reason: "must be \"1.0\", got " + strconv.Quote(*w.SpecVersion)}
	case w.ID == nil || *w.ID == "":
		return Event{}, missing("id")
	case w.Source == nil || *w.Source == "":
		return Event{}, missing("source")
	case w.Type == nil || *w.Type == "":
		return Event{}, missing("type")
	}
	var t time.Time
	if w.Time != nil {
		var err error
		if t, err = parseTime(*w.Time); err != nil {
			return Event{}, &DeliveryError{Field: "time", Reason: err.Error()}
		}
	}
	data := w.Data
	if string(data) == "null" {
		data = nil
	}
	if w.DataBase64 != nil {
		if data != nil {
			return Event{}, &DeliveryError{Field: "data_base64", Reason: "must not be present with data"}
		}
		decoded, err := base64.StdEncoding.DecodeString(*w.DataBase64)
		if err != nil {
			return Event{}, &DeliveryError{Field: "data_base64", Reason: "not valid base64"}
		}
		if !json.Valid(decoded) {
			return Event{}, &DeliveryError{Field: "data_base64", Reason: "decoded data is not JSON"}
		}
		data = decoded
	}
	return Event{
		ID:      *w.ID,
		Type:    *w.Type,
		Source:  *w.Source,
		Subject: deref(w.Subject),
		Time:    t,
		Data:    data,
		Schema:  SchemaCloudEvents,
	}, nil
}

// parseTime reads RFC 3339 times; a time without a zone (seen in Azure's
// documentation samples) is read as UTC.
func parseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02T15:04:05.999999999", s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("not an RFC 3339 time: %q", s)
}

// fieldReason turns a json.Unmarshal error on one event into the field it is
// about and a short reason.
func fieldReason(err error) (field, reason string) {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field == "" {
			return "", "want a JSON object, got " + te.Value
		}
		return te.Field, "want a " + jsonKind(te.Type) + ", got " + te.Value
	}
	return "", jsonReason(err)
}

func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Bool:
		return "boolean"
	case reflect.Struct, reflect.Map:
		return "object"
	case reflect.Slice, reflect.Array:
		return "array"
	}
	return t.String()
}

func jsonReason(err error) string {
	if err == nil {
		return "unexpected end"
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

func joinField(parent, child string) string {
	if child == "" {
		return parent
	}
	return parent + "." + child
}

func mediaType(h http.Header) string {
	ct := h.Get("Content-Type")
	if ct == "" {
		return ""
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return ""
	}
	return mt
}

func firstByte(body []byte) byte {
	body = bytes.TrimLeft(body, " \t\r\n")
	if len(body) == 0 {
		return 0
	}
	return body[0]
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
