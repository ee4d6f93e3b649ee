package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/blobcopy/blobcopy/internal/app"
	"github.com/blobcopy/blobcopy/internal/copyjob"
)

// Figure 8: lists (GET /api/copies) over n job records on Azurite, through the
// in-process app's HTTP handler. Per query: the storage requests of one page (counted by
// the app's SDK policy), whether the page is what the issue asks (up to `limit` matches,
// a nextLink only while matches remain, never an empty page with one), and its time
// next to the bare SDK calls such a page needs at least: a listing of every record's
// metadata (List Blobs include=metadata, 5,000 a request) and a Get Blob per job of the
// page, 16 at a time, each decoded, timed in the same loop (interleaved).
type listFigure struct {
	Records    int       `json:"records"`
	Iterations int       `json:"iterations"`
	Rows       []listRow `json:"rows"`
}

type listRow struct {
	Query    string  `json:"query"`
	Matches  int     `json:"matches"` // among the records, by the bench's own count
	Jobs     int     `json:"jobs"`    // in the page
	NextLink bool    `json:"nextLink"`
	Right    bool    `json:"pageAsSpecified"`
	Requests int     `json:"requests"`
	Ops      string  `json:"ops"`
	P50      float64 `json:"p50ms"`
	BareP50  float64 `json:"bareP50ms"`
	Ratio    float64 `json:"ratioP50"`
}

// listedJob is what the bench knows of each record it wrote.
type listedJob struct {
	id      string
	status  copyjob.Status
	origin  string
	created time.Time
}

// listQuery is one page asked for, and what it should hold.
type listQuery struct {
	name  string
	query url.Values
	match func(listedJob) bool
	skip  int // matches before the page (a nextLink followed)
}

