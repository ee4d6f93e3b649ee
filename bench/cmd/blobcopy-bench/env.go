package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2"

	"github.com/blobcopy/blobcopy/internal/app"
	"github.com/blobcopy/blobcopy/internal/azstorage"
	"github.com/blobcopy/blobcopy/internal/funchost"
	"github.com/blobcopy/blobcopy/internal/testenv/azurite"
	"github.com/blobcopy/blobcopy/internal/testenv/copysim"
)

const (
	devAccount = azurite.DevAccountName
	simAccount = "simacct"
	// farSchedule keeps the standalone timer out of the way: the bench drives ticks.
	farSchedule  = "0 0 0 1 1 *"
	srcContainer = "src"
	srcBlob      = "1k.bin"
)

// env is what every figure runs against: one Azurite, the copy simulator, the
// handler binary and the app folder.
type env struct {
	az         *azurite.Instance
	sim        *copysim.Server
	appDir     string
	handlerBin string
	azuriteBin string
	logDir     string
}

func startAzurite(bin string) (*azurite.Instance, error) {
	az, err := azurite.StartProcess(bin, azurite.Options{})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := blobService(az)
	if _, err := c.CreateContainer(ctx, srcContainer, nil); err != nil && !bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
		az.Close()
		return nil, err
	}
	if _, err := c.UploadBuffer(ctx, srcContainer, srcBlob, bytes.Repeat([]byte("b"), 1024), nil); err != nil {
		az.Close()
		return nil, err
	}
	return az, nil
}

// srcURL is the 1 KiB same-account source blob on Azurite.
func srcURL(az *azurite.Instance) string {
	return az.BlobEndpoint(devAccount) + "/" + srcContainer + "/" + srcBlob
}

func blobService(az *azurite.Instance) *azblob.Client {
	cred, _ := azblob.NewSharedKeyCredential(devAccount, az.Key(devAccount))
	c, _ := azblob.NewClientWithSharedKeyCredential(az.BlobEndpoint(devAccount)+"/", cred, nil)
	return c
}

func queueClient(az *azurite.Instance, name string, opts *azqueue.ClientOptions) *azqueue.QueueClient {
	cred, _ := azqueue.NewSharedKeyCredential(devAccount, az.Key(devAccount))
	q, _ := azqueue.NewQueueClientWithSharedKeyCredential(az.QueueEndpoint(devAccount)+"/"+name, cred, opts)
	return q
}

// settings are the app settings of a bench app (in-process or the binary).
func (e *env) settings(az *azurite.Instance, extra map[string]string) map[string]string {
	v := map[string]string{
		"FUNCTIONS_WORKER_RUNTIME": "custom",
		"AzureWebJobsStorage":      az.ConnectionString(devAccount),
		"COPY_ACCOUNT_SIM":         e.sim.ConnectionString(simAccount),
		"COPY_STATUS_SCHEDULE":     farSchedule,
		"BLOBCOPY_AUTH_DISABLED":   "true",
		"BLOBCOPY_LISTEN_ADDRESS":  "127.0.0.1:0",
		"BLOBCOPY_LOG_LEVEL":       "info",
	}
	for k, val := range extra {
		v[k] = val
	}
	return v
}

// newApp builds the app in-process, counting its storage requests when counter is set.
// Its logger is the binary's (JSON, info) writing to nowhere.
func (e *env) newApp(values map[string]string, counter *requestCounter) (*app.App, error) {
	return e.newAppWith(values, counter, nil, true)
}

// newAppWith is newApp with an HTTP transport replacing azcore's default one.
func (e *env) newAppWith(values map[string]string, counter *requestCounter, transport policy.Transporter, ensure bool) (*app.App, error) {
	co := azcore.ClientOptions{Transport: transport}
	if counter != nil {
		co.PerRetryPolicies = []policy.Policy{counter}
	}
	log := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	a, err := e.buildApp(values, azstorage.Options{ClientOptions: co}, log, ensure)
	if err != nil {
		return nil, err
	}
	if counter != nil {
		counter.reset()
	}
	return a, nil
}

// buildApp builds the app in-process with storage options and a logger, and creates
// its queue and container when ensure is set.
func (e *env) buildApp(values map[string]string, storage azstorage.Options, log *slog.Logger, ensure bool) (*app.App, error) {
	return e.buildAppFrom(funchost.NewSettings(values), storage, log, ensure)
}

