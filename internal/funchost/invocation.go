package funchost

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// InvokeRequest is the body the Functions host POSTs to /<FunctionName> for
// every non-forwarded invocation.
type InvokeRequest struct {
	Data     map[string]json.RawMessage `json:"Data"`
	Metadata map[string]json.RawMessage `json:"Metadata"`
}

// InvokeResponse is what the host expects back. Outputs and Logs encode as
// {} and [] when empty because the host does not expect null there.
type InvokeResponse struct {
	Outputs     map[string]any `json:"Outputs"`
	Logs        []string       `json:"Logs"`
	ReturnValue any            `json:"ReturnValue"`
}

// MarshalJSON encodes nil Outputs/Logs as {} and [].
func (r InvokeResponse) MarshalJSON() ([]byte, error) {
	type wire InvokeResponse // same fields and tags, without this method
	w := wire(r)
	if w.Outputs == nil {
		w.Outputs = map[string]any{}
	}
	if w.Logs == nil {
		w.Logs = []string{}
	}
	return json.Marshal(w)
}

// TimerInfo is the timer trigger's Data.<bindingName> value.
type TimerInfo struct {
	Schedule TimerSchedule `json:"Schedule"`
	// ScheduleStatus is nil when the schedule monitor has no history.
	ScheduleStatus *ScheduleStatus `json:"ScheduleStatus"`
	IsPastDue      bool            `json:"IsPastDue"`
}

// TimerSchedule mirrors the host's schedule description.
type TimerSchedule struct {
	AdjustForDST bool `json:"AdjustForDST"`
}

// ScheduleStatus is the schedule monitor's record of occurrences.
type ScheduleStatus struct {
	Last        time.Time `json:"Last"`
	Next        time.Time `json:"Next"`
	LastUpdated time.Time `json:"LastUpdated"`
}

// UnmarshalJSON accepts the host's .NET DateTime forms, which may lack a zone.
func (s *ScheduleStatus) UnmarshalJSON(b []byte) error {
	var raw struct {
		Last, Next, LastUpdated hostTime
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	*s = ScheduleStatus{Last: raw.Last.Time, Next: raw.Next.Time, LastUpdated: raw.LastUpdated.Time}
	return nil
}

// SysMetadata is Metadata.sys, present in every invocation.
type SysMetadata struct {
	MethodName string    `json:"MethodName"`
	UtcNow     time.Time `json:"UtcNow"`
	RandGuid   string    `json:"RandGuid"`
}

// UnmarshalJSON accepts the host's .NET DateTime forms, which may lack a zone.
func (m *SysMetadata) UnmarshalJSON(b []byte) error {
	var raw struct {
		MethodName string
		UtcNow     hostTime
		RandGuid   string
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	*m = SysMetadata{MethodName: raw.MethodName, UtcNow: raw.UtcNow.Time, RandGuid: raw.RandGuid}
	return nil
}

// hostTime parses RFC 3339 and, because .NET writes DateTime values of
// unspecified kind without an offset ("0001-01-01T00:00:00"), zone-less
// timestamps too, which it takes as UTC.
type hostTime struct{ time.Time }

func (t *hostTime) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		t.Time = time.Time{}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("time must be a string: %w", err)
	}
	if s == "" {
		t.Time = time.Time{}
		return nil
	}
	if parsed, err := time.Parse(time.RFC3339Nano, s); err == nil {
		t.Time = parsed
		return nil
	}
	parsed, err := time.ParseInLocation("2006-01-02T15:04:05.999999999", s, time.UTC)
	if err != nil {
		return fmt.Errorf("time %q is neither RFC 3339 nor a zone-less ISO 8601 time", s)
	}
	t.Time = parsed
	return nil
}

// InvalidPayloadError reports an invocation body the handler cannot use.
// Handlers answer it with 400 InvalidInvocationPayload.
type InvalidPayloadError struct {
	Reason string
	Err    error
}

func (e *InvalidPayloadError) Error() string {
	if e.Err == nil {
		return "invalid invocation payload: " + e.Reason
	}
	return "invalid invocation payload: " + e.Reason + ": " + e.Err.Error()
}

func (e *InvalidPayloadError) Unwrap() error { return e.Err }

// IsInvalidPayload reports whether err is, or wraps, an *InvalidPayloadError.
func IsInvalidPayload(err error) bool {
	var target *InvalidPayloadError
	return errors.As(err, &target)
}

// DecodeInvokeRequest reads an invocation body. Unknown fields are tolerated
// because the host adds fields over time; a body without Data is rejected.
func DecodeInvokeRequest(r io.Reader) (InvokeRequest, error) {
	var req InvokeRequest
	dec := json.NewDecoder(r)
	if err := dec.Decode(&req); err != nil {
		return InvokeRequest{}, &InvalidPayloadError{Reason: "body is not valid JSON", Err: err}
	}
	if dec.More() {
		return InvokeRequest{}, &InvalidPayloadError{Reason: "body has data after the JSON object"}
	}
	if req.Data == nil {
		return InvokeRequest{}, &InvalidPayloadError{Reason: `missing "Data"`}
	}
	return req, nil
}

// Bind decodes Data.<name> into v.
func (req InvokeRequest) Bind(name string, v any) error {
	raw, ok := req.Data[name]
	if !ok || isJSONNull(raw) {
		return &InvalidPayloadError{Reason: fmt.Sprintf("missing binding %q in Data", name)}
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return &InvalidPayloadError{Reason: fmt.Sprintf("binding %q", name), Err: err}
	}
	return nil
}

// Sys decodes Metadata.sys; ok is false when the host did not send it.
func (req InvokeRequest) Sys() (sys SysMetadata, ok bool, err error) {
	raw, found := req.Metadata["sys"]
	if !found || isJSONNull(raw) {
		return SysMetadata{}, false, nil
	}
	if err := json.Unmarshal(raw, &sys); err != nil {
		return SysMetadata{}, false, &InvalidPayloadError{Reason: "Metadata.sys", Err: err}
	}
	return sys, true, nil
}

func isJSONNull(raw json.RawMessage) bool {
	return strings.TrimSpace(string(raw)) == "null"
}