func runLists(e *env, n, iterations int) (*listFigure, error) {
	az, err := startAzurite(e.azuriteBin)
	if err != nil {
		return nil, err
	}
	defer az.Close()
	counter := newRequestCounter()
	a, err := e.newApp(e.settings(az, nil), counter)
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	t := time.Now()
	jobs, err := writeListRecords(ctx, a, n)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "  wrote %d records in %.1fs\n", n, time.Since(t).Seconds())
	counter.reset()

	// Newest first, as the API lists.
	slices.SortFunc(jobs, func(x, y listedJob) int {
		if c := y.created.Compare(x.created); c != 0 {
			return c
		}
		return strings.Compare(y.id, x.id)
	})
	mid := jobs[n/2].created
	window := func(j listedJob) bool {
		return j.created.After(mid.Add(-30*time.Second)) && j.created.Before(mid.Add(30*time.Second))
	}
	anything := func(listedJob) bool { return true }
	pending := func(j listedJob) bool { return j.status == copyjob.StatusPending }
	queries := []listQuery{
		{"limit=10", url.Values{"limit": {"10"}}, anything, 0},
		{"status=pending&limit=10 (1.6% of the jobs)", url.Values{"status": {"pending"}, "limit": {"10"}}, pending, 0},
		{"the nextLink of that page", nil, pending, 10},
		{"origin=eventgrid&limit=10", url.Values{"origin": {"eventgrid"}, "limit": {"10"}}, func(j listedJob) bool { return j.origin == "eventgrid" }, 0},
		{"createdAfter&createdBefore (a minute's window)&limit=10", url.Values{"limit": {"10"},
			"createdAfter": {mid.Add(-30 * time.Second).Format(time.RFC3339Nano)}, "createdBefore": {mid.Add(30 * time.Second).Format(time.RFC3339Nano)}}, window, 0},
		{"status=aborted&limit=10 (no match)", url.Values{"status": {"aborted"}, "limit": {"10"}}, func(j listedJob) bool { return j.status == copyjob.StatusAborted }, 0},
		{"limit=1000", url.Values{"limit": {"1000"}}, anything, 0},
	}
	bare := &bareLister{blobs: blobService(az).ServiceClient().NewContainerClient(app.DefaultRecords)}
	fig := &listFigure{Records: n, Iterations: iterations}
	var previous string // the nextLink of the query before
	for _, q := range queries {
		target := "/api/copies?" + q.query.Encode()
		if q.query == nil {
			if previous == "" {
				return nil, fmt.Errorf("%s: the page before had no nextLink", q.name)
			}
			target = previous
		}
		var want []listedJob
		for _, j := range jobs {
			if q.match(j) {
				want = append(want, j)
			}
		}
		limit := 100
		if l := q.query.Get("limit"); l != "" {
			fmt.Sscan(l, &limit)
		} else if u, err := url.Parse(target); err == nil {
			fmt.Sscan(u.Query().Get("limit"), &limit)
		}
		row := listRow{Query: q.name, Matches: len(want)}
		var appTimes, bareTimes []float64
		for i := range iterations + 1 { // the first round is the counted one, untimed
			counter.reset()
			t := time.Now()
			page, err := getList(a.Handler(), target)
			d := ms(time.Since(t))
			if err != nil {
				return nil, fmt.Errorf("%s: %w", q.name, err)
			}
			if i == 0 {
				ops := counter.take()
				row.Requests, row.Ops = ops.total(), ops.String()
				row.Jobs, row.NextLink = len(page.Value), page.NextLink != ""
				rest := max(len(want)-q.skip, 0)
				row.Right = row.Jobs == min(limit, rest) && row.NextLink == (rest > limit)
				for k, v := range page.Value {
					if k+q.skip >= len(want) || v.ID != want[k+q.skip].id {
						row.Right = false
						break
					}
				}
				if q.query != nil && q.query.Get("status") == "pending" {
					previous = page.NextLink
				}
				continue
			}
			appTimes = append(appTimes, d)
			t = time.Now()
			if err := bare.page(ctx, q.match, q.skip, limit); err != nil {
				return nil, fmt.Errorf("%s (bare): %w", q.name, err)
			}
			bareTimes = append(bareTimes, ms(time.Since(t)))
		}
		row.P50, row.BareP50 = median(appTimes), median(bareTimes)
		row.Ratio = ratio(row.P50, row.BareP50)
		fig.Rows = append(fig.Rows, row)
		fmt.Fprintf(os.Stderr, "  %s: %d jobs, nextLink %v, %d requests (%s), p50 %.1f ms, bare %.1f ms\n",
			q.name, row.Jobs, row.NextLink, row.Requests, row.Ops, row.P50, row.BareP50)
	}
	return fig, nil
}

