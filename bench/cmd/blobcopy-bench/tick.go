package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2"
	"github.com/google/uuid"

	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/testenv/azurite"
	"github.com/blobcopy/blobcopy/internal/testenv/copysim"
)

// Figure 3: status tick throughput over N queued pending jobs whose destination is the
// copy simulator, next to the raw Get Blob Properties ceiling of the same simulator
// endpoint at the tick's concurrency (16), and next to the same work done with bare
// SDK calls. Two kinds of polls of pending jobs are measured:
//
//   - young jobs, whose backoff has not reached MaxPollInterval: every poll rewrites the
//     message (Update Message with the next, longer, interval);
//   - steady jobs, whose backoff is at MaxPollInterval with an unchanged ticket: the
//     dequeue already hid the message for the longest interval, so a poll is one Get
//     Blob Properties and no queue write.

const tickConcurrency = 16

type tickRun struct {
	// Kind is "first poll", "young", "young, tuned transport" or "steady".
	Kind           string  `json:"kind"`
	Jobs           int     `json:"jobs"`
	Dequeued       int     `json:"dequeued"`
	Seconds        float64 `json:"seconds"`
	JobsPerSec     float64 `json:"jobsPerSec"`
	RequestsPerJob float64 `json:"requestsPerJob"`
	Ops            string  `json:"ops"`
	// CPU seconds per wall second during the tick (1.0 = one core busy).
	AzuriteCores float64 `json:"azuriteCores"`
	AppCores     float64 `json:"appCores"`
	HiddenFor    string  `json:"hiddenFor,omitempty"`
	Profile      string  `json:"profile,omitempty"`
	// GetPropsCeiling is the raw Get Blob Properties/s measured right after this tick
	// (the machine is shared: a ceiling measured next to each run follows its noise).
	GetPropsCeiling float64 `json:"getPropsCeilingPerSec,omitempty"`
	// BareCeiling is the same work with bare SDK calls (bare young or steady poll),
	// measured right after this tick (in-memory queue only).
	BareCeiling float64 `json:"bareCeilingPerSec,omitempty"`
}

type tickSize struct {
	N             int     `json:"n"`
	Queue         string  `json:"queue"`
	CreatedVia    string  `json:"createdVia"`
	CreateSeconds float64 `json:"createSeconds"`
	CreatePerSec  float64 `json:"createPerSec"`
	// Runs are young-job ticks: each poll rewrites its message (Update Message).
	Runs       []tickRun `json:"runs"`
	JobsPerSec float64   `json:"jobsPerSec"`
	// SteadyRuns are steady ticks: backoff at the longest interval, no queue write.
	SteadyRuns       []tickRun `json:"steadyRuns"`
	SteadyJobsPerSec float64   `json:"steadyJobsPerSec"`
	// CeilingGetProps: raw Get Blob Properties/s on the simulator, 16 goroutines; the
	// median of the ceilings measured right after each young and steady tick.
	CeilingGetProps float64 `json:"ceilingGetPropsPerSec"`
	// CeilingBarePoll: dequeue + Get Blob Properties + Update Message per job with bare
	// SDK calls, 16 goroutines (a young poll's work without the app).
	CeilingBarePoll      float64 `json:"ceilingBarePollPerSec"`
	BarePollAzuriteCores float64 `json:"barePollAzuriteCores"`
	// CeilingBareSteady: dequeue + Get Blob Properties per job (a steady poll's work)
	// with bare SDK calls, 16 goroutines.
	CeilingBareSteady      float64 `json:"ceilingBareSteadyPerSec"`
	BareSteadyAzuriteCores float64 `json:"bareSteadyAzuriteCores"`
	// Ratio and SteadyRatio are the medians of each run's jobs/s over the Get Blob
	// Properties ceiling measured right after it.
	Ratio           float64 `json:"ratioToGetProps"`
	RatioBarePoll   float64 `json:"ratioToBarePoll"`
	SteadyRatio     float64 `json:"steadyRatioToGetProps"`
	SteadyRatioBare float64 `json:"steadyRatioToBareSteady"`
	// HandlerTick is one steady tick of the handler binary (COPY_FIRST_POLL =
	// COPY_MAX_POLL_INTERVAL = 1h, default ProcessingVisibility) through /statusfn.
	HandlerTick *tickRun `json:"handlerTick,omitempty"`
	// FirstPoll is the first tick after the starts: tickets enqueued before the copy
	// started carry no copy id, so each job's record is read once.
	FirstPoll *tickRun `json:"firstPollTick,omitempty"`
	// Tuned is one more young tick with an HTTP transport keeping 64 idle
	// connections per host (azcore's default keeps 10, below the tick's 16 workers).
	Tuned *tickRun `json:"tunedTransportTick,omitempty"`
}

