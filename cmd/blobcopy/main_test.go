package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"

	"github.com/blobcopy/blobcopy/internal/app"
	"github.com/blobcopy/blobcopy/internal/funchost"
	"github.com/blobcopy/blobcopy/internal/testenv/azurite"
	"github.com/blobcopy/blobcopy/internal/testenv/copysim"
)

// stack is the handler in-process on Azurite (devstoreaccount1, the app's account) and
// the copy simulator as account slowdemo, driven like `make run`'s: copies stay pending
// a moment with growing progress, then succeed.
type stack struct {
	app    *app.App
	az     *azurite.Instance
	sim    *copysim.Server
	url    string
	source string // a 1 MiB blob in Azurite
}

func startStack(t *testing.T, settings map[string]string) *stack {
	t.Helper()
	az := azurite.Start(t, azurite.Options{})
	auto := &copysim.AutoProgress{Duration: 1500 * time.Millisecond, Step: 100 * time.Millisecond}
	sim := copysim.New(copysim.Options{FetchSource: true, OnCopyStart: auto.OnCopyStart})
	auto.Attach(sim)
	t.Cleanup(sim.Close)
	t.Cleanup(auto.Close)

	values := map[string]string{
		"FUNCTIONS_WORKER_RUNTIME": "custom",
		"AzureWebJobsStorage":      az.ConnectionString(azurite.DevAccountName),
		"COPY_ACCOUNT_SLOWDEMO":    sim.ConnectionString("slowdemo"),
		"COPY_STATUS_SCHEDULE":     "0 0 0 1 1 *",
		"COPY_FIRST_POLL":          "1s",
		"BLOBCOPY_AUTH_DISABLED":   "true",
		"BLOBCOPY_LISTEN_ADDRESS":  "127.0.0.1:0",
	}
	for k, v := range settings {
		values[k] = v
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(root, funchost.NewSettings(values), app.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("app.New: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.EnsureStorage(ctx); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)

	cred, err := azblob.NewSharedKeyCredential(azurite.DevAccountName, azurite.DevAccountKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := azblob.NewClientWithSharedKeyCredential(az.BlobEndpoint(azurite.DevAccountName)+"/", cred, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"source", "backup"} {
		if _, err := c.CreateContainer(ctx, name, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.UploadBuffer(ctx, "source", "data.bin", bytes.Repeat([]byte("x"), 1<<20), nil); err != nil {
		t.Fatal(err)
	}
	return &stack{app: a, az: az, sim: sim, url: srv.URL, source: az.BlobEndpoint(azurite.DevAccountName) + "/source/data.bin"}
}

type result struct {
	code           int
	stdout, stderr string
}

// cli runs the command as main does, with only env as its environment.
func cli(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	environ := make([]string, 0, len(env))
	for k, v := range env {
		environ = append(environ, k+"="+v)
	}
	code := run(ctx, args, environ, &out, &errOut)
	return result{code: code, stdout: out.String(), stderr: errOut.String()}
}

func (r result) job(t *testing.T) map[string]any {
	t.Helper()
	var j map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &j); err != nil {
		t.Fatalf("stdout is not one JSON object (%v):\n%s", err, r.stdout)
	}
	return j
}

func TestCLIAgainstTheHandler(t *testing.T) {
	s := startStack(t, nil)
	env := map[string]string{"BLOBCOPY_URL": s.url}

	t.Run("start --wait draws progress and exits 0 on success", func(t *testing.T) {
		r := cli(t, env, "start", s.source, "slowdemo:backup/waited.bin", "--wait", "--interval", "100ms", "--tag", "k=v")
		if r.code != 0 {
			t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
		}
		if !strings.Contains(r.stdout, "202 Accepted") || !strings.Contains(r.stdout, "success") || !strings.Contains(r.stdout, "1.0 MiB of 1.0 MiB (100.0%)") {
			t.Errorf("stdout:\n%s", r.stdout)
		}
		// The bar showed intermediate progress (bytes and percent), then success.
		if !strings.Contains(r.stderr, "Pending slowdemo:backup/waited.bin") || !strings.Contains(r.stderr, "Success slowdemo:backup/waited.bin") ||
			!strings.Contains(r.stderr, "MiB") || !strings.Contains(r.stderr, "100%") {
			t.Errorf("progress bar output:\n%s", r.stderr)
		}
		if data, _ := s.sim.BlobData("slowdemo", "backup", "waited.bin"); len(data) != 1<<20 {
			t.Errorf("destination holds %d bytes", len(data))
		}
	})

	t.Run("abort, then watch exits non-zero", func(t *testing.T) {
		r := cli(t, env, "start", s.source, "slowdemo:backup/aborted.bin", "--json")
		if r.code != 0 {
			t.Fatalf("start: exit %d: %s %s", r.code, r.stdout, r.stderr)
		}
		j := r.job(t)
		id, _ := j["id"].(string)
		if j["status"] != "pending" || id == "" {
			t.Fatalf("start answer: %v", j)
		}
		st := cli(t, env, "status", id)
		if st.code != 0 || !strings.Contains(st.stdout, "pending") {
			t.Fatalf("status: exit %d:\n%s%s", st.code, st.stdout, st.stderr)
		}
		ab := cli(t, env, "abort", id)
		if ab.code != 0 || !strings.Contains(ab.stdout, "aborted") {
			t.Fatalf("abort: exit %d:\n%s%s", ab.code, ab.stdout, ab.stderr)
		}
		w := cli(t, env, "watch", id)
		if w.code != 1 || !strings.Contains(w.stderr, "ended aborted") {
			t.Fatalf("watch of an aborted copy: exit %d, stderr:\n%s", w.code, w.stderr)
		}
		again := cli(t, env, "abort", id)
		if again.code != 1 || !strings.Contains(again.stderr, "409 CopyNotPending") {
			t.Errorf("second abort: exit %d, stderr: %s", again.code, again.stderr)
		}
	})

	t.Run("a refusal shows Azure's error and exits 1", func(t *testing.T) {
		if r := cli(t, env, "start", s.source, "backup/exists.bin"); r.code != 0 {
			t.Fatalf("first copy: exit %d: %s", r.code, r.stderr)
		}
		r := cli(t, env, "start", s.source, "backup/exists.bin", "--overwrite=false")
		if r.code != 1 || !strings.Contains(r.stderr, "409 DestinationAlreadyExists") {
			t.Errorf("exit %d, stderr: %s", r.code, r.stderr)
		}
		r = cli(t, env, "start", s.source, "backup/exists.bin", "--overwrite=false", "--json")
		var e struct{ Error struct{ Code string } }
		if r.code != 1 || json.Unmarshal([]byte(r.stdout), &e) != nil || e.Error.Code != "DestinationAlreadyExists" {
			t.Errorf("--json: exit %d, stdout: %s", r.code, r.stdout)
		}
	})

	t.Run("list filters by status", func(t *testing.T) {
		// Lists show recorded states: a status read never writes, and the copy watched
		// to its end is recorded success by the next tick.
		var r result
		s.tickUntil(t, "the watched copy recorded", func() bool {
			r = cli(t, env, "list", "--status", "success")
			return strings.Contains(r.stdout, "waited.bin")
		})
		if r.code != 0 || !strings.Contains(r.stdout, "slowdemo/backup/waited.bin") || strings.Contains(r.stdout, "aborted.bin") {
			t.Errorf("exit %d:\n%s%s", r.code, r.stdout, r.stderr)
		}
		r = cli(t, env, "list", "--json", "--limit", "1")
		var jobs []map[string]any
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &jobs) != nil || len(jobs) != 1 {
			t.Errorf("--json --limit 1: exit %d:\n%s", r.code, r.stdout)
		}
	})

	t.Run("an unreachable handler is named", func(t *testing.T) {
		r := cli(t, map[string]string{"BLOBCOPY_URL": "http://127.0.0.1:1"}, "list")
		if r.code != 1 || !strings.Contains(r.stderr, "is the handler running?") {
			t.Errorf("exit %d: %s", r.code, r.stderr)
		}
	})
}

// TestKeyFromEnvironment: BLOBCOPY_KEY is sent as x-functions-key; without it a keyed
// handler answers 401, which the CLI shows.
func TestKeyFromEnvironment(t *testing.T) {
	s := startStack(t, map[string]string{"BLOBCOPY_AUTH_DISABLED": "false", "BLOBCOPY_FUNCTION_KEYS": "k1,k2"})
	if r := cli(t, map[string]string{"BLOBCOPY_URL": s.url}, "list"); r.code != 1 || !strings.Contains(r.stderr, "401 Unauthorized") {
		t.Errorf("without a key: exit %d: %s", r.code, r.stderr)
	}
	if r := cli(t, map[string]string{"BLOBCOPY_URL": s.url, "BLOBCOPY_KEY": "k2"}, "list"); r.code != 0 {
		t.Errorf("with BLOBCOPY_KEY: exit %d: %s", r.code, r.stderr)
	}
	if r := cli(t, map[string]string{"BLOBCOPY_KEY": "k2"}, "list", "--url", s.url); r.code != 0 {
		t.Errorf("with --url: exit %d: %s", r.code, r.stderr)
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{nil, "no command"},
		{[]string{"copy"}, `unknown command "copy"`},
		{[]string{"start", "http://x/a/b"}, "start needs SOURCE and [ACCOUNT:]CONTAINER/BLOB"},
		{[]string{"start", "http://x/a/b", "justacontainer"}, "is not [ACCOUNT:]CONTAINER/BLOB"},
		{[]string{"start", "http://x/a/b", "c/b", "--tag", "novalue"}, `"novalue" is not key=value`},
		{[]string{"status"}, "status needs a job ID"},
		{[]string{"watch", "a", "b"}, "watch needs a job ID, got 2"},
		{[]string{"list", "--limit", "-1"}, "--limit must not be negative"},
		{[]string{"abort", "x", "--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"requeue-poison"}, "requeue-poison needs message ids"},
		{[]string{"requeue-poison", "m1", "--all"}, "not both"},
		{[]string{"list-poison", "m1"}, "list-poison needs no arguments"},
		{[]string{"list-poison", "--url", "http://x"}, "flag provided but not defined: -url"},
	}
	for _, tt := range tests {
		r := cli(t, map[string]string{"BLOBCOPY_URL": "http://127.0.0.1:1"}, tt.args...)
		if r.code != 2 || !strings.Contains(r.stderr, tt.want) || !strings.Contains(r.stderr, "usage: blobcopy") {
			t.Errorf("%q: exit %d, stderr %q, want 2 and %q with the usage", tt.args, r.code, r.stderr, tt.want)
		}
	}
	if r := cli(t, nil, "help"); r.code != 0 || !strings.Contains(r.stdout, "BLOBCOPY_KEY") {
		t.Errorf("help: exit %d", r.code)
	}
}

func TestDestination(t *testing.T) {
	tests := []struct {
		in   string
		want map[string]string
	}{
		{"backup/hello.txt", map[string]string{"container": "backup", "blob": "hello.txt"}},
		{"slowdemo:backup/dir/big.bin", map[string]string{"account": "slowdemo", "container": "backup", "blob": "dir/big.bin"}},
		{"backup/a:b.txt", map[string]string{"container": "backup", "blob": "a:b.txt"}},
		{"backup", nil},
		{":backup/x", nil},
		{"acct2:backup/", nil},
	}
	for _, tt := range tests {
		got, err := destination(tt.in)
		if tt.want == nil {
			if err == nil {
				t.Errorf("%q: want an error, got %v", tt.in, got)
			}
			continue
		}
		if err != nil || len(got) != len(tt.want) {
			t.Errorf("%q = %v, %v; want %v", tt.in, got, err, tt.want)
			continue
		}
		for k, v := range tt.want {
			if got[k] != v {
				t.Errorf("%q = %v, want %v", tt.in, got, tt.want)
			}
		}
	}
}
