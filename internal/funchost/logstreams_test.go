package funchost

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

// A derived logger's stderr handler is built only when an Error record needs it; the
// record must still carry every attribute and group it was derived with, in order, on
// stderr, and only there.
func TestStreamsHandlerDerivedLoggersWriteWholeRecordsToTheirStream(t *testing.T) {
	var out, errOut bytes.Buffer
	base := slog.New(NewStreamsHandler(&out, &errOut, &slog.HandlerOptions{Level: slog.LevelInfo}))
	job := base.With("jobId", "j1").WithGroup("copy").With("copyId", "c1")
	job.Info("pending")
	job.Error("failed", "code", "CannotVerifyCopySource")
	other := base.With("jobId", "j2") // never logs an error: its stderr handler is never built
	other.Info("done")
	base.Error("plain")

	lines := func(b *bytes.Buffer) []map[string]any {
		var recs []map[string]any
		for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatalf("not a JSON line %q: %v", l, err)
			}
			recs = append(recs, m)
		}
		return recs
	}
	o, e := lines(&out), lines(&errOut)
	if len(o) != 2 || o[0]["msg"] != "pending" || o[1]["msg"] != "done" || o[1]["jobId"] != "j2" {
		t.Fatalf("stdout: %s", out.String())
	}
	if len(e) != 2 {
		t.Fatalf("stderr has %d records, want 2:\n%s", len(e), errOut.String())
	}
	copyGroup, _ := e[0]["copy"].(map[string]any)
	if e[0]["msg"] != "failed" || e[0]["jobId"] != "j1" || copyGroup["copyId"] != "c1" || copyGroup["code"] != "CannotVerifyCopySource" {
		t.Errorf("the derived logger's error record lost what it was derived with: %v", e[0])
	}
	if e[1]["msg"] != "plain" || e[1]["jobId"] != nil {
		t.Errorf("the base logger's error record: %v", e[1])
	}
}