type tickFigure struct {
	Sizes []*tickSize `json:"sizes"`
}

// tickBench holds one job set: its queue, record container and simulator container.
type tickBench struct {
	e       *env
	az      *azurite.Instance
	n       int
	name    string // queue, records container and simulator container
	names   []string
	src     string
	lastEnd time.Time // when the messages were last hidden
	hidden  time.Duration
	// rewrites counts the ticks that rewrote every message; it equals the tickets'
	// "polls" (their backoff step), which steady ticks leave unchanged.
	rewrites int
	counter  *requestCounter
	// queueEndpoint replaces Azurite's queue (the in-memory queue); "" keeps Azurite's.
	queueEndpoint string
	// rateGuess (jobs/s) sizes the first tick's hiding time.
	rateGuess float64
	// mem is the in-memory queue when queueEndpoint points at it: ticks then hide
	// messages for an hour and the bench makes them visible again between ticks.
	mem *memQueue
	// transport, when set, carries every request of the ticks and their baselines
	// (the latency variant).
	transport policy.Transporter
}

// prefix names the set's queue and containers (with n); "" picks "tick" (Azurite's
// queue) or "mem" (the in-memory queue).
func newTickBench(e *env, az *azurite.Instance, prefix string, n int, queueEndpoint string, rateGuess float64) *tickBench {
	name := prefix + strconv.Itoa(n)
	switch {
	case prefix != "":
	case queueEndpoint != "":
		name = "mem" + strconv.Itoa(n)
	default:
		name = "tick" + strconv.Itoa(n)
	}
	t := &tickBench{e: e, az: az, n: n, name: name, counter: newRequestCounter(), queueEndpoint: queueEndpoint, rateGuess: rateGuess}
	e.sim.PutBlob(simAccount, "src", "tick.bin", bytes.Repeat([]byte("t"), 1024), nil)
	e.sim.CreateContainer(simAccount, t.name)
	t.src = e.sim.AccountEndpoint(simAccount) + "/src/tick.bin"
	for i := range n {
		t.names = append(t.names, fmt.Sprintf("job-%05d", i))
	}
	return t
}

func (t *tickBench) settings(firstPoll string) map[string]string {
	v := map[string]string{
		"COPY_QUEUE_NAME":        t.name,
		"COPY_RECORDS_CONTAINER": t.name,
		"COPY_FIRST_POLL":        firstPoll,
		"COPY_MAX_POLL_INTERVAL": "1h",
	}
	if t.queueEndpoint != "" {
		v["AzureWebJobsStorage"] = fmt.Sprintf("DefaultEndpointsProtocol=http;AccountName=%s;AccountKey=%s;BlobEndpoint=%s;QueueEndpoint=%s;",
			devAccount, t.az.Key(devAccount), t.az.BlobEndpoint(devAccount), t.queueEndpoint)
	}
	return t.e.settings(t.az, v)
}

// queue is a bare client of one of the set's queues.
func (t *tickBench) queue(name string) *azqueue.QueueClient {
	var opts *azqueue.ClientOptions
	if t.transport != nil {
		opts = &azqueue.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: t.transport}}
	}
	if t.queueEndpoint == "" {
		return queueClient(t.az, name, opts)
	}
	cred, _ := azqueue.NewSharedKeyCredential(devAccount, t.az.Key(devAccount))
	q, _ := azqueue.NewQueueClientWithSharedKeyCredential(t.queueEndpoint+"/"+name, cred, opts)
	return q
}

// simContainer is a bare client of the set's simulator container.
func (t *tickBench) simContainer() *container.Client {
	var opts *azblob.ClientOptions
	if t.transport != nil {
		opts = &azblob.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: t.transport}}
	}
	cred, _ := azblob.NewSharedKeyCredential(simAccount, copysim.AccountKey)
	c, _ := azblob.NewClientWithSharedKeyCredential(t.e.sim.AccountEndpoint(simAccount)+"/", cred, opts)
	return c.ServiceClient().NewContainerClient(t.name)
}

