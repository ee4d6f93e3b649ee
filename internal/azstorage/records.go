package azstorage

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/blobcopy/blobcopy/internal/copyjob"
)

// Records stores job records as JSON blobs ("jobs/<id>.json") in one container,
// written with ETag concurrency. The status, the owner and the batch are mirrored in blob metadata
// (written by the same Put Blob as the document) so a listing filters without reading
// every document.
type Records struct {
	container *container.Client
}

var _ copyjob.Records = (*Records)(nil)

const recordPrefix = "jobs/"

// NewRecords returns the record store in the named container of the account.
func NewRecords(a *Account, containerName string) *Records {
	return &Records{container: a.Service.NewContainerClient(containerName)}
}

// EnsureContainer creates the container if needed.
func (r *Records) EnsureContainer(ctx context.Context) error {
	_, err := r.container.Create(ctx, nil)
	if err != nil && !bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
		return fmt.Errorf("create container: %w", err)
	}
	return nil
}

func (r *Records) blob(id string) *blockblob.Client {
	return r.container.NewBlockBlobClient(recordPrefix + id + ".json")
}

// Create stores a new record; copyjob.ErrExists when the id is taken.
func (r *Records) Create(ctx context.Context, job *copyjob.Job) error {
	etag, err := createJSON(ctx, r.blob(job.ID), "job", job.ID, job, recordMetadata(job))
	setETag(&job.ETag, etag)
	return err
}

// Get reads a record.
func (r *Records) Get(ctx context.Context, id string) (*copyjob.Job, error) {
	var job copyjob.Job
	etag, err := getJSON(ctx, r.blob(id), "job", id, &job)
	if err != nil {
		return nil, err
	}
	setETag(&job.ETag, etag)
	return &job, nil
}

// Update replaces a record if its ETag still matches.
func (r *Records) Update(ctx context.Context, job *copyjob.Job) error {
	etag, err := updateJSON(ctx, r.blob(job.ID), "job", job.ID, job, recordMetadata(job), job.ETag)
	setETag(&job.ETag, etag)
	return err
}

// setETag keeps a document's ETag unless storage answered a new one.
func setETag(dst *string, etag string) {
	if etag != "" {
		*dst = etag
	}
}

// List pages through records newest first, filtered as copyjob.ListOptions says, from
// the metadata each record is written with.
func (r *Records) List(ctx context.Context, opts copyjob.ListOptions) (copyjob.ListPage, error) {
	// One List Blobs request reads the metadata of up to 5,000 records: the filters and
	// the newest-first order come from it, and only the page's records are read.
	var entries []copyjob.ListEntry
	pager := r.container.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{
		Prefix:     to.Ptr(recordPrefix),
		MaxResults: to.Ptr(int32(5000)),
		Include:    container.ListBlobsInclude{Metadata: true},
	})
	for pager.More() {
		resp, err := pager.NextPage(ctx)
		if err != nil {
			return copyjob.ListPage{}, fmt.Errorf("list job records: %w", mapBlobErr(err))
		}
		for _, item := range resp.Segment.BlobItems {
			if item.Name == nil {
				continue
			}
			entries = append(entries, listEntry(item))
		}
	}
	ids, next, err := copyjob.PageOf(entries, opts)
	if err != nil {
		return copyjob.ListPage{}, err
	}
	jobs := make([]*copyjob.Job, len(ids))
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			jobs[i], errs[i] = r.Get(ctx, id)
		}()
	}
	wg.Wait()
	page := copyjob.ListPage{NextMarker: next}
	for i, job := range jobs {
		switch {
		case errors.Is(errs[i], copyjob.ErrNotFound):
			continue // deleted between the listing and the read
		case errors.Is(errs[i], copyjob.ErrUnavailable):
			return copyjob.ListPage{}, errs[i]
		case errs[i] != nil:
			continue // an unreadable record (not JSON) must not fail every page it is on
		}
		// The listing saw one version; the read may see a newer one. A job that no longer
		// matches is left out (the stated consistency rule).
		if !opts.Matches(copyjob.ListEntry{ID: job.ID, CreatedAt: job.CreatedAt, Status: job.Status, Owner: job.Owner, Origin: job.Origin, CopyID: job.CopyID,
			Batch: job.Batch}) {
			continue
		}
		page.Jobs = append(page.Jobs, job)
	}
	return page, nil
}

// listEntry reads what a listing needs from a record blob's metadata. Records written
// before "created" and "origin" were kept have only the status: the blob's creation
// time stands in for the job's.
func listEntry(item *container.BlobItem) copyjob.ListEntry {
	e := copyjob.ListEntry{
		ID:     strings.TrimSuffix(strings.TrimPrefix(*item.Name, recordPrefix), ".json"),
		Status: copyjob.Status(metadataValue(item.Metadata, "status")),
		Owner:  metadataOwner(item.Metadata),
		Origin: metadataUnescaped(item.Metadata, "origin"),
		CopyID: metadataValue(item.Metadata, "copyid"),
		Batch:  metadataValue(item.Metadata, "batch"),
	}
	if at, err := time.Parse(time.RFC3339Nano, metadataValue(item.Metadata, "created")); err == nil {
		e.CreatedAt = at
	} else if item.Properties != nil && item.Properties.CreationTime != nil {
		e.CreatedAt = *item.Properties.CreationTime
	}
	return e
}

// recordMetadata is what a listing filters on. Metadata values are HTTP header values:
// the owner is query-escaped so any identity (an object id is a GUID, but a name id may
// hold any character) fits; records without an owner carry no "owner" entry.
func recordMetadata(job *copyjob.Job) map[string]*string {
	md := map[string]*string{
		"status":  to.Ptr(string(job.Status)),
		"created": to.Ptr(job.CreatedAt.UTC().Format(time.RFC3339Nano)),
	}
	if job.CopyID != "" {
		md["copyid"] = to.Ptr(job.CopyID) // a GUID: finding a copy's owner is one listing
	}
	if job.Origin != "" {
		md["origin"] = to.Ptr(url.QueryEscape(job.Origin)) // api, eventgrid, webhook, batch
	}
	if job.Owner != "" {
		md["owner"] = to.Ptr(url.QueryEscape(job.Owner))
	}
	if job.Batch != "" {
		md["batch"] = to.Ptr(job.Batch) // a batch id: letters, digits and hyphens
	}
	return md
}

// metadataOwner is the owner a record's metadata names ("" when none, as for records
// written before owners were recorded, which have none).
func metadataOwner(md map[string]*string) string {
	v := metadataValue(md, "owner")
	owner, err := url.QueryUnescape(v)
	if err != nil {
		return v
	}
	return owner
}

func metadataUnescaped(md map[string]*string, key string) string {
	v := metadataValue(md, key)
	if u, err := url.QueryUnescape(v); err == nil {
		return u
	}
	return v
}

func metadataValue(md map[string]*string, key string) string {
	for k, v := range md {
		if strings.EqualFold(k, key) && v != nil {
			return *v
		}
	}
	return ""
}
