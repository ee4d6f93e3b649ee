package azstorage

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

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
// every document, and a blob index tag marks the starts that may need the sweep (see
// Untracked).
type Records struct {
	container *container.Client
	// noIndex: the account has a hierarchical namespace, where Azure supports no blob
	// index tags (a Put Blob carrying x-ms-tags would be refused), so records carry
	// none and Untracked lists every record instead. Set once by EnsureContainer.
	noIndex atomic.Bool
	// noSearch: Find Blobs by Tags is refused (set with noIndex, or alone when the
	// identity may write tags but not search them): Untracked lists instead.
	noSearch     atomic.Bool
	indexRefusal atomic.Value // string
}

var _ copyjob.Records = (*Records)(nil)

const recordPrefix = "jobs/"

// NewRecords returns the record store in the named container of the account.
func NewRecords(a *Account, containerName string) *Records {
	return &Records{container: a.Service.NewContainerClient(containerName)}
}

// EnsureContainer creates the container if needed and probes the blob index (see
// ProbeIndex). It fails rather than guess, so that setup runs again.
func (r *Records) EnsureContainer(ctx context.Context) error {
	_, err := r.container.Create(ctx, nil)
	if err != nil && !bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
		return fmt.Errorf("create container: %w", err)
	}
	return r.ProbeIndex(ctx)
}

// ProbeIndex learns whether records can carry blob index tags and be searched by them:
// it writes a small probe blob with a tag, then finds blobs by that tag. When storage
// refuses the tagged write for good (an account with a hierarchical namespace, which has
// no blob index, or an identity without tags/write) but takes the same write without the
// tag, records are written without tags from then on; when it refuses the search (an
// identity without blobs/filter/action), records keep their tag but are not searched.
// Either way the sweep lists every record instead (see Untracked), and IndexRefusal says
// why. A transient failure is an error: the caller tries again.
func (r *Records) ProbeIndex(ctx context.Context) error {
	probe := r.container.NewBlockBlobClient(indexProbe)
	_, tagged := probe.UploadBuffer(ctx, nil, &blockblob.UploadBufferOptions{Tags: map[string]string{sweepTag: "no"}})
	switch {
	case tagged != nil && errors.Is(mapBlobErr(tagged), copyjob.ErrUnavailable):
		return fmt.Errorf("probe the records account's blob index: %w", mapBlobErr(tagged))
	case tagged != nil:
		if _, err := probe.UploadBuffer(ctx, nil, nil); err != nil {
			return fmt.Errorf("write to the records container: %w", mapBlobErr(err))
		}
		r.noIndex.Store(true)
		r.refuseSearch(tagged)
		return nil
	}
	r.noIndex.Store(false)
	_, err := r.container.FilterBlobs(ctx, fmt.Sprintf("%q = 'yes'", sweepTag), &container.FilterBlobsOptions{MaxResults: to.Ptr(int32(1))})
	switch {
	case err != nil && errors.Is(mapBlobErr(err), copyjob.ErrUnavailable):
		return fmt.Errorf("probe the records account's blob index: %w", mapBlobErr(err))
	case err != nil:
		r.refuseSearch(err)
	default:
		r.noSearch.Store(false)
	}
	return nil
}

// refuseSearch makes Untracked list the records from now on (sticky: a refusal for good
// does not go away by itself, and a listing's marker cannot continue a search).
func (r *Records) refuseSearch(why error) {
	r.noSearch.Store(true)
	r.indexRefusal.Store(concise(mapBlobErr(why)).Error())
}

// IndexRefusal says why the sweep cannot use the blob index ("" when it can), for the
// start-up log.
func (r *Records) IndexRefusal() string {
	v, _ := r.indexRefusal.Load().(string)
	return v
}

// indexProbe is the blob EnsureContainer writes; outside "jobs/", so no listing sees it.
const indexProbe = "blobcopy-index-probe"

func (r *Records) blob(id string) *blockblob.Client {
	return r.container.NewBlockBlobClient(recordPrefix + id + ".json")
}

// Create stores a new record; copyjob.ErrExists when the id is taken.
func (r *Records) Create(ctx context.Context, job *copyjob.Job) error {
	etag, err := createJSON(ctx, r.blob(job.ID), "job", job.ID, job, r.labels(job))
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
	etag, err := updateJSON(ctx, r.blob(job.ID), "job", job.ID, job, r.labels(job), job.ETag)
	setETag(&job.ETag, etag)
	return err
}

// sweepTag is the blob index tag that marks a record copyjob.NeedsSweep holds for
// ("yes"; "no" otherwise: every write carries it, so the index never keeps a stale
// "yes" once a write has replaced it).
const sweepTag = "untrackedStart"

func (r *Records) labels(job *copyjob.Job) labels {
	l := labels{metadata: recordMetadata(job)}
	if !r.noIndex.Load() {
		l.tags = map[string]string{sweepTag: "no"}
		if copyjob.NeedsSweep(job) {
			l.tags[sweepTag] = "yes"
		}
	}
	return l
}

