package azstorage

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"

	"github.com/blobcopy/blobcopy/internal/copyjob"
)

// A JSON document in one block blob, written with ETag concurrency and with the
// metadata a listing filters on: what the job records and the batch records share.
// kind names the document in errors ("job", "batch").

// labels are what a document is found by without reading it, written by the same Put
// Blob as the document: metadata (returned by List Blobs) and blob index tags (searched
// by Find Blobs by Tags). A write replaces both.
type labels struct {
	metadata map[string]*string
	tags     map[string]string // nil: none (an account without the blob index)
}

// putJSON writes v with its labels under the condition and returns the new ETag.
func putJSON(ctx context.Context, bc *blockblob.Client, kind, id string, v any, l labels, cond *blob.ModifiedAccessConditions) (string, error) {
	body, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("encode %s %s: %w", kind, id, err)
	}
	resp, err := bc.UploadBuffer(ctx, body, &blockblob.UploadBufferOptions{
		HTTPHeaders:      &blob.HTTPHeaders{BlobContentType: to.Ptr("application/json")},
		Metadata:         l.metadata,
		Tags:             l.tags,
		AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: cond},
	})
	if err != nil {
		return "", err
	}
	if resp.ETag == nil {
		return "", nil
	}
	return string(*resp.ETag), nil
}

// createJSON writes a new document; copyjob.ErrExists when the name is taken.
func createJSON(ctx context.Context, bc *blockblob.Client, kind, id string, v any, l labels) (string, error) {
	etag, err := putJSON(ctx, bc, kind, id, v, l, &blob.ModifiedAccessConditions{IfNoneMatch: to.Ptr(azcore.ETagAny)})
	if bloberror.HasCode(err, bloberror.BlobAlreadyExists, bloberror.ConditionNotMet) {
		return "", fmt.Errorf("%s %s: %w", kind, id, copyjob.ErrExists)
	}
	if err != nil {
		return "", fmt.Errorf("create %s record %s: %w", kind, id, mapBlobErr(err))
	}
	return etag, nil
}

// updateJSON replaces the document if its ETag is still etag; copyjob.ErrConflict
// otherwise.
func updateJSON(ctx context.Context, bc *blockblob.Client, kind, id string, v any, l labels, etag string) (string, error) {
	match := azcore.ETag(etag)
	newTag, err := putJSON(ctx, bc, kind, id, v, l, &blob.ModifiedAccessConditions{IfMatch: &match})
	if bloberror.HasCode(err, bloberror.ConditionNotMet) {
		return "", fmt.Errorf("%s %s: %w", kind, id, copyjob.ErrConflict)
	}
	if err != nil {
		return "", fmt.Errorf("update %s record %s: %w", kind, id, mapBlobErr(err))
	}
	return newTag, nil
}

// getJSON reads the document into v and returns its ETag.
func getJSON(ctx context.Context, bc *blockblob.Client, kind, id string, v any) (string, error) {
	resp, err := bc.DownloadStream(ctx, nil)
	if err != nil {
		return "", fmt.Errorf("read %s record %s: %w", kind, id, mapBlobErr(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		// The answer broke mid-body (a reset connection): transient, like a lost answer.
		return "", fmt.Errorf("read %s record %s: %w: %w", kind, id, copyjob.ErrUnavailable, concise(err))
	}
	if err := json.NewDecoder(bytes.NewReader(body)).Decode(v); err != nil {
		return "", fmt.Errorf("decode %s record %s: %w", kind, id, err)
	}
	if resp.ETag == nil {
		return "", nil
	}
	return string(*resp.ETag), nil
}
