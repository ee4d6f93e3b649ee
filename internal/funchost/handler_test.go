package funchost

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func readFixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// discardLogger keeps test output quiet.
func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// decodeWire decodes a response into raw fields so the test sees what the
// host sees (null vs {} matters).
func decodeWire(t *testing.T, body []byte) map[string]json.RawMessage {
	t.Helper()
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		t.Fatalf("response is not a JSON object: %v\n%s", err, body)
	}
	return fields
}

func TestTimerHandlerDecodesHostPayload(t *testing.T) {
	tests := []struct {
		name    string
		fixture string
		want    TimerInfo
	}{
		{
			name:    "with schedule status",
			fixture: "timer_invocation.json",
			want: TimerInfo{
				Schedule: TimerSchedule{AdjustForDST: true},
				ScheduleStatus: &ScheduleStatus{
					Last:        mustTime(t, "2024-05-01T10:10:00Z"),
					Next:        mustTime(t, "2024-05-01T10:20:00Z"),
					LastUpdated: mustTime(t, "2024-05-01T10:15:00.0143288Z"),
				},
			},
		},
		{
			name:    "schedule status null",
			fixture: "timer_invocation_no_status.json",
			want:    TimerInfo{IsPastDue: true},
		},
		{
			name:    "unknown fields and zone-less .NET times",
			fixture: "timer_invocation_extra_fields.json",
			want: TimerInfo{
				Schedule: TimerSchedule{AdjustForDST: true},
				ScheduleStatus: &ScheduleStatus{
					Last:        time.Time{},
					Next:        mustTime(t, "2024-05-01T10:16:00Z"),
					LastUpdated: mustTime(t, "2024-05-01T10:15:00Z"),
				},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got TimerInfo
			calls := 0
			h := TimerHandler("copystatus", "timer", func(ctx context.Context, info TimerInfo, log *InvocationLog) error {
				calls++
				got = info
				log.Info("checked copies", "pending", 3)
				return nil
			}, discardLogger())

			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/copystatus", strings.NewReader(readFixture(t, tt.fixture))))

			if rec.Code != http.StatusOK {
				t.Fatalf("status = %d, want 200; body %s", rec.Code, rec.Body)
			}
			if calls != 1 {
				t.Fatalf("run called %d times, want 1", calls)
			}
			if !timerInfoEqual(got, tt.want) {
				t.Errorf("TimerInfo = %+v (status %+v), want %+v (status %+v)", got, got.ScheduleStatus, tt.want, tt.want.ScheduleStatus)
			}
			if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type = %q", ct)
			}
			fields := decodeWire(t, rec.Body.Bytes())
			if got := string(fields["Outputs"]); got != "{}" {
				t.Errorf("Outputs = %s, want {}", got)
			}
			if got := string(fields["ReturnValue"]); got != "null" {
				t.Errorf("ReturnValue = %s, want null", got)
			}
			var logs []string
			if err := json.Unmarshal(fields["Logs"], &logs); err != nil {
				t.Fatalf("Logs is not an array of strings: %s", fields["Logs"])
			}
			if len(logs) != 1 || !strings.Contains(logs[0], "checked copies") || !strings.Contains(logs[0], "pending=3") {
				t.Errorf("Logs = %q, want one line with the message and attribute", logs)
			}
		})
	}
}

func timerInfoEqual(a, b TimerInfo) bool {
	if a.Schedule != b.Schedule || a.IsPastDue != b.IsPastDue || (a.ScheduleStatus == nil) != (b.ScheduleStatus == nil) {
		return false
	}
	if a.ScheduleStatus == nil {
		return true
	}
	x, y := a.ScheduleStatus, b.ScheduleStatus
	return x.Last.Equal(y.Last) && x.Next.Equal(y.Next) && x.LastUpdated.Equal(y.LastUpdated)
}

