package copyjobtest

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/blobcopy/blobcopy/internal/copyjob"
)

// Records is an in-memory copyjob.Records. Records are stored as JSON (so a field that
// does not survive encoding is caught) with an ETag that changes on every write.
// Create and Update set job.ETag to the new value; Update with a stale ETag returns
// copyjob.ErrConflict. List orders by id; its marker is the last id returned; it
// filters by status, by owner and by batch.
type Records struct {
	Faults
	mu        sync.Mutex
	docs      map[string]doc
	seq       int
	unindexed map[string]bool // ids Untracked does not see (see HideFromIndex)
	fullSweep time.Time       // the last ClaimFullSweep that won
}

type doc struct {
	data []byte
	etag string
}

var _ copyjob.Records = (*Records)(nil)

// NewRecords returns an empty store.
func NewRecords() *Records { return &Records{docs: map[string]doc{}} }

func (r *Records) storeLocked(job *copyjob.Job) error {
	data, err := json.Marshal(job)
	if err != nil {
		return fmt.Errorf("copyjobtest: encode job %s: %w", job.ID, err)
	}
	r.seq++
	etag := `"` + strconv.Itoa(r.seq) + `"`
	r.docs[job.ID] = doc{data: data, etag: etag}
	job.ETag = etag
	return nil
}

func decode(d doc) *copyjob.Job {
	var j copyjob.Job
	if err := json.Unmarshal(d.data, &j); err != nil {
		panic(err) // written by storeLocked
	}
	j.ETag = d.etag
	return &j
}

// Create implements copyjob.Records.
func (r *Records) Create(ctx context.Context, job *copyjob.Job) error {
	err := r.carryCreate(ctx, job)
	r.loseAnswer(OpCreate, &err)
	return err
}

func (r *Records) carryCreate(_ context.Context, job *copyjob.Job) error {
	if err := r.enter(OpCreate); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.docs[job.ID]; ok {
		return fmt.Errorf("copyjobtest: job %s: %w", job.ID, copyjob.ErrExists)
	}
	return r.storeLocked(job)
}

// Get implements copyjob.Records.
func (r *Records) Get(_ context.Context, id string) (*copyjob.Job, error) {
	if err := r.enter(OpGet); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	d, ok := r.docs[id]
	if !ok {
		return nil, fmt.Errorf("copyjobtest: job %s: %w", id, copyjob.ErrNotFound)
	}
	return decode(d), nil
}

// Update implements copyjob.Records.
func (r *Records) Update(ctx context.Context, job *copyjob.Job) error {
	err := r.carryUpdate(ctx, job)
	r.loseAnswer(OpUpdate, &err)
	return err
}

func (r *Records) carryUpdate(_ context.Context, job *copyjob.Job) error {
	if err := r.enter(OpUpdate); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	d, ok := r.docs[job.ID]
	if !ok {
		return fmt.Errorf("copyjobtest: job %s: %w", job.ID, copyjob.ErrNotFound)
	}
	if d.etag != job.ETag {
		return fmt.Errorf("copyjobtest: job %s: etag %s, stored %s: %w", job.ID, job.ETag, d.etag, copyjob.ErrConflict)
	}
	return r.storeLocked(job)
}

// List implements copyjob.Records. Limit <= 0 means 100.
func (r *Records) List(_ context.Context, opts copyjob.ListOptions) (copyjob.ListPage, error) {
	if err := r.enter(OpList); err != nil {
		return copyjob.ListPage{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	entries := make([]copyjob.ListEntry, 0, len(r.docs))
	for _, d := range r.docs {
		j := decode(d)
		entries = append(entries, copyjob.ListEntry{ID: j.ID, CreatedAt: j.CreatedAt, Status: j.Status, Owner: j.Owner, Origin: j.Origin, CopyID: j.CopyID,
			Batch: j.Batch})
	}
	ids, next, err := copyjob.PageOf(entries, opts)
	if err != nil {
		return copyjob.ListPage{}, fmt.Errorf("copyjobtest: %w", err)
	}
	page := copyjob.ListPage{NextMarker: next}
	for _, id := range ids {
		page.Jobs = append(page.Jobs, decode(r.docs[id]))
	}
	return page, nil
}

// Untracked implements copyjob.Records: every record for which copyjob.NeedsSweep
// holds, in one page (the fake's index never lags).
func (r *Records) Untracked(_ context.Context, marker string) ([]string, string, error) {
	if err := r.enter(OpList); err != nil {
		return nil, "", err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var ids []string
	for id, d := range r.docs {
		if !r.unindexed[id] && copyjob.NeedsSweep(decode(d)) {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids, "", nil
}

// ClaimFullSweep implements copyjob.Records: one claim per interval, shared by every
// service using this store (like instances sharing an account).
func (r *Records) ClaimFullSweep(_ context.Context, interval time.Duration, now time.Time) (bool, error) {
	if err := r.enter(OpClaimFullSweep); err != nil {
		return false, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.fullSweep.IsZero() && now.Sub(r.fullSweep) < interval {
		return false, nil
	}
	r.fullSweep = now
	return true, nil
}

// HideFromIndex makes Untracked never name id, as for a record an index does not know
// (written before the index existed, or by an instance whose account refused it).
func (r *Records) HideFromIndex(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.unindexed == nil {
		r.unindexed = map[string]bool{}
	}
	r.unindexed[id] = true
}

// Put writes job whatever is stored (no ETag check, no faults) and sets job.ETag: the
// way to build a state by hand.
func (r *Records) Put(job *copyjob.Job) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.storeLocked(job); err != nil {
		panic(err)
	}
}

// Job returns the stored record (a copy), or nil; no faults, not counted.
func (r *Records) Job(id string) *copyjob.Job {
	r.mu.Lock()
	defer r.mu.Unlock()
	d, ok := r.docs[id]
	if !ok {
		return nil
	}
	return decode(d)
}

// Jobs returns every stored record, ordered by id.
func (r *Records) Jobs() []*copyjob.Job {
	r.mu.Lock()
	defer r.mu.Unlock()
	ids := make([]string, 0, len(r.docs))
	for id := range r.docs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	out := make([]*copyjob.Job, 0, len(ids))
	for _, id := range ids {
		out = append(out, decode(r.docs[id]))
	}
	return out
}

// Modify changes a stored record in place, as a concurrent writer would: its ETag changes.
// It reports whether the record exists.
func (r *Records) Modify(id string, fn func(*copyjob.Job)) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	d, ok := r.docs[id]
	if !ok {
		return false
	}
	j := decode(d)
	fn(j)
	if err := r.storeLocked(j); err != nil {
		panic(err)
	}
	return true
}

// Delete removes a record (behind the service's back).
func (r *Records) Delete(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.docs, id)
}
