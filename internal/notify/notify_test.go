package notify

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/blobcopy/blobcopy/internal/copyjob"
)

// TestSignatureTestVector signs the Standard Webhooks test vector (standard-webhooks
// repository, libraries/go/webhook_test.go TestWebhookSign).
func TestSignatureTestVector(t *testing.T) {
	s, err := ParseSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	got := s.Sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, []byte(`{"test": 2432232314}`))
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Fatalf("signature %s, want %s", got, want)
	}
	// The prefix is optional, as in the reference libraries.
	if s2, err := ParseSecret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"); err != nil || s2.Sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, []byte(`{"test": 2432232314}`)) != got {
		t.Errorf("secret without whsec_: %v", err)
	}
	for _, bad := range []string{"", "whsec_", "whsec_not base64!", "whsec_c2hvcnQ="} {
		if _, err := ParseSecret(bad); err == nil {
			t.Errorf("ParseSecret(%q) accepted", bad)
		}
	}
	if strings.Contains(s.String(), "MfKQ") {
		t.Error("String shows the key")
	}
}

func terminalJob(deliveryID string) *copyjob.Job {
	return &copyjob.Job{ID: "job-1", CopyID: "c1", Status: copyjob.StatusSuccess,
		Source: copyjob.Source{URL: "https://src/a"}, Destination: copyjob.Destination{URL: "https://dst/a"},
		Callback: &copyjob.Callback{URL: "x", DeliveryID: deliveryID}}
}

func TestNotifySignsWithStandardWebhookHeaders(t *testing.T) {
	secret, _ := ParseSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	var got http.Header
	var body []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, body = r.Header.Clone(), must(io.ReadAll(r.Body))
	}))
	defer srv.Close()
	now := time.Unix(1700000000, 0)
	n := New(Options{Secret: secret, Now: func() time.Time { return now }})
	for _, tt := range []struct{ deliveryID, wantID string }{{"delivery-7", "delivery-7"}, {"", "job-1"}} {
		if err := n.Notify(context.Background(), srv.URL+"/hook?token=t0ps3cret", terminalJob(tt.deliveryID)); err != nil {
			t.Fatal(err)
		}
		if got.Get(HeaderID) != tt.wantID || got.Get(HeaderTimestamp) != "1700000000" {
			t.Errorf("headers %v, want id %s", got, tt.wantID)
		}
		if sig := got.Get(HeaderSignature); sig != secret.Sign(tt.wantID, 1700000000, body) {
			t.Errorf("signature %q does not verify over the body", sig)
		}
	}
	// Without a secret: the id and timestamp still go out, no signature.
	if err := New(Options{}).Notify(context.Background(), srv.URL, terminalJob("d")); err != nil || got.Get(HeaderSignature) != "" || got.Get(HeaderID) != "d" {
		t.Errorf("unsigned: %v %v", err, got)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestRedirectsAreNeverFollowed: a 307 would re-POST the outcome to the Location host
// and a 302 turn into a GET there, outside the allowlist. Each is a failed attempt.
func TestRedirectsAreNeverFollowed(t *testing.T) {
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { elsewhere.Add(1) }))
	defer other.Close()
	for _, code := range []int{301, 302, 303, 307, 308} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, other.URL+"/stolen", code)
		}))
		err := NewHTTP().Notify(context.Background(), srv.URL+"/hook?sig=abc", terminalJob(""))
		srv.Close()
		if !errors.Is(err, ErrRedirect) {
			t.Errorf("%d: err = %v, want ErrRedirect", code, err)
		}
		if err != nil && strings.Contains(err.Error(), "sig=abc") {
			t.Errorf("%d: error quotes the query: %v", code, err)
		}
	}
	if n := elsewhere.Load(); n != 0 {
		t.Errorf("the redirect target was called %d times", n)
	}
}

func TestNotifyRefusesPlainHTTPOffLoopbackAndUnlistedHosts(t *testing.T) {
	n := New(Options{Allowed: func(u *url.URL) bool { return u.Hostname() == "127.0.0.1" }})
	for _, raw := range []string{"http://hooks.example.com/x?code=k", "ftp://127.0.0.1/x", "https://other.example.com/x?code=k"} {
		err := n.Notify(context.Background(), raw, terminalJob(""))
		if err == nil || strings.Contains(err.Error(), "code=k") {
			t.Errorf("%s: err = %v", raw, err)
		}
	}
}

// TestErrorsNeverQuoteTheQuery: a transport failure (*url.Error quotes the whole URL)
// and a non-2xx answer are reported without the receiver's credential, in the query or
// in the path (Slack, Teams and Discord webhook URLs carry their token in the path:
// review 12); errors name the receiver's origin only.
func TestErrorsNeverQuoteTheQuery(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) }))
	addr := srv.URL
	leaks := func(err error) bool {
		return err == nil || strings.ContainsAny(err.Error(), "?") ||
			strings.Contains(err.Error(), "SECRETSIG") || strings.Contains(err.Error(), "FKEY") || strings.Contains(err.Error(), "PATHTOKEN")
	}
	for _, path := range []string{"/h?sig=SECRETSIG&code=FKEY", "/services/T0/B0/PATHTOKEN"} {
		err := NewHTTP().Notify(context.Background(), addr+path, terminalJob(""))
		if leaks(err) || !strings.Contains(err.Error(), addr) {
			t.Errorf("500: %v", err)
		}
	}
	srv.Close()
	for _, path := range []string{"/h?sig=SECRETSIG&code=FKEY", "/services/T0/B0/PATHTOKEN"} {
		if err := NewHTTP().Notify(context.Background(), addr+path, terminalJob("")); leaks(err) { // closed: connection refused
			t.Errorf("refused: %v", err)
		}
	}
}
