package api_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/blobcopy/blobcopy/internal/api"
	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/copyjob/copyjobtest"
)

// A start that ends at once deletes its tracking message behind its answer. The
// deletion must start only once the answer has been sent, whole (issue 13: on two
// cores, its request competed with the answer for the CPU).
func TestFinishedStartDeletesItsMessageOnlyAfterItsAnswerIsSent(t *testing.T) {
	env := copyjobtest.NewEnv()
	env.Blobs.Put(copyjob.BlobRef{Container: "src", Blob: "a.txt"}, 5, nil)
	env.Blobs.SetStartStatus(copyjob.StatusSuccess)
	svc := env.Service(copyjob.Config{})
	s := api.NewServer(svc, api.Options{
		Policy: api.Policy{Accounts: []api.Account{appAccount}},
		Auth:   api.Auth{Keys: []string{key}},
		Logger: quiet,
	})
	mux := http.NewServeMux()
	s.Routes(mux)

	rec := httptest.NewRecorder()
	type seen struct {
		flushed bool
		body    string
	}
	atDelete := make(chan seen, 1)
	env.Queue.OnNext(copyjobtest.OpDelete, func() {
		// The handler's goroutine wrote rec before starting the deletion's goroutine.
		atDelete <- seen{rec.Flushed, rec.Body.String()}
	})
	req := httptest.NewRequest(http.MethodPost, "/api/copies", bytes.NewReader(copyBody("")))
	req.Header.Set("x-functions-key", key)
	mux.ServeHTTP(rec, req)
	svc.Wait()

	if rec.Code != http.StatusOK {
		t.Fatalf("start answered %d %s, want 200 (a copy that ends at once)", rec.Code, rec.Body)
	}
	if got, want := rec.Header().Get("Content-Length"), strconv.Itoa(rec.Body.Len()); got != want {
		t.Errorf("Content-Length %q, want %q: a flushed answer must say its length to be whole", got, want)
	}
	select {
	case at := <-atDelete:
		if !at.flushed {
			t.Error("the tracking message's deletion started before the answer was sent")
		}
		if at.body != rec.Body.String() {
			t.Errorf("when the deletion started the answer was %q, want it whole: %q", at.body, rec.Body.String())
		}
	default:
		t.Fatal("the finished start did not delete its tracking message")
	}
}

// answerFirst flushes only answers that say their length: any other would turn chunked
// (or, on HTTP/1.0, end with the connection) where net/http would have said its length.
func TestAnswerFirstLeavesAnswersWithoutALengthToNetHTTP(t *testing.T) {
	for _, tt := range []struct {
		name    string
		handler http.HandlerFunc
		length  string
		body    string
	}{
		{"body without a length", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("hello world")) }, "11", "hello world"},
		{"empty 200", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) }, "0", ""},
		{"body with its length", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "5")
			_, _ = w.Write([]byte("hello"))
		}, "5", "hello"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(api.AnswerFirst(tt.handler))
			defer srv.Close()
			resp, err := srv.Client().Get(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if len(resp.TransferEncoding) != 0 || resp.Header.Get("Content-Length") != tt.length || string(body) != tt.body {
				t.Errorf("answer: Transfer-Encoding %v, Content-Length %q, body %q; want no transfer encoding, %q, %q",
					resp.TransferEncoding, resp.Header.Get("Content-Length"), body, tt.length, tt.body)
			}
		})
	}
}