// Untracked finds the records tagged as untracked starts with one Find Blobs by Tags
// request per 5,000 (on an account without the blob index, it lists every record's
// metadata and returns the "starting" ones that are no batch's children). Azure updates
// the blob index asynchronously, so a record written a moment ago may be missing or
// out of date here: the sweep reads each and runs again later.
func (r *Records) Untracked(ctx context.Context, marker string) ([]string, string, error) {
	if r.noSearch.Load() {
		return r.untrackedByListing(ctx, marker)
	}
	opts := &container.FilterBlobsOptions{MaxResults: to.Ptr(int32(5000))}
	if marker != "" {
		opts.Marker = to.Ptr(marker)
	}
	resp, err := r.container.FilterBlobs(ctx, fmt.Sprintf("%q = 'yes'", sweepTag), opts)
	if err != nil && !errors.Is(mapBlobErr(err), copyjob.ErrUnavailable) {
		// Refused for good (an identity without blobs/filter/action), though the probe
		// passed: list from now on. A search's marker cannot continue a listing, so a
		// sweep past its first page starts again at the next one.
		r.refuseSearch(err)
		if marker != "" {
			return nil, "", fmt.Errorf("find the untracked starts: %w", mapBlobErr(err))
		}
		return r.untrackedByListing(ctx, "")
	}
	if err != nil {
		return nil, "", fmt.Errorf("find the untracked starts: %w", mapBlobErr(err))
	}
	var ids []string
	for _, item := range resp.Blobs {
		if item.Name == nil || !strings.HasPrefix(*item.Name, recordPrefix) {
			continue
		}
		ids = append(ids, strings.TrimSuffix(strings.TrimPrefix(*item.Name, recordPrefix), ".json"))
	}
	return ids, deref(resp.NextMarker), nil
}

// fullSweepClaim is the blob that records the last claim of the sweep's backstop
// (ClaimFullSweep), in its metadata; outside "jobs/", so no listing sees it.
const fullSweepClaim = "blobcopy-full-sweep"

// ClaimFullSweep reads the claim blob (one Get Blob Properties) and, when the last
// claim is older than interval, takes it with a conditional Put Blob: of instances
// claiming at once, one wins.
func (r *Records) ClaimFullSweep(ctx context.Context, interval time.Duration, now time.Time) (bool, error) {
	props, err := r.container.NewBlobClient(fullSweepClaim).GetProperties(ctx, nil)
	cond := &blob.ModifiedAccessConditions{IfNoneMatch: to.Ptr(azcore.ETagAny)}
	switch {
	case err == nil:
		if last, perr := time.Parse(time.RFC3339Nano, metadataValue(props.Metadata, "claimedat")); perr == nil && now.Sub(last) < interval {
			return false, nil
		}
		cond = &blob.ModifiedAccessConditions{IfMatch: props.ETag}
	case !bloberror.HasCode(err, bloberror.BlobNotFound):
		return false, fmt.Errorf("read the sweep's backstop claim: %w", mapBlobErr(err))
	}
	_, err = r.container.NewBlockBlobClient(fullSweepClaim).UploadBuffer(ctx, nil, &blockblob.UploadBufferOptions{
		Metadata:         map[string]*string{"claimedat": to.Ptr(now.UTC().Format(time.RFC3339Nano))},
		AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: cond},
	})
	switch {
	case err == nil:
		return true, nil
	case bloberror.HasCode(err, bloberror.ConditionNotMet, bloberror.BlobAlreadyExists):
		return false, nil // another instance claimed it first
	}
	return false, fmt.Errorf("claim the sweep's backstop: %w", mapBlobErr(err))
}

// untrackedByListing pages through every record's metadata (one List Blobs request
// per 5,000); the metadata does not say whether a message follows, so it returns every
// "starting" record that is no batch's child.
func (r *Records) untrackedByListing(ctx context.Context, marker string) ([]string, string, error) {
	opts := &container.ListBlobsFlatOptions{Prefix: to.Ptr(recordPrefix), MaxResults: to.Ptr(int32(5000)),
		Include: container.ListBlobsInclude{Metadata: true}}
	if marker != "" {
		opts.Marker = to.Ptr(marker)
	}
	resp, err := r.container.NewListBlobsFlatPager(opts).NextPage(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("list job records: %w", mapBlobErr(err))
	}
	var ids []string
	for _, item := range resp.Segment.BlobItems {
		if item.Name == nil {
			continue
		}
		if e := listEntry(item); e.Status == copyjob.StatusStarting && e.Batch == "" {
			ids = append(ids, e.ID)
		}
	}
	return ids, deref(resp.NextMarker), nil
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
	jobs, errs := readPage(ctx, ids, r.Get)
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
