package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/blobcopy/blobcopy/internal/api"
	batchsvc "github.com/blobcopy/blobcopy/internal/batch"
	"github.com/blobcopy/blobcopy/internal/batch/batchtest"
	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/copyjob/copyjobtest"
)

// faultyBatchStore is the fake batch store, whose List and Get fail with fail when it
// is set. Its List, as azstorage.BatchRecords's (both held to batchtest/contract),
// refuses a marker it did not write with copyjob.ErrInvalidMarker: the adapter keeps its
// own keyset markers and no longer hands a caller's to List Blobs, which on Azure
// refused one it did not issue with a 400 (mapped to the permanent ErrInvalidValue).
type faultyBatchStore struct {
	*batchtest.Store
	fail error
}

func (s *faultyBatchStore) List(ctx context.Context, opts batchsvc.ListOptions) (batchsvc.Page, error) {
	if s.fail != nil {
		return batchsvc.Page{}, fmt.Errorf("list batch records: %w", s.fail)
	}
	return s.Store.List(ctx, opts)
}

func (s *faultyBatchStore) Get(ctx context.Context, id string) (*batchsvc.Batch, error) {
	if s.fail != nil {
		return nil, fmt.Errorf("read batch %s: %w", id, s.fail)
	}
	return s.Store.Get(ctx, id)
}

func newFaultyBatchFixture(t *testing.T) (*fixture, *faultyBatchStore) {
	t.Helper()
	env := copyjobtest.NewEnv()
	store := &faultyBatchStore{Store: batchtest.NewStore(env.Records)}
	f, _ := newBatchServer(t, env, store, quiet, api.Auth{Keys: []string{key}})
	return f, store
}

// TestBatchListMarkerNeverIssuedIs400: GET /api/batches?marker=<anything the service
// did not issue> is bad input, answered as GET /api/copies?marker=bogus is (400
// InvalidRequest, target marker, no Retry-After); it was 503 StorageUnavailable with
// Retry-After: 5, a retry of a request that can never succeed (on Azure; Azurite takes
// any marker: Azure/Azurite#1494). A marker the service issued still pages on.
func TestBatchListMarkerNeverIssuedIs400(t *testing.T) {
	f, _ := newFaultyBatchFixture(t)
	for range 3 {
		body := fmt.Appendf(nil, `{"source":"https://%s/src/in/","destination":{"container":"dst","prefix":"p/"}}`, copyjobtest.DefaultHost)
		if r := f.do(t, "POST", "/api/batches", body, nil); r.status != http.StatusAccepted {
			t.Fatalf("POST /api/batches: %d %s", r.status, r.body)
		}
	}
	copiesAnswer := f.do(t, "GET", "/api/copies?marker=bogus", nil, nil)
	r := f.do(t, "GET", "/api/batches?marker=bogus", nil, nil)
	e := r.azureError(t)
	if r.status != http.StatusBadRequest || e.Error.Code != string(copyjob.CodeInvalidRequest) || e.Error.Target != "marker" || r.header.Get("Retry-After") != "" {
		t.Errorf("GET /api/batches?marker=bogus = %d %s (Retry-After %q) %s; want 400 InvalidRequest on marker", r.status, e.Error.Code, r.header.Get("Retry-After"), r.body)
	}
	if ce := copiesAnswer.azureError(t); copiesAnswer.status != r.status || ce.Error.Code != e.Error.Code || ce.Error.Target != e.Error.Target ||
		ce.Error.Message != e.Error.Message {
		t.Errorf("GET /api/copies?marker=bogus = %d %s; GET /api/batches?marker=bogus = %d %s: want the same answer", copiesAnswer.status, copiesAnswer.body, r.status, r.body)
	}
	first := f.do(t, "GET", "/api/batches?limit=2", nil, nil)
	var page api.BatchListView
	if err := json.Unmarshal(first.body, &page); err != nil || first.status != http.StatusOK || page.NextLink == "" {
		t.Fatalf("first page: %d %s", first.status, first.body)
	}
	if next := f.do(t, "GET", page.NextLink, nil, nil); next.status != http.StatusOK {
		t.Errorf("GET %s (an issued marker): %d %s", page.NextLink, next.status, next.body)
	}
}

// TestBatchStoreFailuresAnswer503OnlyWhenARetryCanSucceed: a failure of the batch store
// answers as copyjob answers its records' failures: 503 StorageUnavailable with
// Retry-After only when storage was unavailable (or the error says nothing: no
// adapter classified it); a permanent refusal (the app's role lacks a permission, a
// value refused) is 500 InternalError, without Retry-After: no retry can succeed.
func TestBatchStoreFailuresAnswer503OnlyWhenARetryCanSucceed(t *testing.T) {
	for _, tc := range []struct {
		name   string
		err    error
		status int
		code   copyjob.Code
	}{
		{"unavailable", copyjob.ErrUnavailable, http.StatusServiceUnavailable, copyjob.CodeStorageUnavailable},
		{"unclassified", errors.New("an adapter's unnamed failure"), http.StatusServiceUnavailable, copyjob.CodeStorageUnavailable},
		{"forbidden", copyjob.ErrForbidden, http.StatusInternalServerError, copyjob.CodeInternal},
		{"invalid value", copyjob.ErrInvalidValue, http.StatusInternalServerError, copyjob.CodeInternal},
		{"refused", copyjob.ErrRefused, http.StatusInternalServerError, copyjob.CodeInternal},
	} {
		f, store := newFaultyBatchFixture(t)
		store.fail = tc.err
		for _, path := range []string{"/api/batches", "/api/batches/some-batch"} {
			r := f.do(t, "GET", path, nil, nil)
			e := r.azureError(t)
			wantRetryAfter := tc.status == http.StatusServiceUnavailable
			if r.status != tc.status || e.Error.Code != string(tc.code) || (r.header.Get("Retry-After") != "") != wantRetryAfter {
				t.Errorf("%s: GET %s = %d %s (Retry-After %q), want %d %s", tc.name, path, r.status, e.Error.Code, r.header.Get("Retry-After"), tc.status, tc.code)
			}
		}
	}
}
