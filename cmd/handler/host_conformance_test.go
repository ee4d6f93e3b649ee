package main_test

// The host-conformance suite: each test drives the built binary the way the
// Azure Functions host (Azure/azure-functions-host, src/WebJobs.Script/...)
// does, and names the host source file it mirrors. docs/host-protocol.md
// lists them.

import (
	"bytes"
	"context"
	"crypto/rand"
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
	"testing"
	"time"

	"github.com/blobcopy/blobcopy/internal/testenv/azurite"
	"github.com/blobcopy/blobcopy/internal/testenv/syncbuf"
)

// hostVersion is what the host puts in X-Azure-Functions-HostVersion and
// after "Azure-Functions-Host/" in User-Agent (DefaultHttpWorkerService.cs).
const hostVersion = "4.1037.0.0"

// hostApp lays out an app root as the host sees it after deployment: host.json,
// the function folders and the handler binary, and no local.settings.json.
func hostApp(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	src := repoRoot(t)
	copyFile := func(rel string) {
		b, err := os.ReadFile(filepath.Join(src, rel))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, rel)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, rel), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	copyFile("host.json")
	for _, fn := range []string{"copyfn", "abortfn", "retryfn", "batchfn", "batchabortfn", "openapifn", "statusfn"} {
		copyFile(filepath.Join(fn, "function.json"))
	}
	if err := os.Symlink(handlerBinary(t), filepath.Join(root, "handler")); err != nil {
		t.Fatal(err)
	}
	return root
}

func newGUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// startHosted starts the handler as HttpWorkerProcess.cs and WorkerProcess.cs do:
// the executable from host.json's defaultExecutablePath, run in the app root
// (HttpWorkerOptionsSetup.cs: the working directory defaults to it), with the
// port, worker id and app root in the environment (HttpWorkerProcess.cs
// CreateWorkerProcess, HttpWorkerConstants.cs). It then pings GET / every 25 ms for
// at most 30 s until any HTTP answer (DefaultHttpWorkerService.cs IsWorkerReady,
// WorkerConstants.WorkerReadyCheckPollingIntervalMilliseconds,
// HttpWorkerOptions.InitializationTimeout), and returns how long that took.
func startHosted(t *testing.T, env map[string]string) (*process, time.Duration) {
	t.Helper()
	root := hostApp(t)
	port := freePort(t)
	workerID := newGUID()
	cmd := exec.Command(filepath.Join(root, "handler"))
	cmd.Dir = root
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		fmt.Sprintf("FUNCTIONS_HTTPWORKER_PORT=%d", port), "FUNCTIONS_HTTPWORKER_ID=" + workerID,
		fmt.Sprintf("FUNCTIONS_CUSTOMHANDLER_PORT=%d", port), "FUNCTIONS_CUSTOMHANDLER_WORKER_ID=" + workerID,
		"FUNCTIONS_APP_ROOT_PATH=" + root,
	}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	p := &process{cmd: cmd, out: &syncbuf.Buffer{}, stdout: &syncbuf.Buffer{}, stderr: &syncbuf.Buffer{},
		done: make(chan struct{}), url: fmt.Sprintf("http://127.0.0.1:%d", port)}
	cmd.Stdout, cmd.Stderr = io.MultiWriter(p.out, p.stdout), io.MultiWriter(p.out, p.stderr)
	began := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.stop(t) })

	ping := &http.Client{Timeout: time.Second}
	for time.Since(began) < 30*time.Second {
		select {
		case <-p.done:
			t.Fatalf("handler exited during the readiness window (%v):\n%s", p.exited, p.out.String())
		default:
		}
		if resp, err := ping.Get(p.url + "/"); err == nil {
			resp.Body.Close()
			return p, time.Since(began)
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("no answer to the host's readiness ping within 30 s:\n%s", p.out.String())
	return nil, 0
}

// hostRequest sends what the host sends: its headers on every request
// (DefaultHttpWorkerService.cs AddHeaders / AddProxyingHeaders) and the invocation
// id it returns.
func hostRequest(t *testing.T, method, url string, body io.Reader, header map[string]string) (*http.Response, []byte, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	id := newGUID()
	req.Header.Set("X-Azure-Functions-HostVersion", hostVersion)
	req.Header.Set("X-Azure-Functions-InvocationId", id)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b, id
}

// invokeTimer posts a timer invocation as ProcessDefaultInvocationRequest does: POST
// /<functionName>, JSON from ScriptInvocationContextExtensions.cs
// ToHttpScriptInvocationContext (the TimerInfo only under Data.<binding name>;
// Metadata holds the SDK's "sys" binding data), User-Agent Azure-Functions-Host/<v>.
func invokeTimer(t *testing.T, p *process, payload string) (*http.Response, []byte, string) {
	t.Helper()
	return hostRequest(t, http.MethodPost, p.url+"/statusfn", strings.NewReader(payload), map[string]string{
		"Content-Type": "application/json; charset=utf-8",
		"User-Agent":   "Azure-Functions-Host/" + hostVersion,
	})
}

// subMinuteTimer is the payload for the default "*/30 * * * * *" schedule: the
// host keeps no schedule monitor for schedules under a minute, so ScheduleStatus
// is null.
func subMinuteTimer(now time.Time) string {
	return fmt.Sprintf(`{"Data":{"timer":{"Schedule":{"AdjustForDST":true},"ScheduleStatus":null,"IsPastDue":false}},`+
		`"Metadata":{"sys":{"MethodName":"statusfn","UtcNow":%q,"RandGuid":%q}}}`, now.UTC().Format("2006-01-02T15:04:05.0000000Z"), newGUID())
}

// fiveMinuteTimer is a monitored schedule's payload, past due.
func fiveMinuteTimer(now time.Time) string {
	last := now.UTC().Truncate(5 * time.Minute)
	return fmt.Sprintf(`{"Data":{"timer":{"Schedule":{"AdjustForDST":true},"ScheduleStatus":{"Last":%q,"Next":%q,"LastUpdated":%q},"IsPastDue":true}},`+
		`"Metadata":{"sys":{"MethodName":"statusfn","UtcNow":%q,"RandGuid":%q}}}`,
		last.Add(-5*time.Minute).Format("2006-01-02T15:04:05+00:00"), last.Add(5*time.Minute).Format("2006-01-02T15:04:05+00:00"),
		last.Format("2006-01-02T15:04:05.0000000+00:00"), now.UTC().Format(time.RFC3339Nano), newGUID())
}

// flushStdout makes sure every line the handler wrote to stdout so far is in
// p.stdout (it arrives through a copying goroutine): it sends a request whose
// access line is written after them, and waits for that line.
func flushStdout(t *testing.T, p *process) {
	t.Helper()
	_, _, id := hostRequest(t, http.MethodGet, p.url+"/api/copies/flush-marker", nil, nil)
	deadline := time.Now().Add(5 * time.Second)
	for len(linesWith(p.stdout.String(), id)) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the marker request's log line never arrived:\n%s", p.stdout.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// linesWith returns the JSON log lines of text that carry the invocation id.
func linesWith(text, id string) []string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, `"invocationId":"`+id+`"`) {
			out = append(out, l)
		}
	}
	return out
}

