package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/blobcopy/blobcopy/internal/testenv/azurite"
)

// Figure 5: the article's Python functions doing the same copies against the same
// Azurite, next to the handler binary's CPU for the same number of copies.

type pyResult struct {
	Copies      int            `json:"copies"`
	Checks      int            `json:"checks"`
	Wall        float64        `json:"wall_s"`
	CPU         float64        `json:"cpu_s"`
	ProcessCPU  float64        `json:"process_cpu_s"`
	Statuses    map[string]int `json:"statuses"`
	ChildCPU    float64        `json:"childCPU"` // getrusage of the child as seen by the bench
	ProcessWall float64        `json:"processWall"`
}

const pythonBin = "/usr/bin/python3"

func pythonConnString(az *azurite.Instance, blobEndpoint string) string {
	return fmt.Sprintf("DefaultEndpointsProtocol=http;AccountName=%s;AccountKey=%s;BlobEndpoint=%s;",
		devAccount, az.Key(devAccount), blobEndpoint)
}

// runPython runs the peer for count copies into container, through blobEndpoint
// (Azurite itself, or a counting proxy in front of it).
func (e *env) runPython(blobEndpoint, container, prefix string, count int, lease bool) (pyResult, error) {
	script := filepath.Join(e.appDir, "bench", "python", "article_copy.py")
	args := []string{script,
		"--connection-string", pythonConnString(e.az, blobEndpoint),
		"--source-container", srcContainer, "--source-blob", srcBlob, "--source-url", srcURL(e.az),
		"--container", container, "--prefix", prefix, "--count", fmt.Sprint(count)}
	if lease {
		args = append(args, "--lease")
	}
	cmd := exec.Command(pythonBin, args...)
	cmd.Stderr = os.Stderr
	start := time.Now()
	out, err := cmd.Output()
	if err != nil {
		return pyResult{}, fmt.Errorf("python peer: %w", err)
	}
	var r pyResult
	if err := json.Unmarshal(out, &r); err != nil {
		return r, fmt.Errorf("python peer output: %w: %s", err, out)
	}
	r.ProcessWall = time.Since(start).Seconds()
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.ChildCPU = tv(ru.Utime) + tv(ru.Stime)
	}
	if r.Statuses["success"] != count {
		return r, fmt.Errorf("python peer: statuses %v, want %d success", r.Statuses, count)
	}
	return r, nil
}

type peerRun struct {
	AppWall      float64 `json:"appWall"`
	AppCPU       float64 `json:"appCPU"`
	PyWall       float64 `json:"pyWall"`
	PyCPU        float64 `json:"pyCPU"`
	PyProcessCPU float64 `json:"pyProcessCPU"`
}

type peerFigure struct {
	Copies int       `json:"copies"`
	Runs   []peerRun `json:"runs"`
	// Medians over runs.
	AppWall      float64 `json:"appWall"`
	AppCPU       float64 `json:"appCPU"`
	PyWall       float64 `json:"pyWall"`
	PyCPU        float64 `json:"pyCPU"`
	PyProcessCPU float64 `json:"pyProcessCPU"`
	// Ratio is Python loop CPU / handler CPU (higher is better for the app).
	Ratio        float64 `json:"ratio"`
	RatioProcess float64 `json:"ratioWholeProcess"`
}

