// Package batchtest holds in-memory fakes of the batch package's ports, built on
// copyjobtest's fakes: Store keeps batch records as JSON with ETags and lists a batch's
// children from a copyjobtest.Records; Storage lists a copyjobtest.Blobs.
package batchtest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/blobcopy/blobcopy/internal/batch"
	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/copyjob/copyjobtest"
)

// Store is an in-memory batch.Store. List orders newest first, as azstorage's.
type Store struct {
	mu      sync.Mutex
	docs    map[string][]byte
	etags   map[string]string
	seq     int
	records *copyjobtest.Records
	// Writes counts Create and Update calls; Listings counts List and ListChildren pages;
	// Reads counts Get calls and the documents List returns (azstorage reads each listed
	// batch's document with a Get Blob).
	Writes, Listings, Reads int
	// BeforeUpdate, when set, is asked before every Update with the record to write; an
	// error it returns is Update's answer and nothing is written (a crash or an outage
	// at that write).
	BeforeUpdate func(*batch.Batch) error
}

var _ batch.Store = (*Store)(nil)

// NewStore returns an empty store whose children are the records' jobs.
func NewStore(records *copyjobtest.Records) *Store {
	return &Store{docs: map[string][]byte{}, etags: map[string]string{}, records: records}
}

func (s *Store) storeLocked(b *batch.Batch) {
	data, err := json.Marshal(b)
	if err != nil {
		panic(err)
	}
	s.seq++
	s.docs[b.ID], s.etags[b.ID] = data, strconv.Itoa(s.seq)
	b.ETag = s.etags[b.ID]
	s.Writes++
}

func (s *Store) getLocked(id string) *batch.Batch {
	var b batch.Batch
	if err := json.Unmarshal(s.docs[id], &b); err != nil {
		panic(err)
	}
	b.ETag = s.etags[id]
	return &b
}

// Create implements batch.Store.
func (s *Store) Create(_ context.Context, b *batch.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.docs[b.ID]; ok {
		return fmt.Errorf("batchtest: batch %s: %w", b.ID, copyjob.ErrExists)
	}
	s.storeLocked(b)
	return nil
}

// Get implements batch.Store.
func (s *Store) Get(_ context.Context, id string) (*batch.Batch, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Reads++
	if _, ok := s.docs[id]; !ok {
		return nil, fmt.Errorf("batchtest: batch %s: %w", id, copyjob.ErrNotFound)
	}
	return s.getLocked(id), nil
}

// Update implements batch.Store.
func (s *Store) Update(_ context.Context, b *batch.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.BeforeUpdate != nil {
		if err := s.BeforeUpdate(b); err != nil {
			return err
		}
	}
	if _, ok := s.docs[b.ID]; !ok {
		return fmt.Errorf("batchtest: batch %s: %w", b.ID, copyjob.ErrNotFound)
	}
	if s.etags[b.ID] != b.ETag {
		return fmt.Errorf("batchtest: batch %s: %w", b.ID, copyjob.ErrConflict)
	}
	s.storeLocked(b)
	return nil
}

// Batch returns the stored record, or nil.
func (s *Store) Batch(id string) *batch.Batch {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.docs[id]; !ok {
		return nil
	}
	return s.getLocked(id)
}

// Modify changes a stored batch in place (no ETag check, not counted), as another
// writer, or an earlier version of the app, would have left it.
func (s *Store) Modify(id string, fn func(*batch.Batch)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.getLocked(id)
	fn(b)
	data, err := json.Marshal(b)
	if err != nil {
		panic(err)
	}
	s.seq++
	s.docs[id], s.etags[id] = data, strconv.Itoa(s.seq)
}

// List implements batch.Store as azstorage.BatchRecords does: copyjob.PageOf's order
// (newest first), pages cut after the filters and its "<created>|<id>" markers
// (copyjob.ErrInvalidMarker for any other).
func (s *Store) List(_ context.Context, opts batch.ListOptions) (batch.Page, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Listings++
	entries := make([]copyjob.ListEntry, 0, len(s.docs))
	for id := range s.docs {
		b := s.getLocked(id)
		if opts.Active && !b.Active() {
			continue
		}
		entries = append(entries, copyjob.ListEntry{ID: id, CreatedAt: b.CreatedAt, Owner: b.Owner})
	}
	ids, next, err := copyjob.PageOf(entries, copyjob.ListOptions{Marker: opts.Marker, Limit: opts.Limit, ByOwner: opts.ByOwner, Owner: opts.Owner})
	if err != nil {
		return batch.Page{}, fmt.Errorf("batchtest: list batches: %w", err)
	}
	page := batch.Page{NextMarker: next}
	for _, id := range ids {
		page.Batches = append(page.Batches, s.getLocked(id))
		s.Reads++
	}
	return page, nil
}

