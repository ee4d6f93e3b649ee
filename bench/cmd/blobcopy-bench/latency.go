package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2"

	"github.com/blobcopy/blobcopy/internal/app"
	"github.com/blobcopy/blobcopy/internal/azstorage"
	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/funchost"
	"github.com/blobcopy/blobcopy/internal/testenv/barestart"
)

// Figure 2: start latency of POST /api/copies through the handler binary over HTTP,
// next to the bare SDK calls the app makes, in-process and behind a minimal HTTP
// server of their own (bareserver.go), timed in the same loop (interleaved, so
// Azurite's and the machine's drift hit them all alike).

type latencyRun struct {
	HandlerP50, HandlerP99 float64
	InProcP50, InProcP99   float64 // the app's handler called in this process
	CopyP50, CopyP99       float64
	SeqP50, SeqP99         float64
	FloorP50, FloorP99     float64
	ServedP50, ServedP99   float64
	Served1P50, Served1P99 float64 // the served sequence with GOMAXPROCS=1
	// Variants: p50 and p99 of the handlers of -compare-handler / -compare-env, by name.
	Variants map[string][2]float64 `json:",omitempty"`
}

type latencyFigure struct {
	Iterations int          `json:"iterationsPerRun"`
	Runs       []latencyRun `json:"runs"`
	HandlerP50 float64      `json:"handlerP50ms"`
	HandlerP99 float64      `json:"handlerP99ms"`
	// The app's own start latency: the handler the binary serves (app.Handler: the
	// same settings, logger and handler chain) called in this process, from the
	// request handed to it to its answer complete (answerFirst's flush), beside the
	// bare calls also made in this process. Neither pays a socket or net/http.
	InProcP50 float64 `json:"appInProcessP50ms"`
	InProcP99 float64 `json:"appInProcessP99ms"`
	CopyP50   float64 `json:"startCopyP50ms"`
	CopyP99   float64 `json:"startCopyP99ms"`
	SeqP50    float64 `json:"sequenceP50ms"`
	SeqP99    float64 `json:"sequenceP99ms"`
	// The handler's HTTP floor: a request it answers without storage (405 on
	// /api/openapi.json): the loopback round trip, routing, an error JSON, the access log.
	FloorP50 float64 `json:"httpFloorP50ms"`
	FloorP99 float64 `json:"httpFloorP99ms"`
	// The same sequence behind a minimal net/http server in its own process.
	ServedP50 float64 `json:"servedSequenceP50ms"`
	ServedP99 float64 `json:"servedSequenceP99ms"`
	// The same server run with GOMAXPROCS=1: on this 2-core machine shared with Azurite
	// and the bench, the faster of the two (its threads hand over less).
	Served1P50 float64 `json:"servedSequenceOneProcP50ms"`
	Served1P99 float64 `json:"servedSequenceOneProcP99ms"`
	// Ratios of medians: handler / full sequence, handler / StartCopyFromURL alone.
	RatioSeqP50  float64 `json:"ratioToSequenceP50"`
	RatioSeqP99  float64 `json:"ratioToSequenceP99"`
	RatioCopyP50 float64 `json:"ratioToStartCopyP50"`
	// handler / the served sequence: the handler's overhead beyond any HTTP function's.
	RatioServedP50 float64 `json:"ratioToServedSequenceP50"`
	RatioServedP99 float64 `json:"ratioToServedSequenceP99"`
	// The same p50 ratios taken within each run, then their median over the runs: the
	// verdict's figure. A run interleaves everything it times, so the machine's drift
	// between runs (±5-10%) cancels in its own ratio; a ratio of medians picked from
	// different runs does not cancel it.
	PairedRatioSeqP50 float64 `json:"pairedRatioToSequenceP50"`
	// The app in-process / the bare calls in-process: the verdict's reading (table.go).
	PairedRatioInProcP50 float64 `json:"pairedAppInProcessToSequenceP50"`
	PairedRatioServedP50 float64 `json:"pairedRatioToServedSequenceP50"`
	// The same against the served sequence with GOMAXPROCS=1, and what serving costs the
	// bare calls (served / in-process, each server).
	PairedRatioServed1P50 float64 `json:"pairedRatioToServedSequenceOneProcP50"`
	PairedServedToSeqP50  float64 `json:"pairedServedToSequenceP50"`
	PairedServed1ToSeqP50 float64 `json:"pairedServedOneProcToSequenceP50"`
	OrderSeed             uint64  `json:"orderSeed"`
	// Variants: p50 and p99 (median of runs) of each compared handler.
	Variants []variantLatency `json:"variants,omitempty"`
}

