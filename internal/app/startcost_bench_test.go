package app_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2"
	"github.com/google/uuid"

	"github.com/blobcopy/blobcopy/internal/app"
	"github.com/blobcopy/blobcopy/internal/azstorage"
	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/funchost"
	"github.com/blobcopy/blobcopy/internal/redact"
	"github.com/blobcopy/blobcopy/internal/testenv/azurite"
	"github.com/blobcopy/blobcopy/internal/testenv/barestart"
)

// The handler's own CPU per start, beside the bare SDK calls it makes, both against a
// transport that answers at once as Azure would (stubStorage): no network, no storage
// time, so what is left is what the process spends. `make bench` times the same start
// against Azurite (figure 2); this is where to look for what a start costs in the
// handler, with -cpuprofile.
//
//	go test ./internal/app -run '^$' -bench StartCost -benchmem

const stubEndpoint = "https://storage.stub/devstoreaccount1"

// stubStorage answers the requests of a same-account start that ends at once: Put
// Message, Copy Blob (x-ms-copy-status: success), Put Blob, Delete Message, and the
// creates of EnsureStorage.
type stubStorage struct{ requests atomic.Int64 }

func (s *stubStorage) Do(req *http.Request) (*http.Response, error) {
	s.requests.Add(1)
	if req.Body != nil {
		_, _ = io.Copy(io.Discard, req.Body)
		_ = req.Body.Close()
	}
	now := time.Now().UTC()
	h := http.Header{}
	h.Set("x-ms-request-id", uuid.NewString())
	h.Set("x-ms-version", "2025-01-05")
	h.Set("Date", now.Format(http.TimeFormat))
	status, body := http.StatusCreated, ""
	switch {
	case req.Method == http.MethodPost && strings.HasSuffix(req.URL.Path, "/messages"):
		visible := now.Add(5 * time.Second).Format(http.TimeFormat)
		body = `<?xml version="1.0" encoding="utf-8"?><QueueMessagesList><QueueMessage><MessageId>` + uuid.NewString() +
			`</MessageId><InsertionTime>` + now.Format(http.TimeFormat) + `</InsertionTime><ExpirationTime>Fri, 31 Dec 9999 23:59:59 GMT</ExpirationTime><PopReceipt>AgAAAAMAAAAAAAAA</PopReceipt><TimeNextVisible>` +
			visible + `</TimeNextVisible></QueueMessage></QueueMessagesList>`
		h.Set("Content-Type", "application/xml")
	case req.Method == http.MethodDelete:
		status = http.StatusNoContent
	case req.Method == http.MethodPut && hasHeader(req, "x-ms-copy-source"):
		status = http.StatusAccepted
		h.Set("x-ms-copy-id", uuid.NewString())
		h.Set("x-ms-copy-status", "success")
		h.Set("ETag", `"0x8DC`+strconv.FormatInt(now.UnixNano(), 16)+`"`)
		h.Set("Last-Modified", now.Format(http.TimeFormat))
	case req.Method == http.MethodPut:
		h.Set("ETag", `"0x8DC`+strconv.FormatInt(now.UnixNano(), 16)+`"`)
		h.Set("Last-Modified", now.Format(http.TimeFormat))
		h.Set("x-ms-request-server-encrypted", "true")
	default:
		status = http.StatusNotFound
	}
	return &http.Response{StatusCode: status, Header: h, Body: io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)), Request: req}, nil
}

// hasHeader looks the name up as the SDK writes it (lower case, not canonical) too.
func hasHeader(req *http.Request, name string) bool {
	return req.Header.Get(name) != "" || len(req.Header[name]) > 0
}

func stubConnectionString() string {
	return "DefaultEndpointsProtocol=https;AccountName=devstoreaccount1;AccountKey=" + devKey +
		";BlobEndpoint=" + stubEndpoint + ";QueueEndpoint=" + stubEndpoint + ";"
}

// devKey is Azurite's well-known development key (public, documented).
const devKey = azurite.DevAccountKey

var stubStartBody = []byte(`{"source":"` + stubEndpoint + `/src/a.txt","destination":{"container":"dst","blob":"b.txt"}}`)