// TestHostReadinessPingIsAnsweredAtOnce mirrors DefaultHttpWorkerService.cs
// IsWorkerReady (GET / every 25 ms, any HTTP answer counts, 30 s budget from
// HttpWorkerOptions.cs InitializationTimeout): the handler answers before it has
// talked to storage, even when storage accepts connections and never answers.
func TestHostReadinessPingIsAnsweredAtOnce(t *testing.T) {
	hang, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hang.Close()
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := hang.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c) // accepted, never answered
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	}()
	addr := hang.Addr().String()
	storage := fmt.Sprintf("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=http://%s/devstoreaccount1;QueueEndpoint=http://%s/devstoreaccount1;", addr, addr)

	p, took := startHosted(t, map[string]string{"FUNCTIONS_WORKER_RUNTIME": "custom", "AzureWebJobsStorage": storage})
	t.Logf("first answer to the readiness ping %s after exec, with storage that never answers", took)
	if took > 2*time.Second {
		t.Errorf("readiness took %s; the host allows 30 s but the handler should answer at once", took)
	}

	// A request that needs storage: 503 + Retry-After + Azure error JSON.
	resp, body, _ := hostRequest(t, http.MethodPost, p.url+"/api/copies",
		strings.NewReader(`{"source":"https://a.blob.core.windows.net/c/b","destination":{"container":"d","blob":"e"}}`),
		map[string]string{"Content-Type": "application/json"})
	var azErr struct {
		Error struct{ Code, Message string }
	}
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" ||
		json.Unmarshal(body, &azErr) != nil || azErr.Error.Code != "StorageUnavailable" || resp.Header.Get("x-ms-error-code") != "StorageUnavailable" {
		t.Errorf("copy before storage is ready: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	// The timer too: the host records a failed invocation and fires again later.
	resp, body, _ = invokeTimer(t, p, subMinuteTimer(time.Now()))
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("timer before storage is ready: %d %s", resp.StatusCode, body)
	}
	// What needs no storage is served: the CloudEvents handshake and the description.
	resp, body, _ = hostRequest(t, http.MethodOptions, p.url+"/api/copies", nil, map[string]string{"WebHook-Request-Origin": "eventgrid.azure.net"})
	if resp.StatusCode != http.StatusOK || resp.Header.Get("WebHook-Allowed-Origin") == "" {
		t.Errorf("OPTIONS handshake before storage is ready: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	if resp, body, _ = hostRequest(t, http.MethodGet, p.url+"/api/openapi.json", nil, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("openapi.json before storage is ready: %d %s", resp.StatusCode, body)
	}
}

// TestHostColdStartWithHealthyStorage: with storage up, readiness is as fast, and
// storage is ready moments later.
func TestHostColdStartWithHealthyStorage(t *testing.T) {
	az := azurite.Start(t, azurite.Options{})
	p, took := startHosted(t, baseEnv(az))
	t.Logf("first answer to the readiness ping %s after exec (Azurite up)", took)
	if took > 2*time.Second {
		t.Errorf("readiness took %s", took)
	}
	p.waitForLog(t, `"msg":"app storage ready"`, 20*time.Second)
}

// TestHostTimerInvocations mirrors DefaultHttpWorkerService.cs
// ProcessDefaultInvocationRequest and ProcessLogsFromHttpResponse: a 2xx answer's
// Logs are logged by the host at Information, so those lines must not also go to
// stdout (WorkerProcess.cs OnOutputDataReceived would log them a second time), and
// each carries the invocation id from X-Azure-Functions-InvocationId.
func TestHostTimerInvocations(t *testing.T) {
	az := azurite.Start(t, azurite.Options{})
	p, _ := startHosted(t, baseEnv(az))
	p.waitForLog(t, `"msg":"app storage ready"`, 20*time.Second)

	for name, payload := range map[string]string{"sub-minute schedule": subMinuteTimer(time.Now()), "monitored, past due": fiveMinuteTimer(time.Now())} {
		enqueue(t, az, "not a tracking message") // gives the tick something to log
		resp, body, id := invokeTimer(t, p, payload)
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			t.Fatalf("%s: %d %s", name, resp.StatusCode, body)
		}
		var out struct {
			Outputs     map[string]any
			Logs        []string
			ReturnValue any
		}
		if err := json.Unmarshal(body, &out); err != nil || out.Outputs == nil || out.ReturnValue != nil || len(out.Logs) == 0 {
			t.Fatalf("%s: answer %s (%v)", name, body, err)
		}
		for _, l := range out.Logs {
			if !strings.Contains(l, "invocationId="+id) {
				t.Errorf("%s: a Logs line without the invocation id: %s", name, l)
			}
		}
		if !strings.Contains(strings.Join(out.Logs, "\n"), "status tick done") {
			t.Errorf("%s: Logs %q lack the tick's report", name, out.Logs)
		}
		flushStdout(t, p)
		if dup := linesWith(p.stdout.String(), id); len(dup) != 0 {
			t.Errorf("%s: lines of a successful invocation also went to stdout: %q", name, dup)
		}
		// The poisoned message is an Error line: on stderr (the host logs it at Error),
		// once, and not also in Logs. Nothing but Warn and Error lines of a successful
		// invocation is there.
		for _, l := range linesWith(p.stderr.String(), id) {
			if !strings.Contains(l, `"level":"ERROR"`) && !strings.Contains(l, `"level":"WARN"`) {
				t.Errorf("%s: an Info line of a successful invocation on stderr: %s", name, l)
			}
			if strings.Contains(strings.Join(out.Logs, "\n"), "moved to the poison queue") {
				t.Errorf("%s: the error line is in Logs too", name)
			}
		}
	}
}

