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
			env := baseEnv(az)
			env["COPY_ACCOUNT_SIM"] = sim.ConnectionString(account)
			env["COPY_QUEUE_NAME"] = name + "q"
			env["COPY_RECORDS_CONTAINER"] = name + "r"
			env["COPY_START_GRACE"] = "1s"
			env["BLOBCOPY_AUTH_DISABLED"] = "true"
			port := freePort(t)
			env["BLOBCOPY_LISTEN_ADDRESS"] = fmt.Sprintf("127.0.0.1:%d", port)
			env["COPY_STATUS_SCHEDULE"] = "0 0 0 1 1 *" // no tick before the crash
			env["BLOBCOPY_FAULTPOINT"] = step

			body := fmt.Sprintf(`{"source":%q,"destination":{"account":"sim","container":"dst","blob":%q},"leaseSource":true}`,
				sim.AccountEndpoint(account)+"/src/"+name+".bin", name+".bin")
			idem := map[string]string{"Idempotency-Key": name}
			jobID := api.JobIDFor("idempotency-key", name)

			p := start(t, env, port)
			if status, _, b := call(t, http.MethodPost, p.url+"/api/copies", body, idem); status != 0 {
				t.Fatalf("the request survived the crash: %d %s", status, b)
			}
			if code, out := p.wait(t, 10*time.Second); code != faultpoint.ExitCode {
				t.Fatalf("exit %d, want the fault point's %d:\n%s", code, faultpoint.ExitCode, out)
			}

			delete(env, "BLOBCOPY_FAULTPOINT")
			env["COPY_STATUS_SCHEDULE"] = "*/1 * * * * *"
			p = start(t, env, port)
			restarted := time.Now()
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
			if n := copyStarts(sim, name+".bin"); n != 1 {
				t.Errorf("Copy Blob called %d times for the destination, want 1", n)
			}
			// Answers show the lease's state; its id stays in the job record.
			if l := sim.Lease(account, "src", name+".bin"); l.State != "leased" || job.Lease == nil || job.Lease.State != copyjob.LeaseHeld {
				t.Errorf("source lease %+v, job lease %+v", l, job.Lease)
			}
			if err := sim.Complete(account, "dst", name+".bin"); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "copy finished", func() bool { return queueLength(t, az, name+"q") == 0 })
			job = getJob(t, p, jobID)
			if job.Status != copyjob.StatusSuccess || job.Lease.State != copyjob.LeaseReleased {
				t.Errorf("job %s lease %+v", job.Status, job.Lease)
			}
			if l := sim.Lease(account, "src", name+".bin"); l.State == "leased" {
				t.Errorf("lease still held: %+v", l)
			}
		})
	}
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