// newStubApp is the app as cmd/handler wires it (its logger writing to nowhere), on
// stubStorage.
func newStubApp(tb testing.TB) (*app.App, *stubStorage) {
	tb.Helper()
	stub := &stubStorage{}
	log := slog.New(redact.NewHandler(funchost.NewContextHandler(
		funchost.NewStreamsHandler(io.Discard, io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))))
	a, err := app.New(repoRoot(tb), funchost.NewSettings(map[string]string{
		"FUNCTIONS_WORKER_RUNTIME": "custom",
		"AzureWebJobsStorage":      stubConnectionString(),
		"BLOBCOPY_AUTH_DISABLED":   "true",
		"BLOBCOPY_LISTEN_ADDRESS":  "127.0.0.1:0",
		"COPY_STATUS_SCHEDULE":     "0 0 0 1 1 *",
	}), app.Options{Logger: log, Storage: azstorage.Options{ClientOptions: azcore.ClientOptions{Transport: stub}}})
	if err != nil {
		tb.Fatal(err)
	}
	if err := a.EnsureStorage(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return a, stub
}

func postStubStart(tb testing.TB, h http.Handler) {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/api/copies", bytes.NewReader(stubStartBody)))
	if rec.Code != http.StatusOK {
		tb.Fatalf("POST /api/copies: %d %s", rec.Code, rec.Body)
	}
}

// The benchmark's stub must keep answering a start as Azure would: the start ends at
// once, in its 4 requests (Put Message, Copy Blob, Put Blob, Delete Message).
func TestStartCostStubServesAStart(t *testing.T) {
	a, stub := newStubApp(t)
	before := stub.requests.Load()
	postStubStart(t, a.Handler())
	a.Copies.Wait()
	if n := stub.requests.Load() - before; n != 4 {
		t.Errorf("a start made %d requests to the stub, want 4", n)
	}
}

func BenchmarkStartCost(b *testing.B) {
	b.Run("handler", func(b *testing.B) {
		a, stub := newStubApp(b)
		h := a.Handler()
		start, created := stub.requests.Load(), goroutinesCreated()
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			postStubStart(b, h)
		}
		b.StopTimer()
		a.Copies.Wait()
		b.ReportMetric(float64(stub.requests.Load()-start)/float64(b.N), "requests/op")
		b.ReportMetric(float64(goroutinesCreated()-created)/float64(b.N), "goroutines/op")
	})
	b.Run("bare", func(b *testing.B) {
		stub := &stubStorage{}
		opts := azcore.ClientOptions{Transport: stub}
		cred, err := azblob.NewSharedKeyCredential("devstoreaccount1", devKey)
		if err != nil {
			b.Fatal(err)
		}
		blobs, err := azblob.NewClientWithSharedKeyCredential(stubEndpoint+"/", cred, &azblob.ClientOptions{ClientOptions: opts})
		if err != nil {
			b.Fatal(err)
		}
		qcred, err := azqueue.NewSharedKeyCredential("devstoreaccount1", devKey)
		if err != nil {
			b.Fatal(err)
		}
		queue, err := azqueue.NewQueueClientWithSharedKeyCredential(stubEndpoint+"/copyjobs", qcred, &azqueue.ClientOptions{ClientOptions: opts})
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		bare := &barestart.Starter{Blobs: blobs, Records: blobs, Queue: queue, RecordsContainer: "copyjobs",
			Source: stubEndpoint + "/src/a.txt", SourceRef: copyjob.BlobRef{Container: "src", Blob: "a.txt"}}
		created := goroutinesCreated()
		b.ReportAllocs()
		for b.Loop() {
			bareStart(b, ctx, bare)
		}
		b.ReportMetric(float64(stub.requests.Load())/float64(b.N), "requests/op")
		b.ReportMetric(float64(goroutinesCreated()-created)/float64(b.N), "goroutines/op")
	})
}

// goroutinesCreated counts the goroutines the process has created: each one a start
// creates is a hand-over between threads that, on a small plan, competes with the answer.
func goroutinesCreated() uint64 {
	s := []metrics.Sample{{Name: "/sched/goroutines-created:goroutines"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// bareStart is the start's calls written directly against the SDK, as figure 2's
// baseline makes them (barestart.Starter), the message's deletion included.
func bareStart(b *testing.B, ctx context.Context, bare *barestart.Starter) {
	deleteMessage, err := bare.Start(ctx, "dst", "b.txt")
	if err == nil {
		err = deleteMessage(ctx)
	}
	if err != nil {
		b.Fatal(err)
	}
}

var _ policy.Transporter = (*stubStorage)(nil)