// latencyTransport adds a fixed round-trip time to every request (a sleep, no CPU):
// on loopback every request is CPU-bound, against Azure most of a poll is waiting.
type latencyTransport struct {
	rtt  time.Duration
	next *http.Client
}

func newLatencyTransport(rtt time.Duration) *latencyTransport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	return &latencyTransport{rtt: rtt, next: &http.Client{Transport: tr}}
}

func (l *latencyTransport) Do(req *http.Request) (*http.Response, error) {
	time.Sleep(l.rtt)
	return l.next.Do(req)
}

// forEach runs f over the job names with the tick's concurrency.
func forEach(names []string, workers int, f func(string) error) error {
	ch := make(chan string)
	var (
		wg       sync.WaitGroup
		firstErr atomic.Value
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range ch {
				if err := f(n); err != nil {
					firstErr.CompareAndSwap(nil, err)
				}
			}
		}()
	}
	for _, n := range names {
		if firstErr.Load() != nil {
			break
		}
		ch <- n
	}
	close(ch)
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return err
	}
	return nil
}

// createInProcess creates the jobs with Copies.Start of an in-process app.
func (t *tickBench) createInProcess(size *tickSize) error {
	const firstPoll = 2 * time.Second
	a, err := t.e.newAppWith(t.settings(firstPoll.String()), nil, nil, true)
	if err != nil {
		return err
	}
	ctx := context.Background()
	start := time.Now()
	err = forEach(t.names, tickConcurrency, func(n string) error {
		job, _, err := a.Copies.Start(ctx, copyjob.StartRequest{
			Source:      t.src,
			Destination: copyjob.BlobRef{Account: "sim", Container: t.name, Blob: n},
		})
		if err != nil {
			return err
		}
		if job.Status != copyjob.StatusPending {
			return fmt.Errorf("job %s: %s, want pending", job.ID, job.Status)
		}
		return nil
	})
	if err != nil {
		return err
	}
	size.CreatedVia = "Copies.Start in-process, 16 goroutines"
	size.CreateSeconds = time.Since(start).Seconds()
	size.CreatePerSec = float64(t.n) / size.CreateSeconds
	t.lastEnd, t.hidden = time.Now(), firstPoll
	t.e.sim.ResetCounts()
	return nil
}

// createThroughHandler creates the jobs with POST /api/copies on a handler binary.
func (t *tickBench) createThroughHandler(h *handlerProc, firstPoll time.Duration, size *tickSize) error {
	start := time.Now()
	err := forEach(t.names, tickConcurrency, func(n string) error {
		status, err := postCopy(h.base, copyBody(t.src, "sim", t.name, n))
		if err == nil && status != 202 {
			err = fmt.Errorf("POST: %d, want 202 (pending)", status)
		}
		return err
	})
	if err != nil {
		return err
	}
	size.CreatedVia = "POST /api/copies on the handler binary, 16 clients"
	size.CreateSeconds = time.Since(start).Seconds()
	size.CreatePerSec = float64(t.n) / size.CreateSeconds
	t.lastEnd, t.hidden = time.Now(), firstPoll
	t.e.sim.ResetCounts()
	return nil
}

// waitVisible sleeps until every message hidden by the last tick (or the creation) is
// visible again.
func (t *tickBench) waitVisible() {
	if t.mem != nil {
		t.mem.makeVisible(devAccount, t.name)
		return
	}
	if d := time.Until(t.lastEnd.Add(t.hidden + 1500*time.Millisecond)); d > 0 {
		time.Sleep(d)
	}
}

// nextHide picks how long the coming tick hides each message: longer than the tick
// lasts, so that no message comes back within the tick that polled it. Azurite stalls
// now and then for 10-50 s; a tick caught in one can outlast this, and then polls
// some jobs twice (each poll is counted; the next tick finds fewer jobs visible).
func nextHide(lastTick time.Duration, n int, rateGuess float64) time.Duration {
	guess := lastTick
	if guess == 0 {
		guess = time.Duration(float64(n) / rateGuess * float64(time.Second))
	}
	h := guess*2 + 5*time.Second
	return h.Round(time.Second)
}