// TestHostFailingInvocation mirrors ProcessDefaultInvocationRequest's
// EnsureSuccessStatusCode (a non-2xx body is never read, so its Logs are lost) and
// WorkerProcess.cs ParseErrorMessageAndLog (a custom handler's stderr line is logged
// at Warning when it contains "warn", at Error otherwise): each failure line appears
// once, on stderr, with the id, and so do the tick's warnings; the invocation's other
// lines go to stdout once.
func TestHostFailingInvocation(t *testing.T) {
	az := azurite.Start(t, azurite.Options{})
	p, _ := startHosted(t, baseEnv(az))
	p.waitForLog(t, `"msg":"app storage ready"`, 20*time.Second)
	az.Stop()

	resp, body, id := invokeTimer(t, p, subMinuteTimer(time.Now()))
	if resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("tick with storage down: %d %s", resp.StatusCode, body)
	}
	// The child's output reaches the buffers through a copying goroutine: wait.
	p.waitForLog(t, `"msg":"invocation failed"`, 5*time.Second)
	errLines := linesWith(p.stderr.String(), id)
	if len(errLines) == 0 {
		t.Fatalf("no failure line on stderr:\nstderr:\n%s\nstdout:\n%s", p.stderr.String(), p.stdout.String())
	}
	seen := map[string]bool{}
	for _, l := range errLines {
		var rec struct{ Level, Msg string }
		if err := json.Unmarshal([]byte(l), &rec); err != nil || rec.Level != "ERROR" && rec.Level != "WARN" {
			t.Errorf("stderr line is not a Warn or Error record: %s", l)
		}
		if seen[rec.Msg] {
			t.Errorf("line %q appears twice on stderr", rec.Msg)
		}
		seen[rec.Msg] = true
		if warns := strings.Contains(strings.ToLower(l), "warn"); warns != (rec.Level == "WARN") {
			t.Errorf("the host would log this %s line at %s: %s", rec.Level, map[bool]string{true: "Warning", false: "Error"}[warns], l)
		}
	}
	t.Logf("the failed invocation's Error lines on stderr: %q", errLines)
	if !seen["invocation failed"] {
		t.Errorf("stderr lacks the invocation's failure: %q", errLines)
	}
	// (This tick logs nothing but its failure; TestInvocationLogRoutesLinesWhereTheHostReadsThem
	// checks that a failed invocation's Info lines reach stdout once.)
	flushStdout(t, p)
	for _, l := range linesWith(p.stdout.String(), id) {
		if strings.Contains(l, `"level":"ERROR"`) || strings.Contains(l, `"level":"WARN"`) {
			t.Errorf("a failure or warning line also went to stdout: %s", l)
		}
	}
}