func runPeer(e *env, h *handlerProc, runs, copies int) (*peerFigure, error) {
	src := srcURL(e.az)
	fig := &peerFigure{Copies: copies}
	for r := range runs {
		var run peerRun
		c0, t0 := cpuSeconds(h.pid()), time.Now()
		for i := range copies {
			if _, err := postCopy(h.base, copyBody(src, "", "appcopies", fmt.Sprintf("r%d-%d", r, i))); err != nil {
				return nil, err
			}
		}
		run.AppWall, run.AppCPU = time.Since(t0).Seconds(), cpuSeconds(h.pid())-c0
		py, err := e.runPython(e.az.BlobEndpoint(devAccount), "pycopies", fmt.Sprintf("r%d-", r), copies, false)
		if err != nil {
			return nil, err
		}
		run.PyWall, run.PyCPU, run.PyProcessCPU = py.Wall, py.CPU, py.ChildCPU
		fig.Runs = append(fig.Runs, run)
		fmt.Fprintf(os.Stderr, "  run %d: handler %.2fs wall %.2fs CPU; python %.2fs wall %.2fs CPU (%.2fs whole process)\n",
			r+1, run.AppWall, run.AppCPU, run.PyWall, run.PyCPU, run.PyProcessCPU)
	}
	fig.AppWall = medianOf(fig.Runs, func(r peerRun) float64 { return r.AppWall })
	fig.AppCPU = medianOf(fig.Runs, func(r peerRun) float64 { return r.AppCPU })
	fig.PyWall = medianOf(fig.Runs, func(r peerRun) float64 { return r.PyWall })
	fig.PyCPU = medianOf(fig.Runs, func(r peerRun) float64 { return r.PyCPU })
	fig.PyProcessCPU = medianOf(fig.Runs, func(r peerRun) float64 { return r.PyProcessCPU })
	fig.Ratio = ratio(fig.PyCPU, fig.AppCPU)
	fig.RatioProcess = ratio(fig.PyProcessCPU, fig.AppCPU)
	return fig, nil
}

// articleCounts counts the Python peer's requests per copy through a proxy.
func (e *env) articleCounts(fig *requestsFigure, copies int) error {
	proxy, err := newCountingProxy(strings.TrimSuffix(e.az.BlobEndpoint(devAccount), "/"+devAccount))
	if err != nil {
		return err
	}
	defer proxy.Close()
	endpoint := proxy.URL() + "/" + devAccount
	for _, lease := range []bool{false, true} {
		// A first run creates the container; count a second one.
		if _, err := e.runPython(endpoint, "pycount", fmt.Sprintf("warm-%v-", lease), 1, lease); err != nil {
			return err
		}
		proxy.reset()
		if _, err := e.runPython(endpoint, "pycount", fmt.Sprintf("count-%v-", lease), copies, lease); err != nil {
			return err
		}
		c := proxy.take()
		// Per copy, minus the container existence check made once per process.
		delete(c, "Container GET ")
		delete(c, "Container HEAD ")
		per := float64(c.total()) / float64(copies)
		desc := perCopy(c, copies)
		if lease {
			fig.ArticleLease, fig.ArticleLeaseN = desc, per
		} else {
			fig.ArticlePython, fig.ArticlePythonN = desc, per
		}
	}
	return nil
}

func perCopy(c opCounts, copies int) string {
	out := opCounts{}
	for k, v := range c {
		if v > 0 {
			out[k] = v / copies
		}
	}
	return out.String()
}

// profileStarts profiles the app's CPU for same-account starts: the in-process app
// (the handler binary's code) serving POST /api/copies without a network hop.
func profileStarts(e *env, copies int, path string) error {
	a, err := e.newApp(e.settings(e.az, map[string]string{"COPY_QUEUE_NAME": "profq"}), nil)
	if err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		return err
	}
	defer pprof.StopCPUProfile()
	src := srcURL(e.az)
	unavailable := 0
	for i := range copies {
		code, _, err := serveCopy(a.Handler(), copyBody(src, "", "profcopies", fmt.Sprintf("p-%d", i)))
		if code == http.StatusServiceUnavailable && unavailable < 3 {
			// Azurite stalls now and then for tens of seconds (BENCHMARKS.md, Machine),
			// past a start's deadline: a client retries a 503, and so does the profile.
			unavailable++
			fmt.Fprintf(os.Stderr, "  note: start %d answered 503 (%v); retried after a second\n", i, err)
			time.Sleep(time.Second)
			code, _, err = serveCopy(a.Handler(), copyBody(src, "", "profcopies", fmt.Sprintf("p-%d-again", i)))
		}
		if err != nil {
			return err
		}
	}
	return nil
}
