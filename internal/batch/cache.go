package batch

import (
	"strings"
	"sync"

	"github.com/blobcopy/blobcopy/internal/copyjob"
)

// childCache keeps the child records this instance last wrote (created, or changed and
// still pending), so the tick settles a child whose copy ended without reading its
// record first: the listing of the children gives each record's ETag, and a cached
// record with the listed ETag is the stored one. Nothing depends on it for
// correctness: copyjob's writes are compare-and-swap, and a write from a stale record
// loses, re-reads and decides again. It is bounded; the oldest entries go first.
type childCache struct {
	mu    sync.Mutex
	max   int
	jobs  map[string]*copyjob.Job
	order []string // insertion order, for eviction; may name ids already dropped
}

// defaultCacheSize covers a 10,000-child batch twice over, in about 22 MiB when full
// (1.1 KiB a record); entries go as their children finish.
const defaultCacheSize = 20_000

func newChildCache(max int) *childCache {
	return &childCache{max: max, jobs: map[string]*copyjob.Job{}}
}

// put keeps a copy of job (with its ETag); a terminal job is dropped instead (the tick
// does not visit it again).
func (c *childCache) put(job *copyjob.Job) {
	if job == nil || job.ETag == "" || c.max <= 0 {
		return
	}
	if job.Status.Terminal() {
		c.drop(job.ID)
		return
	}
	clone := cloneChild(job)
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.jobs[job.ID]; !ok {
		c.order = append(c.order, job.ID)
	}
	c.jobs[job.ID] = clone
	for len(c.jobs) > c.max && len(c.order) > 0 {
		delete(c.jobs, c.order[0])
		c.order = c.order[1:]
	}
	if len(c.order) > 2*c.max {
		c.compactLocked()
	}
}

func (c *childCache) compactLocked() {
	live := c.order[:0:0]
	for _, id := range c.order {
		if _, ok := c.jobs[id]; ok {
			live = append(live, id)
		}
	}
	c.order = live
}

// get returns a copy of the cached record of id if its ETag is etag, else nil.
func (c *childCache) get(id, etag string) *copyjob.Job {
	if etag == "" {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	j, ok := c.jobs[id]
	if !ok || !sameETag(j.ETag, etag) {
		return nil
	}
	return cloneChild(j)
}

func (c *childCache) drop(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.jobs, id)
}

// sameETag compares ETags as a response header (quoted) and a listing (which may not
// quote them) give them.
func sameETag(a, b string) bool {
	return strings.Trim(a, `"`) == strings.Trim(b, `"`)
}

// cloneChild copies a job deeply enough that the cache and its callers never share
// what a change may modify.
func cloneChild(j *copyjob.Job) *copyjob.Job { return j.Clone() }