// tickInProcess runs one tick of a fresh in-process app configured so that the tick
// hides each message for hide. A young tick (steady false) sets FirstPoll so that the
// tickets' next backoff step is exactly hide, below MaxPollInterval (2 x hide): each
// poll rewrites its message. A steady tick sets FirstPoll = MaxPollInterval =
// ProcessingVisibility = hide: the backoff is at its longest, the dequeue hides each
// message for hide, and a poll with an unchanged ticket writes nothing.
// ProcessingVisibility is not an app setting, so the tick runs on a service built over
// the app's storage clients (serviceWith).
func (t *tickBench) tickInProcess(hide time.Duration, steady bool, profilePath string, transport policy.Transporter) (tickRun, error) {
	t.waitVisible()
	first, maxPoll := hide>>t.rewrites, 2*hide
	if steady {
		first, maxPoll = hide, hide
	}
	if transport == nil {
		transport = t.transport
	}
	a, err := t.e.newAppWith(t.settings(strconv.FormatInt(first.Milliseconds(), 10)+"ms"), t.counter, transport, false)
	if err != nil {
		return tickRun{}, err
	}
	svc := serviceWith(a, func(c *copyjob.Config) {
		c.FirstPoll, c.MaxPollInterval = first, maxPoll
		if steady {
			c.ProcessingVisibility = hide
		}
	})
	azPid := t.az.Pid()
	az0, self0 := cpuSeconds(azPid), selfCPU()
	if profilePath != "" {
		f, err := os.Create(profilePath)
		if err != nil {
			return tickRun{}, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return tickRun{}, err
		}
	}
	t.counter.reset()
	start := time.Now()
	rep, err := svc.Tick(context.Background())
	el := time.Since(start)
	if profilePath != "" {
		pprof.StopCPUProfile()
	}
	t.lastEnd, t.hidden = time.Now(), hide
	if err != nil {
		return tickRun{}, err
	}
	if !steady {
		t.rewrites++
	}
	ops := t.counter.take()
	run := tickRun{
		Jobs: rep.Pending, Dequeued: rep.Dequeued, Seconds: el.Seconds(),
		JobsPerSec:     float64(rep.Pending) / el.Seconds(),
		RequestsPerJob: float64(ops.total()) / float64(max(rep.Pending, 1)),
		Ops:            ops.String(),
		AzuriteCores:   (cpuSeconds(azPid) - az0) / el.Seconds(),
		AppCores:       (selfCPU() - self0) / el.Seconds(),
		HiddenFor:      hide.String(),
		Profile:        profilePath,
	}
	if steady && ops["Update Message"] > 0 {
		fmt.Fprintf(os.Stderr, "  note: a steady tick rewrote %d messages\n", ops["Update Message"])
	}
	if rep.Pending != t.n || rep.Dequeued != t.n {
		fmt.Fprintf(os.Stderr, "  note: tick of %d jobs dequeued %d, pending %d (report %+v)\n", t.n, rep.Dequeued, rep.Pending, rep)
	}
	t.e.sim.ResetCounts()
	return run, nil
}

var logCount = regexp.MustCompile(`\b(dequeued|pending)=(\d+)`)

// tickHandler runs one tick in a handler binary through the host's timer invocation.
// The binary runs with COPY_FIRST_POLL = COPY_MAX_POLL_INTERVAL = hostPoll (longer
// than the default ProcessingVisibility), so its tick over jobs already polled once is
// a steady one.
func (t *tickBench) tickHandler(h *handlerProc, hostPoll time.Duration) (tickRun, error) {
	t.waitVisible()
	azPid := t.az.Pid()
	az0, h0 := cpuSeconds(azPid), cpuSeconds(h.pid())
	start := time.Now()
	logs, err := invokeTimer(h.base)
	el := time.Since(start)
	t.lastEnd, t.hidden = time.Now(), hostPoll
	if err != nil {
		return tickRun{}, err
	}
	run := tickRun{Kind: "steady", Seconds: el.Seconds(), AzuriteCores: (cpuSeconds(azPid) - az0) / el.Seconds(), AppCores: (cpuSeconds(h.pid()) - h0) / el.Seconds()}
	for _, m := range logCount.FindAllStringSubmatch(strings.Join(logs, "\n"), -1) {
		n, _ := strconv.Atoi(m[2])
		if m[1] == "dequeued" {
			run.Dequeued = n
		} else {
			run.Jobs = n
		}
	}
	run.JobsPerSec = float64(run.Jobs) / el.Seconds()
	t.e.sim.ResetCounts()
	return run, nil
}