// buildAppFrom is buildApp with the settings already read.
func (e *env) buildAppFrom(settings funchost.Settings, storage azstorage.Options, log *slog.Logger, ensure bool) (*app.App, error) {
	a, err := app.New(e.appDir, settings, app.Options{Storage: storage, Logger: log})
	if err != nil {
		return nil, err
	}
	if !ensure {
		return a, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	t := time.Now()
	if err := a.EnsureStorage(ctx); err != nil {
		return nil, fmt.Errorf("ensure storage: %w", err)
	}
	if d := time.Since(t); d > 2*time.Second {
		fmt.Fprintf(os.Stderr, "  note: creating the app's queue and container took %s\n", d.Round(time.Millisecond))
	}
	return a, nil
}

// binaryEnviron is the environment a handler binary runs with: this process's, with
// values set (and never FUNCTIONS_CUSTOMHANDLER_PORT: the binary runs standalone). The
// binary adds the app folder's local.settings.json under it.
func binaryEnviron(values map[string]string) []string {
	environ := []string{}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if _, set := values[k]; set || k == "FUNCTIONS_CUSTOMHANDLER_PORT" {
			continue
		}
		environ = append(environ, kv)
	}
	for k, v := range values {
		environ = append(environ, k+"="+v)
	}
	return environ
}

// handlerProc is a running handler binary.
type handlerProc struct {
	cmd     *exec.Cmd
	base    string // http://127.0.0.1:port
	logPath string
	done    chan struct{}
	started time.Time
	ready   time.Duration // exec to first answer
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// probeClient answers fast: no keep-alive so every probe is a fresh connect.
var probeClient = &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// startHandler execs the handler binary standalone and waits for its first answer
// to GET /api/copies/x (a 404 is an answer).
func (e *env) startHandler(name string, values map[string]string) (*handlerProc, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	values = copyMap(values)
	values["BLOBCOPY_LISTEN_ADDRESS"] = "127.0.0.1:" + strconv.Itoa(port)
	environ := binaryEnviron(values)
	logPath := filepath.Join(e.logDir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(e.handlerBin, "-app-dir", e.appDir)
	cmd.Dir = e.appDir
	cmd.Env = environ
	cmd.Stdout, cmd.Stderr = logf, logf
	h := &handlerProc{cmd: cmd, base: "http://127.0.0.1:" + strconv.Itoa(port), logPath: logPath, done: make(chan struct{})}
	h.started = time.Now()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	go func() { _ = cmd.Wait(); logf.Close(); close(h.done) }()
	url := h.base + "/api/copies/x"
	deadline := h.started.Add(30 * time.Second)
	for {
		resp, err := probeClient.Get(url)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if h.ready == 0 {
				h.ready = time.Since(h.started) // the cold start: exec to the first answer
			}
			if resp.StatusCode != http.StatusServiceUnavailable {
				return h, nil // storage is set up too (it answers 503 until then)
			}
		}
		select {
		case <-h.done:
			return nil, fmt.Errorf("handler exited before answering: %s", tail(logPath))
		default:
		}
		if time.Now().After(deadline) {
			h.stop()
			return nil, fmt.Errorf("handler not answering after 30s: %v\n%s", err, tail(logPath))
		}
		time.Sleep(200 * time.Microsecond)
	}
}

func (h *handlerProc) pid() int { return h.cmd.Process.Pid }

func (h *handlerProc) stop() {
	_ = h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-h.done:
	case <-time.After(10 * time.Second):
		_ = h.cmd.Process.Kill()
		<-h.done
	}
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

func copyMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// procStatus reads a field of /proc/<pid>/status in KiB (VmRSS, VmHWM).
func procStatusKiB(pid int, field string) (int64, error) {
	return procStatusKiBFile("/proc/"+strconv.Itoa(pid)+"/status", field)
}

// procStatusKiBFile reads "Field: <n> kB" from a /proc file.
func procStatusKiBFile(path, field string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				break
			}
			return strconv.ParseInt(f[0], 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s in %s", field, path)
}

func rssMiB(pid int) float64 {
	kib, err := procStatusKiB(pid, "VmRSS")
	if err != nil {
		return 0
	}
	return float64(kib) / 1024
}

// clockTicks is USER_HZ, 100 on every Linux this runs on.
const clockTicks = 100

// cpuSeconds is utime+stime of a process from /proc/<pid>/stat.
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	// after the comm: state(0) ppid(1) ... utime is field 14 overall = index 11 here.
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (u + st) / clockTicks
}

// selfCPU is this process's user+system CPU seconds.
func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return tv(ru.Utime) + tv(ru.Stime)
}

func tv(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
