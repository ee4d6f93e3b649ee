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
		{name: "legacy http worker port", env: map[string]string{"FUNCTIONS_HTTPWORKER_PORT": "40124"}, wantAddr: "127.0.0.1:40124", wantHosted: true},
		{name: "custom handler port wins", env: map[string]string{"FUNCTIONS_CUSTOMHANDLER_PORT": "40125", "FUNCTIONS_HTTPWORKER_PORT": "40126"}, wantAddr: "127.0.0.1:40125", wantHosted: true},
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
	go func() { served <- Serve(ctx, ln, h, discardLogger(), ServerOptions{ShutdownTimeout: 10 * time.Second}) }()

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
	_, err = Listen(t.Context(), busy.Addr().String())
	if err == nil || !strings.Contains(err.Error(), "listen on "+busy.Addr().String()) {
		t.Fatalf("err = %v, want a listen error naming the address", err)
	}
}

func TestIsLoopbackAddress(t *testing.T) {
	tests := map[string]bool{
		"127.0.0.1:7071": true, "localhost:7071": true, "LOCALHOST:1": true, "[::1]:7071": true, "127.0.0.2:80": true,
		":7071": false, "0.0.0.0:7071": false, "[::]:7071": false, "10.0.0.4:7071": false, "example.com:80": false,
		"[::1]": false, "::1:7071": false, "localhost": false,
	}
	for addr, want := range tests {
		if got := IsLoopbackAddress(addr); got != want {
			t.Errorf("IsLoopbackAddress(%q) = %v, want %v", addr, got, want)
		}
	}
}

// TestServeCutsOffATricklingClient: a client that sends its headers, then
// one body byte every 100 ms, is disconnected once ReadTimeout passes, and
// one that stalls in its headers once ReadHeaderTimeout passes.
func TestServeCutsOffATricklingClient(t *testing.T) {
	ln, err := Listen(t.Context(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			return // the server cut the body off
		}
		_, _ = io.WriteString(w, "read it all")
	})
	opts := ServerOptions{ReadHeaderTimeout: 300 * time.Millisecond, ReadTimeout: 600 * time.Millisecond}
	go func() { _ = Serve(t.Context(), ln, h, discardLogger(), opts) }()

	for _, tc := range []struct {
		name, head string
		limit      time.Duration
	}{
		{"slow body", "POST /api/copies HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n", opts.ReadTimeout},
		{"slow headers", "POST /api/copies HTTP/1.1\r\nHost: x\r\n", opts.ReadHeaderTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The server's read deadline runs from when it accepted the connection: time
			// from before the dial, so the lower bound cannot be undercut by the dial.
			start := time.Now()
			conn, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := io.WriteString(conn, tc.head); err != nil {
				t.Fatal(err)
			}
			closed := make(chan struct{})
			go func() {
				_, _ = io.Copy(io.Discard, conn) // returns when the server closes
				close(closed)
			}()
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-closed:
					if took := time.Since(start); took < tc.limit || took > tc.limit+2*time.Second {
						t.Errorf("connection closed after %s, want just after %s", took, tc.limit)
					}
					return
				case <-tick.C:
					_, _ = io.WriteString(conn, "x")
				case <-time.After(10 * time.Second):
					t.Fatal("the server kept a trickling connection open for 10 s")
				}
			}
		})
	}
}

func TestWriteTimeoutExceedsTheFunctionTimeout(t *testing.T) {
	if got := WriteTimeoutFor(10 * time.Minute); got != 11*time.Minute {
		t.Errorf("WriteTimeoutFor(10m) = %s", got)
	}
	if got := WriteTimeoutFor(0); got != DefaultWriteTimeout || got <= 30*time.Minute {
		t.Errorf("WriteTimeoutFor(unlimited) = %s", got)
	}
}