// ceilingGetProps: Get Blob Properties of every destination, 16 goroutines, bare SDK.
// With profilePath set it writes a CPU profile of the run, to set the tick's CPU per
// job next to this baseline's (client side: samples outside net/http.(*conn).serve).
func (t *tickBench) ceilingGetProps(profilePath string) (float64, error) {
	c := t.simContainer()
	ctx := context.Background()
	if profilePath != "" {
		f, err := os.Create(profilePath)
		if err != nil {
			return 0, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return 0, err
		}
		defer pprof.StopCPUProfile()
	}
	start := time.Now()
	err := forEach(t.names, tickConcurrency, func(n string) error {
		_, err := c.NewBlobClient(n).GetProperties(ctx, nil)
		return err
	})
	el := time.Since(start)
	t.e.sim.ResetCounts()
	return float64(t.n) / el.Seconds(), err
}

// ceilingBarePoll does the tick's fast path with bare SDK calls on a fresh scratch
// queue holding one ticket per job (see barePass).
func (t *tickBench) ceilingBarePoll(update bool, rep int) (perSec, azCores float64, err error) {
	scratch := "raw" + t.name + "x" + strconv.Itoa(rep)
	if !update {
		scratch = "rawsteady" + t.name + "x" + strconv.Itoa(rep)
	}
	q, err := t.newBareQueue(scratch)
	if err != nil {
		return 0, 0, err
	}
	defer q.Delete(context.Background(), nil)
	return t.barePass(q, update)
}

// newBareQueue creates a scratch queue holding one ticket per job, of the size and
// shape of the app's tickets.
func (t *tickBench) newBareQueue(name string) (*azqueue.QueueClient, error) {
	ctx := context.Background()
	q := t.queue(name)
	if _, err := q.Create(ctx, nil); err != nil {
		return nil, err
	}
	tickets := map[string]string{}
	created := time.Now().UTC()
	for _, n := range t.names {
		b, _ := json.Marshal(map[string]any{"jobId": uuid.NewString(), "destination": map[string]string{"account": "sim", "container": t.name, "blob": n},
			"copyId": uuid.NewString(), "polls": 4, "progress": map[string]int{"bytesCopied": 0, "bytesTotal": 1024}, "created": created})
		tickets[n] = string(b)
	}
	if err := forEach(t.names, tickConcurrency, func(n string) error {
		_, err := q.EnqueueMessage(ctx, tickets[n], &azqueue.EnqueueMessageOptions{TimeToLive: to.Ptr(int32(-1))})
		return err
	}); err != nil {
		return nil, err
	}
	return q, nil
}

// barePass polls every ticket of a scratch queue with bare SDK calls: dequeue 32 at a
// time while 16 workers decode each ticket, read its destination's properties and,
// when update is set (a young job's poll), hide the message again. Without update it
// is a steady poll's work: the dequeue hides the message for an hour and nothing is
// written. With the in-memory queue the caller makes the messages visible again
// for the next pass.
func (t *tickBench) barePass(q *azqueue.QueueClient, update bool) (perSec, azCores float64, err error) {
	ctx := context.Background()
	blobs := t.simContainer()
	visibility := int32(120)
	if !update {
		visibility = 3600
	}
	work := make(chan *azqueue.DequeuedMessage, 32)
	var (
		wg        sync.WaitGroup
		processed atomic.Int64
		firstErr  atomic.Value
	)
	azPid := t.az.Pid()
	az0 := cpuSeconds(azPid)
	start := time.Now()
	for range tickConcurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m := range work {
				var tk struct {
					Destination struct{ Blob string } `json:"destination"`
				}
				_ = json.Unmarshal([]byte(*m.MessageText), &tk)
				if _, err := blobs.NewBlobClient(tk.Destination.Blob).GetProperties(ctx, nil); err != nil {
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				if !update {
					processed.Add(1)
					continue
				}
				if _, err := q.UpdateMessage(ctx, *m.MessageID, *m.PopReceipt, *m.MessageText, &azqueue.UpdateMessageOptions{VisibilityTimeout: to.Ptr(int32(3600))}); err != nil {
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				processed.Add(1)
			}
		}()
	}
	for {
		resp, err := q.DequeueMessages(ctx, &azqueue.DequeueMessagesOptions{NumberOfMessages: to.Ptr(int32(32)), VisibilityTimeout: to.Ptr(visibility)})
		if err != nil {
			firstErr.CompareAndSwap(nil, err)
			break
		}
		for _, m := range resp.Messages {
			work <- m
		}
		if len(resp.Messages) < 32 {
			break
		}
	}
	close(work)
	wg.Wait()
	el := time.Since(start)
	azCores = (cpuSeconds(azPid) - az0) / el.Seconds()
	t.e.sim.ResetCounts()
	if e, _ := firstErr.Load().(error); e != nil {
		return 0, 0, e
	}
	if int(processed.Load()) != t.n {
		fmt.Fprintf(os.Stderr, "  note: a bare pass polled %d of %d tickets\n", processed.Load(), t.n)
	}
	return float64(processed.Load()) / el.Seconds(), azCores, nil
}

