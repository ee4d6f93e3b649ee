package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2"

	"github.com/blobcopy/blobcopy/internal/app"
	"github.com/blobcopy/blobcopy/internal/azstorage"
	"github.com/blobcopy/blobcopy/internal/config"
	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/testenv/azurite"
	"github.com/blobcopy/blobcopy/internal/testenv/copysim"
)

// ops opens the app's storage as the commands do, for the test's own checks.
func ops(t *testing.T, env map[string]string, appDir string) *operator {
	t.Helper()
	var environ []string
	for k, v := range env {
		environ = append(environ, k+"="+v)
	}
	op, err := openStorage(appDir, environ)
	if err != nil {
		t.Fatal(err)
	}
	return op
}

// mainQueue returns the texts on the tracking queue (peeked: at most 32).
func mainQueue(t *testing.T, env map[string]string, name string) []string {
	t.Helper()
	cfg, err := config.ParseConnectionString(env["AzureWebJobsStorage"])
	if err != nil {
		t.Fatal(err)
	}
	q, err := azstorage.NewQueueClient(cfg, name, azstorage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := q.PeekMessages(context.Background(), &azqueue.PeekMessagesOptions{NumberOfMessages: to.Ptr(int32(32))})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range resp.Messages {
		out = append(out, *m.MessageText)
	}
	return out
}

// queueLength counts a queue's messages, hidden ones too.
func queueLength(t *testing.T, env map[string]string, name string) int64 {
	t.Helper()
	cfg, err := config.ParseConnectionString(env["AzureWebJobsStorage"])
	if err != nil {
		t.Fatal(err)
	}
	q, err := azstorage.NewQueueClient(cfg, name, azstorage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	props, err := q.GetProperties(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return *props.ApproximateMessagesCount
}

func listPoison(t *testing.T, env map[string]string, args ...string) []poisonView {
	t.Helper()
	r := cli(t, env, append([]string{"list-poison", "--json"}, args...)...)
	var views []poisonView
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &views) != nil {
		t.Fatalf("list-poison --json: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	return views
}

// tickUntil runs status ticks of the in-process app until cond holds.
func (s *stack) tickUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for: %s", what)
		}
		time.Sleep(200 * time.Millisecond)
		if _, err := s.app.Copies.Tick(context.Background()); err != nil {
			t.Logf("tick: %v", err)
		}
	}
}

// TestPoisonCommandsOnAzurite: a pending copy's tracking message is poisoned by real
// ticks of the in-process app (its poll refused with 403, COPY_MAX_FAILURES=1), and a
// message that is not a tracking message beside it; list-poison shows both, a dry run
// changes nothing, requeue-poison puts the tracking message back with its failure
// count reset and clears the record's poisonReason, and the next ticks record the
// copy's outcome, also with the message twice on the queue (a requeue that died before
// deleting its entry).
func TestPoisonCommandsOnAzurite(t *testing.T) {
	s := startStack(t, map[string]string{"COPY_MAX_FAILURES": "1"})
	env := map[string]string{"BLOBCOPY_URL": s.url, "AzureWebJobsStorage": s.az.ConnectionString(azurite.DevAccountName)}
	dir := t.TempDir() // no local.settings.json: the environment alone
	op := ops(t, env, dir)
	ctx := context.Background()

	r := cli(t, env, "start", s.source, "slowdemo:backup/poisoned.bin", "--json")
	jobID, _ := r.job(t)["id"].(string)
	if r.code != 0 || jobID == "" {
		t.Fatalf("start: exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
	s.sim.FailNext(copysim.OpGetBlobProperties, copysim.Fault{Status: 403, Code: "AuthorizationPermissionMismatch", Blob: "poisoned.bin"})
	if _, err := op.queue.Enqueue(ctx, "not json", 0); err != nil {
		t.Fatal(err)
	}
	s.tickUntil(t, "both messages poisoned", func() bool { return queueLength(t, env, app.DefaultQueue+"-poison") == 2 })
	if n := queueLength(t, env, app.DefaultQueue); n != 0 {
		t.Fatalf("%d messages left on the tracking queue", n)
	}
	rec, err := op.records.Get(ctx, jobID)
	if err != nil || rec.PoisonReason == "" {
		t.Fatalf("record after poisoning: %+v, %v", rec, err)
	}

	views := listPoison(t, env, "--app-dir", dir)
	if len(views) != 2 {
		t.Fatalf("list-poison --json: %+v", views)
	}
	var ticketID, garbageID, original string
	for _, v := range views {
		var e azstorage.PoisonEntry
		if err := json.Unmarshal(v.Entry, &e); err != nil {
			t.Fatalf("entry %s: %v", v.Entry, err)
		}
		if jobIDOf(e.Message) == jobID {
			ticketID, original = v.MessageID, e.Message
			if e.Reason != rec.PoisonReason || !strings.Contains(original, `"failures":1`) {
				t.Fatalf("entry %+v, record reason %q", e, rec.PoisonReason)
			}
		} else {
			garbageID = v.MessageID
		}
	}
	if ticketID == "" || garbageID == "" {
		t.Fatalf("entries: %+v", views)
	}

	text := cli(t, env, "list-poison", "--app-dir", dir)
	for _, want := range []string{ticketID, garbageID, jobID, "1 attempts in a row failed", "not a tracking message", "2 entries in queue copyjobs-poison of account devstoreaccount1"} {
		if text.code != 0 || !strings.Contains(text.stdout, want) {
			t.Errorf("list-poison lacks %q: exit %d\n%s%s", want, text.code, text.stdout, text.stderr)
		}
	}

	t.Run("dry run changes nothing", func(t *testing.T) {
		r := cli(t, env, "requeue-poison", ticketID, "--dry-run")
		if r.code != 0 || !strings.Contains(r.stdout, "would requeue "+ticketID) || !strings.Contains(r.stdout, "poisonReason would be cleared") {
			t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		all := cli(t, env, "requeue-poison", "--all", "--dry-run")
		if all.code != 1 || !strings.Contains(all.stdout, "skipped "+garbageID) || !strings.Contains(all.stdout, "would requeue "+ticketID) {
			t.Fatalf("--all --dry-run: exit %d\n%s%s", all.code, all.stdout, all.stderr)
		}
		if n := queueLength(t, env, app.DefaultQueue); n != 0 {
			t.Errorf("main queue after a dry run holds %d", n)
		}
		if got, _ := op.records.Get(ctx, jobID); got.PoisonReason != rec.PoisonReason {
			t.Errorf("poisonReason after a dry run: %q", got.PoisonReason)
		}
		if v := listPoison(t, env); len(v) != 2 {
			t.Errorf("poison entries after a dry run: %+v", v)
		}
	})

	t.Run("requeue, then the tick carries on", func(t *testing.T) {
		// An earlier run died after its enqueue, before deleting the entry: the message
		// is on the queue twice, which the tick tolerates.
		want := strings.Replace(original, `"failures":1`, `"failures":0`, 1)
		want = regexp.MustCompile(`"seen":\d+`).ReplaceAllString(want, `"seen":0`) // the dequeue count starts again
		if _, err := op.queue.Enqueue(ctx, want, 0); err != nil {
			t.Fatal(err)
		}
		r := cli(t, env, "requeue-poison", ticketID)
		if r.code != 0 || !strings.Contains(r.stdout, "requeued "+ticketID) || !strings.Contains(r.stdout, recordCleared) {
			t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		if q := mainQueue(t, env, app.DefaultQueue); len(q) != 2 || q[0] != want || q[1] != want {
			t.Fatalf("main queue = %q\nwant twice %q", q, want)
		}
		if got, _ := op.records.Get(ctx, jobID); got.PoisonReason != "" {
			t.Errorf("poisonReason after requeue: %q", got.PoisonReason)
		}
		if v := listPoison(t, env); len(v) != 1 || v[0].MessageID != garbageID {
			t.Errorf("poison entries after requeue: %+v", v)
		}
		s.tickUntil(t, "the requeued job settled", func() bool {
			got, err := op.records.Get(ctx, jobID)
			return err == nil && got.Status.Terminal() && queueLength(t, env, app.DefaultQueue) == 0
		})
		got, _ := op.records.Get(ctx, jobID)
		if got.Status != copyjob.StatusSuccess || got.PoisonReason != "" || got.Lease != nil && got.Lease.State == copyjob.LeaseHeld {
			t.Errorf("record after the tick: status %s, poisonReason %q, lease %+v", got.Status, got.PoisonReason, got.Lease)
		}
	})

	t.Run("what cannot be requeued is said and kept", func(t *testing.T) {
		if r := cli(t, env, "requeue-poison", ticketID); r.code != 1 || !strings.Contains(r.stdout, "notFound "+ticketID) {
			t.Errorf("requeued twice: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		if r := cli(t, env, "requeue-poison", garbageID); r.code != 1 || !strings.Contains(r.stdout, "would only be poisoned again") {
			t.Errorf("garbage: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		if v := listPoison(t, env); len(v) != 1 || v[0].MessageID != garbageID {
			t.Errorf("poison entries: %+v", v)
		}
		if n := queueLength(t, env, app.DefaultQueue); n != 0 {
			t.Errorf("main queue holds %d", n)
		}
	})
}

// TestPoisonQueueBeyondOnePeek: settings from local.settings.json under the environment
// (COPY_QUEUE_NAME from the file; the file's AzureWebJobsStorage, pointing nowhere, loses
// to the environment's); more entries than one Peek returns are all listed, all visible
// again afterwards, and all requeued; a record that is gone is skipped silently; a SAS
// in a reason is never printed.
func TestPoisonQueueBeyondOnePeek(t *testing.T) {
	az := azurite.Start(t, azurite.Options{})
	env := map[string]string{"AzureWebJobsStorage": az.ConnectionString(azurite.DevAccountName)}
	dir := t.TempDir()
	settings := `{"IsEncrypted": false, "Values": {"AzureWebJobsStorage": "DefaultEndpointsProtocol=http;AccountName=nowhere;AccountKey=a2V5;BlobEndpoint=http://127.0.0.1:1/nowhere;QueueEndpoint=http://127.0.0.1:1/nowhere", "COPY_QUEUE_NAME": "opsqueue"}}`
	if err := os.WriteFile(filepath.Join(dir, "local.settings.json"), []byte(settings), 0o600); err != nil {
		t.Fatal(err)
	}
	op := ops(t, env, dir)
	if op.queueName != "opsqueue" || op.account != azurite.DevAccountName {
		t.Fatalf("settings: queue %q account %q", op.queueName, op.account)
	}
	ctx := context.Background()
	if err := op.queue.EnsureQueues(ctx); err != nil {
		t.Fatal(err)
	}
	const n = 40
	for i := range n {
		ticket := fmt.Sprintf(`{"jobId":"gone-%02d","polls":3,"failures":5,"outages":2,"progress":{"bytesCopied":0,"bytesTotal":0}}`, i)
		reason := "5 attempts in a row failed"
		if i == 7 {
			reason = "storage said https://acct.blob.core.windows.net/c/b?sv=2025-01-05&sp=r&sig=TOPSECRETSIG refused"
		}
		if err := op.queue.Poison(ctx, ticket, reason); err != nil {
			t.Fatal(err)
		}
	}

	for round := range 2 {
		views := listPoison(t, env, "--app-dir", dir)
		if len(views) != n {
			t.Fatalf("round %d: %d entries listed, want %d", round, len(views), n)
		}
		if views[0].DequeueCount != int64(round+1) {
			t.Errorf("round %d: dequeue count %d", round, views[0].DequeueCount)
		}
	}
	for _, args := range [][]string{{"list-poison"}, {"list-poison", "--json"}} {
		r := cli(t, env, append(args, "--app-dir", dir)...)
		if r.code != 0 || strings.Contains(r.stdout+r.stderr, "TOPSECRETSIG") || !strings.Contains(r.stdout, "sig=REDACTED") {
			t.Errorf("%v: exit %d, the SAS shows or nothing was redacted:\n%s", args, r.code, r.stdout)
		}
	}

	r := cli(t, env, "requeue-poison", "--all", "--app-dir", dir)
	if r.code != 0 || strings.Count(r.stdout, "requeued ") != n || strings.Count(r.stdout, recordGone) != n {
		t.Fatalf("requeue --all: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if v := listPoison(t, env, "--app-dir", dir); len(v) != 0 {
		t.Errorf("poison entries left: %d", len(v))
	}
	if got := queueLength(t, env, "opsqueue"); got != n {
		t.Errorf("main queue holds %d", got)
	}
	q := mainQueue(t, env, "opsqueue")
	for _, text := range q {
		if !strings.HasSuffix(text, `,"polls":3,"failures":0,"outages":0,"progress":{"bytesCopied":0,"bytesTotal":0}}`) {
			t.Errorf("requeued text %q", text)
		}
	}
}

// TestIdentityBasedSettings: AzureWebJobsStorage__blobServiceUri / __queueServiceUri
// with a token credential (Azurite's OAuth mode over HTTPS), as a deployed app's
// account that refuses Shared Key is reached.
func TestIdentityBasedSettings(t *testing.T) {
	az := azurite.Start(t, azurite.Options{OAuth: true})
	storageOptions = azstorage.Options{ClientOptions: az.ClientOptions(), Credential: az.TokenCredential()}
	t.Cleanup(func() { storageOptions = azstorage.Options{} })
	env := map[string]string{
		"AzureWebJobsStorage__blobServiceUri":  az.BlobEndpoint(azurite.DevAccountName),
		"AzureWebJobsStorage__queueServiceUri": az.QueueEndpoint(azurite.DevAccountName),
	}
	dir := t.TempDir()
	op := ops(t, env, dir)
	ctx := context.Background()
	if err := op.queue.EnsureQueues(ctx); err != nil {
		t.Fatal(err)
	}
	if err := op.queue.Poison(ctx, `{"jobId":"by-identity","polls":1,"failures":5}`, "5 attempts in a row failed"); err != nil {
		t.Fatal(err)
	}
	if v := listPoison(t, env, "--app-dir", dir); len(v) != 1 {
		t.Fatalf("entries: %+v", v)
	}
	r := cli(t, env, "requeue-poison", "--all", "--app-dir", dir)
	if r.code != 0 || !strings.Contains(r.stdout, "(job by-identity)") || !strings.Contains(r.stdout, recordGone) {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	held, err := op.queue.Dequeue(ctx, 32, time.Minute)
	if err != nil || len(held) != 1 || held[0].Text != `{"jobId":"by-identity","polls":1,"failures":0}` {
		t.Fatalf("tracking queue: %+v, %v", held, err)
	}
}

func TestResetFailureCounters(t *testing.T) {
	tests := []struct {
		in, want, err string
	}{
		{in: `{"jobId":"j","destination":{"account":"a","container":"c","blob":"b"},"copyId":"x","polls":4,"failures":5,"outages":2,"progress":{"bytesCopied":1}}`,
			want: `{"jobId":"j","destination":{"account":"a","container":"c","blob":"b"},"copyId":"x","polls":4,"failures":0,"outages":0,"progress":{"bytesCopied":1}}`},
		{in: "{ \"jobId\" : \"j\" ,\n \"failures\" :  17 }", want: "{ \"jobId\" : \"j\" ,\n \"failures\" :  0 }"},
		{in: `{"jobId":"j","lease":{"failures":3},"failures":1}`, want: `{"jobId":"j","lease":{"failures":3},"failures":0}`},
		{in: `{"jobId":"j","polls":0}`, want: `{"jobId":"j","polls":0}`},
		{in: `{"jobId":"j","failures":0,"outages":1e2}`, want: `{"jobId":"j","failures":0,"outages":0}`},
		// The dequeue count starts again in the requeued message: so does the count of
		// visits since the ticket was written, and its probes.
		{in: `{"jobId":"j","polls":9,"failures":3,"seen":954,"stalls":1}`, want: `{"jobId":"j","polls":9,"failures":0,"seen":0,"stalls":0}`},
		{in: `not json`, err: "not a JSON object"},
		{in: `[1,2]`, err: "not a JSON object"},
		{in: `{"jobId":""}`, err: "jobId missing"},
		{in: `{"jobId":"j","failures":"5"}`, err: "not a number"},
		{in: `{"jobId":"j"} {}`, err: "text after"},
		{in: `{"jobId":"j"`, err: "not a tracking message"},
	}
	for _, tt := range tests {
		got, err := resetFailureCounters(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: got %q, %v; want error %q", tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%q:\n got %q, %v\nwant %q", tt.in, got, err, tt.want)
		}
	}
}

// fakeRecords holds one record and answers conflicts the first times it is written.
type fakeRecords struct {
	job       *copyjob.Job
	conflicts int
	writes    int
}

func (f *fakeRecords) Get(_ context.Context, id string) (*copyjob.Job, error) {
	if f.job == nil || f.job.ID != id {
		return nil, fmt.Errorf("job %s: %w", id, copyjob.ErrNotFound)
	}
	j := *f.job
	return &j, nil
}

func (f *fakeRecords) Update(_ context.Context, j *copyjob.Job) error {
	f.writes++
	if f.conflicts > 0 {
		f.conflicts--
		f.job.ETag += "'" // someone else wrote
		return fmt.Errorf("job %s: %w", j.ID, copyjob.ErrConflict)
	}
	if j.ETag != f.job.ETag {
		return errors.New("write with a stale ETag")
	}
	c := *j
	f.job = &c
	return nil
}

func TestClearPoisonReason(t *testing.T) {
	tests := []struct {
		name      string
		record    *copyjob.Job
		conflicts int
		want      string
		reason    string
	}{
		{"cleared", &copyjob.Job{ID: "j", ETag: "1", PoisonReason: "r"}, 0, recordCleared, ""},
		{"cleared after concurrent writes", &copyjob.Job{ID: "j", ETag: "1", PoisonReason: "r"}, 2, recordCleared, ""},
		{"a starting job's start failures reset", &copyjob.Job{ID: "j", ETag: "1", Status: copyjob.StatusStarting, StartFailures: 15, PoisonReason: "r"}, 0, recordClearedStart, ""},
		{"a pending job's start failures kept", &copyjob.Job{ID: "j", ETag: "1", Status: copyjob.StatusPending, StartFailures: 2, PoisonReason: "r"}, 0, recordCleared, ""},
		{"record gone", nil, 0, recordGone, ""},
		{"nothing to clear", &copyjob.Job{ID: "j", ETag: "1"}, 0, recordClean, ""},
		{"a later poisoning's reason is kept", &copyjob.Job{ID: "j", ETag: "1", PoisonReason: "later"}, 0, recordLaterReason, "later"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeRecords{job: tt.record, conflicts: tt.conflicts}
			got, err := clearPoisonReason(context.Background(), f, "j", "r")
			if err != nil || got != tt.want {
				t.Fatalf("= %q, %v; want %q", got, err, tt.want)
			}
			if f.job != nil && f.job.PoisonReason != tt.reason {
				t.Errorf("poisonReason = %q, want %q", f.job.PoisonReason, tt.reason)
			}
			if f.job != nil && tt.record.Status == copyjob.StatusStarting && f.job.StartFailures != 0 ||
				tt.record != nil && tt.record.Status == copyjob.StatusPending && f.job.StartFailures != tt.record.StartFailures {
				t.Errorf("startFailures = %d", f.job.StartFailures)
			}
		})
	}
}

// The CLI reads the app's storage names with the app's defaults.
func TestStorageDefaultsAreTheApps(t *testing.T) {
	if defaultQueue != app.DefaultQueue || defaultRecords != app.DefaultRecords {
		t.Errorf("CLI defaults %q/%q, app %q/%q", defaultQueue, defaultRecords, app.DefaultQueue, app.DefaultRecords)
	}
}
