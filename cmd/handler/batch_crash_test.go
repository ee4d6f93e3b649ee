package main_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/blobcopy/blobcopy/internal/api"
	"github.com/blobcopy/blobcopy/internal/batch"
	"github.com/blobcopy/blobcopy/internal/faultpoint"
	"github.com/blobcopy/blobcopy/internal/testenv/azurite"
	"github.com/blobcopy/blobcopy/internal/testenv/copysim"
)

// TestCrashMidBatchEnumeration kills the real process after a page of a batch's children
// started and before the page's marker was recorded, starts it again and lets the
// timer run: the page is listed and started again, every child maps onto the job it
// already had, and no destination gets a second Copy Blob.
func TestCrashMidBatchEnumeration(t *testing.T) {
	const n = 8
	c := crashBatch(t, "batchcrash", n, "batch:pageStarted")
	if got := copyStartsUnder(c.sim, "out/"); got != n {
		t.Fatalf("%d Copy Blob calls before the crash, want %d", got, n)
	}
	c.restartUntilDone(t, n, "after the page was started again")
}

// TestCrashBetweenChildCopyAndRecord kills the real process right after a batch child's
// Copy Blob was answered and before its record was created (children without
// leaseSource are recorded after their copy): the batch's first child starts alone, so
// one copy runs that no record names. Started again, the tick takes the batch over once
// the crashed runner's claim expires, finds the page begun, adopts that copy and starts
// the others: one Copy Blob per destination, and the batch succeeds.
func TestCrashBetweenChildCopyAndRecord(t *testing.T) {
	const n = 5
	c := crashBatch(t, "childcrash", n, "child:copied")
	if got := copyStartsUnder(c.sim, "out/"); got != 1 {
		t.Fatalf("%d Copy Blob calls before the crash, want 1 (the first child starts alone)", got)
	}
	c.restartUntilDone(t, n, "after the recovery (the crashed child's copy adopted)")
}

// batchCrash is a batch of n blobs whose handler process was killed at a fault point.
type batchCrash struct {
	sim     *copysim.Server
	account string
	dir     string
	env     map[string]string
	port    int
	batchID string
}

// crashBatch submits a batch of n blobs of the copy simulator's account to the handler
// binary with the fault point armed, and waits for the process to die there. A short
// functionTimeout makes a short tick budget, so the crashed tick's claim on the batch
// (budget plus COPY_START_GRACE) expires within the test.
func crashBatch(t *testing.T, account string, n int, fault string) *batchCrash {
	t.Helper()
	az := azurite.Start(t, azurite.Options{})
	sim := copysim.New(copysim.Options{})
	t.Cleanup(sim.Close)
	sim.CreateContainer(account, "src")
	for i := range n {
		if err := sim.PutBlob(account, "src", fmt.Sprintf("in/f%d.bin", i), []byte(strings.Repeat("b", 40)), nil); err != nil {
			t.Fatal(err)
		}
	}
	dir := hostApp(t)
	hostJSON, err := os.ReadFile(filepath.Join(dir, "host.json"))
	if err != nil {
		t.Fatal(err)
	}
	short := strings.Replace(string(hostJSON), `"functionTimeout": "00:10:00"`, `"functionTimeout": "00:00:05"`, 1)
	if short == string(hostJSON) {
		t.Fatal("host.json's functionTimeout is not 00:10:00 any more: update this test")
	}
	if err := os.WriteFile(filepath.Join(dir, "host.json"), []byte(short), 0o644); err != nil {
		t.Fatal(err)
	}
	env := baseEnv(az)
	env["COPY_ACCOUNT_SIM"] = sim.ConnectionString(account)
	env["COPY_START_GRACE"] = "1s"
	env["BLOBCOPY_AUTH_DISABLED"] = "true"
	port := freePort(t)
	env["BLOBCOPY_LISTEN_ADDRESS"] = fmt.Sprintf("127.0.0.1:%d", port)
	env["BLOBCOPY_FAULTPOINT"] = fault

	p := startIn(t, dir, env, port)
	body := fmt.Sprintf(`{"source":%q,"destination":{"account":"sim","container":"dst","prefix":"out/"}}`, sim.AccountEndpoint(account)+"/src/in/")
	status, _, b := call(t, http.MethodPost, p.url+"/api/batches", body, nil)
	if status != http.StatusAccepted {
		t.Fatalf("POST /api/batches: %d %s", status, b)
	}
	var v api.BatchView
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	if code, out := p.wait(t, 20*time.Second); code != faultpoint.ExitCode {
		t.Fatalf("exit %d, want the fault point's %d:\n%s", code, faultpoint.ExitCode, out)
	}
	delete(env, "BLOBCOPY_FAULTPOINT")
	return &batchCrash{sim: sim, account: account, dir: dir, env: env, port: port, batchID: v.ID}
}

// restartUntilDone starts the handler again and waits for the batch to run (every child
// started, one Copy Blob per destination), completes the copies, and waits for success.
func (c *batchCrash) restartUntilDone(t *testing.T, n int, when string) {
	t.Helper()
	p := startIn(t, c.dir, c.env, c.port)
	var got api.BatchView
	read := func() bool {
		status, _, b := call(t, http.MethodGet, p.url+"/api/batches/"+c.batchID, "", nil)
		return status == http.StatusOK && json.Unmarshal(b, &got) == nil
	}
	waitFor(t, "the batch to run again", func() bool { return read() && got.Status == batch.StatusRunning })
	if got.Started != n {
		t.Fatalf("started %d, want %d: %+v", got.Started, n, got)
	}
	if copies := copyStartsUnder(c.sim, "out/"); copies != n {
		t.Fatalf("%d Copy Blob calls %s, want %d (one per child)", copies, when, n)
	}
	for i := range n {
		if err := c.sim.Complete(c.account, "dst", fmt.Sprintf("out/f%d.bin", i)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the batch to succeed", func() bool { return read() && got.Status == batch.StatusSuccess })
}

func copyStartsUnder(sim *copysim.Server, prefix string) int {
	n := 0
	for _, r := range sim.Requests() {
		if r.Op == copysim.OpCopyBlob && strings.HasPrefix(r.Blob, prefix) && r.Status < 300 {
			n++
		}
	}
	return n
}

// startIn is start with the app files of dir.
func startIn(t *testing.T, dir string, env map[string]string, port int) *process {
	t.Helper()
	p := startListeningIn(t, dir, env, port)
	p.waitForLog(t, `"msg":"app storage ready"`, 20*time.Second)
	return p
}