func (s *tickSize) summarize() {
	perRun := func(r tickRun) float64 { return ratio(r.JobsPerSec, r.GetPropsCeiling) }
	perRunBare := func(r tickRun) float64 { return ratio(r.JobsPerSec, r.BareCeiling) }
	s.CeilingGetProps = medianOf(append(slices.Clone(s.Runs), s.SteadyRuns...), func(r tickRun) float64 { return r.GetPropsCeiling })
	s.JobsPerSec = medianOf(s.Runs, func(r tickRun) float64 { return r.JobsPerSec })
	s.Ratio = medianOf(s.Runs, perRun)
	s.RatioBarePoll = ratio(s.JobsPerSec, s.CeilingBarePoll)
	if len(s.Runs) > 0 && s.Runs[0].BareCeiling > 0 { // paired with each run
		s.CeilingBarePoll = medianOf(s.Runs, func(r tickRun) float64 { return r.BareCeiling })
		s.RatioBarePoll = medianOf(s.Runs, perRunBare)
	}
	s.SteadyJobsPerSec = medianOf(s.SteadyRuns, func(r tickRun) float64 { return r.JobsPerSec })
	s.SteadyRatio = medianOf(s.SteadyRuns, perRun)
	s.SteadyRatioBare = ratio(s.SteadyJobsPerSec, s.CeilingBareSteady)
	if len(s.SteadyRuns) > 0 && s.SteadyRuns[0].BareCeiling > 0 {
		s.CeilingBareSteady = medianOf(s.SteadyRuns, func(r tickRun) float64 { return r.BareCeiling })
		s.SteadyRatioBare = medianOf(s.SteadyRuns, perRunBare)
	}
}

