package app_test

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/testenv/copysim"
)

var (
	stressRuns = flag.Int("stress.runs", 0, "random seeds for TestInvariantsOnStorage (0: one fixed seed)")
	stressFor  = flag.Duration("stress.for", 4*time.Second, "how long each TestInvariantsOnStorage run makes trouble")
)

// TestInvariantsOnStorage is the randomized concurrency test on the real adapters:
// Azurite holds records and queue, the strict copy simulator holds sources and
// destinations and injects transient faults before and after Copy Blob and the other
// blob operations (503 with Retry-After, 500 OperationTimedOut after the operation,
// dropped answers). Starts (with reused idempotency keys), status reads, aborts, two
// tick runners and storage moving copies run at once; then storage finishes every copy
// and ticks drain the queue, and the invariants are checked. The same invariants are
// checked on the in-memory fakes by copyjob's TestInvariantsUnderConcurrency.
func TestInvariantsOnStorage(t *testing.T) {
	seeds := []uint64{7}
	for range *stressRuns {
		seeds = append(seeds, rand.Uint64())
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			runStorageWorld(t, seed)
			if t.Failed() {
				t.Logf("reproduce with: go test -run 'TestInvariantsOnStorage' ./internal/app -stress.runs=0 (seed %d)", seed)
			}
		})
	}
}

