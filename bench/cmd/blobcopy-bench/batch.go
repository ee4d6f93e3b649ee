package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/blobcopy/blobcopy/internal/batch"
)

// batchFigure is figure 7: one batch (POST /api/batches) of n blobs of the copy
// simulator's account copied into the same account, its records on Azurite; every copy
// stays pending until the bench completes it, so the ticks in between track n pending
// children. Requests are counted by the app's SDK policy (every account), except the
// bench's own reads of the batch's status.
type batchFigure struct {
	Sizes []*batchSize `json:"sizes"`
}

type batchSize struct {
	Children int `json:"children"`
	// Enumeration: from the batch's submission to every child started (counting and
	// starting, in as many ticks as it takes).
	EnumerationSeconds float64 `json:"enumerationSeconds"`
	ChildrenPerSec     float64 `json:"childrenPerSec"`
	EnumerationTicks   int     `json:"enumerationTicks"`
	// One tick over n pending children.
	PendingTickRequests int     `json:"pendingTickRequests"`
	PendingTickOps      string  `json:"pendingTickOps"`
	PendingTickSeconds  float64 `json:"pendingTickSeconds"`
	RequestsPerPending  float64 `json:"requestsPerPendingChild"`
	// The whole batch, from submission to success.
	Requests         int     `json:"requests"`
	RequestsPerChild float64 `json:"requestsPerChild"`
	Ops              string  `json:"ops"`
}

func runBatch(e *env, n int) (*batchSize, error) {
	az, err := startAzurite(e.azuriteBin)
	if err != nil {
		return nil, err
	}
	defer az.Close()
	container := fmt.Sprintf("bsrc%d", n)
	e.sim.CreateContainer(simAccount, container)
	for i := range n {
		if err := e.sim.PutBlob(simAccount, container, fmt.Sprintf("in/%06d.bin", i), []byte("batch bench"), nil); err != nil {
			return nil, err
		}
	}
	counter := newRequestCounter()
	a, err := e.newApp(e.settings(az, nil), counter)
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	size := &batchSize{Children: n}
	var all opCounts = map[string]int{}
	add := func(o opCounts) {
		for k, v := range o {
			all[k] += v
		}
	}
	dst := fmt.Sprintf("bdst%d", n)
	began := time.Now()
	b, _, err := a.Batches.Submit(ctx, batch.SubmitRequest{Source: e.sim.AccountEndpoint(simAccount) + "/" + container + "/in/",
		Destination: batch.Location{Account: "sim", Container: dst, Prefix: "out/"}})
	if err != nil {
		return nil, fmt.Errorf("submit: %w", err)
	}
	// The bench's own status reads (GET /api/batches/{id}, one after each tick) are the
	// client's, not the batch's: they are not counted.
	get := func() (*batch.Batch, error) {
		add(counter.take())
		cur, err := a.Batches.Get(ctx, b.ID)
		counter.reset()
		return cur, err
	}
	for {
		if _, err := a.Batches.Tick(ctx); err != nil {
			return nil, err
		}
		size.EnumerationTicks++
		cur, err := get()
		if err != nil {
			return nil, err
		}
		if cur.Status != batch.StatusEnumerating {
			if cur.Started != n {
				return nil, fmt.Errorf("batch %s: %d of %d children started (%s)", b.ID, cur.Started, n, cur.Status)
			}
			break
		}
		if size.EnumerationTicks > 100 {
			return nil, fmt.Errorf("batch %s still enumerating after 100 ticks", b.ID)
		}
	}
	size.EnumerationSeconds = time.Since(began).Seconds()
	size.ChildrenPerSec = float64(n) / size.EnumerationSeconds
	add(counter.take())

	t := time.Now()
	if _, err := a.Batches.Tick(ctx); err != nil {
		return nil, err
	}
	size.PendingTickSeconds = time.Since(t).Seconds()
	tick := counter.take()
	add(tick)
	size.PendingTickRequests, size.PendingTickOps = tick.total(), tick.String()
	size.RequestsPerPending = float64(tick.total()) / float64(n)

	// Every copy ends; the next ticks record the children and the batch.
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				if err := e.sim.Complete(simAccount, dst, fmt.Sprintf("out/%06d.bin", i)); err != nil {
					select {
					case errs <- err:
					default:
					}
					return
				}
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		return nil, err
	default:
	}
	for i := 0; ; i++ {
		if _, err := a.Batches.Tick(ctx); err != nil {
			return nil, err
		}
		cur, err := get()
		if err != nil {
			return nil, err
		}
		if cur.Status.Terminal() {
			if cur.Status != batch.StatusSuccess {
				return nil, fmt.Errorf("batch %s ended %s: %s", b.ID, cur.Status, cur.Summary())
			}
			break
		}
		if i > 100 {
			return nil, fmt.Errorf("batch %s not finished after 100 ticks", b.ID)
		}
	}
	add(counter.take())
	size.Requests, size.Ops = all.total(), all.String()
	size.RequestsPerChild = float64(all.total()) / float64(n)
	fmt.Fprintf(os.Stderr, "  %d children: started %.0f/s; a pending tick %d requests (%.4f per child); whole batch %.2f requests per child\n",
		n, size.ChildrenPerSec, size.PendingTickRequests, size.RequestsPerPending, size.RequestsPerChild)
	return size, nil
}

func renderBatch(b *strings.Builder, f *batchFigure) {
	b.WriteString("### 7. One batch (POST /api/batches) of a prefix in the copy simulator, records on Azurite (in-process)\n\n")
	b.WriteString("| children | enumeration | children started/s | a tick over the pending children | requests per pending child | whole batch: requests per child | by operation |\n|---:|---:|---:|---|---:|---:|---|\n")
	for _, s := range f.Sizes {
		fmt.Fprintf(b, "| %d | %.1f s (%d ticks) | %.0f | %d requests, %.2f s (%s) | %.4f | %.2f | %s |\n", s.Children, s.EnumerationSeconds,
			s.EnumerationTicks, s.ChildrenPerSec, s.PendingTickRequests, s.PendingTickSeconds, s.PendingTickOps, s.RequestsPerPending, s.RequestsPerChild, s.Ops)
	}
	b.WriteString("\nTarget: a tick costs at most 0.1 requests per pending child (plus the record writes of the children whose state changed); " +
		"the whole batch costs at most 3.5 requests per child: a child's Copy Blob, its record's creation (after the Copy Blob) and final write " +
		"(no read before it: the instance holds the record it created), plus its share of listings and batch-record writes. " +
		"The bench's own status reads are not counted.\n\n")
}
