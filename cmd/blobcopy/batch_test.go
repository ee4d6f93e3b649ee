package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"

	"github.com/blobcopy/blobcopy/internal/testenv/azurite"
)

// tickInBackground runs the status timer's work (the batch tick beside the copy tick)
// every interval until the test ends, as the host's timer does under `make run`.
func (s *stack) tickInBackground(t *testing.T, interval time.Duration) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			_, _ = s.app.Batches.Tick(ctx)
			_, _ = s.app.Copies.Tick(ctx)
			select {
			case <-ctx.Done():
			case <-time.After(interval):
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
}

// uploadBlobs puts small blobs into the app's account (Azurite).
func (s *stack) uploadBlobs(t *testing.T, container string, names ...string) {
	t.Helper()
	cred, err := azblob.NewSharedKeyCredential(azurite.DevAccountName, azurite.DevAccountKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := azblob.NewClientWithSharedKeyCredential(s.az.BlobEndpoint(azurite.DevAccountName)+"/", cred, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_, _ = c.CreateContainer(ctx, container, nil)
	for i, name := range names {
		if _, err := c.UploadBuffer(ctx, container, name, []byte(strings.Repeat("b", 64<<10+i)), nil); err != nil {
			t.Fatal(err)
		}
	}
}

func TestBatchCommandsAgainstTheHandler(t *testing.T) {
	s := startStack(t, nil)
	s.tickInBackground(t, 150*time.Millisecond)
	env := map[string]string{"BLOBCOPY_URL": s.url}
	s.uploadBlobs(t, "bsrc", "in/a.csv", "in/sub/b.csv", "in/c.csv", "in/skip.tmp", "other/d.csv")
	srcURL := s.az.BlobEndpoint(azurite.DevAccountName) + "/bsrc/in/"

	var waitedID string
	t.Run("batch start --wait draws progress and exits 0 on success", func(t *testing.T) {
		r := cli(t, env, "batch", "start", srcURL, "backup/mirror/", "--account", "slowdemo", "--suffix", ".csv",
			"--tag", "k=v", "--wait", "--interval", "100ms")
		if r.code != 0 {
			t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
		}
		if !strings.Contains(r.stdout, "202 Accepted: batch running") || !strings.Contains(r.stdout, "success 3") ||
			!strings.Contains(r.stdout, "3 matched, 3 started, 3 finished") {
			t.Errorf("stdout:\n%s", r.stdout)
		}
		if !strings.Contains(r.stderr, "batch -> slowdemo:backup/mirror/") || !strings.Contains(r.stderr, "Success batch") || !strings.Contains(r.stderr, "100%") {
			t.Errorf("progress bar output:\n%s", r.stderr)
		}
		// Bytes once the children's sizes are known; the counting spinner is not
		// drawn again after the bar replaced it.
		if _, after, ok := strings.Cut(r.stderr, "Running batch"); !ok || !strings.Contains(after, "KiB") || strings.Contains(after, "Enumerating") {
			t.Errorf("bar after the children started:\n%q", after)
		}
		for _, name := range []string{"mirror/a.csv", "mirror/sub/b.csv", "mirror/c.csv"} {
			if data, _ := s.sim.BlobData("slowdemo", "backup", name); len(data) < 64<<10 {
				t.Errorf("%s holds %d bytes", name, len(data))
			}
		}
		if data, _ := s.sim.BlobData("slowdemo", "backup", "mirror/skip.tmp"); data != nil {
			t.Errorf("the suffix filter let skip.tmp through")
		}
		_, rest, _ := strings.Cut(r.stdout, "id  ")
		waitedID = strings.TrimSpace(strings.SplitN(rest, "\n", 2)[0])
	})

	t.Run("batch status and list, readable and --json", func(t *testing.T) {
		if waitedID == "" {
			t.Skip("no batch from the first subtest")
		}
		st := cli(t, env, "batch", "status", waitedID)
		if st.code != 0 || !strings.Contains(st.stdout, "success") || !strings.Contains(st.stdout, "slowdemo:backup/mirror/") {
			t.Fatalf("status: exit %d:\n%s%s", st.code, st.stdout, st.stderr)
		}
		js := cli(t, env, "batch", "status", waitedID, "--json")
		j := js.job(t)
		counts, _ := j["counts"].(map[string]any)
		if js.code != 0 || j["id"] != waitedID || j["status"] != "success" || j["matched"] != float64(3) || counts["success"] != float64(3) {
			t.Fatalf("status --json: exit %d: %s", js.code, js.stdout)
		}
		l := cli(t, env, "batch", "list", "--status", "success")
		if l.code != 0 || !strings.Contains(l.stdout, waitedID) || !strings.Contains(l.stdout, "3/3") {
			t.Fatalf("list: exit %d:\n%s%s", l.code, l.stdout, l.stderr)
		}
		l = cli(t, env, "batch", "list", "--status", "aborted", "--json")
		var none []map[string]any
		if l.code != 0 || json.Unmarshal([]byte(l.stdout), &none) != nil || len(none) != 0 {
			t.Fatalf("list --status aborted --json: exit %d: %s", l.code, l.stdout)
		}
		kids := cli(t, env, "list", "--batch", waitedID, "--json")
		var children []map[string]any
		if kids.code != 0 || json.Unmarshal([]byte(kids.stdout), &children) != nil || len(children) != 3 {
			t.Fatalf("list --batch: exit %d: %s", kids.code, kids.stdout)
		}
		l = cli(t, env, "batch", "list", "--json")
		var all []map[string]any
		if l.code != 0 || json.Unmarshal([]byte(l.stdout), &all) != nil || len(all) == 0 || all[0]["id"] == nil {
			t.Fatalf("list --json: exit %d: %s", l.code, l.stdout)
		}
	})

	t.Run("abort a running batch, then watch exits 1; a finished one is refused", func(t *testing.T) {
		r := cli(t, env, "batch", "start", srcURL, "slowdemo:backup/aborted/", "--json")
		if r.code != 0 {
			t.Fatalf("start: exit %d: %s %s", r.code, r.stdout, r.stderr)
		}
		j := r.job(t)
		id, _ := j["id"].(string)
		if id == "" || (j["status"] != "enumerating" && j["status"] != "running") {
			t.Fatalf("start answer: %v", j)
		}
		// Abort once children run: their copies stay pending in the simulator a while.
		deadline := time.Now().Add(20 * time.Second)
		for {
			st := cli(t, env, "batch", "status", id, "--json").job(t)
			if st["status"] == "running" {
				break
			}
			if st["status"] != "enumerating" || time.Now().After(deadline) {
				t.Fatalf("the batch did not run: %v", st)
			}
			time.Sleep(50 * time.Millisecond)
		}
		ab := cli(t, env, "batch", "abort", id)
		if ab.code != 0 || !strings.Contains(ab.stdout, "running (abort requested)") && !strings.Contains(ab.stdout, "aborted") {
			t.Fatalf("abort: exit %d:\n%s%s", ab.code, ab.stdout, ab.stderr)
		}
		w := cli(t, env, "batch", "watch", id, "--interval", "100ms")
		if w.code != 1 || !strings.Contains(w.stderr, "ended aborted") || !strings.Contains(w.stdout, "aborted") {
			t.Fatalf("watch of an aborted batch: exit %d\nstdout:\n%s\nstderr:\n%s", w.code, w.stdout, w.stderr)
		}
		if !strings.Contains(w.stdout, "aborted 4") { // every blob under in/, no filter
			t.Errorf("the pending children were not aborted:\n%s", w.stdout)
		}
		if again := cli(t, env, "batch", "abort", id); again.code != 0 {
			t.Errorf("a second abort is not refused: exit %d, stderr: %s", again.code, again.stderr)
		}
		if waitedID == "" {
			t.Skip("no finished batch from the first subtest")
		}
		again := cli(t, env, "batch", "abort", waitedID)
		if again.code != 1 || !strings.Contains(again.stderr, "409 BatchFinished") {
			t.Errorf("abort of a finished batch: exit %d, stderr: %s", again.code, again.stderr)
		}
		again = cli(t, env, "batch", "abort", waitedID, "--json")
		var e struct{ Error struct{ Code string } }
		if again.code != 1 || json.Unmarshal([]byte(again.stdout), &e) != nil || e.Error.Code != "BatchFinished" {
			t.Errorf("second abort --json: exit %d, stdout: %s", again.code, again.stdout)
		}
	})

	t.Run("a refused batch shows Azure's error and exits 1", func(t *testing.T) {
		// Refused by the tick: the source container does not exist.
		r := cli(t, env, "batch", "start", s.az.BlobEndpoint(azurite.DevAccountName)+"/no-such-container", "backup/x/", "--wait", "--interval", "100ms")
		if r.code != 1 || !strings.Contains(r.stderr, "ended failed: ContainerNotFound") || !strings.Contains(r.stdout, "error") {
			t.Errorf("missing source container: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
		}
		// Every child refused: the first batch's destinations exist.
		r = cli(t, env, "batch", "start", srcURL, "slowdemo:backup/mirror/", "--suffix", ".csv", "--overwrite=false", "--wait", "--interval", "100ms")
		if r.code != 1 || !strings.Contains(r.stderr, "ended failed: 3 of 3 children did not copy (blobcopy list --batch ") ||
			!strings.Contains(r.stdout, "failure") {
			t.Errorf("existing destinations: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
		}
		// Refused by the request: a source outside the configured accounts.
		r = cli(t, env, "batch", "start", "https://example.com/c/", "backup")
		if r.code != 1 || !strings.Contains(r.stderr, "400 ") || !strings.Contains(r.stderr, "(target source)") {
			t.Errorf("external source: exit %d, stderr: %s", r.code, r.stderr)
		}
		r = cli(t, env, "batch", "start", "https://example.com/c/", "backup", "--json")
		var e struct{ Error struct{ Code, Target string } }
		if r.code != 1 || json.Unmarshal([]byte(r.stdout), &e) != nil || e.Error.Target != "source" {
			t.Errorf("external source --json: exit %d, stdout: %s", r.code, r.stdout)
		}
		r = cli(t, env, "batch", "status", "no-such-batch")
		if r.code != 1 || !strings.Contains(r.stderr, "404 BatchNotFound") {
			t.Errorf("missing batch: exit %d, stderr: %s", r.code, r.stderr)
		}
	})
}

func TestBatchUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"batch"}, "batch needs a subcommand"},
		{[]string{"batch", "copy"}, `unknown batch subcommand "copy"`},
		{[]string{"batch", "start", "http://x/c"}, "batch start needs SOURCE_CONTAINER_URL[/PREFIX] and [ACCOUNT:]CONTAINER[/PREFIX]"},
		{[]string{"batch", "start", "http://x/c", "/p"}, "is not [ACCOUNT:]CONTAINER[/PREFIX]"},
		{[]string{"batch", "start", "http://x/c", "a:c", "--account", "b"}, `names account "a", --account "b"`},
		{[]string{"batch", "start", "http://x/c", "c", "--modified-since", "yesterday"}, "is not an RFC 3339 time"},
		{[]string{"batch", "status"}, "batch status needs a batch ID"},
		{[]string{"batch", "watch", "a", "b"}, "batch watch needs a batch ID, got 2"},
		{[]string{"batch", "list", "--limit", "-1"}, "--limit must not be negative"},
		{[]string{"batch", "abort", "x", "--restore"}, "flag provided but not defined: -restore"},
	}
	for _, tt := range tests {
		r := cli(t, map[string]string{"BLOBCOPY_URL": "http://127.0.0.1:1"}, tt.args...)
		if r.code != 2 || !strings.Contains(r.stderr, tt.want) || !strings.Contains(r.stderr, "usage: blobcopy") {
			t.Errorf("%q: exit %d, stderr %q, want 2 and %q with the usage", tt.args, r.code, r.stderr, tt.want)
		}
	}
}

func TestBatchDestination(t *testing.T) {
	tests := []struct {
		in, account string
		want        string // fmt of the map, "" for an error
	}{
		{"mirror", "", "map[container:mirror]"},
		{"mirror/uploads/", "", "map[container:mirror prefix:uploads/]"},
		{"slowdemo:backup/x", "", "map[account:slowdemo container:backup prefix:x]"},
		{"backup/x", "slowdemo", "map[account:slowdemo container:backup prefix:x]"},
		{"slowdemo:backup", "slowdemo", "map[account:slowdemo container:backup]"},
		{"backup/a:b", "", "map[container:backup prefix:a:b]"},
		{":backup", "", ""},
		{"/p", "", ""},
		{"a:backup", "b", ""},
	}
	for _, tt := range tests {
		got, err := batchDestination(tt.in, tt.account)
		if tt.want == "" {
			if err == nil {
				t.Errorf("%q --account %q: want an error, got %v", tt.in, tt.account, got)
			}
			continue
		}
		if err != nil || fmt.Sprint(got) != tt.want {
			t.Errorf("%q --account %q = %v, %v; want %s", tt.in, tt.account, got, err, tt.want)
		}
	}
}