// TestHostForwardedRequests mirrors what reaches the handler for an HTTP trigger
// (DefaultHttpWorkerService.cs ProxyInvocationRequest with DefaultHttpProxyService.cs
// under enableProxyingHttpRequest; ProcessHttpInAndOutInvocationRequest and
// HttpRequestExtensions.ToHttpRequestMessage under the legacy
// enableForwardingHttpRequest): the client's path as written (the host's routes
// match case-insensitively and ignore a trailing slash:
// WebScriptHostHttpRoutesManager.cs), its query with ?code=, the front end's headers
// and the host's own, chunked, empty and 1 MiB bodies.
func TestHostForwardedRequests(t *testing.T) {
	az := azurite.Start(t, azurite.Options{})
	p, _ := startHosted(t, baseEnv(az))
	p.waitForLog(t, `"msg":"app storage ready"`, 20*time.Second)
	frontEnd := map[string]string{
		"X-Forwarded-For": "203.0.113.7:51234", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "myapp.azurewebsites.net",
		"X-ARR-LOG-ID": newGUID(), "CLIENT-IP": "203.0.113.7:51234", "DISGUISED-HOST": "myapp.azurewebsites.net",
		"WAS-DEFAULT-HOSTNAME": "myapp.azurewebsites.net", "X-SITE-DEPLOYMENT-ID": "myapp", "X-Original-URL": "/api/copies?code=KEYKEYKEY",
		"X-WAWS-Unencoded-URL": "/api/copies?code=KEYKEYKEY", "x-ms-invocation-id": newGUID(), "Content-Type": "application/json",
	}
	const key = "?code=KEYKEYKEY"
	validStart := `{"source":"ftp://x/y","destination":{"container":"abc","blob":"d"}}`
	eventBatch := oneMiBEventBatch(t)

	tests := []struct {
		name, method, path string
		body               func() io.Reader
		chunked            bool
		wantStatus         int
		wantCode           string
	}{
		{name: "path as written, key in the query", method: "GET", path: "/api/copies/unknown-id" + key, wantStatus: 404, wantCode: "JobNotFound"},
		{name: "case-insensitive with trailing slash", method: "GET", path: "/API/Copies/unknown-id/" + key, wantStatus: 404, wantCode: "JobNotFound"},
		{name: "abort path in another case", method: "POST", path: "/Api/COPIES/unknown-id/Abort" + key, body: func() io.Reader { return strings.NewReader("{}") }, wantStatus: 404, wantCode: "JobNotFound"},
		{name: "list", method: "GET", path: "/api/copies/" + key, wantStatus: 200},
		{name: "bad input answers 400", method: "POST", path: "/api/copies" + key, body: func() io.Reader { return strings.NewReader(validStart) }, wantStatus: 400, wantCode: "InvalidRequest"},
		{name: "chunked body (proxying streams it)", method: "POST", path: "/api/copies" + key, body: func() io.Reader { return strings.NewReader(validStart) }, chunked: true, wantStatus: 400, wantCode: "InvalidRequest"},
		{name: "empty body", method: "POST", path: "/api/copies" + key, body: func() io.Reader { return strings.NewReader("") }, wantStatus: 400},
		{name: "1 MiB Event Grid batch", method: "POST", path: "/api/copies" + key, body: func() io.Reader { return bytes.NewReader(eventBatch) }, wantStatus: 200},
		{name: "unknown path: Azure 404", method: "GET", path: "/api/nothing-here" + key, wantStatus: 404, wantCode: "ResourceNotFound"},
		{name: "unknown method: Azure 405", method: "DELETE", path: "/api/copies/x" + key, wantStatus: 405, wantCode: "MethodNotAllowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader
			if tt.body != nil {
				body = tt.body()
				if tt.chunked {
					body = io.MultiReader(body) // hides the length: Go sends it chunked
				}
			}
			resp, b, id := hostRequest(t, tt.method, p.url+tt.path, body, frontEnd)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.wantStatus, b)
			}
			if tt.wantCode != "" && (resp.Header.Get("x-ms-error-code") != tt.wantCode || !strings.Contains(string(b), `"code":"`+tt.wantCode+`"`)) {
				t.Errorf("error code %q, want %q: %s", resp.Header.Get("x-ms-error-code"), tt.wantCode, b)
			}
			if !json.Valid(b) {
				t.Errorf("answer is not JSON: %s", b)
			}
			if tt.wantStatus != 404 || tt.wantCode == "JobNotFound" {
				// The access line is written once the answer is sent.
				deadline := time.Now().Add(2 * time.Second)
				for len(linesWith(p.stdout.String(), id)) == 0 {
					if time.Now().After(deadline) {
						t.Fatalf("no log line carries the request's invocation id %s:\n%s", id, p.stdout.String())
					}
					time.Sleep(10 * time.Millisecond)
				}
			}
		})
	}
	if strings.Contains(p.out.String(), "KEYKEYKEY") {
		t.Errorf("the function key from ?code= reached a log")
	}
}