const (
	latContainer  = "latdst"
	bareRecords   = "barerecords"
	bareQueueName = "barequeue"
)

// bareSDK is the app's start sequence written directly against the SDK
// (internal/testenv/barestart), and Copy Blob alone.
type bareSDK struct {
	starter *barestart.Starter
	blobs   *azblob.Client
	queue   *azqueue.QueueClient
	source  string
}

func newBareSDKClients(blobs *azblob.Client, queue *azqueue.QueueClient, source string) *bareSDK {
	return &bareSDK{blobs: blobs, queue: queue, source: source, starter: &barestart.Starter{
		Blobs: blobs, Records: blobs, Queue: queue, RecordsContainer: bareRecords,
		Source: source, SourceRef: copyjob.BlobRef{Container: srcContainer, Blob: srcBlob},
	}}
}

func newBareSDK(ctx context.Context, e *env) (*bareSDK, error) {
	b := newBareSDKClients(blobService(e.az), queueClient(e.az, bareQueueName, nil), srcURL(e.az))
	for _, c := range []string{latContainer, bareRecords} {
		if _, err := b.blobs.CreateContainer(ctx, c, nil); err != nil && !bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
			return nil, err
		}
	}
	if _, err := b.queue.Create(ctx, nil); err != nil {
		return nil, err
	}
	return b, nil
}

// startCopy is Copy Blob alone.
func (b *bareSDK) startCopy(ctx context.Context, name string) error {
	bc := b.blobs.ServiceClient().NewContainerClient(latContainer).NewBlobClient(name)
	_, err := bc.StartCopyFromURL(ctx, b.source, nil)
	return err
}

// sequence is the app's start for latContainer/name (barestart.Starter.Start): its
// critical path ends with the record, and it returns the message's deletion, for
// after the answer, as the app makes it.
func (b *bareSDK) sequence(ctx context.Context, name string) (deleteMessage func(context.Context) error, err error) {
	return b.starter.Start(ctx, latContainer, name)
}

// handlerVariant is another handler timed beside the main one: another binary, or the
// same one with extra settings.
type handlerVariant struct {
	Name   string
	Binary string            // "" : the main handler binary
	Extra  map[string]string // settings added to the main handler's
}

type variantLatency struct {
	Name string  `json:"name"`
	P50  float64 `json:"p50ms"`
	P99  float64 `json:"p99ms"`
}

func parseVariants(binary, env string) ([]handlerVariant, error) {
	var vs []handlerVariant
	if binary != "" {
		vs = append(vs, handlerVariant{Name: "handler " + binary, Binary: binary})
	}
	if env != "" {
		extra := map[string]string{}
		for _, kv := range strings.Split(env, ",") {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return nil, fmt.Errorf("-compare-env: %q is not KEY=VALUE", kv)
			}
			extra[k] = v
		}
		vs = append(vs, handlerVariant{Name: "handler with " + env, Extra: extra})
	}
	return vs, nil
}

// startVariant starts a compared handler.
func (e *env) startVariant(i int, v handlerVariant) (*handlerProc, error) {
	values := e.settings(e.az, v.Extra)
	if v.Binary == "" {
		return e.startHandler(fmt.Sprintf("variant%d", i), values)
	}
	main := e.handlerBin
	e.handlerBin = abs(v.Binary)
	defer func() { e.handlerBin = main }()
	return e.startHandler(fmt.Sprintf("variant%d", i), values)
}

