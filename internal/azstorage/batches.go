package azstorage

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/blobcopy/blobcopy/internal/batch"
	"github.com/blobcopy/blobcopy/internal/copyjob"
)

// BatchRecords stores batch records as JSON blobs ("batches/<id>.json") in the records
// container, written with ETag compare-and-swap. Whether the tick still has work on a
// batch ("active"), its owner and its creation time are mirrored in blob metadata, so a
// listing reads only its page's documents (the tick's, active batches' only). A batch's
// children are the job records "jobs/<batch id>-…": ListChildren reads their status
// from metadata, not documents.
type BatchRecords struct {
	container *container.Client
}

var _ batch.Store = (*BatchRecords)(nil)

const batchPrefix = "batches/"

// NewBatchRecords returns the batch store in the named container of the account.
func NewBatchRecords(a *Account, containerName string) *BatchRecords {
	return &BatchRecords{container: a.Service.NewContainerClient(containerName)}
}

func (r *BatchRecords) blob(id string) *blockblob.Client {
	return r.container.NewBlockBlobClient(batchPrefix + id + ".json")
}

// batchMetadata is what a batch listing filters and orders on.
func batchMetadata(b *batch.Batch) map[string]*string {
	md := map[string]*string{"active": to.Ptr(strconv.FormatBool(b.Active())), "status": to.Ptr(string(b.Status)),
		"created": to.Ptr(b.CreatedAt.UTC().Format(time.RFC3339Nano))}
	if b.Owner != "" {
		md["owner"] = to.Ptr(url.QueryEscape(b.Owner))
	}
	return md
}

// Create stores a new batch; copyjob.ErrExists when the id is taken.
func (r *BatchRecords) Create(ctx context.Context, b *batch.Batch) error {
	etag, err := createJSON(ctx, r.blob(b.ID), "batch", b.ID, b, labels{metadata: batchMetadata(b)})
	setETag(&b.ETag, etag)
	return err
}

// Get reads a batch.
func (r *BatchRecords) Get(ctx context.Context, id string) (*batch.Batch, error) {
	var b batch.Batch
	etag, err := getJSON(ctx, r.blob(id), "batch", id, &b)
	if err != nil {
		return nil, err
	}
	setETag(&b.ETag, etag)
	return &b, nil
}

// Update replaces a batch if its ETag still matches (copyjob.ErrConflict otherwise).
func (r *BatchRecords) Update(ctx context.Context, b *batch.Batch) error {
	etag, err := updateJSON(ctx, r.blob(b.ID), "batch", b.ID, b, labels{metadata: batchMetadata(b)}, b.ETag)
	setETag(&b.ETag, etag)
	return err
}

// List pages through batches as copyjob.PageOf pages jobs: newest first (created time,
// then id), a page holds up to Limit of the batches the options select and NextMarker
// ("<created>|<id>" of the page's last batch, never a List Blobs marker) is set only
// while more follow; a marker this store did not write is copyjob.ErrInvalidMarker.
// The owner, the creation time and whether the batch is active come from the metadata
// each record is written with: one List Blobs request reads 5,000 records' metadata,
// and only the page's documents are read. A page is cut after the filters, so another
// owner's batches never empty it, and its marker names the caller's own last batch only.
func (r *BatchRecords) List(ctx context.Context, opts batch.ListOptions) (batch.Page, error) {
	var entries []copyjob.ListEntry
	pager := r.container.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{
		Prefix: to.Ptr(batchPrefix), MaxResults: to.Ptr(int32(5000)),
		Include: container.ListBlobsInclude{Metadata: true},
	})
	for pager.More() {
		resp, err := pager.NextPage(ctx)
		if err != nil {
			return batch.Page{}, fmt.Errorf("list batch records: %w", mapBlobErr(err))
		}
		for _, item := range resp.Segment.BlobItems {
			if item.Name == nil || (opts.Active && metadataValue(item.Metadata, "active") != "true") {
				continue
			}
			entries = append(entries, batchEntry(item))
		}
	}
	ids, next, err := copyjob.PageOf(entries, copyjob.ListOptions{Marker: opts.Marker, Limit: opts.Limit, ByOwner: opts.ByOwner, Owner: opts.Owner})
	if err != nil {
		return batch.Page{}, err
	}
	batches, errs := readPage(ctx, ids, r.Get)
	page := batch.Page{NextMarker: next}
	for i, b := range batches {
		switch {
		case errors.Is(errs[i], copyjob.ErrUnavailable):
			return batch.Page{}, errs[i]
		case errs[i] != nil:
			continue // deleted between the listing and the read, or not JSON
		}
		// The listing saw one version, the read may see a newer one: a batch that no
		// longer matches is left out.
		if (opts.ByOwner && b.Owner != opts.Owner) || (opts.Active && !b.Active()) {
			continue
		}
		page.Batches = append(page.Batches, b)
	}
	return page, nil
}

