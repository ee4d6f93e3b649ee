package contract

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/copyjob/copyjobtest"
)

// RunRecords runs the Records contract; newRecords returns a fresh, empty store per
// subtest. A store that also implements FaultInjector is checked under transient
// failures too.
func RunRecords(t *testing.T, newRecords func(t *testing.T) copyjob.Records) {
	t.Run("create, get, update", func(t *testing.T) { recordsCRUD(t, newRecords(t)) })
	t.Run("concurrent updates", func(t *testing.T) { recordsRace(t, newRecords(t)) })
	t.Run("list pages", func(t *testing.T) { recordsList(t, newRecords(t)) })
	t.Run("list by owner", func(t *testing.T) { recordsListByOwner(t, newRecords(t)) })
	t.Run("untracked starts", func(t *testing.T) { recordsUntracked(t, newRecords(t)) })
	t.Run("full sweep claims", func(t *testing.T) { recordsFullSweepClaims(t, newRecords(t)) })
	t.Run("transient faults", func(t *testing.T) { recordsTransient(t, newRecords(t)) })
}

// recordsTransient: a transient failure is ErrUnavailable; a write whose answer was lost
// happened, so its retry meets ErrExists (Create) or ErrConflict (Update): a writer must
// re-read before deciding again.
func recordsTransient(t *testing.T, r copyjob.Records) {
	inj, ok := r.(FaultInjector)
	if !ok {
		t.Skip("the store cannot inject faults")
	}
	job := newJob("job-faults", copyjob.StatusStarting)
	inject := func(op string, after bool) {
		t.Helper()
		if !inj.InjectTransient(t, op, after) {
			t.Skipf("the store cannot inject faults into %s", op)
		}
	}
	inject(copyjobtest.OpCreate, false)
	wantErr(t, "Create meeting a 503", r.Create(ctx(t), job), copyjob.ErrUnavailable)
	_, err := r.Get(ctx(t), job.ID)
	wantErr(t, "Get after a refused Create", err, copyjob.ErrNotFound)

	inject(copyjobtest.OpCreate, true)
	wantErr(t, "Create with its answer lost", r.Create(ctx(t), job), copyjob.ErrUnavailable)
	wantErr(t, "the retried Create", r.Create(ctx(t), newJob(job.ID, copyjob.StatusStarting)), copyjob.ErrExists)

	inject(copyjobtest.OpGet, false)
	_, err = r.Get(ctx(t), job.ID)
	wantErr(t, "Get meeting a 503", err, copyjob.ErrUnavailable)
	cur, err := r.Get(ctx(t), job.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}

	next := *cur
	next.Status = copyjob.StatusPending
	inject(copyjobtest.OpUpdate, true)
	wantErr(t, "Update with its answer lost", r.Update(ctx(t), &next), copyjob.ErrUnavailable)
	retry := *cur
	retry.Status = copyjob.StatusPending
	wantErr(t, "the retried Update with the old ETag", r.Update(ctx(t), &retry), copyjob.ErrConflict)
	if got, err := r.Get(ctx(t), job.ID); err != nil || got.Status != copyjob.StatusPending {
		t.Errorf("after the lost Update: %+v, %v: want the update carried out", got, err)
	}

	inject(copyjobtest.OpList, false)
	_, err = r.List(ctx(t), copyjob.ListOptions{Limit: 10})
	wantErr(t, "List meeting a 503", err, copyjob.ErrUnavailable)
}

func newJob(id string, status copyjob.Status) *copyjob.Job {
	created := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	return &copyjob.Job{
		ID: id, Status: status, CreatedAt: created, UpdatedAt: created,
		Source:      copyjob.Source{URL: "https://src.example/c/b.bin", Kind: copyjob.SourceExternal},
		Destination: copyjob.Destination{BlobRef: copyjob.BlobRef{Container: "dst", Blob: id + ".bin"}},
	}
}

