package azstorage

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
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

func (r *Records) put(ctx context.Context, job *copyjob.Job, cond *blob.ModifiedAccessConditions) error {
	body, err := json.Marshal(job)
	if err != nil {
		return fmt.Errorf("encode job %s: %w", job.ID, err)
	}
	resp, err := r.blob(job.ID).UploadBuffer(ctx, body, &blockblob.UploadBufferOptions{
		HTTPHeaders:      &blob.HTTPHeaders{BlobContentType: to.Ptr("application/json")},
		Metadata:         recordMetadata(job),
		AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: cond},
	})
	if err != nil {
		return err
	}
	if resp.ETag != nil {
		job.ETag = string(*resp.ETag)
	}
	return nil
}

// Create stores a new record; copyjob.ErrExists when the id is taken.
func (r *Records) Create(ctx context.Context, job *copyjob.Job) error {
	err := r.put(ctx, job, &blob.ModifiedAccessConditions{IfNoneMatch: to.Ptr(azcore.ETagAny)})
	if bloberror.HasCode(err, bloberror.BlobAlreadyExists, bloberror.ConditionNotMet) {
		return fmt.Errorf("job %s: %w", job.ID, copyjob.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("create job record %s: %w", job.ID, mapBlobErr(err))
	}
	return nil
}

// Get reads a record.
func (r *Records) Get(ctx context.Context, id string) (*copyjob.Job, error) {
	resp, err := r.blob(id).DownloadStream(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("read job record %s: %w", id, mapBlobErr(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		// The answer broke mid-body (a reset connection): transient, like a lost answer.
		return nil, fmt.Errorf("read job record %s: %w: %w", id, copyjob.ErrUnavailable, concise(err))
	}
	var job copyjob.Job
	if err := json.NewDecoder(bytes.NewReader(body)).Decode(&job); err != nil {
		return nil, fmt.Errorf("decode job record %s: %w", id, err)
	}
	if resp.ETag != nil {
		job.ETag = string(*resp.ETag)
	}
	return &job, nil
}

// Update replaces a record if its ETag still matches.
func (r *Records) Update(ctx context.Context, job *copyjob.Job) error {
	etag := azcore.ETag(job.ETag)
	err := r.put(ctx, job, &blob.ModifiedAccessConditions{IfMatch: &etag})
	if bloberror.HasCode(err, bloberror.ConditionNotMet) {
		return fmt.Errorf("job %s: %w", job.ID, copyjob.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("update job record %s: %w", job.ID, mapBlobErr(err))
	}
	return nil
}

// List pages through records, filtered by status. A page may hold fewer jobs than the
// limit while NextMarker says more remain.
func (r *Records) List(ctx context.Context, opts copyjob.ListOptions) (copyjob.ListPage, error) {
	var marker *string
	if opts.Marker != "" {
		marker = to.Ptr(opts.Marker)
	}
	pager := r.container.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{
		Prefix:     to.Ptr(recordPrefix),
		Marker:     marker,
		MaxResults: to.Ptr(int32(opts.Limit)),
		Include:    container.ListBlobsInclude{Metadata: true},
	})
	resp, err := pager.NextPage(ctx)
	if err != nil {
		return copyjob.ListPage{}, fmt.Errorf("list job records: %w", mapBlobErr(err))
	}
	var page copyjob.ListPage
	for _, item := range resp.Segment.BlobItems {
		if item.Name == nil {
			continue
		}
		if opts.Status != "" && metadataValue(item.Metadata, "status") != string(opts.Status) {
			continue
		}
		if opts.ByOwner && metadataOwner(item.Metadata) != opts.Owner {
			continue // another owner's record is never read
		}
		if opts.Batch != "" && metadataValue(item.Metadata, "batch") != opts.Batch {
			continue
		}
		id := strings.TrimSuffix(strings.TrimPrefix(*item.Name, recordPrefix), ".json")
		job, err := r.Get(ctx, id)
		if err != nil {
			continue // deleted between list and read
		}
		if opts.Status != "" && job.Status != opts.Status {
			continue
		}
		if opts.ByOwner && job.Owner != opts.Owner {
			continue
		}
		if opts.Batch != "" && job.Batch != opts.Batch {
			continue
		}
		page.Jobs = append(page.Jobs, job)
	}
	page.NextMarker = deref(resp.NextMarker)
	return page, nil
}

// recordMetadata is what a listing filters on. Metadata values are HTTP header values:
// the owner is query-escaped so any identity (an object id is a GUID, but a name id may
// hold any character) fits; records without an owner carry no "owner" entry.
func recordMetadata(job *copyjob.Job) map[string]*string {
	md := map[string]*string{"status": to.Ptr(string(job.Status))}
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

func metadataValue(md map[string]*string, key string) string {
	for k, v := range md {
		if strings.EqualFold(k, key) && v != nil {
			return *v
		}
	}
	return ""
}
