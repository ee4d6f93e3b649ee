package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/blobcopy/blobcopy/internal/testenv/azurite"
	"github.com/blobcopy/blobcopy/internal/testenv/syncbuf"
)

// These tests run the real binary, as the Functions host or `make run` does.

var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

func handlerBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "blobcopy-handler-")
		if err != nil {
			buildErr = err
			return
		}
		binary = filepath.Join(dir, "handler")
		out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binary
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

type process struct {
	cmd *exec.Cmd
	// out is stdout and stderr interleaved; stdout and stderr apart, as the
	// host reads them (Information and Error).
	out, stdout, stderr *syncbuf.Buffer
	done                chan struct{}
	url                 string
	exited              error
}

// start runs the handler with exactly env (plus PATH/HOME) from the repo root, and waits
// until it listens and has set up its storage, or fails if it exits first.
func start(t *testing.T, env map[string]string, port int) *process {
	t.Helper()
	p := startListening(t, env, port)
	if port != 0 {
		p.waitForLog(t, `"msg":"app storage ready"`, 20*time.Second)
	}
	return p
}

// waitForLog waits until the handler's output holds text.
func (p *process) waitForLog(t *testing.T, text string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(p.out.String(), text) {
		select {
		case <-p.done:
			t.Fatalf("handler exited (%v) before logging %s:\n%s", p.exited, text, p.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("handler did not log %s within %s:\n%s", text, timeout, p.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startListening is start without waiting for storage.
func startListening(t *testing.T, env map[string]string, port int) *process {
	t.Helper()
	return startListeningIn(t, repoRoot(t), env, port)
}

// startListeningIn is startListening with the app files of appDir.
func startListeningIn(t *testing.T, appDir string, env map[string]string, port int) *process {
	t.Helper()
	cmd := exec.Command(handlerBinary(t), "-app-dir", appDir)
	cmd.Dir = t.TempDir() // no local.settings.json here: only env counts
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	p := &process{cmd: cmd, out: &syncbuf.Buffer{}, stdout: &syncbuf.Buffer{}, stderr: &syncbuf.Buffer{},
		done: make(chan struct{}), url: fmt.Sprintf("http://127.0.0.1:%d", port)}
	cmd.Stdout, cmd.Stderr = io.MultiWriter(p.out, p.stdout), io.MultiWriter(p.out, p.stderr)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.stop(t) })
	if port == 0 {
		return p
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			t.Fatalf("handler exited early (%v):\n%s", p.exited, p.out.String())
		default:
		}
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			return p
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("handler did not listen on %d:\n%s", port, p.out.String())
	return nil
}

func (p *process) stop(t *testing.T) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *process) wait(t *testing.T, timeout time.Duration) (int, string) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("handler still running after %s:\n%s", timeout, p.out.String())
	}
	return p.cmd.ProcessState.ExitCode(), p.out.String()
}