func recordsCRUD(t *testing.T, r copyjob.Records) {
	job := newJob("job-crud", copyjob.StatusStarting)
	if err := r.Create(ctx(t), job); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if job.ETag == "" {
		t.Fatal("Create set no ETag")
	}
	wantErr(t, "Create of a taken id", r.Create(ctx(t), newJob("job-crud", copyjob.StatusStarting)), copyjob.ErrExists)

	got, err := r.Get(ctx(t), job.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if got.ETag != job.ETag || got.Status != job.Status || !got.CreatedAt.Equal(job.CreatedAt) || got.Destination.Blob != job.Destination.Blob {
		t.Errorf("Get = %+v, want what Create stored (ETag %s)", got, job.ETag)
	}
	_, err = r.Get(ctx(t), "no-such-job")
	wantErr(t, "Get of a missing record", err, copyjob.ErrNotFound)

	stale := *got
	got.Status = copyjob.StatusPending
	if err := r.Update(ctx(t), got); err != nil {
		t.Fatalf("Update: %v", err)
	}
	if got.ETag == "" || got.ETag == stale.ETag {
		t.Errorf("Update left the ETag %q", got.ETag)
	}
	stale.Status = copyjob.StatusFailed
	wantErr(t, "Update with a stale ETag", r.Update(ctx(t), &stale), copyjob.ErrConflict)
	if cur, err := r.Get(ctx(t), job.ID); err != nil || cur.Status != copyjob.StatusPending || cur.ETag != got.ETag {
		t.Errorf("after the refused update: %+v, %v", cur, err)
	}
	gone := newJob("never-created", copyjob.StatusPending)
	gone.ETag = got.ETag
	err = r.Update(ctx(t), gone)
	if err == nil || !(len(sentinelsOf(err)) == 1 && (sentinelsOf(err)[0] == copyjob.ErrNotFound || sentinelsOf(err)[0] == copyjob.ErrConflict)) {
		t.Errorf("Update of a missing record: %v, want exactly ErrNotFound or ErrConflict", err)
	}
}

// recordsRace: of several writers holding the same ETag, exactly one wins.
func recordsRace(t *testing.T, r copyjob.Records) {
	job := newJob("job-race", copyjob.StatusPending)
	if err := r.Create(ctx(t), job); err != nil {
		t.Fatalf("Create: %v", err)
	}
	const writers = 6
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine := *job
			mine.StatusDescription = fmt.Sprintf("writer %d", i)
			errs[i] = r.Update(ctx(t), &mine)
		}()
	}
	wg.Wait()
	won := 0
	for i, err := range errs {
		if err == nil {
			won++
			continue
		}
		wantErr(t, fmt.Sprintf("losing writer %d", i), err, copyjob.ErrConflict)
	}
	if won != 1 {
		t.Errorf("%d writers won with the same ETag, want exactly 1", won)
	}
}

// recordsList: newest first, full pages (no short page while matches follow, no empty
// page with a marker), filters by status, origin and creation time; a marker this
// store did not write is ErrInvalidMarker.
func recordsList(t *testing.T, r copyjob.Records) {
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var want, wantEvents, wantBatch []string
	for i := range 7 {
		status := copyjob.StatusPending
		if i%3 == 0 {
			status = copyjob.StatusSuccess
		}
		id := fmt.Sprintf("job-list-%02d", i)
		job := newJob(id, status)
		job.CreatedAt = base.Add(time.Duration(i) * time.Minute)
		job.Origin = "api"
		if i%2 == 1 {
			job.Origin = "eventgrid"
			wantEvents = append([]string{id}, wantEvents...)
		}
		if i%3 == 2 {
			job.Batch = "b-contract"
			wantBatch = append([]string{id}, wantBatch...)
		}
		if err := r.Create(ctx(t), job); err != nil {
			t.Fatalf("Create %s: %v", id, err)
		}
		if status == copyjob.StatusPending {
			want = append([]string{id}, want...) // newest first
		}
	}
	all := listAll(t, r, copyjob.ListOptions{Limit: 2})
	if len(all) != 7 || !slices.IsSortedFunc(all, func(a, b string) int { return strings.Compare(b, a) }) {
		t.Errorf("every page with limit 2: %v, want the 7 ids newest first", all)
	}
	pending := listAll(t, r, copyjob.ListOptions{Limit: 2, Status: copyjob.StatusPending})
	if !slices.Equal(pending, want) {
		t.Errorf("pending, limit 2: %v, want %v", pending, want)
	}
	if got := listAll(t, r, copyjob.ListOptions{Limit: 3, Origin: "eventgrid"}); !slices.Equal(got, wantEvents) {
		t.Errorf("origin eventgrid: %v, want %v", got, wantEvents)
	}
	if got := listAll(t, r, copyjob.ListOptions{Limit: 1, Batch: "b-contract"}); !slices.Equal(got, wantBatch) {
		t.Errorf("batch b-contract: %v, want %v", got, wantBatch)
	}
	window := copyjob.ListOptions{Limit: 10, CreatedAfter: base.Add(90 * time.Second), CreatedBefore: base.Add(270 * time.Second)}
	if got := listAll(t, r, window); !slices.Equal(got, []string{"job-list-04", "job-list-03", "job-list-02"}) {
		t.Errorf("created in (1m30s, 4m30s): %v", got)
	}
	if _, err := r.List(ctx(t), copyjob.ListOptions{Limit: 2, Marker: "garbage"}); !errors.Is(err, copyjob.ErrInvalidMarker) {
		t.Errorf("List with a foreign marker: %v, want ErrInvalidMarker", err)
	}
}

