// Package contract is one test suite for batch.Store's listing, run against every
// implementation: batchtest's in-memory Store and azstorage.BatchRecords on Azurite,
// so that a batch or API test that passes on the fake means the same on storage.
package contract

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/blobcopy/blobcopy/internal/batch"
	"github.com/blobcopy/blobcopy/internal/copyjob"
)

// RunStoreList checks batch.Store.List on a fresh, empty store from newStore: batches
// come newest first (created time, then id); a page holds up to Limit of the batches
// the options select (its owner's, the active ones) and a marker is set only while more
// follow, so no page is short or empty while matches remain, whatever other owners'
// batches lie between; a marker names nothing but the page's own last batch (never
// another owner's); a marker the store did not write is copyjob.ErrInvalidMarker.
func RunStoreList(t *testing.T, newStore func(t *testing.T) batch.Store) {
	store := newStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	owners := map[string]string{}
	var all, alice, carol, active []string // newest first
	add := func(id, owner string, at time.Time, status batch.Status) {
		t.Helper()
		b := &batch.Batch{ID: id, Owner: owner, Status: status, CreatedAt: at, UpdatedAt: at}
		if err := store.Create(ctx, b); err != nil {
			t.Fatalf("Create %s: %v", id, err)
		}
		owners[id] = owner
	}
	// bob's batches surround alice's two; carol's two share one creation time; b-05 is
	// finished (not active).
	for i := range 10 {
		id, owner, status := fmt.Sprintf("b-%02d", i), "oid:bob", batch.StatusRunning
		if i == 2 || i == 7 {
			owner = "oid:alice"
		}
		if i == 5 {
			status = batch.StatusSuccess
		}
		add(id, owner, base.Add(time.Duration(i)*time.Minute), status)
	}
	add("c-1", "oid:carol", base.Add(-time.Hour), batch.StatusRunning)
	add("c-2", "oid:carol", base.Add(-time.Hour), batch.StatusRunning)
	for i := 9; i >= 0; i-- {
		id := fmt.Sprintf("b-%02d", i)
		all = append(all, id)
		if owners[id] == "oid:alice" {
			alice = append(alice, id)
		}
		if i != 5 {
			active = append(active, id)
		}
	}
	carol = []string{"c-2", "c-1"}
	all = append(all, carol...)
	active = append(active, carol...)

	for _, tc := range []struct {
		name string
		opts batch.ListOptions
		want []string
	}{
		{"every batch, limit 3", batch.ListOptions{Limit: 3}, all},
		{"every batch, default limit", batch.ListOptions{}, all},
		{"alice's, limit 1", batch.ListOptions{Limit: 1, ByOwner: true, Owner: "oid:alice"}, alice},
		{"alice's, limit 5", batch.ListOptions{Limit: 5, ByOwner: true, Owner: "oid:alice"}, alice},
		{"carol's (one creation time), limit 1", batch.ListOptions{Limit: 1, ByOwner: true, Owner: "oid:carol"}, carol},
		{"nobody's", batch.ListOptions{Limit: 2, ByOwner: true, Owner: "oid:nobody"}, nil},
		{"active, limit 4", batch.ListOptions{Limit: 4, Active: true}, active},
	} {
		var got []string
		opts := tc.opts
		for pages := 0; ; pages++ {
			if pages > 20 {
				t.Fatalf("%s: more than 20 pages", tc.name)
			}
			page, err := store.List(ctx, opts)
			if err != nil {
				t.Fatalf("%s: List %+v: %v", tc.name, opts, err)
			}
			limit := orDefault(opts.Limit, 100)
			if len(page.Batches) > limit || (page.NextMarker != "" && len(page.Batches) < limit) {
				t.Errorf("%s: a page of %d batches (limit %d) with marker %q: a page is full while matches remain, and no fuller", tc.name, len(page.Batches), limit, page.NextMarker)
			}
			for _, b := range page.Batches {
				got = append(got, b.ID)
				if b.ETag == "" {
					t.Errorf("%s: listed %s without its ETag", tc.name, b.ID)
				}
			}
			if page.NextMarker != "" {
				last := page.Batches[len(page.Batches)-1].ID
				for id, owner := range owners {
					if id != last && strings.Contains(page.NextMarker, id) {
						t.Errorf("%s: marker %q names %s (owner %s), not the page's last batch %s", tc.name, page.NextMarker, id, owner, last)
					}
				}
			}
			if page.NextMarker == "" {
				break
			}
			opts.Marker = page.NextMarker
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	for _, m := range []string{"garbage", "batches/b-03.json", "b-03", "2!100!x", "notatime|b-03"} {
		if _, err := store.List(ctx, batch.ListOptions{Limit: 2, Marker: m}); !errors.Is(err, copyjob.ErrInvalidMarker) {
			t.Errorf("List with marker %q it did not write: %v, want ErrInvalidMarker", m, err)
		}
	}
}

func orDefault(limit, def int) int {
	if limit <= 0 {
		return def
	}
	return limit
}