func call(t *testing.T, method, url, body string, header map[string]string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, []byte(err.Error())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func baseEnv(az *azurite.Instance) map[string]string {
	return map[string]string{
		"FUNCTIONS_WORKER_RUNTIME": "custom",
		"AzureWebJobsStorage":      az.ConnectionString("devstoreaccount1"),
		"COPY_STATUS_SCHEDULE":     "*/1 * * * * *",
		"COPY_FIRST_POLL":          "1s",
		"COPY_MAX_POLL_INTERVAL":   "1s",
	}
}

// TestHostedModeSpeaksTheCustomHandlerProtocol: with FUNCTIONS_CUSTOMHANDLER_PORT set,
// the handler listens on 127.0.0.1:<port>, serves forwarded HTTP requests at their
// /api/... path (the host checked the key), answers the timer invocation with
// Outputs/Logs/ReturnValue, and runs no timer of its own.
func TestHostedModeSpeaksTheCustomHandlerProtocol(t *testing.T) {
	az := azurite.Start(t, azurite.Options{})
	port := freePort(t)
	env := baseEnv(az)
	env["FUNCTIONS_CUSTOMHANDLER_PORT"] = fmt.Sprint(port)
	p := start(t, env, port)

	// Forwarded HTTP request, as the host relays it (no key: the host checked it).
	status, hdr, body := call(t, http.MethodGet, p.url+"/api/copies/unknown-id", "", map[string]string{"X-Forwarded-For": "10.0.0.1"})
	if status != 404 || hdr.Get("x-ms-error-code") != "JobNotFound" || !json.Valid(body) {
		t.Fatalf("forwarded GET: %d %v %s", status, hdr, body)
	}
	status, _, body = call(t, http.MethodPost, p.url+"/api/copies", `{"source":"ftp://x/y","destination":{"container":"abc","blob":"d"}}`, nil)
	if status != 400 || !strings.Contains(string(body), `"code":"InvalidRequest"`) {
		t.Fatalf("forwarded POST: %d %s", status, body)
	}

	// A garbage tracking message: a timer of our own would poison it within a second.
	enqueue(t, az, "not a tracking message")
	time.Sleep(2500 * time.Millisecond)
	if n := queueLength(t, az, "copyjobs"); n != 1 {
		t.Fatalf("hosted handler ran its own timer: %d messages left", n)
	}

	// The host's timer invocation, field by field.
	payload := `{"Data":{"timer":{"Schedule":{"AdjustForDST":true},"ScheduleStatus":{"Last":"2026-11-25T10:00:00+00:00","Next":"2026-11-25T10:00:30+00:00","LastUpdated":"2026-11-25T10:00:00+00:00"},"IsPastDue":false}},"Metadata":{"sys":{"MethodName":"statusfn","UtcNow":"2026-11-25T10:00:30.0123456Z","RandGuid":"3f5c7d2a-1b2c-4d5e-8f90-123456789abc"}}}`
	status, hdr, body = call(t, http.MethodPost, p.url+"/statusfn", payload, nil)
	if status != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "application/json") {
		t.Fatalf("timer invocation: %d %s", status, body)
	}
	var resp map[string]json.RawMessage
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatal(err)
	}
	if string(resp["Outputs"]) != "{}" || string(resp["ReturnValue"]) != "null" {
		t.Errorf("Outputs %s ReturnValue %s", resp["Outputs"], resp["ReturnValue"])
	}
	var logs []string
	if err := json.Unmarshal(resp["Logs"], &logs); err != nil || len(logs) == 0 || !strings.Contains(strings.Join(logs, "\n"), "poisoned=1") {
		t.Errorf("Logs = %s", resp["Logs"])
	}
	if n := queueLength(t, az, "copyjobs"); n != 0 {
		t.Errorf("the invocation's tick left %d messages", n)
	}
	// A malformed invocation is a clear 400.
	status, _, body = call(t, http.MethodPost, p.url+"/statusfn", `{"Data":`, nil)
	if status != 400 || !strings.Contains(string(body), "InvalidInvocationPayload") {
		t.Errorf("malformed invocation: %d %s", status, body)
	}

	p.stop(t)
	if code, out := p.wait(t, 15*time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM:\n%s", code, out)
	}
}

