package batch

import (
	"fmt"
	"testing"

	"github.com/blobcopy/blobcopy/internal/copyjob"
)

// TestChildCache: a record is returned only with the ETag it was kept with (quoted or
// not), as a copy the caller may change; terminal records are dropped; the oldest entry
// goes first once the cache is full.
func TestChildCache(t *testing.T) {
	c := newChildCache(3)
	job := func(i int, st copyjob.Status) *copyjob.Job {
		return &copyjob.Job{ID: fmt.Sprint("j", i), Status: st, ETag: fmt.Sprintf(`"e%d"`, i), Callback: &copyjob.Callback{URL: "u"}}
	}
	c.put(job(1, copyjob.StatusPending))
	if c.get("j1", `"e2"`) != nil || c.get("j1", "") != nil {
		t.Fatal("returned a record under another ETag")
	}
	got := c.get("j1", "e1") // a listing may give the ETag unquoted
	if got == nil {
		t.Fatal("missed a record with its ETag")
	}
	got.Callback.URL = "changed"
	if c.get("j1", `"e1"`).Callback.URL != "u" {
		t.Fatal("the caller changed the cached record")
	}
	c.put(job(1, copyjob.StatusSuccess))
	if c.get("j1", `"e1"`) != nil {
		t.Fatal("kept a terminal record")
	}
	for i := 2; i <= 5; i++ {
		c.put(job(i, copyjob.StatusPending))
	}
	if c.get("j2", `"e2"`) != nil || c.get("j3", `"e3"`) == nil || c.get("j5", `"e5"`) == nil || len(c.jobs) != 3 {
		t.Fatalf("eviction: %d entries", len(c.jobs))
	}
}