// settled is a queue and the message count it rests at between starts.
type settled struct {
	queue *azqueue.QueueClient
	rest  int64
}

func settledQueue(ctx context.Context, q *azqueue.QueueClient) (*settled, error) {
	n, err := messageCount(ctx, q)
	return &settled{queue: q, rest: n}, err
}

// wait returns once the queue is back at rest: the message the last start deleted
// behind its answer is gone. Without it, that deletion would run in Azurite during the
// next step of the loop and be paid by whichever step comes next (up to 0.2 ms), so a
// step's time would depend on its place in the loop, not only on its own work. Untimed.
func (s *settled) wait(ctx context.Context) error {
	for range 1000 {
		n, err := messageCount(ctx, s.queue)
		if err != nil || n <= s.rest {
			return err
		}
		time.Sleep(50 * time.Microsecond)
	}
	return fmt.Errorf("queue still holds %d messages after a start (at rest: %d)", s.rest+1, s.rest)
}

func messageCount(ctx context.Context, q *azqueue.QueueClient) (int64, error) {
	p, err := q.GetProperties(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("queue properties: %w", err)
	}
	return *p.ApproximateMessagesCount, nil
}

func runLatency(e *env, h *handlerProc, variants []handlerVariant, runs, iterations int) (*latencyFigure, error) {
	ctx := context.Background()
	bare, err := newBareSDK(ctx, e)
	if err != nil {
		return nil, err
	}
	if _, err := blobService(e.az).CreateContainer(ctx, latContainer, nil); err != nil && !bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
		return nil, err
	}
	served, err := startBareServer(e)
	if err != nil {
		return nil, err
	}
	defer served.stop()
	served1, err := startBareServer(e, "GOMAXPROCS=1")
	if err != nil {
		return nil, err
	}
	defer served1.stop()
	inProc, closeLog, err := e.inProcessApp()
	if err != nil {
		return nil, err
	}
	defer closeLog()
	others := make([]*handlerProc, len(variants))
	for i, v := range variants {
		if others[i], err = e.startVariant(i, v); err != nil {
			return nil, fmt.Errorf("%s: %w", v.Name, err)
		}
		defer others[i].stop()
	}
	const warmup = 20
	src := srcURL(e.az)
	// The handlers' queue (the main one and the variants share it) and the served
	// sequence's: each start deletes its message behind its answer.
	appQueue, err := settledQueue(ctx, queueClient(e.az, "copyjobs", nil))
	if err != nil {
		return nil, err
	}
	bareQueue, err := settledQueue(ctx, bare.queue)
	if err != nil {
		return nil, err
	}
	// Each iteration runs its steps in a new random order, so no step follows the same
	// one more often than another (a rotation keeps the same neighbours).
	const orderSeed = 13
	order := rand.New(rand.NewPCG(orderSeed, orderSeed))
	fig := &latencyFigure{Iterations: iterations, OrderSeed: orderSeed}
	for run := range runs {
		var hl, il, cl, sl, fl, vl, v1l []float64
		ol := make([][]float64, len(variants))
		for i := range warmup + iterations {
			name := fmt.Sprintf("r%d-%d", run, i)
			// timed times f into *into (past the warm-up), then runs settle untimed.
			timed := func(into *[]float64, f, settle func() error) func() error {
				return func() error {
					t := time.Now()
					err := f()
					if i >= warmup {
						*into = append(*into, ms(time.Since(t)))
					}
					if settle == nil {
						return err
					}
					return errors.Join(err, settle())
				}
			}
			post := func(base, blob string) func() error {
				return func() error {
					_, err := postCopy(base, copyBody(src, "", latContainer, blob))
					return err
				}
			}
			waitApp := func() error { return appQueue.wait(ctx) }
			waitBare := func() error { return bareQueue.wait(ctx) }
			var deleteMessage func(context.Context) error
			steps := []func() error{
				timed(&hl, post(h.base, "h-"+name), waitApp),
				func() error {
					d, err := serveTimed(inProc.Handler(), copyBody(src, "", latContainer, "i-"+name))
					if i >= warmup {
						il = append(il, ms(d))
					}
					return errors.Join(err, waitApp())
				},
				timed(&fl, func() error { return httpFloor(h.base) }, nil),
				timed(&cl, func() error { return bare.startCopy(ctx, "c-"+name) }, nil),
				timed(&vl, post(served.base, "v-"+name), waitBare),
				timed(&v1l, post(served1.base, "w-"+name), waitBare),
				timed(&sl, func() (err error) {
					deleteMessage, err = bare.sequence(ctx, "s-"+name)
					return err
				}, func() error {
					if deleteMessage == nil {
						return nil
					}
					return deleteMessage(ctx) // the message's deletion, untimed, as the app makes it after answering
				}),
			}
			for j, o := range others {
				steps = append(steps, timed(&ol[j], post(o.base, fmt.Sprintf("o%d-%s", j, name)), waitApp))
			}
			for _, k := range order.Perm(len(steps)) {
				if err := steps[k](); err != nil {
					return nil, err
				}
			}
		}
		var vr map[string][2]float64
		for j, v := range variants {
			if vr == nil {
				vr = map[string][2]float64{}
			}
			vr[v.Name] = [2]float64{percentile(ol[j], 50), percentile(ol[j], 99)}
		}
		fig.Runs = append(fig.Runs, latencyRun{
			Variants:   vr,
			HandlerP50: percentile(hl, 50), HandlerP99: percentile(hl, 99),
			InProcP50: percentile(il, 50), InProcP99: percentile(il, 99),
			CopyP50: percentile(cl, 50), CopyP99: percentile(cl, 99),
			SeqP50: percentile(sl, 50), SeqP99: percentile(sl, 99),
			FloorP50: percentile(fl, 50), FloorP99: percentile(fl, 99),
			ServedP50: percentile(vl, 50), ServedP99: percentile(vl, 99),
			Served1P50: percentile(v1l, 50), Served1P99: percentile(v1l, 99),
		})
	}
	fig.HandlerP50 = medianOf(fig.Runs, func(r latencyRun) float64 { return r.HandlerP50 })
	fig.HandlerP99 = medianOf(fig.Runs, func(r latencyRun) float64 { return r.HandlerP99 })
	fig.InProcP50 = medianOf(fig.Runs, func(r latencyRun) float64 { return r.InProcP50 })
	fig.InProcP99 = medianOf(fig.Runs, func(r latencyRun) float64 { return r.InProcP99 })
	fig.CopyP50 = medianOf(fig.Runs, func(r latencyRun) float64 { return r.CopyP50 })
	fig.CopyP99 = medianOf(fig.Runs, func(r latencyRun) float64 { return r.CopyP99 })
	fig.SeqP50 = medianOf(fig.Runs, func(r latencyRun) float64 { return r.SeqP50 })
	fig.SeqP99 = medianOf(fig.Runs, func(r latencyRun) float64 { return r.SeqP99 })
	fig.FloorP50 = medianOf(fig.Runs, func(r latencyRun) float64 { return r.FloorP50 })
	fig.FloorP99 = medianOf(fig.Runs, func(r latencyRun) float64 { return r.FloorP99 })
	fig.ServedP50 = medianOf(fig.Runs, func(r latencyRun) float64 { return r.ServedP50 })
	fig.ServedP99 = medianOf(fig.Runs, func(r latencyRun) float64 { return r.ServedP99 })
	fig.Served1P50 = medianOf(fig.Runs, func(r latencyRun) float64 { return r.Served1P50 })
	fig.Served1P99 = medianOf(fig.Runs, func(r latencyRun) float64 { return r.Served1P99 })
	fig.RatioServedP50 = ratio(fig.HandlerP50, fig.ServedP50)
	fig.RatioServedP99 = ratio(fig.HandlerP99, fig.ServedP99)
	for _, v := range variants {
		fig.Variants = append(fig.Variants, variantLatency{Name: v.Name,
			P50: medianOf(fig.Runs, func(r latencyRun) float64 { return r.Variants[v.Name][0] }),
			P99: medianOf(fig.Runs, func(r latencyRun) float64 { return r.Variants[v.Name][1] })})
	}
	fig.RatioSeqP50 = ratio(fig.HandlerP50, fig.SeqP50)
	fig.PairedRatioSeqP50 = medianOf(fig.Runs, func(r latencyRun) float64 { return ratio(r.HandlerP50, r.SeqP50) })
	fig.PairedRatioInProcP50 = medianOf(fig.Runs, func(r latencyRun) float64 { return ratio(r.InProcP50, r.SeqP50) })
	fig.PairedRatioServedP50 = medianOf(fig.Runs, func(r latencyRun) float64 { return ratio(r.HandlerP50, r.ServedP50) })
	fig.PairedRatioServed1P50 = medianOf(fig.Runs, func(r latencyRun) float64 { return ratio(r.HandlerP50, r.Served1P50) })
	fig.PairedServedToSeqP50 = medianOf(fig.Runs, func(r latencyRun) float64 { return ratio(r.ServedP50, r.SeqP50) })
	fig.PairedServed1ToSeqP50 = medianOf(fig.Runs, func(r latencyRun) float64 { return ratio(r.Served1P50, r.SeqP50) })
	fig.RatioSeqP99 = ratio(fig.HandlerP99, fig.SeqP99)
	fig.RatioCopyP50 = ratio(fig.HandlerP50, fig.CopyP50)
	return fig, nil
}