// batchEntry reads what List needs from a batch record's metadata. A record written
// before "created" was kept has the blob's creation time instead (the record is
// created with the batch).
func batchEntry(item *container.BlobItem) copyjob.ListEntry {
	e := copyjob.ListEntry{ID: strings.TrimSuffix(strings.TrimPrefix(*item.Name, batchPrefix), ".json"), Owner: metadataOwner(item.Metadata)}
	if at, err := time.Parse(time.RFC3339Nano, metadataValue(item.Metadata, "created")); err == nil {
		e.CreatedAt = at
	} else if item.Properties != nil && item.Properties.CreationTime != nil {
		e.CreatedAt = *item.Properties.CreationTime
	}
	return e
}

// ListChildren lists one page (up to 5,000) of the batch's child records, with the
// status their metadata mirrors and their ETag (which a listing may give unquoted).
func (r *BatchRecords) ListChildren(ctx context.Context, batchID, marker string) (batch.ChildPage, error) {
	var m *string
	if marker != "" {
		m = to.Ptr(marker)
	}
	pager := r.container.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{
		Prefix: to.Ptr(recordPrefix + batchID + "-"), Marker: m, MaxResults: to.Ptr(int32(5000)),
		Include: container.ListBlobsInclude{Metadata: true},
	})
	resp, err := pager.NextPage(ctx)
	if err != nil {
		return batch.ChildPage{}, fmt.Errorf("list the children of batch %s: %w", batchID, mapBlobErr(err))
	}
	var page batch.ChildPage
	for _, item := range resp.Segment.BlobItems {
		if item.Name == nil {
			continue
		}
		id := strings.TrimSuffix(strings.TrimPrefix(*item.Name, recordPrefix), ".json")
		child := batch.Child{ID: id, Status: copyjob.Status(metadataValue(item.Metadata, "status"))}
		if item.Properties != nil && item.Properties.ETag != nil {
			child.ETag = string(*item.Properties.ETag)
		}
		page.Children = append(page.Children, child)
	}
	page.NextMarker = deref(resp.NextMarker)
	return page, nil
}

// BatchStorage lists sources and destinations for batches across the configured accounts.
type BatchStorage struct {
	blobs *Blobs
}

var _ batch.Storage = (*BatchStorage)(nil)

// NewBatchStorage returns the batch listings over the accounts of b.
func NewBatchStorage(b *Blobs) *BatchStorage { return &BatchStorage{blobs: b} }

// Locate maps a container URL, with an optional prefix path, onto a configured account;
// a URL with user info is refused, as Blobs.PrepareSource refuses a single copy's.
func (s *BatchStorage) Locate(raw string) (batch.Location, bool) {
	u, err := url.Parse(raw)
	if err != nil || u.User != nil {
		return batch.Location{}, false
	}
	for _, a := range s.blobs.order {
		if !a.Config.OwnsURL(u) {
			continue
		}
		if c, prefix, ok := a.Config.BlobPath(u); ok {
			return batch.Location{Account: a.Alias, Container: c, Prefix: prefix}, true
		}
		whole := *u // a container without a prefix
		whole.Path = strings.TrimSuffix(u.Path, "/") + "/x"
		if c, _, ok := a.Config.BlobPath(&whole); ok && !strings.Contains(c, "/") {
			return batch.Location{Account: a.Alias, Container: c}, true
		}
	}
	return batch.Location{}, false
}

