package funchost

import (
	"bytes"
	"context"
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

// hostLevelOf plays the Functions host's classification of a custom handler's output
// lines (src/WebJobs.Script/Workers/ProcessManagement/WorkerProcess.cs):
// OnOutputDataReceived logs every stdout line at Information; OnErrorDataReceived ->
// ParseErrorMessageAndLog logs a stderr line containing "warn" (case-insensitive) at
// Warning and, since HttpWorkerDescription.UseStdErrorStreamForErrorsOnly is true, any
// other stderr line at Error (a language worker's would be Error only when it contains
// "error", "fail", "severe" or "unhandled exception").
func hostLevelOf(stream, line string) string {
	if stream == "stdout" {
		return "Information"
	}
	if strings.Contains(strings.ToLower(line), "warn") {
		return "Warning"
	}
	return "Error"
}

// TestStreamsHandlerLogsReachTheHostAtTheirLevel: each record goes to one stream, where
// the host logs it at its level: Debug and Info on stdout (Information), Warn on stderr
// (Warning: every Warn line holds "level":"WARN"), Error on stderr (Error). Warnings such
// as app.go's "BLOBCOPY_TRUST_CLIENT_PRINCIPAL=true but App Service Authentication is
// off" used to go to stdout, logged at Information, where an alert on severity or a
// host.json logLevel of Warning missed them.
func TestStreamsHandlerLogsReachTheHostAtTheirLevel(t *testing.T) {
	var out, errs bytes.Buffer
	log := slog.New(NewStreamsHandler(&out, &errs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	log.DebugContext(context.Background(), "probe")
	log.InfoContext(context.Background(), "listening")
	log.WarnContext(context.Background(), "BLOBCOPY_TRUST_CLIENT_PRINCIPAL=true but App Service Authentication is off")
	log.ErrorContext(context.Background(), "cannot set up the app's queue and container yet")
	got := map[string]string{}
	for stream, buf := range map[string]*bytes.Buffer{"stdout": &out, "stderr": &errs} {
		for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
			if line == "" {
				continue
			}
			level := strings.Split(strings.SplitN(line, `"level":"`, 2)[1], `"`)[0]
			if _, twice := got[level]; twice {
				t.Errorf("a %s record was written twice: %s", level, line)
			}
			switch {
			case level == "DEBUG", level == "INFO":
				got[level] = hostLevelOf(stream, line)
			case strings.Contains(line, `"level":"WARN"`):
				got["WARN"] = hostLevelOf(stream, line)
			case strings.Contains(line, `"level":"ERROR"`):
				got["ERROR"] = hostLevelOf(stream, line)
			}
		}
	}
	for _, level := range []string{"DEBUG", "INFO"} {
		if got[level] != "Information" {
			t.Errorf("a %s record is logged by the host at %q, want Information (stdout)", level, got[level])
		}
	}
	if got["ERROR"] != "Error" {
		t.Errorf("an Error record is logged by the host at %q, want Error", got["ERROR"])
	}
	if got["WARN"] != "Warning" {
		t.Errorf("a Warn record is logged by the host at %q (written to stdout: %q), want Warning", got["WARN"], strings.TrimSpace(out.String()))
	}
}