// inProcessApp builds, in this process, the app the handler binary runs: its settings
// read as the binary reads them (local.settings.json under the binary's environment),
// and the binary's logger writing to a file as the binary's lines go to its log. Its
// handler (app.Handler) is the chain the binary serves.
func (e *env) inProcessApp() (*app.App, func(), error) {
	settings, err := funchost.LoadSettings(filepath.Join(e.appDir, "local.settings.json"), binaryEnviron(e.settings(e.az, nil)))
	if err != nil {
		return nil, nil, err
	}
	f, err := os.Create(filepath.Join(e.logDir, "latency-inprocess.log"))
	if err != nil {
		return nil, nil, err
	}
	a, err := e.buildAppFrom(settings, azstorage.Options{}, app.NewLogger(f, f, slog.LevelInfo), true)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return a, func() { a.Copies.Wait(); f.Close() }, nil
}

// answerClock is the in-process handler's ResponseWriter: it notes when the answer is
// complete, at answerFirst's flush, which is when the binary's answer leaves for its
// client; the work held behind the answer (the message's deletion) runs after it.
type answerClock struct {
	*httptest.ResponseRecorder
	answered time.Time
}

func (c *answerClock) Flush() {
	if c.answered.IsZero() {
		c.answered = time.Now()
	}
	c.ResponseRecorder.Flush()
}

// serveTimed starts a copy through an in-process handler and returns the time from
// the request handed to it to its answer complete. The request is made before the
// clock starts, as the bare calls' arguments are.
func serveTimed(h http.Handler, body []byte) (time.Duration, error) {
	req := copyRequest(body)
	rec := &answerClock{ResponseRecorder: httptest.NewRecorder()}
	t := time.Now()
	h.ServeHTTP(rec, req)
	if err := startAnswered(rec.ResponseRecorder); err != nil {
		return 0, fmt.Errorf("in-process: %w", err)
	}
	if rec.answered.IsZero() {
		return 0, errors.New("in-process POST /api/copies: the answer was never flushed, so its time would include the work behind it")
	}
	return rec.answered.Sub(t), nil
}