// runTicks measures one job set: tick 0 (every job's first poll), runs young ticks,
// one young tick with a tuned transport (in-memory queue only), runs steady ticks,
// then (when h is set) a steady tick of the handler binary through its timer
// invocation. Right after each young and steady tick it measures the raw Get Blob
// Properties ceiling and, with the in-memory queue, the same work with bare SDK calls
// (the machine is shared: a baseline measured next to each run follows its noise, and
// the ratios are medians of these pairs). With Azurite's queue the bare polls run once
// the ticks are done, on scratch queues of as many messages (the set's own queue is
// cleared first, so that the storage holds as many messages as during the ticks).
// With profileBase set, the last young and the last steady tick are profiled into
// <profileBase>.young.cpu.pprof and <profileBase>.steady.cpu.pprof, and the raw Get
// Blob Properties run after the last steady tick into <profileBase>.getprops.cpu.pprof.
func (t *tickBench) runTicks(size *tickSize, runs int, profileBase string, h *handlerProc, hostPoll time.Duration) error {
	type plan struct {
		kind      string
		steady    bool
		tuned     bool
		profile   string
		firstPoll bool
	}
	prof := func(kind string) string {
		if profileBase == "" {
			return ""
		}
		return profileBase + "." + kind + ".cpu.pprof"
	}
	ticks := []plan{{kind: "first poll", firstPoll: true}}
	for r := 1; r <= runs; r++ {
		p := plan{kind: "young"}
		if r == runs {
			p.profile = prof("young")
		}
		ticks = append(ticks, p)
	}
	if t.mem != nil && t.transport == nil { // Azurite's queue is the bound there: a tuned transport changes nothing
		ticks = append(ticks, plan{kind: "young, tuned transport", tuned: true})
	}
	for r := 1; r <= runs; r++ {
		p := plan{kind: "steady", steady: true}
		if r == runs {
			p.profile = prof("steady")
		}
		ticks = append(ticks, p)
	}
	// With the in-memory queue the bare polls are paired with the ticks, on two scratch
	// queues made visible again after each pass; Azurite's queue cannot be made
	// visible at will, so there they run once the ticks are done.
	var bareYoung, bareSteady *azqueue.QueueClient
	if t.mem != nil {
		var err error
		if bareYoung, err = t.newBareQueue("bareyoung" + t.name); err != nil {
			return err
		}
		defer bareYoung.Delete(context.Background(), nil)
		if bareSteady, err = t.newBareQueue("baresteady" + t.name); err != nil {
			return err
		}
		defer bareSteady.Delete(context.Background(), nil)
	}
	var last time.Duration
	for i, p := range ticks {
		var transport policy.Transporter
		if p.tuned {
			transport = &http.Client{Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second}}
		}
		hide := time.Hour
		if t.mem == nil {
			hide = nextHide(last, t.n, t.rateGuess)
		}
		run, err := t.tickInProcess(hide, p.steady, p.profile, transport)
		if err != nil {
			return err
		}
		run.Kind = p.kind
		last = time.Duration(run.Seconds * float64(time.Second))
		if !p.firstPoll && !p.tuned {
			ceilingProfile := ""
			if p.steady && p.profile != "" {
				ceilingProfile = prof("getprops")
			}
			if run.GetPropsCeiling, err = t.ceilingGetProps(ceilingProfile); err != nil {
				return fmt.Errorf("ceiling: %w", err)
			}
			if t.mem != nil {
				q, name := bareYoung, "bareyoung"+t.name
				if p.steady {
					q, name = bareSteady, "baresteady"+t.name
				}
				if run.BareCeiling, _, err = t.barePass(q, !p.steady); err != nil {
					return fmt.Errorf("bare poll: %w", err)
				}
				t.mem.makeVisible(devAccount, name)
			}
		}
		switch {
		case p.firstPoll:
			size.FirstPoll = &run
		case p.tuned:
			size.Tuned = &run
		case p.steady:
			size.SteadyRuns = append(size.SteadyRuns, run)
		default:
			size.Runs = append(size.Runs, run)
		}
		fmt.Fprintf(os.Stderr, "  tick %d (%s) of %d jobs: %.2fs, %.0f jobs/s, %.2f requests/job (%s), Azurite %.2f cores, app+sim %.2f cores; after it raw Get Blob Properties %.0f/s, bare poll %.0f/s\n",
			i, p.kind, t.n, run.Seconds, run.JobsPerSec, run.RequestsPerJob, run.Ops, run.AzuriteCores, run.AppCores, run.GetPropsCeiling, run.BareCeiling)
	}
	if h != nil {
		run, err := t.tickHandler(h, hostPoll)
		if err != nil {
			return err
		}
		size.HandlerTick = &run
		fmt.Fprintf(os.Stderr, "  handler binary tick (steady): %d jobs in %.2fs (%.0f/s), handler %.2f cores\n", run.Jobs, run.Seconds, run.JobsPerSec, run.AppCores)
	}
	if _, err := t.queue(t.name).ClearMessages(context.Background(), nil); err != nil {
		return fmt.Errorf("clear %s: %w", t.name, err)
	}
	// On Azurite's queue the bare polls run after the ticks, each on a fresh scratch
	// queue: the steady one as often as the ticks (median), the young one once (it is
	// Azurite-bound and slow).
	if t.mem == nil {
		bare := func(update bool, reps int) (perSec, azCores float64, err error) {
			var rates, cores []float64
			for r := range reps {
				p, c, err := t.ceilingBarePoll(update, r)
				if err != nil {
					return 0, 0, err
				}
				rates, cores = append(rates, p), append(cores, c)
			}
			return median(rates), median(cores), nil
		}
		var err error
		if size.CeilingBarePoll, size.BarePollAzuriteCores, err = bare(true, 1); err != nil {
			return fmt.Errorf("bare poll: %w", err)
		}
		if size.CeilingBareSteady, size.BareSteadyAzuriteCores, err = bare(false, runs); err != nil {
			return fmt.Errorf("bare steady poll: %w", err)
		}
	}
	size.summarize()
	fmt.Fprintf(os.Stderr, "  ceilings for %d jobs (medians): raw Get Blob Properties %.0f/s, bare young poll %.0f/s (Azurite %.2f cores), bare steady poll %.0f/s (Azurite %.2f cores)\n",
		t.n, size.CeilingGetProps, size.CeilingBarePoll, size.BarePollAzuriteCores, size.CeilingBareSteady, size.BareSteadyAzuriteCores)
	return nil
}
