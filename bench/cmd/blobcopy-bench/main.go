// Command blobcopy-bench measures blobcopy against its baselines: storage requests per
// copy lifecycle, start latency, status tick throughput, cold start and memory, and
// CPU next to the article's Python functions. It starts its own Azurite (free ports,
// in memory), the copy simulator and the handler binary, prints a table and writes
// the figures as JSON (latest.json) and Markdown (latest.md) into -out.
//
// Every figure is the median of several runs, next to its baseline measured in the
// same run. Nothing here asserts on timings.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/blobcopy/blobcopy/internal/testenv/copysim"
)

type results struct {
	Started  time.Time       `json:"started"`
	Seconds  float64         `json:"seconds"`
	Machine  machine         `json:"machine"`
	Requests *requestsFigure `json:"requests,omitempty"`
	Latency  *latencyFigure  `json:"startLatency,omitempty"`
	Ticks    *tickFigure     `json:"tickThroughput,omitempty"`
	Cold     *coldFigure     `json:"coldStart,omitempty"`
	Peer     *peerFigure     `json:"peer,omitempty"`
	Events   *eventFigure    `json:"eventDelivery,omitempty"`
	Batch    *batchFigure    `json:"batch,omitempty"`
	Lists    *listFigure     `json:"lists,omitempty"`
}

type config struct {
	runs, latIterations, launches, peerCopies int
	latRuns                                   int // figure 2's: its ratio is the median of the runs' own
	events                                    int
	sizes                                     []int
	figs                                      string
	profile                                   bool
	rtt                                       time.Duration
	// variants are more handlers timed in figure 2's loop (-compare-handler, -compare-env).
	variants []handlerVariant
}

func main() {
	if os.Getenv(bareServeEnv) != "" { // figure 2's served baseline (bareserver.go)
		if err := serveBare(); err != nil {
			fmt.Fprintln(os.Stderr, "bare server:", err)
			os.Exit(1)
		}
		return
	}
	handler := flag.String("handler", "./handler", "the handler binary (make build)")
	azBin := flag.String("azurite", ".tools/node_modules/.bin/azurite", "the azurite executable")
	out := flag.String("out", "bench/results", "where latest.json and latest.md go")
	appDir := flag.String("app-dir", ".", "the function app folder (host.json, statusfn/function.json)")
	quick := flag.Bool("quick", false, "small sizes, for trying the bench out")
	figs := flag.String("figs", "12345678", "figures to run (digits 1-8)")
	profile := flag.Bool("profile", true, "write CPU profiles of 1,000 in-process starts and of the last young and steady 10,000-job ticks (and the Get Blob Properties baseline next to them) into -out")
	compareHandler := flag.String("compare-handler", "", "figure 2 also times this handler binary in the same loop (e.g. one built from an earlier commit)")
	compareEnv := flag.String("compare-env", "", "figure 2 also times the handler started with these extra settings (KEY=VALUE,KEY=VALUE; e.g. GOMAXPROCS=1)")
	flag.Parse()

	cfg := config{runs: 3, latRuns: 5, latIterations: 200, launches: 20, peerCopies: 1000, events: 1000, sizes: []int{1000, 10000}, figs: *figs, profile: *profile, rtt: 5 * time.Millisecond}
	if *quick {
		cfg = config{runs: 2, latRuns: 2, latIterations: 30, launches: 4, peerCopies: 50, events: 200, sizes: []int{200, 1000}, figs: *figs, profile: *profile, rtt: 5 * time.Millisecond}
	}
	var err error
	if cfg.variants, err = parseVariants(*compareHandler, *compareEnv); err != nil {
		fmt.Fprintln(os.Stderr, "blobcopy-bench:", err)
		os.Exit(2)
	}
	if err := run(*handler, *azBin, *out, *appDir, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "blobcopy-bench:", err)
		os.Exit(1)
	}
}

func abs(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	return a
}

