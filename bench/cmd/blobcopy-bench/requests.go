package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"

	"github.com/blobcopy/blobcopy/internal/app"
	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/notify"
)

// Figure 1: storage requests per copy lifecycle, counted by an azcore per-retry policy
// on every client of the in-process app; the article's sequence is counted by a proxy
// in front of Azurite while the Python peer runs.

type requestRow struct {
	Phase   string  `json:"phase"`
	App     float64 `json:"app"`
	AppOps  string  `json:"appOps"`
	Runs    []int   `json:"runs"`
	RESTMin string  `json:"restMinimum"`
	Article string  `json:"article"`
}

type requestsFigure struct {
	Rows []requestRow `json:"rows"`
	// ArticlePython: requests per copy of the Python peer, by operation.
	ArticlePython     string  `json:"articlePython"`
	ArticlePythonN    float64 `json:"articlePythonPerCopy"`
	ArticleLease      string  `json:"articlePythonLease"`
	ArticleLeaseN     float64 `json:"articlePythonLeasePerCopy"`
	AmortizedPollNote string  `json:"amortizedPollNote,omitempty"`
	Lifecycles        int     `json:"lifecycles"`
}

const reqContainer = "reqdst"

func runRequests(e *env, runs int) (*requestsFigure, error) {
	ctx := context.Background()
	counter := newRequestCounter()
	// Polls back off 1s, 2s, then stay at the longest interval (4s). The poller hides a
	// dequeued message for max(4s, ProcessingVisibility): ProcessingVisibility is not an
	// app setting (2 min by default), so the ticks run on a service built over the app's
	// own storage clients with ProcessingVisibility 1s, which makes the third poll a
	// steady one (no queue write) without waiting minutes for Azurite.
	a, err := e.newApp(e.settings(e.az, map[string]string{
		"COPY_QUEUE_NAME": "benchreq", "COPY_FIRST_POLL": "1s", "COPY_MAX_POLL_INTERVAL": "4s",
	}), counter)
	if err != nil {
		return nil, err
	}
	poller := serviceWith(a, func(c *copyjob.Config) { c.ProcessingVisibility = time.Second })
	h := a.Handler()
	if _, err := blobService(e.az).CreateContainer(ctx, reqContainer, nil); err != nil && !bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
		return nil, err
	}
	e.sim.PutBlob(simAccount, "src", "req.bin", bytes.Repeat([]byte("s"), 1024), nil)
	e.sim.PutBlob(simAccount, "src", "req-lease.bin", bytes.Repeat([]byte("s"), 1024), nil)
	e.sim.CreateContainer(simAccount, reqContainer)
	simSrc := e.sim.AccountEndpoint(simAccount) + "/src/"

	type lifecycle struct{ start, firstPoll, poll, steady, moved, done opCounts }
	var same []opCounts
	var plain, leased []lifecycle
	for r := range runs {
		counter.reset()
		if _, status, err := serveCopy(h, copyBody(srcURL(e.az), "", reqContainer, fmt.Sprintf("same-%d", r))); err != nil {
			return nil, err
		} else if status != string(copyjob.StatusSuccess) {
			return nil, fmt.Errorf("same-account copy: status %s, want success", status)
		}
		a.Copies.Wait() // its message is deleted behind the answer
		same = append(same, counter.take())

		for _, lease := range []bool{false, true} {
			name := fmt.Sprintf("pending-%v-%d", lease, r)
			src := simSrc + "req.bin"
			if lease {
				src = simSrc + "req-lease.bin"
			}
			body := copyBody(src, "sim", reqContainer, name)
			if lease {
				body = append(body[:len(body)-1], []byte(`,"leaseSource":true}`)...)
			}
			counter.reset()
			if _, status, err := serveCopy(h, body); err != nil {
				return nil, err
			} else if status != string(copyjob.StatusPending) {
				return nil, fmt.Errorf("copy into the simulator: status %s, want pending", status)
			}
			var lc lifecycle
			lc.start = counter.take()
			// While pending: the first poll reads the record (the ticket enqueued before
			// the copy started has no copy id yet); the second one backs off (2s < 4s) and
			// rewrites the message; the third finds the backoff at the longest interval and
			// the ticket unchanged, so it writes nothing; before the fourth the copy
			// progresses (as a real copy does between two polls), which changes the ticket
			// and the record. The leased copy is polled once.
			polls := 4
			if lease {
				polls = 1
			}
			for i := range polls {
				if i == 3 {
					if err := e.sim.SetProgress(simAccount, reqContainer, name, 512); err != nil {
						return nil, err
					}
				}
				c, rep, err := tickOnce(ctx, poller, counter)
				if err != nil {
					return nil, err
				}
				if rep.Pending != 1 {
					return nil, fmt.Errorf("poll: report %+v, want 1 pending", rep)
				}
				switch i {
				case 0:
					lc.firstPoll = c
				case 1:
					lc.poll = c
				case 2:
					lc.steady = c
					if c["Update Message"] != 0 {
						fmt.Fprintf(os.Stderr, "  note: the steady poll rewrote its message (%s)\n", c)
					}
				case 3:
					lc.moved = c
				}
			}
			if err := e.sim.Complete(simAccount, reqContainer, name); err != nil {
				return nil, err
			}
			c, rep, err := tickOnce(ctx, poller, counter)
			if err != nil {
				return nil, err
			}
			if rep.Completed != 1 {
				return nil, fmt.Errorf("completion: report %+v, want 1 completed", rep)
			}
			lc.done = c
			if lease {
				leased = append(leased, lc)
			} else {
				plain = append(plain, lc)
			}
		}
	}
	e.sim.ResetCounts()

	fig := &requestsFigure{Lifecycles: runs}
	row := func(phase string, cs []opCounts, rest, article string) {
		totals := make([]int, len(cs))
		vals := make([]float64, len(cs))
		for i, c := range cs {
			totals[i], vals[i] = c.total(), float64(c.total())
		}
		m := median(vals)
		ops := ""
		for _, c := range cs {
			if float64(c.total()) == m {
				ops = c.String()
				break
			}
		}
		fig.Rows = append(fig.Rows, requestRow{Phase: phase, App: m, AppOps: ops, Runs: totals, RESTMin: rest, Article: article})
	}
	pick := func(l []lifecycle, f func(lifecycle) opCounts) []opCounts {
		out := make([]opCounts, len(l))
		for i, x := range l {
			out[i] = f(x)
		}
		return out
	}
	row("start: same-account 1 KiB copy (Azurite, completes at once)", same, "1 (Copy Blob)", "1 (start_copy_from_url) + 1 check")
	row("completion of that copy", make([]opCounts, runs), "0", "0 (the check above sees success)")
	row("start: pending copy (simulator)", pick(plain, func(l lifecycle) opCounts { return l.start }), "1 (Copy Blob)", "1")
	row("first poll of a pending copy (1-job tick)", pick(plain, func(l lifecycle) opCounts { return l.firstPoll }), "1 (Get Blob Properties)", "1 (get_blob_properties)")
	row("young job: later poll while backing off, message rewritten (1-job tick)", pick(plain, func(l lifecycle) opCounts { return l.poll }), "1 (Get Blob Properties)", "1 (get_blob_properties)")
	row("steady poll: backoff at the longest interval, ticket unchanged, no queue write (1-job tick)", pick(plain, func(l lifecycle) opCounts { return l.steady }), "1 (Get Blob Properties)", "1 (get_blob_properties)")
	row("poll at the longest interval of a copy whose progress moved (1-job tick)", pick(plain, func(l lifecycle) opCounts { return l.moved }), "1 (Get Blob Properties)", "1 (get_blob_properties)")
	row("completion (tick that sees success)", pick(plain, func(l lifecycle) opCounts { return l.done }), "0 extra (the poll sees it)", "0 extra")
	row("start with leaseSource (pending)", pick(leased, func(l lifecycle) opCounts { return l.start }), "2 (Lease acquire + Copy Blob)", "3 (acquire + copy + break)")
	row("completion with leaseSource", pick(leased, func(l lifecycle) opCounts { return l.done }), "1 (release)", "0 (broken right after start)")
	return fig, nil
}

// tickOnce waits for the tracking message to become visible and runs the tick that
// dequeues it, returning only that tick's requests.
func tickOnce(ctx context.Context, svc *copyjob.Service, counter *requestCounter) (opCounts, copyjob.TickReport, error) {
	time.Sleep(time.Second)
	deadline := time.Now().Add(15 * time.Second)
	for {
		counter.reset()
		rep, err := svc.Tick(ctx)
		if err != nil {
			return nil, rep, err
		}
		if rep.Dequeued > 0 {
			return counter.take(), rep, nil
		}
		if time.Now().After(deadline) {
			return nil, rep, fmt.Errorf("no tracking message became visible")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// serviceWith builds a copy service over the app's own storage clients (so the
// request counter still sees every call) with its configuration changed by f: the
// bench sets fields that are not app settings, such as ProcessingVisibility.
func serviceWith(a *app.App, f func(*copyjob.Config)) *copyjob.Service {
	cfg := a.Copies.Config()
	f(&cfg)
	return copyjob.NewService(a.Blobs, a.Records, a.Queue, notify.NewHTTP(), cfg, a.Log)
}
