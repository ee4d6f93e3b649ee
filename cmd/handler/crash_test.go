package main_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/blobcopy/blobcopy/internal/api"
	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/faultpoint"
	"github.com/blobcopy/blobcopy/internal/testenv/azurite"
	"github.com/blobcopy/blobcopy/internal/testenv/copysim"
)

// TestCrashAtEveryStartStep kills the real process at each step of a start (after the
// record, the lease, the Copy Blob call, the tracking message), starts it again and lets
// the timer run: nothing is lost, exactly one copy runs, and no lease is held by nobody.
// The first three crashes leave a "starting" record and no message: the tick's sweep
// gives it one once the start's claim has expired (COPY_START_GRACE), and the start is
// taken over. The test logs how long that recovery took after the restart.
func TestCrashAtEveryStartStep(t *testing.T) {
	az := azurite.Start(t, azurite.Options{})
	sim := copysim.New(copysim.Options{})
	t.Cleanup(sim.Close)
	const account = "crashsim"
	sim.CreateContainer(account, "dst")

	for i, step := range []string{"start:recorded", "start:leased", "start:copied", "start:enqueued"} {
		t.Run(step, func(t *testing.T) {
			name := fmt.Sprintf("crash%d", i)
			sim.PutBlob(account, "src", name+".bin", []byte(strings.Repeat("c", 50)), nil)
			body := fmt.Sprintf(`{"source":%q,"destination":{"account":"sim","container":"dst","blob":%q},"leaseSource":true}`,
				sim.AccountEndpoint(account)+"/src/"+name+".bin", name+".bin")
			idem := map[string]string{"Idempotency-Key": name}
			jobID := api.JobIDFor("idempotency-key", name)
			p, restarted := crashAndRestart(t, az, sim.ConnectionString(account), name, step, body, idem)
			// The client's retry with its idempotency key finds the job: no second start.
			status, _, b := call(t, http.MethodPost, p.url+"/api/copies", body, idem)
			if status != http.StatusAccepted && status != http.StatusOK {
				t.Fatalf("retry after the crash: %d %s", status, b)
			}
			var job copyjob.Job
			waitFor(t, "job resumed", func() bool {
				job = getJob(t, p, jobID)
				return job.Status == copyjob.StatusPending
			})
			t.Logf("%s: recovered (pending) %s after the restart, COPY_START_GRACE=1s", step, time.Since(restarted).Round(10*time.Millisecond))
			followToSuccess(t, p, az, sim, account, name, job)
		})
	}
}

// TestCrashAtEveryUnkeyedStartStep: a start without an idempotency key leaves its trail
// in its tracking message and creates its record once, after Copy Blob (issue 13). The
// process dies at each step; its client got no answer and has no job id. After the
// restart, once COPY_START_GRACE has passed, the tick finds the message without a
// record: a copy that started is recorded and followed to its end (one Copy Blob, the
// lease held while it runs and released after, the destination's snapshot recorded);
// before Copy Blob nothing started, so the job is recorded startFailed, the lease
// released and the snapshot deleted. A crash between the snapshot and the message leaves
// that snapshot behind (the one residue).
func TestCrashAtEveryUnkeyedStartStep(t *testing.T) {
	az := azurite.Start(t, azurite.Options{})
	sim := copysim.New(copysim.Options{})
	t.Cleanup(sim.Close)
	const account = "crashsim"
	sim.CreateContainer(account, "dst")

	for i, step := range []string{"start:snapshotted", "start:enqueued", "start:leased", "start:copied", "start:recorded"} {
		t.Run(step, func(t *testing.T) {
			name := fmt.Sprintf("unkeyed%d", i)
			sim.PutBlob(account, "src", name+".bin", []byte(strings.Repeat("u", 50)), nil)
			sim.PutBlob(account, "dst", name+".bin", []byte("the destination before the copy"), nil)
			body := fmt.Sprintf(`{"source":%q,"destination":{"account":"sim","container":"dst","blob":%q},"leaseSource":true,"snapshotDestination":true,"overwrite":true}`,
				sim.AccountEndpoint(account)+"/src/"+name+".bin", name+".bin")
			p, restarted := crashAndRestart(t, az, sim.ConnectionString(account), name, step, body, nil)
			if beforeCopy := step != "start:copied" && step != "start:recorded"; beforeCopy {
				// Before Copy Blob: nothing started and the client got no 202. Once
				// COPY_START_GRACE has passed, the message (from start:enqueued on) has the
				// job recorded startFailed ("nothing was started"), the lease it names
				// released and the snapshot deleted; before the message nothing follows the
				// start and the snapshot stays behind (README, "Limits").
				wantJobs := 1
				if step == "start:snapshotted" {
					wantJobs = 0
				}
				var jobs []api.JobView
				waitFor(t, "the start recorded as not started", func() bool {
					jobs = listJobs(t, p)
					return len(jobs) == wantJobs && queueLength(t, az, name+"q") == 0 && (wantJobs == 0 || jobs[0].Status == copyjob.StatusStartFailed)
				})
				if n := copyStarts(sim, name+".bin"); n != 0 {
					t.Errorf("%d Copy Blob calls, want none", n)
				}
				if l := sim.Lease(account, "src", name+".bin"); l.State == "leased" {
					t.Errorf("lease held: %+v", l)
				}
				want := 0
				if step == "start:snapshotted" {
					want = 1
				}
				if snaps := sim.Snapshots(account, "dst", name+".bin"); len(snaps) != want {
					t.Errorf("destination snapshots %v, want %d", snaps, want)
				}
				return
			}
			var job api.JobView
			waitFor(t, "job recorded and pending", func() bool {
				jobs := listJobs(t, p)
				if len(jobs) > 1 {
					t.Fatalf("%d jobs recorded for one start: %+v", len(jobs), jobs)
				}
				if len(jobs) == 1 {
					job = jobs[0]
				}
				return job.Status == copyjob.StatusPending
			})
			t.Logf("%s: recovered (pending) %s after the restart, COPY_START_GRACE=1s", step, time.Since(restarted).Round(10*time.Millisecond))
			if job.DestinationSnapshot == "" {
				t.Errorf("the snapshot taken before the crash is not recorded: %+v", job)
			}
			followToSuccess(t, p, az, sim, account, name, getJob(t, p, job.ID))
			if snaps := sim.Snapshots(account, "dst", name+".bin"); len(snaps) != 1 {
				t.Errorf("destination snapshots %v, want the one the start took", snaps)
			}
		})
	}
}