// oneMiBEventBatch is an Event Grid delivery of about 1 MiB (Event Grid's largest)
// of BlobCreated events no rule matches: acknowledged, nothing started.
func oneMiBEventBatch(t *testing.T) []byte {
	t.Helper()
	var events []map[string]any
	size := 2
	for i := 0; size < 1<<20-2048; i++ {
		e := map[string]any{
			"id": newGUID(), "eventType": "Microsoft.Storage.BlobCreated", "dataVersion": "", "metadataVersion": "1",
			"topic":     "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/nomatch",
			"subject":   fmt.Sprintf("/blobServices/default/containers/in/blobs/file-%05d.csv", i),
			"eventTime": "2026-11-30T10:00:00.0000000Z",
			"data": map[string]any{"api": "PutBlob", "contentType": "text/csv", "contentLength": 524288, "blobType": "BlockBlob",
				"eTag": "0x8D9A1B2C3D4E5F6", "url": fmt.Sprintf("https://nomatch.blob.core.windows.net/in/file-%05d.csv", i),
				"sequencer": "00000000000004420000000000028963", "storageDiagnostics": map[string]any{"batchId": newGUID()}},
		}
		b, _ := json.Marshal(e)
		if size+len(b)+1 > 1<<20 {
			break
		}
		size += len(b) + 1
		events = append(events, e)
	}
	b, err := json.Marshal(events)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestHostTicksOneAtATime: twenty concurrent timer invocations never run twenty
// ticks; each is answered 200 (ran) or 409 with Retry-After (one was running).
func TestHostTicksOneAtATime(t *testing.T) {
	az := azurite.Start(t, azurite.Options{})
	p, _ := startHosted(t, baseEnv(az))
	p.waitForLog(t, `"msg":"app storage ready"`, 20*time.Second)
	for range 5 {
		enqueue(t, az, "garbage that makes each tick do some work")
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	for range 20 {
		wg.Go(func() {
			resp, body, _ := invokeTimer(t, p, subMinuteTimer(time.Now()))
			mu.Lock()
			defer mu.Unlock()
			statuses[resp.StatusCode]++
			if resp.StatusCode == http.StatusConflict && (resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), "InvocationInProgress")) {
				t.Errorf("409 without Retry-After or Azure error JSON: %v %s", resp.Header, body)
			}
		})
	}
	wg.Wait()
	t.Logf("twenty concurrent invocations: %v", statuses)
	if statuses[200]+statuses[409] != 20 || statuses[200] == 0 {
		t.Errorf("statuses %v, want only 200 and 409", statuses)
	}
	if statuses[409] == 0 {
		t.Errorf("no invocation overlapped a running tick (%v): twenty ticks ran", statuses)
	}
}

// deadStorage refuses connections: start-up must not depend on it.
const deadStorage = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=http://127.0.0.1:1/devstoreaccount1;QueueEndpoint=http://127.0.0.1:1/devstoreaccount1;"