// recordsUntracked: Untracked names every record NeedsSweep holds for, and no record
// that is past "starting" or a batch's child, once the store's index has caught up with
// the writes (a few seconds at most here); a "starting" record a message follows may be
// named (a store without an index cannot tell): the sweep reads each and decides.
func recordsUntracked(t *testing.T, r copyjob.Records) {
	mk := func(id string, status copyjob.Status, edit func(*copyjob.Job)) *copyjob.Job {
		j := newJob(id, status)
		if edit != nil {
			edit(j)
		}
		if err := r.Create(ctx(t), j); err != nil {
			t.Fatalf("Create %s: %v", id, err)
		}
		return j
	}
	crashed := mk("job-untracked", copyjob.StatusStarting, nil)
	mk("job-tracked", copyjob.StatusStarting, func(j *copyjob.Job) { j.Tracked = true })
	mk("job-pending", copyjob.StatusPending, nil)
	mk("job-child", copyjob.StatusStarting, func(j *copyjob.Job) { j.Batch = "b-untracked" })
	moved := mk("job-moved-on", copyjob.StatusStarting, nil)
	moved.Status = copyjob.StatusPending
	if err := r.Update(ctx(t), moved); err != nil {
		t.Fatalf("Update: %v", err)
	}
	untracked := func() []string {
		t.Helper()
		var ids []string
		marker := ""
		for {
			page, next, err := r.Untracked(ctx(t), marker)
			if err != nil {
				t.Fatalf("Untracked: %v", err)
			}
			ids = append(ids, page...)
			if next == "" {
				return ids
			}
			marker = next
		}
	}
	settled := func(ok func([]string) bool) []string {
		t.Helper()
		var ids []string
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			if ids = untracked(); ok(ids) || time.Now().After(deadline) {
				return ids
			}
		}
	}
	want := func(ids []string) bool {
		return slices.Contains(ids, crashed.ID) && !slices.Contains(ids, "job-pending") &&
			!slices.Contains(ids, "job-child") && !slices.Contains(ids, moved.ID)
	}
	if ids := settled(want); !want(ids) {
		t.Errorf("Untracked = %v: want job-untracked, and none of job-pending, job-child, job-moved-on", ids)
	}
	crashed.Tracked = true
	if err := r.Update(ctx(t), crashed); err != nil {
		t.Fatalf("Update: %v", err)
	}
	// Once tracked, a store with an index drops it; one without may still name it (it
	// cannot tell), so only a store that named job-tracked above is excused.
	indexed := !slices.Contains(untracked(), "job-tracked")
	gone := func(ids []string) bool { return !slices.Contains(ids, crashed.ID) }
	if ids := settled(gone); indexed && !gone(ids) {
		t.Errorf("Untracked = %v after job-untracked became tracked", ids)
	}
}