func TestTimerHandlerErrors(t *testing.T) {
	okRun := func(context.Context, TimerInfo, *InvocationLog) error { return nil }
	tests := []struct {
		name       string
		method     string
		path       string
		body       string
		run        TimerFunc
		wantStatus int
		wantCode   string // Azure error code; "" for an InvokeResponse body
		wantInMsg  string
	}{
		{name: "malformed JSON", method: "POST", path: "/copystatus", body: `{"Data":`, run: okRun, wantStatus: 400, wantCode: "InvalidInvocationPayload", wantInMsg: "not valid JSON"},
		{name: "not an object", method: "POST", path: "/copystatus", body: `[1,2]`, run: okRun, wantStatus: 400, wantCode: "InvalidInvocationPayload"},
		{name: "missing Data", method: "POST", path: "/copystatus", body: `{"Metadata":{}}`, run: okRun, wantStatus: 400, wantCode: "InvalidInvocationPayload", wantInMsg: `"Data"`},
		{name: "missing binding", method: "POST", path: "/copystatus", body: `{"Data":{"other":{}},"Metadata":{}}`, run: okRun, wantStatus: 400, wantCode: "InvalidInvocationPayload", wantInMsg: `"timer"`},
		{name: "binding of wrong shape", method: "POST", path: "/copystatus", body: `{"Data":{"timer":"yes"}}`, run: okRun, wantStatus: 400, wantCode: "InvalidInvocationPayload", wantInMsg: `"timer"`},
		{name: "bad time", method: "POST", path: "/copystatus", body: `{"Data":{"timer":{"ScheduleStatus":{"Last":"yesterday"}}}}`, run: okRun, wantStatus: 400, wantCode: "InvalidInvocationPayload", wantInMsg: "yesterday"},
		{name: "wrong method", method: "GET", path: "/copystatus", run: okRun, wantStatus: 405, wantCode: "MethodNotAllowed"},
		{name: "wrong path", method: "POST", path: "/other", body: `{"Data":{}}`, run: okRun, wantStatus: 404, wantCode: "FunctionNotFound"},
		{
			name: "run error", method: "POST", path: "/copystatus", body: `{"Data":{"timer":{}}}`,
			run: func(_ context.Context, _ TimerInfo, log *InvocationLog) error {
				log.Info("starting")
				return errors.New("queue unreachable")
			},
			wantStatus: 500, wantInMsg: "queue unreachable",
		},
		{
			name: "run panics", method: "POST", path: "/copystatus", body: `{"Data":{"timer":{}}}`,
			run:        func(context.Context, TimerInfo, *InvocationLog) error { panic("boom") },
			wantStatus: 500, wantInMsg: "boom",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := TimerHandler("copystatus", "timer", tt.run, discardLogger())
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, strings.NewReader(tt.body)))
			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", rec.Code, tt.wantStatus, rec.Body)
			}
			if tt.wantCode != "" {
				var body struct {
					Error struct{ Code, Message string } `json:"error"`
				}
				if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
					t.Fatalf("body is not Azure error JSON: %v: %s", err, rec.Body)
				}
				if body.Error.Code != tt.wantCode || rec.Header().Get("x-ms-error-code") != tt.wantCode {
					t.Errorf("code = %q, header = %q, want %q", body.Error.Code, rec.Header().Get("x-ms-error-code"), tt.wantCode)
				}
				if !strings.Contains(body.Error.Message, tt.wantInMsg) {
					t.Errorf("message %q does not contain %q", body.Error.Message, tt.wantInMsg)
				}
				return
			}
			fields := decodeWire(t, rec.Body.Bytes())
			if string(fields["Outputs"]) != "{}" || string(fields["ReturnValue"]) != "null" {
				t.Errorf("Outputs = %s, ReturnValue = %s", fields["Outputs"], fields["ReturnValue"])
			}
			if !strings.Contains(string(fields["Logs"]), tt.wantInMsg) {
				t.Errorf("Logs %s do not mention %q", fields["Logs"], tt.wantInMsg)
			}
		})
	}
}

func TestWrongMethodSetsAllow(t *testing.T) {
	h := TimerHandler("copystatus", "timer", func(context.Context, TimerInfo, *InvocationLog) error { return nil }, discardLogger())
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPut, "/copystatus", nil))
	if got := rec.Header().Get("Allow"); got != http.MethodPost {
		t.Errorf("Allow = %q, want POST", got)
	}
}

func TestInvocationHandlerOutputs(t *testing.T) {
	h := InvocationHandler("enqueue", func(ctx context.Context, req InvokeRequest, log *InvocationLog) (map[string]any, error) {
		sys, ok, err := req.Sys()
		if err != nil || !ok || sys.MethodName != "enqueue" || sys.RandGuid != "g" || !sys.UtcNow.Equal(time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)) {
			t.Errorf("Sys() = %+v, %v, %v", sys, ok, err)
		}
		return map[string]any{"msg": []string{"a", "b"}}, nil
	}, discardLogger())
	rec := httptest.NewRecorder()
	body := `{"Data":{"x":1},"Metadata":{"sys":{"MethodName":"enqueue","UtcNow":"2024-05-01T00:00:00Z","RandGuid":"g"}}}`
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/enqueue", strings.NewReader(body)))
	if rec.Code != 200 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	if got, want := strings.TrimSpace(rec.Body.String()), `{"Outputs":{"msg":["a","b"]},"Logs":[],"ReturnValue":null}`; got != want {
		t.Errorf("body = %s, want %s", got, want)
	}
}

func TestInvokeResponseEncodesEmptyAsObjectAndArray(t *testing.T) {
	b, err := json.Marshal(InvokeResponse{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `{"Outputs":{},"Logs":[],"ReturnValue":null}`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}