// followToSuccess checks a start recovered after a crash: one Copy Blob onto the
// destination, the source lease held while the copy runs (answers show the lease's
// state; its id stays in the record); then completes the copy, waits for the queue to
// empty, and checks the job succeeded with its lease released.
func followToSuccess(t *testing.T, p *process, az *azurite.Instance, sim *copysim.Server, account, name string, job copyjob.Job) {
	t.Helper()
	if n := copyStarts(sim, name+".bin"); n != 1 {
		t.Errorf("Copy Blob called %d times for the destination, want 1", n)
	}
	if l := sim.Lease(account, "src", name+".bin"); l.State != "leased" || job.Lease == nil || job.Lease.State != copyjob.LeaseHeld {
		t.Errorf("source lease %+v, job lease %+v", l, job.Lease)
	}
	if err := sim.Complete(account, "dst", name+".bin"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "copy finished", func() bool { return queueLength(t, az, name+"q") == 0 })
	job = getJob(t, p, job.ID)
	if job.Status != copyjob.StatusSuccess || job.Lease == nil || job.Lease.State != copyjob.LeaseReleased {
		t.Errorf("job %s lease %+v", job.Status, job.Lease)
	}
	if l := sim.Lease(account, "src", name+".bin"); l.State == "leased" {
		t.Errorf("lease still held: %+v", l)
	}
}

// crashAndRestart starts the handler (queue name+"q", records name+"r",
// COPY_START_GRACE=1s, no tick) with the fault point step, posts body (with header),
// checks that the process died there without answering, and starts it again with a
// tick every second. It returns the new process and when it was started.
func crashAndRestart(t *testing.T, az *azurite.Instance, simConn, name, step, body string, header map[string]string) (*process, time.Time) {
	t.Helper()
	env := baseEnv(az)
	env["COPY_ACCOUNT_SIM"] = simConn
	env["COPY_QUEUE_NAME"] = name + "q"
	env["COPY_RECORDS_CONTAINER"] = name + "r"
	env["COPY_START_GRACE"] = "1s"
	env["BLOBCOPY_AUTH_DISABLED"] = "true"
	port := freePort(t)
	env["BLOBCOPY_LISTEN_ADDRESS"] = fmt.Sprintf("127.0.0.1:%d", port)
	env["COPY_STATUS_SCHEDULE"] = "0 0 0 1 1 *" // no tick before the crash
	env["BLOBCOPY_FAULTPOINT"] = step

	p := start(t, env, port)
	if status, _, b := call(t, http.MethodPost, p.url+"/api/copies", body, header); status != 0 {
		t.Fatalf("the request survived the crash: %d %s", status, b)
	}
	if code, out := p.wait(t, 10*time.Second); code != faultpoint.ExitCode {
		t.Fatalf("exit %d, want the fault point's %d:\n%s", code, faultpoint.ExitCode, out)
	}
	delete(env, "BLOBCOPY_FAULTPOINT")
	env["COPY_STATUS_SCHEDULE"] = "*/1 * * * * *"
	return start(t, env, port), time.Now()
}

// listJobs reads the first page of the job list.
func listJobs(t *testing.T, p *process) []api.JobView {
	t.Helper()
	status, _, b := call(t, http.MethodGet, p.url+"/api/copies?limit=10", "", nil)
	if status != http.StatusOK {
		t.Fatalf("list: %d %s", status, b)
	}
	var page api.ListView
	if err := json.Unmarshal(b, &page); err != nil {
		t.Fatal(err)
	}
	return page.Value
}

func copyStarts(sim *copysim.Server, blob string) int {
	n := 0
	for _, r := range sim.Requests() {
		if r.Op == copysim.OpCopyBlob && r.Blob == blob && r.Status < 300 {
			n++
		}
	}
	return n
}

func getJob(t *testing.T, p *process, id string) copyjob.Job {
	t.Helper()
	status, _, b := call(t, http.MethodGet, p.url+"/api/copies/"+id, "", nil)
	var job copyjob.Job
	if status == http.StatusOK {
		if err := json.Unmarshal(b, &job); err != nil {
			t.Fatal(err)
		}
	}
	return job
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