// TestStandaloneRunsTheTimerAndChecksKeys: without the host the handler runs statusfn on
// the schedule from statusfn/function.json (resolved from COPY_STATUS_SCHEDULE) and
// requires a function key.
func TestStandaloneRunsTheTimerAndChecksKeys(t *testing.T) {
	az := azurite.Start(t, azurite.Options{})
	port := freePort(t)
	env := baseEnv(az)
	env["BLOBCOPY_LISTEN_ADDRESS"] = fmt.Sprintf("127.0.0.1:%d", port)
	env["BLOBCOPY_FUNCTION_KEYS"] = "k-one,k-two"
	p := start(t, env, port)

	if status, _, _ := call(t, http.MethodGet, p.url+"/api/copies/x", "", nil); status != 401 {
		t.Errorf("no key: %d", status)
	}
	if status, _, _ := call(t, http.MethodGet, p.url+"/api/copies/x?code=k-two", "", nil); status != 404 {
		t.Errorf("code query: %d", status)
	}
	// Standalone, the timer's invocation path is not an open door either.
	invocation := `{"Data":{"timer":{"Schedule":{"AdjustForDST":true},"ScheduleStatus":null,"IsPastDue":false}},"Metadata":{"sys":{"MethodName":"statusfn","UtcNow":"2026-11-25T10:00:30Z","RandGuid":"0b9a2d1e-0000-4000-8000-000000000002"}}}`
	if status, _, _ := call(t, http.MethodPost, p.url+"/statusfn", invocation, nil); status != 401 {
		t.Errorf("/statusfn without a key: %d", status)
	}
	// The scheduled tick may be running at this moment (one tick per process: 409
	// InvocationInProgress); the invocation is made again once it has ended.
	status, _, b := call(t, http.MethodPost, p.url+"/statusfn", invocation, map[string]string{"x-functions-key": "k-one"})
	for end := time.Now().Add(10 * time.Second); status == http.StatusConflict && strings.Contains(string(b), "InvocationInProgress") && time.Now().Before(end); {
		time.Sleep(100 * time.Millisecond)
		status, _, b = call(t, http.MethodPost, p.url+"/statusfn", invocation, map[string]string{"x-functions-key": "k-one"})
	}
	if status != 200 {
		t.Errorf("/statusfn with a key: %d %s", status, b)
	}
	enqueue(t, az, "garbage for the timer")
	deadline := time.Now().Add(15 * time.Second)
	for queueLength(t, az, "copyjobs") != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the standalone timer never ran:\n%s", p.out.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(p.out.String(), `"msg":"status tick done"`) {
		t.Errorf("no tick log line:\n%s", p.out.String())
	}
	p.stop(t)
	if code, out := p.wait(t, 15*time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM:\n%s", code, out)
	}
}

// TestConfigurationErrorsStopStartUp: a misconfigured app says which setting is wrong and
// exits non-zero before listening.
func TestConfigurationErrorsStopStartUp(t *testing.T) {
	ok := map[string]string{"AzureWebJobsStorage": "UseDevelopmentStorage=true", "COPY_STATUS_SCHEDULE": "*/30 * * * * *", "BLOBCOPY_AUTH_DISABLED": "true", "BLOBCOPY_LISTEN_ADDRESS": "127.0.0.1:0"}
	tests := []struct {
		name   string
		change map[string]string
		want   string
	}{
		{"no storage", map[string]string{"AzureWebJobsStorage": ""}, "AzureWebJobsStorage"},
		{"bad key", map[string]string{"AzureWebJobsStorage": "AccountName=abc;AccountKey=not base64!"}, "AccountKey"},
		{"bad credential", map[string]string{"AzureWebJobsStorage": "", "AzureWebJobsStorage__accountName": "abcdef", "AzureWebJobsStorage__credential": "password"}, "AzureWebJobsStorage__credential"},
		{"no schedule", map[string]string{"COPY_STATUS_SCHEDULE": ""}, "COPY_STATUS_SCHEDULE"},
		{"four-field schedule", map[string]string{"COPY_STATUS_SCHEDULE": "*/5 * * *"}, "6 fields"},
		{"bad duration", map[string]string{"COPY_FIRST_POLL": "soon"}, "COPY_FIRST_POLL"},
		{"bad rules", map[string]string{"COPY_RULES": "[{"}, "COPY_RULES"},
		{"no key off loopback", map[string]string{"BLOBCOPY_LISTEN_ADDRESS": "0.0.0.0:0"}, "BLOBCOPY_AUTH_DISABLED"},
		{"no key at all", map[string]string{"BLOBCOPY_AUTH_DISABLED": ""}, "BLOBCOPY_FUNCTION_KEYS"},
		{"bad port", map[string]string{"FUNCTIONS_CUSTOMHANDLER_PORT": "http"}, "FUNCTIONS_CUSTOMHANDLER_PORT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range ok {
				env[k] = v
			}
			for k, v := range tt.change {
				env[k] = v
			}
			p := start(t, env, 0)
			code, out := p.wait(t, 20*time.Second)
			if code == 0 || !strings.Contains(out, tt.want) {
				t.Errorf("exit %d, output lacks %q:\n%s", code, tt.want, out)
			}
			if strings.Contains(out, "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq") {
				t.Errorf("the output shows an account key")
			}
		})
	}
}