// writeListRecords writes n records through the app's records port: one job a second,
// 1.6% pending, 2% failed, 1% aborted, the rest succeeded; 10% from Event Grid, 5% from
// webhooks, 5% batch children.
func writeListRecords(ctx context.Context, a *app.App, n int) ([]listedJob, error) {
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	jobs := make([]listedJob, n)
	for i := range n {
		j := listedJob{id: fmt.Sprintf("list-%06d", i), status: copyjob.StatusSuccess, origin: "api", created: base.Add(time.Duration(i) * time.Second)}
		switch {
		case i%64 == 7:
			j.status = copyjob.StatusPending
		case i%50 == 3:
			j.status = copyjob.StatusFailed
		case i%100 == 11:
			j.status = copyjob.StatusAborted
		}
		switch i % 20 {
		case 1, 2:
			j.origin = "eventgrid"
		case 5:
			j.origin = "webhook"
		case 9:
			j.origin = "batch"
		}
		jobs[i] = j
	}
	// Aborted jobs are left out of the records so that one query has no match.
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 16 {
				j := jobs[i]
				if j.status == copyjob.StatusAborted {
					continue
				}
				job := &copyjob.Job{ID: j.id, Status: j.status, Origin: j.origin, CreatedAt: j.created, UpdatedAt: j.created,
					Source:      copyjob.Source{URL: "https://src.example/c/" + j.id, Kind: copyjob.SourceExternal},
					Destination: copyjob.Destination{BlobRef: copyjob.BlobRef{Container: "dst", Blob: j.id}}}
				if err := a.Records.Create(ctx, job); err != nil {
					errs <- fmt.Errorf("record %s: %w", j.id, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	kept := jobs[:0]
	for _, j := range jobs {
		if j.status != copyjob.StatusAborted {
			kept = append(kept, j)
		}
	}
	return kept, nil
}

// getList asks the in-process handler for a list page.
func getList(h http.Handler, target string) (listAnswer, error) {
	req := httptest.NewRequest(http.MethodGet, target, nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var page listAnswer
	if rec.Code != http.StatusOK {
		return page, fmt.Errorf("GET %s: %d %s", target, rec.Code, rec.Body.String())
	}
	err := json.Unmarshal(rec.Body.Bytes(), &page)
	return page, err
}

type listAnswer struct {
	Value []struct {
		ID string `json:"id"`
	} `json:"value"`
	NextLink string `json:"nextLink"`
}

// bareLister is the least a page costs with bare SDK calls: every record's metadata
// listed, filtered and sorted newest first, then the page's records read and decoded.
type bareLister struct {
	blobs *container.Client
}

func (b *bareLister) page(ctx context.Context, match func(listedJob) bool, skip, limit int) error {
	var all []listedJob
	pager := b.blobs.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{
		Prefix: to.Ptr("jobs/"), MaxResults: to.Ptr(int32(5000)), Include: container.ListBlobsInclude{Metadata: true}})
	for pager.More() {
		resp, err := pager.NextPage(ctx)
		if err != nil {
			return err
		}
		for _, item := range resp.Segment.BlobItems {
			j := listedJob{id: strings.TrimSuffix(strings.TrimPrefix(*item.Name, "jobs/"), ".json")}
			if v := item.Metadata["status"]; v != nil {
				j.status = copyjob.Status(*v)
			}
			if v := item.Metadata["origin"]; v != nil {
				j.origin = *v
			}
			if v := item.Metadata["created"]; v != nil {
				j.created, _ = time.Parse(time.RFC3339Nano, *v)
			}
			if match(j) {
				all = append(all, j)
			}
		}
	}
	slices.SortFunc(all, func(x, y listedJob) int {
		if c := y.created.Compare(x.created); c != 0 {
			return c
		}
		return strings.Compare(y.id, x.id)
	})
	all = all[min(skip, len(all)):]
	all = all[:min(limit, len(all))]
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	errs := make([]error, len(all))
	for i, j := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			resp, err := b.blobs.NewBlobClient("jobs/"+j.id+".json").DownloadStream(ctx, nil)
			if err != nil {
				errs[i] = err
				return
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				errs[i] = err
				return
			}
			var job copyjob.Job
			errs[i] = json.Unmarshal(body, &job)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func renderLists(b *strings.Builder, f *listFigure) {
	fmt.Fprintf(b, "### 8. Lists (GET /api/copies) among %d job records on Azurite (in-process handler; ms, median of %d)\n\n", f.Records, f.Iterations)
	b.WriteString("| query | matches | jobs in the page | nextLink | as specified | storage requests | by operation | p50 | bare SDK p50 | ratio |\n|---|---:|---:|---|---|---:|---|---:|---:|---:|\n")
	worst, right := 0, true
	for _, r := range f.Rows {
		fmt.Fprintf(b, "| %s | %d | %d | %v | %v | %d | %s | %.1f | %.1f | %.2fx |\n", r.Query, r.Matches, r.Jobs, r.NextLink, verdict(r.Right),
			r.Requests, r.Ops, r.P50, r.BareP50, r.Ratio)
		if !strings.HasPrefix(r.Query, "limit=1000") {
			worst = max(worst, r.Requests)
		}
		right = right && r.Right
	}
	fmt.Fprintf(b, "\nTarget (issue 13): at most about 12 storage requests per page of 10 for 10,000 jobs: %s (at most %d); "+
		"a page holds up to `limit` matches, newest first, with a nextLink only while matches remain: %s. "+
		"The bare SDK column lists every record's metadata and reads the page's records (16 at a time), the least such a page costs.\n\n",
		verdict(worst <= 12), worst, verdict(right))
}
