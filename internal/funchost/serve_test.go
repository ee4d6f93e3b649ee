package funchost

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestListenAddress(t *testing.T) {
	tests := []struct {
		name       string
		env        map[string]string
		wantAddr   string
		wantHosted bool
		wantErr    string
	}{
		{name: "standalone default", wantAddr: "127.0.0.1:7071"},
		{name: "hosted", env: map[string]string{"FUNCTIONS_CUSTOMHANDLER_PORT": "40123", "BLOBCOPY_LISTEN_ADDRESS": "0.0.0.0:9"}, wantAddr: "127.0.0.1:40123", wantHosted: true},
		{name: "standalone override", env: map[string]string{"BLOBCOPY_LISTEN_ADDRESS": ":8080"}, wantAddr: ":8080"},
		{name: "ipv6", env: map[string]string{"BLOBCOPY_LISTEN_ADDRESS": "[::1]:8080"}, wantAddr: "[::1]:8080"},
		{name: "port garbage", env: map[string]string{"FUNCTIONS_CUSTOMHANDLER_PORT": "http"}, wantErr: "FUNCTIONS_CUSTOMHANDLER_PORT"},
		{name: "port out of range", env: map[string]string{"FUNCTIONS_CUSTOMHANDLER_PORT": "70000"}, wantErr: "FUNCTIONS_CUSTOMHANDLER_PORT"},
		{name: "port zero", env: map[string]string{"FUNCTIONS_CUSTOMHANDLER_PORT": "0"}, wantErr: "FUNCTIONS_CUSTOMHANDLER_PORT"},
		{name: "address without port", env: map[string]string{"BLOBCOPY_LISTEN_ADDRESS": "localhost"}, wantErr: "BLOBCOPY_LISTEN_ADDRESS"},
		{name: "address bad port", env: map[string]string{"BLOBCOPY_LISTEN_ADDRESS": "localhost:web"}, wantErr: "BLOBCOPY_LISTEN_ADDRESS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, hosted, err := ListenAddress(NewSettings(tt.env))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil || addr != tt.wantAddr || hosted != tt.wantHosted {
				t.Errorf("got %q, %v, %v; want %q, %v", addr, hosted, err, tt.wantAddr, tt.wantHosted)
			}
		})
	}
}

func TestServeFinishesInFlightRequestsOnShutdown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	entered := make(chan struct{})
	release := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		if err := r.Context().Err(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "done")
	})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- serveListener(ctx, ln, h, discardLogger(), 10*time.Second) }()

	type result struct {
		body string
		err  error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String() + "/")
		if err != nil {
			got <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		got <- result{string(b), err}
	}()

	<-entered
	cancel()
	select {
	case err := <-served:
		t.Fatalf("Serve returned %v with a request in flight", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)

	if r := <-got; r.err != nil || r.body != "done" {
		t.Errorf("in-flight request got %q, %v; want done", r.body, r.err)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve = %v, want nil after graceful shutdown", err)
	}
}

func TestServeReportsListenErrors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	err = Serve(t.Context(), busy.Addr().String(), http.NotFoundHandler(), discardLogger(), time.Second)
	if err == nil || !strings.Contains(err.Error(), "listen on "+busy.Addr().String()) {
		t.Fatalf("err = %v, want a listen error naming the address", err)
	}
}