// recordsFullSweepClaims: one claim per interval among concurrent claimants.
func recordsFullSweepClaims(t *testing.T, r copyjob.Records) {
	const interval = time.Hour
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	claims := func(now time.Time) int {
		t.Helper()
		var mu sync.Mutex
		var wg sync.WaitGroup
		won := 0
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ok, err := r.ClaimFullSweep(ctx(t), interval, now)
				if err != nil {
					t.Errorf("ClaimFullSweep: %v", err)
				}
				if ok {
					mu.Lock()
					won++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		return won
	}
	if n := claims(at); n != 1 {
		t.Errorf("first claims: %d won, want 1", n)
	}
	if n := claims(at.Add(interval / 2)); n != 0 {
		t.Errorf("claims within the interval: %d won, want 0", n)
	}
	if n := claims(at.Add(interval)); n != 1 {
		t.Errorf("claims an interval later: %d won, want 1", n)
	}
}

// recordsListByOwner: ByOwner selects one owner's jobs ("" the jobs without an owner),
// combines with the status filter and pages; an owner that needs escaping in metadata
// (a name id may hold any character) is kept exactly.
func recordsListByOwner(t *testing.T, r copyjob.Records) {
	owners := []string{"oid:11111111-1111-1111-1111-111111111111", "", "sub:Jöns Jacob / bär=1;x", "oid:22222222-2222-2222-2222-222222222222"}
	want := map[string][]string{}
	wantPending := map[string][]string{}
	for i := range 12 {
		owner := owners[i%len(owners)]
		status := copyjob.StatusPending
		if i%3 == 0 {
			status = copyjob.StatusSuccess
		}
		id := fmt.Sprintf("job-owner-%02d", i)
		job := newJob(id, status)
		job.Owner = owner
		if err := r.Create(ctx(t), job); err != nil {
			t.Fatalf("Create %s: %v", id, err)
		}
		want[owner] = append([]string{id}, want[owner]...) // newest first: same time, ids descending
		if status == copyjob.StatusPending {
			wantPending[owner] = append([]string{id}, wantPending[owner]...)
		}
	}
	for _, owner := range owners {
		got := listAll(t, r, copyjob.ListOptions{Limit: 2, ByOwner: true, Owner: owner})
		if !slices.Equal(got, want[owner]) {
			t.Errorf("owner %q, limit 2: %v, want %v", owner, got, want[owner])
		}
		pending := listAll(t, r, copyjob.ListOptions{Limit: 2, ByOwner: true, Owner: owner, Status: copyjob.StatusPending})
		if !slices.Equal(pending, wantPending[owner]) {
			t.Errorf("owner %q, pending: %v, want %v", owner, pending, wantPending[owner])
		}
	}
	if got := listAll(t, r, copyjob.ListOptions{Limit: 5, ByOwner: true, Owner: "oid:nobody"}); len(got) != 0 {
		t.Errorf("an owner without jobs lists %v", got)
	}
	if got := listAll(t, r, copyjob.ListOptions{Limit: 5}); len(got) != 12 {
		t.Errorf("without ByOwner: %d jobs, want all 12", len(got))
	}
	// The owner survives the round trip and later updates.
	got, err := r.Get(ctx(t), "job-owner-02")
	if err != nil || got.Owner != owners[2] {
		t.Fatalf("Get job-owner-02: owner %q, %v; want %q", got.Owner, err, owners[2])
	}
	got.Status = copyjob.StatusFailed
	if err := r.Update(ctx(t), got); err != nil {
		t.Fatalf("Update: %v", err)
	}
	failed := listAll(t, r, copyjob.ListOptions{Limit: 5, ByOwner: true, Owner: owners[2], Status: copyjob.StatusFailed})
	if !slices.Equal(failed, []string{"job-owner-02"}) {
		t.Errorf("after an update, owner %q failed: %v", owners[2], failed)
	}
}

// listAll follows NextMarker to the end; each page holds at most Limit jobs.
func listAll(t *testing.T, r copyjob.Records, opts copyjob.ListOptions) []string {
	t.Helper()
	var ids []string
	for pages := 0; pages < 20; pages++ {
		page, err := r.List(ctx(t), opts)
		if err != nil {
			t.Fatalf("List %+v: %v", opts, err)
		}
		if len(page.Jobs) > opts.Limit {
			t.Errorf("page of %d jobs, limit %d", len(page.Jobs), opts.Limit)
		}
		if page.NextMarker != "" && len(page.Jobs) < opts.Limit {
			t.Errorf("a page of %d jobs (limit %d) with a marker: matches were left for later", len(page.Jobs), opts.Limit)
		}
		for _, j := range page.Jobs {
			if opts.Status != "" && j.Status != opts.Status {
				t.Errorf("listed %s with status %s, filter %s", j.ID, j.Status, opts.Status)
			}
			if opts.ByOwner && j.Owner != opts.Owner {
				t.Errorf("listed %s of owner %q, filter %q", j.ID, j.Owner, opts.Owner)
			}
			if j.ETag == "" {
				t.Errorf("listed %s without its ETag", j.ID)
			}
			ids = append(ids, j.ID)
		}
		if page.NextMarker == "" {
			return ids
		}
		opts.Marker = page.NextMarker
	}
	t.Fatalf("List never ended")
	return nil
}
