package azstorage

import (
	"context"
	"sync"
)

// pageReads bounds the reads of one list page's documents in flight at once.
const pageReads = 16

// readPage reads the documents a list page names, pageReads at a time, in the page's
// order: one Get Blob each, never one per record listed.
func readPage[T any](ctx context.Context, ids []string, get func(context.Context, string) (T, error)) ([]T, []error) {
	docs := make([]T, len(ids))
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	sem := make(chan struct{}, pageReads)
	for i, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			docs[i], errs[i] = get(ctx, id)
		}()
	}
	wg.Wait()
	return docs, errs
}
