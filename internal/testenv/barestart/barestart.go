// Package barestart is the app's start written directly against the SDK: the baseline
// that figure 2 of `make bench` (start latency) and internal/app's BenchmarkStartCost
// (CPU per start) set the app beside. It makes the calls of a same-account start
// without an idempotency key that ends at once (issue 13): put the tracking message
// (carrying the job), Copy Blob, create the record in its outcome (with its blob index
// tag), and, after the answer, delete the message. The message and the record carry
// what the app's do (the job's fields, the ticket's, the record's four metadata keys),
// so storage does the same work for both.
package barestart

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2"
	"github.com/google/uuid"

	"github.com/blobcopy/blobcopy/internal/copyjob"
)

// Starter holds the clients and names the bare start uses.
type Starter struct {
	Blobs   *azblob.Client       // the destination's account
	Records *azblob.Client       // the records' account
	Queue   *azqueue.QueueClient // the tracking queue
	// RecordsContainer holds the records ("jobs/<id>.json").
	RecordsContainer string
	// Source is the source blob's URL, in SourceRef of the destination's account.
	Source    string
	SourceRef copyjob.BlobRef
}

// Start makes the start's critical path for the destination blob container/name and
// returns the message's deletion, which the app makes after answering.
func (s *Starter) Start(ctx context.Context, container, name string) (deleteMessage func(context.Context) error, err error) {
	now := time.Now().UTC()
	dst := s.Blobs.ServiceClient().NewContainerClient(container).NewBlobClient(name)
	ref := copyjob.BlobRef{Container: container, Blob: name}
	src := s.SourceRef
	job := copyjob.Job{
		ID:          uuid.NewString(),
		Origin:      "api",
		Source:      copyjob.Source{URL: s.Source, Kind: copyjob.SourceSameAccount, Ref: &src},
		Destination: copyjob.Destination{BlobRef: ref, URL: dst.URL()},
		Options:     copyjob.Options{Overwrite: true},
		Status:      copyjob.StatusStarting,
		CreatedAt:   now,
		UpdatedAt:   now,
		Claim:       &copyjob.Claim{Token: uuid.NewString(), Actor: "start", Until: now.Add(2 * time.Minute)},
		RequestHash: "0123456789abcdef0123456789abcdef",
	}
	trail, err := json.Marshal(map[string]any{"jobId": job.ID, "destination": ref, "polls": 0, "created": now, "job": job})
	if err != nil {
		return nil, err
	}
	msg, err := s.Queue.EnqueueMessage(ctx, string(trail), &azqueue.EnqueueMessageOptions{VisibilityTimeout: to.Ptr(int32(5)), TimeToLive: to.Ptr(int32(-1))})
	if err != nil {
		return nil, fmt.Errorf("enqueue: %w", err)
	}
	cp, err := dst.StartCopyFromURL(ctx, s.Source, nil)
	if err != nil {
		return nil, fmt.Errorf("copy: %w", err)
	}
	done := time.Now().UTC()
	job.CopyID, job.Status, job.Claim, job.Attempts, job.Tracked = *cp.CopyID, copyjob.StatusSuccess, nil, 1, true
	job.StartedAt, job.CompletedAt, job.UpdatedAt = &done, &done, done
	body, err := json.Marshal(job)
	if err != nil {
		return nil, err
	}
	rec := s.Records.ServiceClient().NewContainerClient(s.RecordsContainer).NewBlockBlobClient("jobs/" + job.ID + ".json")
	if _, err := rec.UploadBuffer(ctx, body, &blockblob.UploadBufferOptions{
		HTTPHeaders: &blob.HTTPHeaders{BlobContentType: to.Ptr("application/json")},
		Metadata: map[string]*string{"status": to.Ptr(string(job.Status)), "created": to.Ptr(now.Format(time.RFC3339Nano)),
			"origin": to.Ptr(job.Origin), "copyid": to.Ptr(job.CopyID)},
		Tags:             map[string]string{"untrackedStart": "no"},
		AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfNoneMatch: to.Ptr(azcore.ETagAny)}},
	}); err != nil {
		return nil, fmt.Errorf("create record: %w", err)
	}
	m := msg.Messages[0]
	return func(ctx context.Context) error {
		if _, err := s.Queue.DeleteMessage(ctx, *m.MessageID, *m.PopReceipt, nil); err != nil {
			return fmt.Errorf("delete message: %w", err)
		}
		return nil
	}, nil
}
