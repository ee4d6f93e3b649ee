package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2"

	"github.com/blobcopy/blobcopy/internal/api"
	"github.com/blobcopy/blobcopy/internal/app"
	"github.com/blobcopy/blobcopy/internal/azstorage"
	"github.com/blobcopy/blobcopy/internal/funchost"
	"github.com/blobcopy/blobcopy/internal/redact"
	"github.com/blobcopy/blobcopy/internal/testenv/azurite"
	"github.com/blobcopy/blobcopy/internal/testenv/copysim"
	"github.com/blobcopy/blobcopy/internal/testenv/syncbuf"
)

// simClock is the copy simulator's clock; tests move it to expire SAS tokens.
type simClock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *simClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *simClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
}

// harness is the whole app in-process: Azurite holds the app's queue and records and two
// accounts (devstoreaccount1 = the app's own, acct2); the copy simulator is account
// "sim" (copies stay pending until the test says otherwise).
type harness struct {
	t     *testing.T
	az    *azurite.Instance
	sim   *copysim.Server
	clock *simClock
	app   *app.App
	srv   *httptest.Server
	logs  *syncbuf.Buffer
}

const simAccount = "simacct"

func repoRoot(t testing.TB) string {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found")
		}
		dir = parent
	}
}

var acct2 = azurite.NewAccount("acct2")

func newHarness(t *testing.T, extra map[string]string) *harness {
	t.Helper()
	return newHarnessWith(t, extra)
}