// TestHostedStartsWhateverTheSchedule: the host accepts 5- and 6-field NCRONTAB and
// TimeSpan schedules and runs the timer itself, so the hosted handler starts with
// any of them, and with one it cannot read (a warning, not an exit: the host would
// restart it three times and stop). Standalone, the same schedules drive its timer.
func TestHostedStartsWhateverTheSchedule(t *testing.T) {
	for _, sched := range []string{"0 */5 * * *", "*/30 * * * * *", "00:05:00", "not a schedule"} {
		t.Run("hosted "+sched, func(t *testing.T) {
			p, _ := startHosted(t, map[string]string{"AzureWebJobsStorage": deadStorage, "COPY_STATUS_SCHEDULE": sched})
			if sched == "not a schedule" {
				p.waitForLog(t, "statusfn schedule not understood here", 5*time.Second)
			}
		})
	}
	for _, sched := range []string{"0 */5 * * *", "00:05:00"} {
		t.Run("standalone "+sched, func(t *testing.T) {
			port := freePort(t)
			p := startListening(t, map[string]string{"AzureWebJobsStorage": deadStorage, "COPY_STATUS_SCHEDULE": sched,
				"BLOBCOPY_AUTH_DISABLED": "true", "BLOBCOPY_LISTEN_ADDRESS": fmt.Sprintf("127.0.0.1:%d", port)}, port)
			p.waitForLog(t, `"msg":"timer scheduled"`, 10*time.Second)
		})
	}
}

// TestStandaloneIPv6LoopbackWithoutKeys: "[::1]:port" is loopback, so
// BLOBCOPY_AUTH_DISABLED is allowed there (the host:port split is net.SplitHostPort's).
func TestStandaloneIPv6LoopbackWithoutKeys(t *testing.T) {
	probe, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback here: %v", err)
	}
	port := probe.Addr().(*net.TCPAddr).Port
	probe.Close()
	p := startListening(t, map[string]string{"AzureWebJobsStorage": deadStorage, "BLOBCOPY_AUTH_DISABLED": "true",
		"BLOBCOPY_LISTEN_ADDRESS": fmt.Sprintf("[::1]:%d", port)}, 0)
	url := fmt.Sprintf("http://[::1]:%d/api/openapi.json", port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET %s: %d", url, resp.StatusCode)
			}
			return
		}
		select {
		case <-p.done:
			t.Fatalf("handler refused [::1] with auth disabled (%v):\n%s", p.exited, p.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no answer on %s:\n%s", url, p.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestHTTPFunctionsAreHTTPInAndOut mirrors FunctionMetadataExtensions.cs
// IsHttpInAndOutFunction: the host forwards or proxies a request only to a
// function with exactly one input (httpTrigger) and one output (http); any other
// binding would make it POST an invocation payload to /<functionName> instead.
func TestHTTPFunctionsAreHTTPInAndOut(t *testing.T) {
	for _, fn := range []string{"copyfn", "abortfn", "retryfn", "batchfn", "batchabortfn", "openapifn"} {
		b, err := os.ReadFile(filepath.Join(repoRoot(t), fn, "function.json"))
		if err != nil {
			t.Fatal(err)
		}
		var cfg struct {
			Bindings []struct{ Type, Direction string }
		}
		if err := json.Unmarshal(b, &cfg); err != nil {
			t.Fatal(err)
		}
		var in, out []string
		for _, bd := range cfg.Bindings {
			if strings.EqualFold(bd.Direction, "in") {
				in = append(in, strings.ToLower(bd.Type))
			} else {
				out = append(out, strings.ToLower(bd.Type))
			}
		}
		if len(in) != 1 || in[0] != "httptrigger" || len(out) != 1 || out[0] != "http" {
			t.Errorf("%s: inputs %v outputs %v, want [httptrigger] [http]", fn, in, out)
		}
	}
	host, err := os.ReadFile(filepath.Join(repoRoot(t), "host.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(host), `"enableProxyingHttpRequest": true`) {
		t.Errorf("host.json does not use enableProxyingHttpRequest (docs/host-protocol.md says why it should)")
	}
}