// ListChildren implements batch.Store over the records' jobs whose id begins with the
// batch id, in pages of 5,000.
func (s *Store) ListChildren(_ context.Context, batchID, marker string) (batch.ChildPage, error) {
	s.mu.Lock()
	s.Listings++
	s.mu.Unlock()
	var page batch.ChildPage
	for _, j := range s.records.Jobs() {
		if !strings.HasPrefix(j.ID, batchID+"-") || j.ID <= marker {
			continue
		}
		if len(page.Children) == 5000 {
			page.NextMarker = page.Children[4999].ID
			break
		}
		page.Children = append(page.Children, batch.Child{ID: j.ID, Status: j.Status, ETag: j.ETag})
	}
	return page, nil
}

// Storage is a batch.Storage over a copyjobtest.Blobs whose accounts are served on the
// hosts given (alias -> host).
type Storage struct {
	Blobs *copyjobtest.Blobs
	Hosts map[string]string
	mu    sync.Mutex
	// SourceListings and CopyListings count the listings made.
	SourceListings, CopyListings int
}

var _ batch.Storage = (*Storage)(nil)

// NewStorage returns listings of b for the accounts of copyjobtest.NewEnv.
func NewStorage(b *copyjobtest.Blobs) *Storage {
	return &Storage{Blobs: b, Hosts: map[string]string{"": copyjobtest.DefaultHost, "other": copyjobtest.OtherHost}}
}

// Locate implements batch.Storage.
func (s *Storage) Locate(raw string) (batch.Location, bool) {
	u, err := url.Parse(raw)
	if err != nil || u.User != nil {
		return batch.Location{}, false
	}
	for alias, host := range s.Hosts {
		if !strings.EqualFold(u.Host, host) {
			continue
		}
		container, prefix, _ := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
		if container == "" {
			return batch.Location{}, false
		}
		return batch.Location{Account: alias, Container: container, Prefix: prefix}, true
	}
	return batch.Location{}, false
}

// URL implements batch.Storage.
func (s *Storage) URL(ref copyjob.BlobRef) (string, error) { return s.Blobs.URL(ref) }

// SameAccount implements batch.Storage: aliases whose hosts are the same name one
// account.
func (s *Storage) SameAccount(a, b string) bool {
	ha, oka := s.Hosts[a]
	hb, okb := s.Hosts[b]
	return a == b || (oka && okb && strings.EqualFold(ha, hb))
}

// ListSource implements batch.Storage.
func (s *Storage) ListSource(_ context.Context, loc batch.Location, marker string, max int) (batch.SourcePage, error) {
	s.mu.Lock()
	s.SourceListings++
	s.mu.Unlock()
	blobs, next, err := s.Blobs.List(loc.Account, loc.Container, loc.Prefix, marker, max)
	if err != nil {
		return batch.SourcePage{}, err
	}
	page := batch.SourcePage{NextMarker: next}
	for _, b := range blobs {
		page.Blobs = append(page.Blobs, batch.SourceBlob{Name: b.Name, Size: b.Size, LastModified: b.LastModified})
	}
	return page, nil
}

// ListCopies implements batch.Storage, in pages of 5,000.
func (s *Storage) ListCopies(_ context.Context, loc batch.Location, marker string) (batch.CopyPage, error) {
	s.mu.Lock()
	s.CopyListings++
	s.mu.Unlock()
	blobs, next, err := s.Blobs.List(loc.Account, loc.Container, loc.Prefix, marker, 5000)
	if err != nil {
		return batch.CopyPage{}, err
	}
	page := batch.CopyPage{NextMarker: next}
	for _, b := range blobs {
		st := b.Copy
		if st.Status == copyjob.StatusSuccess && st.Progress.BytesTotal == 0 {
			st.Progress = copyjob.Progress{BytesCopied: b.Size, BytesTotal: b.Size}
		}
		page.Blobs = append(page.Blobs, batch.ListedCopy{Name: b.Name, State: st})
	}
	return page, nil
}