// newHarnessWith adds policies to every storage client the app makes (per try: each
// retry passes through them), to watch or fail its requests.
func newHarnessWith(t *testing.T, extra map[string]string, policies ...policy.Policy) *harness {
	t.Helper()
	h := &harness{t: t, clock: &simClock{}, logs: &syncbuf.Buffer{}}
	h.az = azurite.Start(t, azurite.Options{Accounts: []azurite.Account{acct2}})
	h.sim = copysim.New(copysim.Options{Now: h.clock.Now})
	t.Cleanup(h.sim.Close)

	values := map[string]string{
		"FUNCTIONS_WORKER_RUNTIME":    "custom",
		"AzureWebJobsStorage":         h.az.ConnectionString("devstoreaccount1"),
		"COPY_ACCOUNT_ACCT2":          h.az.ConnectionString("acct2"),
		"COPY_ACCOUNT_SIM":            h.sim.ConnectionString(simAccount),
		"COPY_STATUS_SCHEDULE":        "*/30 * * * * *",
		"COPY_FIRST_POLL":             "1s",
		"COPY_MAX_POLL_INTERVAL":      "1s",
		"COPY_START_GRACE":            "2m",
		"COPY_CALLBACK_ALLOWED_HOSTS": "127.0.0.1",
		"BLOBCOPY_AUTH_DISABLED":      "true",
		"BLOBCOPY_LISTEN_ADDRESS":     "127.0.0.1:0",
	}
	for k, v := range extra {
		values[k] = v
	}
	// As cmd/handler wires it: redaction, then the invocation id from the context.
	log := slog.New(redact.NewHandler(funchost.NewContextHandler(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	// Quick retries: the tests inject 503s and restart Azurite; production keeps azcore's
	// default exponential backoff.
	storage := azstorage.Options{ClientOptions: azcore.ClientOptions{Retry: policy.RetryOptions{
		MaxRetries: 3, RetryDelay: 20 * time.Millisecond, MaxRetryDelay: 200 * time.Millisecond, TryTimeout: 10 * time.Second},
		PerRetryPolicies: policies}}
	a, err := app.New(repoRoot(t), funchost.NewSettings(values), app.Options{Logger: log, Storage: storage})
	if err != nil {
		t.Fatalf("app.New: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.EnsureStorage(ctx); err != nil {
		t.Fatalf("EnsureStorage: %v", err)
	}
	h.app = a
	h.srv = httptest.NewServer(a.Handler())
	t.Cleanup(h.srv.Close)
	t.Cleanup(func() { h.assertNoSecretsLeaked() })
	return h
}

// assertNoSecretsLeaked scans every log line and every job record for a SAS signature
// or an account key.
func (h *harness) assertNoSecretsLeaked() {
	t := h.t
	h.app.Copies.Wait() // the lines and work requests left behind their answers, too
	out := h.logs.String()
	records := h.allRecords() // the callback URL, kept for delivery only, left out
	for name, text := range map[string]string{"logs": out, "records": records} {
		for _, secret := range []string{h.az.Key("devstoreaccount1"), h.az.Key("acct2"), copysim.AccountKey} {
			if secret != "" && strings.Contains(text, secret) {
				t.Errorf("%s contain an account key", name)
			}
		}
		for _, line := range strings.Split(text, "sig=")[1:] {
			if !strings.HasPrefix(line, redact.Placeholder) {
				t.Errorf("%s contain an unredacted SAS signature: ...sig=%.20s", name, line)
			}
		}
	}
}

func (h *harness) blobClient(account string) *azblob.Client {
	h.t.Helper()
	cred, err := azblob.NewSharedKeyCredential(account, h.az.Key(account))
	if err != nil {
		h.t.Fatal(err)
	}
	c, err := azblob.NewClientWithSharedKeyCredential(h.az.BlobEndpoint(account)+"/", cred, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	return c
}

func (h *harness) queueClient(name string) *azqueue.QueueClient {
	h.t.Helper()
	cred, err := azqueue.NewSharedKeyCredential("devstoreaccount1", h.az.Key("devstoreaccount1"))
	if err != nil {
		h.t.Fatal(err)
	}
	q, err := azqueue.NewQueueClientWithSharedKeyCredential(h.az.QueueEndpoint("devstoreaccount1")+"/"+name, cred, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	return q
}

// queueLength counts messages, visible or not.
func (h *harness) queueLength(name string) int64 {
	h.t.Helper()
	h.app.Copies.Wait() // a start deletes a finished job's message behind its answer
	p, err := h.queueClient(name).GetProperties(context.Background(), nil)
	if err != nil {
		h.t.Fatalf("queue properties: %v", err)
	}
	return *p.ApproximateMessagesCount
}

// upload puts a blob into an Azurite account, creating the container.
func (h *harness) upload(account, container, name string, data []byte) string {
	h.t.Helper()
	c := h.blobClient(account)
	_, err := c.CreateContainer(context.Background(), container, nil)
	if err != nil && !bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
		h.t.Fatal(err)
	}
	if _, err := c.UploadBuffer(context.Background(), container, name, data, nil); err != nil {
		h.t.Fatal(err)
	}
	return h.az.BlobEndpoint(account) + "/" + container + "/" + name
}

func (h *harness) props(account, container, name string) blob.GetPropertiesResponse {
	h.t.Helper()
	p, err := h.blobClient(account).ServiceClient().NewContainerClient(container).NewBlobClient(name).GetProperties(context.Background(), nil)
	if err != nil {
		h.t.Fatalf("properties of %s/%s/%s: %v", account, container, name, err)
	}
	return p
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) job(t *testing.T) api.JobView {
	t.Helper()
	var v struct {
		api.JobView
	}
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("decode job view: %v\n%s", err, r.body)
	}
	return v.JobView
}

func (r response) errorResponse(t *testing.T) api.ErrorResponse {
	t.Helper()
	var e api.ErrorResponse
	if err := json.Unmarshal(r.body, &e); err != nil || e.Error.Code == "" {
		t.Fatalf("not an Azure error body (%v): %s", err, r.body)
	}
	return e
}

func (h *harness) do(method, path string, body any, header map[string]string) response {
	h.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			h.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, h.srv.URL+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

func (h *harness) startCopy(req map[string]any) response {
	h.t.Helper()
	return h.do(http.MethodPost, "/api/copies", req, nil)
}

func (h *harness) getJob(id string) api.JobView {
	h.t.Helper()
	r := h.do(http.MethodGet, "/api/copies/"+id, nil, nil)
	if r.status != http.StatusOK {
		h.t.Fatalf("GET job %s: %d %s", id, r.status, r.body)
	}
	return r.job(h.t)
}

// invokeTimer posts the host's timer invocation to /statusfn and checks the answer's
// shape: Outputs an object, Logs an array, ReturnValue null.
func (h *harness) invokeTimer() []string {
	h.t.Helper()
	now := time.Now().UTC()
	payload := fmt.Sprintf(`{"Data":{"timer":{"Schedule":{"AdjustForDST":true},"ScheduleStatus":{"Last":%q,"Next":%q,"LastUpdated":%q},"IsPastDue":false}},"Metadata":{"sys":{"MethodName":"statusfn","UtcNow":%q,"RandGuid":"0f8fad5b-d9cb-469f-a165-70867728950e"}}}`,
		now.Add(-30*time.Second).Format(time.RFC3339Nano), now.Add(30*time.Second).Format(time.RFC3339Nano), now.Format(time.RFC3339Nano), now.Format(time.RFC3339Nano))
	r := h.do(http.MethodPost, "/statusfn", payload, nil)
	if r.status != http.StatusOK {
		h.t.Fatalf("timer invocation: %d %s", r.status, r.body)
	}
	var out struct {
		Outputs     map[string]any
		Logs        []string
		ReturnValue any
	}
	dec := json.NewDecoder(bytes.NewReader(r.body))
	if err := dec.Decode(&out); err != nil {
		h.t.Fatalf("timer answer: %v: %s", err, r.body)
	}
	if out.Outputs == nil || out.Logs == nil || out.ReturnValue != nil {
		h.t.Fatalf("timer answer shape: %s", r.body)
	}
	return out.Logs
}

// tickUntil runs status ticks (as host invocations) until cond holds or 20 s pass.
func (h *harness) tickUntil(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		h.invokeTimer()
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func decodeJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode: %v\n%s", err, b)
	}
}