func run(handlerBin, azBin, out, appDir string, cfg config) error {
	begin := time.Now()
	res := &results{Started: begin.UTC()}
	logDir, err := os.MkdirTemp("", "blobcopy-bench-*")
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "handler logs in", logDir)
	e := &env{appDir: abs(appDir), handlerBin: abs(handlerBin), azuriteBin: abs(azBin), logDir: logDir}
	res.Machine = describeMachine(e.azuriteBin)
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	e.sim = copysim.New(copysim.Options{})
	defer e.sim.Close()
	has := func(f byte) bool { return strings.IndexByte(cfg.figs, f) >= 0 }

	step := func(name string) func() {
		t := time.Now()
		fmt.Fprintf(os.Stderr, "== %s\n", name)
		return func() { fmt.Fprintf(os.Stderr, "   (%s)\n", time.Since(t).Round(100*time.Millisecond)) }
	}

	if has('1') || has('2') || has('4') || has('5') {
		e.az, err = startAzurite(e.azuriteBin)
		if err != nil {
			return err
		}
		defer e.az.Close() // also on an error return; Close twice is harmless
		if has('1') {
			done := step("1. storage requests per copy lifecycle")
			if res.Requests, err = runRequests(e, 3); err != nil {
				return fmt.Errorf("requests: %w", err)
			}
			if err := e.articleCounts(res.Requests, 10); err != nil {
				return fmt.Errorf("article counts: %w", err)
			}
			done()
		}
		// Cold start before the latency and CPU figures: those fill Azurite with
		// thousands of blobs and it then stalls now and then (tens of seconds at 100%
		// CPU), which a start-up's create-if-missing calls would wait out.
		if has('4') {
			done := step("4. cold start and idle RSS")
			if res.Cold, err = runColdStart(e, cfg.launches); err != nil {
				return fmt.Errorf("cold start: %w", err)
			}
			done()
		}
		if has('2') || has('5') {
			h, err := e.startHandler("latency", e.settings(e.az, nil))
			if err != nil {
				return err
			}
			if has('2') {
				done := step("2. start latency")
				if res.Latency, err = runLatency(e, h, cfg.variants, cfg.latRuns, cfg.latIterations); err != nil {
					h.stop()
					return fmt.Errorf("latency: %w", err)
				}
				done()
			}
			if has('5') {
				done := step("5. CPU next to the Python peer")
				if res.Peer, err = runPeer(e, h, cfg.runs, cfg.peerCopies); err != nil {
					h.stop()
					return fmt.Errorf("peer: %w", err)
				}
				if cfg.profile {
					if err := profileStarts(e, cfg.peerCopies, filepath.Join(abs(out), "start.cpu.pprof")); err != nil {
						h.stop()
						return fmt.Errorf("profile starts: %w", err)
					}
				}
				done()
			}
			h.stop()
		}
		e.az.Close()
	}

	if has('6') {
		done := step("6. Event Grid delivery of BlobCreated events")
		if e.az, err = startAzurite(e.azuriteBin); err != nil {
			return err
		}
		res.Events, err = runEvents(e, cfg.events, cfg.runs, []int{1, 16})
		e.az.Close()
		if err != nil {
			return fmt.Errorf("events: %w", err)
		}
		done()
	}

	if has('7') {
		res.Batch = &batchFigure{}
		for _, n := range []int{60, cfg.sizes[len(cfg.sizes)-1]} {
			done := step(fmt.Sprintf("7. a batch of %d blobs", n))
			size, err := runBatch(e, n)
			if err != nil {
				return fmt.Errorf("batch of %d: %w", n, err)
			}
			res.Batch.Sizes = append(res.Batch.Sizes, size)
			done()
		}
	}

	if has('8') {
		done := step("8. lists")
		n, iterations := cfg.sizes[len(cfg.sizes)-1], 9
		if n < 10000 {
			iterations = 3
		}
		if res.Lists, err = runLists(e, n, iterations); err != nil {
			return fmt.Errorf("lists: %w", err)
		}
		done()
	}

	if has('3') {
		res.Ticks = &tickFigure{}
		mem := newMemQueue()
		defer mem.Close()
		type variant struct {
			n        int
			queue    string
			endpoint string
			handler  bool
			rtt      time.Duration // added to every request of the ticks and baselines
		}
		big := cfg.sizes[len(cfg.sizes)-1]
		variants := []variant{
			{cfg.sizes[0], "Azurite", "", false, 0},
			{cfg.sizes[0], "in-memory", mem.Endpoint(devAccount), false, 0},
			{big, "in-memory", mem.Endpoint(devAccount), true, 0},
			// Against Azure a poll mostly waits for the network; on loopback it is
			// CPU-bound. The same ticks with a 5 ms round trip per request show the
			// latency-bound regime.
			{cfg.sizes[0], "in-memory (+5 ms per request)", mem.Endpoint(devAccount), false, cfg.rtt},
		}
		rate := 80.0 // jobs/s, a first guess for Azurite's queue
		for _, v := range variants {
			done := step(fmt.Sprintf("3. status tick throughput, %d jobs, queue %s", v.n, v.queue))
			if v.endpoint != "" && v.n == big && len(res.Ticks.Sizes) > 0 {
				rate = res.Ticks.Sizes[len(res.Ticks.Sizes)-1].JobsPerSec / 2
			} else if v.endpoint != "" {
				rate = 300
			}
			// A fresh Azurite per job set: Azurite slows down and stalls more often as
			// it fills up, and one set's leftovers should not slow the next one down.
			az, err := startAzurite(e.azuriteBin)
			if err != nil {
				return err
			}
			defer az.Close() // on an error return; closed below otherwise
			e.az = az
			size := &tickSize{N: v.n, Queue: v.queue}
			prefix := ""
			if v.rtt > 0 {
				prefix = "lat"
			}
			tb := newTickBench(e, az, prefix, v.n, v.endpoint, rate)
			if v.endpoint != "" {
				tb.mem = mem
			}
			if v.rtt > 0 {
				tb.transport = newLatencyTransport(v.rtt)
			}
			var h *handlerProc
			// The handler binary polls with COPY_FIRST_POLL = COPY_MAX_POLL_INTERVAL = 1h:
			// its one tick (after the in-process ones) is a steady tick.
			const hostPoll = time.Hour
			if v.handler {
				// The largest set goes through the handler binary, whose memory is
				// figure 4's "after 10,000 jobs".
				h, err = e.startHandler("tick", tb.settings(hostPoll.String()))
				if err != nil {
					return err
				}
				time.Sleep(time.Second)
				if res.Cold == nil {
					res.Cold = &coldFigure{}
				}
				res.Cold.BigIdleRSS = rssMiB(h.pid())
				c0 := cpuSeconds(h.pid())
				if err := tb.createThroughHandler(h, hostPoll, size); err != nil {
					h.stop()
					return err
				}
				res.Cold.BigJobs, res.Cold.BigStartSeconds, res.Cold.BigStartCPU = v.n, size.CreateSeconds, cpuSeconds(h.pid())-c0
				res.Cold.BigAfterStarts = rssMiB(h.pid())
			} else if err := tb.createInProcess(size); err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "  created %d jobs in %.1fs (%.0f/s) via %s\n", v.n, size.CreateSeconds, size.CreatePerSec, size.CreatedVia)
			prof := ""
			if v.handler && cfg.profile {
				prof = filepath.Join(abs(out), fmt.Sprintf("tick%d", v.n))
			}
			if err := tb.runTicks(size, cfg.runs, prof, h, hostPoll); err != nil {
				if h != nil {
					h.stop()
				}
				return err
			}
			if h != nil {
				res.Cold.BigAfterTick = rssMiB(h.pid())
				if kib, err := procStatusKiB(h.pid(), "VmHWM"); err == nil {
					res.Cold.BigPeakRSS = float64(kib) / 1024
				}
				res.Cold.BigTickJobs, res.Cold.BigTickSeconds = size.HandlerTick.Jobs, size.HandlerTick.Seconds
				h.stop()
			}
			res.Ticks.Sizes = append(res.Ticks.Sizes, size)
			az.Close()
			done()
		}
	}

	res.Seconds = time.Since(begin).Seconds()
	table := renderTable(res)
	fmt.Println(table)
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	j, _ := json.MarshalIndent(res, "", "  ")
	if err := os.WriteFile(filepath.Join(out, "latest.json"), append(j, '\n'), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "latest.md"), []byte(table+"\n"), 0o644); err != nil {
		return err
	}
	_ = os.RemoveAll(logDir)
	fmt.Fprintf(os.Stderr, "total %s; wrote %s\n", time.Since(begin).Round(time.Second), filepath.Join(out, "latest.json"))
	return nil
}

type machine struct {
	CPUs    int    `json:"cpus"`
	Model   string `json:"model"`
	MemGiB  string `json:"memory"`
	Go      string `json:"go"`
	Azurite string `json:"azurite"`
	Python  string `json:"python"`
	Kernel  string `json:"kernel"`
}

func describeMachine(azBin string) machine {
	m := machine{CPUs: runtime.NumCPU(), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				m.Model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	if kib, err := procStatusKiBFile("/proc/meminfo", "MemTotal"); err == nil {
		m.MemGiB = fmt.Sprintf("%.1f GiB", float64(kib)/1024/1024)
	}
	if b, err := exec.Command(azBin, "--version").Output(); err == nil {
		m.Azurite = strings.TrimSpace(string(b))
	}
	if b, err := exec.Command(pythonBin, "-c", "import sys, azure.storage.blob as b; print(sys.version.split()[0], 'azure-storage-blob', b.__version__)").Output(); err == nil {
		m.Python = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}
