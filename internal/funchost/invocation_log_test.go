package funchost

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/blobcopy/blobcopy/internal/redact"
	"github.com/blobcopy/blobcopy/internal/testenv/syncbuf"
)

// streams is a logger like cmd/handler's: Warn and Error to stderr, the rest to stdout.
func streams(level slog.Level) (*slog.Logger, *syncbuf.Buffer, *syncbuf.Buffer) {
	var out, errOut syncbuf.Buffer
	return slog.New(redact.NewHandler(NewContextHandler(NewStreamsHandler(&out, &errOut, &slog.HandlerOptions{Level: level})))), &out, &errOut
}

func TestInvocationLogRoutesLinesWhereTheHostReadsThem(t *testing.T) {
	tests := []struct {
		name               string
		failed, direct     bool
		wantLines          int // Info lines in Lines()
		wantStdout, wantSt int // records on stdout / stderr
	}{
		// A 2xx answer: Info only in Logs (the host logs them at Information), Warn and
		// Error only on stderr (the host logs them at Warning and Error).
		{name: "success", wantLines: 20, wantStdout: 1 /* debug */, wantSt: 2},
		// A failed answer: the host drops Logs, so Info goes to stdout.
		{name: "failure", failed: true, wantLines: 20, wantStdout: 21, wantSt: 2},
		// Standalone timer: no host reads Logs, everything goes out at once.
		{name: "direct", direct: true, wantLines: 0, wantStdout: 21, wantSt: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base, out, errOut := streams(slog.LevelDebug)
			log := NewInvocationLog(base)
			if tt.direct {
				log = NewDirectInvocationLog(base)
			}
			var wg sync.WaitGroup
			for i := range 20 {
				wg.Go(func() { log.Info("line", "i", i) })
			}
			wg.Wait()
			log.Warn("careful", "why", "two words")
			log.Error("went wrong", "err", "boom")
			log.Logger().Debug("debug goes to stdout only")
			log.Finish(tt.failed)

			lines := log.Lines()
			if len(lines) != tt.wantLines {
				t.Fatalf("got %d lines, want %d: %q", len(lines), tt.wantLines, lines)
			}
			for _, l := range lines {
				if strings.Contains(l, "ERROR") || strings.Contains(l, "WARN") || strings.Contains(l, "time=") {
					t.Errorf("line %q: Warn and Error lines and times stay out of Logs", l)
				}
			}
			if n := countLines(out.String()); n != tt.wantStdout {
				t.Errorf("stdout has %d records, want %d:\n%s", n, tt.wantStdout, out)
			}
			if n := countLines(errOut.String()); n != tt.wantSt || strings.Count(errOut.String(), `"level":"ERROR"`) != 1 || strings.Count(errOut.String(), `"level":"WARN"`) != 1 {
				t.Errorf("stderr has %d records, want %d (one Warn, one Error):\n%s", n, tt.wantSt, errOut)
			}
			if strings.Contains(out.String(), `"level":"WARN"`) || strings.Contains(out.String(), `"level":"ERROR"`) {
				t.Errorf("a Warn or Error record also went to stdout:\n%s", out)
			}
			if all := log.AllLines(); !tt.direct && len(all) != tt.wantLines+2 {
				t.Errorf("AllLines has %d lines, want %d", len(all), tt.wantLines+2)
			}
		})
	}
}

func TestInvocationLogLinesAreRedacted(t *testing.T) {
	base, out, errOut := streams(slog.LevelInfo)
	log := NewInvocationLog(base)
	sas := "https://acct.blob.core.windows.net/c/b?sv=2022-11-02&sig=SECRETSIG%3D&se=2030-01-01"
	log.Info("reading", "url", sas)
	log.Error("failed", "err", errors.New("GET "+sas+": 403"))
	log.Finish(true)
	for _, where := range []string{strings.Join(log.AllLines(), "\n"), out.String(), errOut.String()} {
		if strings.Contains(where, "SECRETSIG") {
			t.Errorf("a signature escaped redaction: %s", where)
		}
	}
}

// TestInvocationHandlerTagsEveryLineWithTheHostsInvocationID mirrors
// DefaultHttpWorkerService.cs AddHeaders (X-Azure-Functions-InvocationId)
// and ProcessDefaultInvocationRequest (Logs read only from a 2xx answer).
func TestInvocationHandlerTagsEveryLineWithTheHostsInvocationID(t *testing.T) {
	const id = "6f1e9d2c-4b3a-4c5d-8e7f-0a1b2c3d4e5f"
	for _, fail := range []bool{false, true} {
		base, out, errOut := streams(slog.LevelInfo)
		h := TimerHandler("statusfn", "timer", func(ctx context.Context, _ TimerInfo, log *InvocationLog) error {
			log.Info("tick step")
			log.Warn("tick step slow")
			base.InfoContext(ctx, "a line from code that logs with the context")
			if fail {
				return errors.New("queue unreachable")
			}
			return nil
		}, base)
		req := httptest.NewRequest(http.MethodPost, "/statusfn", strings.NewReader(hostTimerPayload))
		req.Header.Set(InvocationIDHeader, id)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var resp InvokeResponse
		if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
			t.Fatal(err)
		}
		all := append(append(resp.Logs, splitLines(out.String())...), splitLines(errOut.String())...)
		for _, line := range all {
			if !strings.Contains(line, id) {
				t.Errorf("fail=%v: line without the invocation id: %s", fail, line)
			}
		}
		if fail {
			if rec.Code != http.StatusInternalServerError || !strings.Contains(errOut.String(), "queue unreachable") || strings.Count(out.String(), "tick step") != 1 {
				t.Errorf("failure: status %d, stdout %s, stderr %s", rec.Code, out, errOut)
			}
			continue
		}
		// Success: the Info line in Logs only, the Warn line on stderr only.
		if rec.Code != http.StatusOK || len(resp.Logs) != 1 || strings.Contains(out.String(), "tick step") ||
			countLines(errOut.String()) != 1 || !strings.Contains(errOut.String(), `"level":"WARN"`) || strings.Contains(resp.Logs[0], "slow") {
			t.Errorf("success: status %d, Logs %q, stdout %s, stderr %s", rec.Code, resp.Logs, out, errOut)
		}
	}
}

func TestInvocationHandlerRefusesAConcurrentRunWith409(t *testing.T) {
	base, _, _ := streams(slog.LevelInfo)
	h := TimerHandler("statusfn", "timer", func(context.Context, TimerInfo, *InvocationLog) error {
		return ErrAlreadyRunning
	}, base)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/statusfn", strings.NewReader(hostTimerPayload)))
	if rec.Code != http.StatusConflict || rec.Header().Get("x-ms-error-code") != "InvocationInProgress" || rec.Header().Get("Retry-After") == "" {
		t.Errorf("got %d %v %s", rec.Code, rec.Header(), rec.Body)
	}
}

// hostTimerPayload is what the host sends for a timer: the TimerInfo only
// under Data, Metadata.sys only (see testdata/timer_invocation.json).
const hostTimerPayload = `{"Data":{"timer":{"Schedule":{"AdjustForDST":true},"ScheduleStatus":null,"IsPastDue":false}},"Metadata":{"sys":{"MethodName":"statusfn","UtcNow":"2026-11-30T10:00:30.0123456Z","RandGuid":"0b9a2d1e-0000-4000-8000-000000000001"}}}`

func splitLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}

func countLines(s string) int { return len(splitLines(s)) }