func runStorageWorld(t *testing.T, seed uint64) {
	h := newHarness(t, map[string]string{"COPY_START_GRACE": "4s", "COPY_MAX_CALLBACK_ATTEMPTS": "20"})
	recv := newReceiver(t, 0)
	rng := rand.New(rand.NewPCG(seed, seed+1))
	var rngMu sync.Mutex
	intn := func(n int) int { rngMu.Lock(); defer rngMu.Unlock(); return rng.IntN(n) }
	const sources, dests = 4, 5
	for i := range sources {
		h.sim.PutBlob(simAccount, "src", fmt.Sprintf("s%d.bin", i), []byte(strings.Repeat("x", 10*(i+1))), nil)
	}
	h.sim.PutBlob(simAccount, "dst", "d0.bin", []byte("existing"), nil)

	var (
		mu  sync.Mutex
		ids = map[string]bool{}
	)
	ctx, stop := context.WithTimeout(context.Background(), *stressFor)
	defer stop()
	var wg sync.WaitGroup
	loop := func(pause time.Duration, f func()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				f()
				time.Sleep(pause)
			}
		}()
	}
	for range 3 {
		loop(20*time.Millisecond, func() {
			req := map[string]any{
				"source":      h.sim.AccountEndpoint(simAccount) + fmt.Sprintf("/src/s%d.bin", intn(sources)),
				"destination": map[string]any{"account": "sim", "container": "dst", "blob": fmt.Sprintf("d%d.bin", intn(dests))},
				"leaseSource": intn(3) > 0, "overwrite": intn(4) > 0, "callbackUrl": recv.srv.URL + "/done",
			}
			if intn(4) == 0 {
				req["snapshotDestination"] = true
			}
			var hdr map[string]string
			if intn(2) == 0 {
				hdr = map[string]string{"Idempotency-Key": fmt.Sprintf("key-%d", intn(12))}
			}
			r := h.do(http.MethodPost, "/api/copies", req, hdr)
			var id string
			switch {
			case r.status == http.StatusOK || r.status == http.StatusAccepted:
				id = r.job(t).ID
			case r.status >= 400 && r.status != http.StatusUnprocessableEntity:
				if e := r.errorResponse(t); e.Job != nil {
					id = e.Job.ID
				}
			}
			if id != "" {
				mu.Lock()
				ids[id] = true
				mu.Unlock()
			}
		})
	}
	pick := func() string {
		mu.Lock()
		defer mu.Unlock()
		for id := range ids {
			return id
		}
		return ""
	}
	loop(10*time.Millisecond, func() {
		if id := pick(); id != "" {
			h.do(http.MethodGet, "/api/copies/"+id, nil, nil)
		}
	})
	loop(150*time.Millisecond, func() {
		if id := pick(); id != "" {
			h.do(http.MethodPost, "/api/copies/"+id+"/abort", nil, nil)
		}
	})
	for range 2 {
		loop(100*time.Millisecond, func() { _, _ = h.app.Copies.Tick(context.Background()) })
	}
	loop(30*time.Millisecond, func() {
		d := fmt.Sprintf("d%d.bin", intn(dests))
		switch intn(4) {
		case 0:
			_ = h.sim.SetProgress(simAccount, "dst", d, 1)
		case 1, 2:
			_ = h.sim.Complete(simAccount, "dst", d)
		default:
			_ = h.sim.Fail(simAccount, "dst", d, "500 InternalError: simulated")
		}
	})
	loop(100*time.Millisecond, func() {
		faults := []copysim.Fault{
			{Status: 503, Code: "ServerBusy", RetryAfter: time.Second},
			{When: copysim.After, Status: 500, Code: "OperationTimedOut"},
			{When: copysim.After, Drop: true},
		}
		ops := []string{copysim.OpCopyBlob, copysim.OpGetBlobProperties, copysim.OpLeaseBlob, copysim.OpSnapshotBlob, copysim.OpAbortCopyBlob}
		h.sim.FailNext(ops[intn(len(ops))], faults[intn(len(faults))])
	})
	wg.Wait()

	// Settle: no more faults, storage finishes every copy, ticks drain the queue.
	h.sim.ClearFaults()
	// Up to 90 s: a job whose effects' bookkeeping write failed keeps its claim (and its
	// message) until the claim expires (EffectsGrace, one minute).
	deadline := time.Now().Add(90 * time.Second)
	for h.queueLength("copyjobs") > 0 && time.Now().Before(deadline) {
		for i := range dests {
			_ = h.sim.Complete(simAccount, "dst", fmt.Sprintf("d%d.bin", i))
		}
		_, _ = h.app.Copies.Tick(context.Background())
		time.Sleep(200 * time.Millisecond)
	}
	if n := h.queueLength("copyjobs"); n != 0 {
		t.Errorf("%d tracking messages left after settling", n)
	}

	// Every record, also of jobs whose start answer named none (a 5xx).
	jobs := map[string]*copyjob.Job{}
	for marker := ""; ; {
		page, err := h.app.Records.List(context.Background(), copyjob.ListOptions{Marker: marker, Limit: 500})
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range page.Jobs {
			jobs[j.ID] = j
		}
		if marker = page.NextMarker; marker == "" {
			break
		}
	}
	for id := range ids {
		if jobs[id] == nil {
			t.Errorf("job %s answered by the API has no record", id)
		}
	}
	per := map[string]int{}
	for _, o := range recv.outcomes() {
		per[o.JobID]++
	}
	tracked := map[string]bool{}
	for id, j := range jobs {
		if !j.Status.Terminal() {
			t.Errorf("job %s is %s after settling (%s)", id, j.Status, j.StatusDescription)
			continue
		}
		tracked[j.CopyID] = true
		if c, ok := h.sim.CopyByID(j.CopyID); ok && j.CopyID != "" {
			switch j.Status {
			case copyjob.StatusSuccess, copyjob.StatusFailed, copyjob.StatusAborted:
				if string(j.Status) != c.Status {
					t.Errorf("job %s recorded %s, storage ended copy %s with %s", id, j.Status, j.CopyID, c.Status)
				}
			}
		}
		if j.Lease != nil && (j.Lease.State == copyjob.LeaseHeld || j.Lease.State == copyjob.LeaseAcquiring) {
			t.Errorf("job %s is %s with its lease %s", id, j.Status, j.Lease.State)
		}
		if j.Callback != nil && !j.Callback.GaveUp && per[id] != 1 {
			t.Errorf("job %s: %d callbacks (%+v)", id, per[id], j.Callback)
		}
	}
	for i := range sources {
		if l := h.sim.Lease(simAccount, "src", fmt.Sprintf("s%d.bin", i)); l.State == "leased" {
			t.Errorf("source s%d.bin still leased (%s) after every job ended", i, l.ID)
		}
	}
	// Every copy storage ran for the app is some job's, or a job says an earlier
	// attempt's outcome could never be read back (README, Limits).
	statuses := map[copyjob.Status]int{}
	for _, j := range jobs {
		statuses[j.Status]++
	}
	t.Logf("%d jobs %v, %d copies started, %d callbacks, %d Copy Blob requests", len(jobs), statuses,
		len(h.sim.CopyIDs()), len(recv.outcomes()), h.sim.RequestCount(copysim.OpCopyBlob))
	defer func() {
		if t.Failed() {
			path := filepath.Join(os.TempDir(), fmt.Sprintf("storage-invariants-%d.log", seed))
			_ = os.WriteFile(path, []byte(h.logs.String()), 0o644)
			t.Logf("the app's log: %s", path)
		}
	}()
	for _, id := range h.sim.CopyIDs() {
		c, _ := h.sim.CopyByID(id)
		if !tracked[id] && !strings.Contains(c.Source, "snapshot=") && !uncertainFor(jobs, c.Destination) {
			t.Errorf("copy %s (%s -> %s, %s) is tracked by no job", id, c.Source, c.Destination, c.Status)
		}
	}
}

// uncertainFor tells whether a job on the copy's destination recorded that an attempt's
// Copy Blob outcome stayed unknown.
func uncertainFor(jobs map[string]*copyjob.Job, dest string) bool {
	for _, j := range jobs {
		if j.CopyUncertain && strings.HasSuffix(dest, "/dst/"+j.Destination.Blob) {
			return true
		}
	}
	return false
}