// URL is a blob's URL without any SAS.
func (s *BatchStorage) URL(ref copyjob.BlobRef) (string, error) { return s.blobs.URL(ref) }

// SameAccount tells whether two aliases name one storage account: account names are
// unique in Azure (an emulator's accounts differ by name too).
func (s *BatchStorage) SameAccount(a, b string) bool {
	if a == b {
		return true
	}
	x, errA := s.blobs.account(a)
	y, errB := s.blobs.account(b)
	return errA == nil && errB == nil && strings.EqualFold(x.Config.Name, y.Config.Name)
}

func (s *BatchStorage) containerClient(loc batch.Location) (*container.Client, error) {
	a, err := s.blobs.account(loc.Account)
	if err != nil {
		return nil, err
	}
	return a.Service.NewContainerClient(loc.Container), nil
}

// ListSource lists one page of the base blobs under the location's prefix.
func (s *BatchStorage) ListSource(ctx context.Context, loc batch.Location, marker string, max int) (batch.SourcePage, error) {
	cc, err := s.containerClient(loc)
	if err != nil {
		return batch.SourcePage{}, err
	}
	resp, err := listPage(ctx, cc, loc.Prefix, marker, max, container.ListBlobsInclude{})
	if err != nil {
		return batch.SourcePage{}, fmt.Errorf("list the source: %w", mapBlobErr(err))
	}
	page := batch.SourcePage{NextMarker: deref(resp.NextMarker)}
	for _, item := range resp.Segment.BlobItems {
		if item.Name == nil || item.Properties == nil {
			continue
		}
		sb := batch.SourceBlob{Name: *item.Name, Size: deref(item.Properties.ContentLength)}
		if item.Properties.LastModified != nil {
			sb.LastModified = *item.Properties.LastModified
		}
		page.Blobs = append(page.Blobs, sb)
	}
	return page, nil
}

// ListCopies lists one page (up to 5,000) of the blobs under the location's prefix with
// their copy properties (List Blobs include=copy): the copy states of up to 5,000
// children for one request.
func (s *BatchStorage) ListCopies(ctx context.Context, loc batch.Location, marker string) (batch.CopyPage, error) {
	cc, err := s.containerClient(loc)
	if err != nil {
		return batch.CopyPage{}, err
	}
	resp, err := listPage(ctx, cc, loc.Prefix, marker, 5000, container.ListBlobsInclude{Copy: true})
	if err != nil {
		return batch.CopyPage{}, fmt.Errorf("list the destination: %w", mapBlobErr(err))
	}
	page := batch.CopyPage{NextMarker: deref(resp.NextMarker)}
	for _, item := range resp.Segment.BlobItems {
		if item.Name == nil || item.Properties == nil {
			continue
		}
		p := item.Properties
		st := copyProperties{ID: p.CopyID, Status: (*string)(p.CopyStatus), Description: p.CopyStatusDescription,
			CompletedAt: p.CopyCompletionTime, Source: p.CopySource, Progress: p.CopyProgress,
			LastModified: p.LastModified, Length: p.ContentLength}.state()
		page.Blobs = append(page.Blobs, batch.ListedCopy{Name: *item.Name, State: st})
	}
	return page, nil
}

func listPage(ctx context.Context, cc *container.Client, prefix, marker string, max int, include container.ListBlobsInclude) (container.ListBlobsFlatResponse, error) {
	opts := &container.ListBlobsFlatOptions{MaxResults: to.Ptr(int32(max)), Include: include}
	if prefix != "" {
		opts.Prefix = to.Ptr(prefix)
	}
	if marker != "" {
		opts.Marker = to.Ptr(marker)
	}
	return cc.NewListBlobsFlatPager(opts).NextPage(ctx)
}
