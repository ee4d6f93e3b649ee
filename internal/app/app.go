// Package app wires the function app: settings -> storage clients -> copy service ->
// HTTP functions and the status timer. cmd/handler only runs it; tests build it
// in-process against Azurite and the copy simulator.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/blobcopy/blobcopy/internal/api"
	"github.com/blobcopy/blobcopy/internal/azstorage"
	"github.com/blobcopy/blobcopy/internal/batch"
	"github.com/blobcopy/blobcopy/internal/config"
	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/funchost"
	"github.com/blobcopy/blobcopy/internal/notify"
	"github.com/blobcopy/blobcopy/internal/rules"
)

// Function names: the folders holding function.json.
const (
	CopyFunction   = "copyfn"
	AbortFunction  = "abortfn"
	StatusFunction = "statusfn"
)

// Defaults of the app's own storage names.
const (
	DefaultQueue   = "copyjobs"
	DefaultRecords = "copyjobs"
)

// App is the wired function app.
type App struct {
	Settings funchost.Settings
	Host     funchost.HostConfig
	Status   funchost.FunctionConfig
	Schedule funchost.Schedule
	Copies   *copyjob.Service
	Batches  *batch.Service
	Blobs    *azstorage.Blobs
	Records  *azstorage.Records
	Queue    *azstorage.Queue
	Log      *slog.Logger

	handler http.Handler
	hosted  bool
	addr    string
	gate    storageGate
	// ticking admits one status tick at a time per process, whether the
	// host, a caller of /statusfn or the standalone scheduler asks.
	ticking sync.Mutex
}

// Options are test and tool hooks.
type Options struct {
	Storage azstorage.Options
	Logger  *slog.Logger
	// Now replaces the clock of the copy service.
	Now func() time.Time
}

// settingError names the setting at fault.
func settingError(name string, err error) error { return fmt.Errorf("setting %s: %w", name, err) }

// New reads host.json, the function folders and the settings, and builds the app.
func New(appDir string, s funchost.Settings, opts Options) (*App, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	a := &App{Settings: s, Log: log}
	var err error
	// host.json as the host runs it: with the AzureFunctionsJobHost__* app settings over it.
	if a.Host, err = funchost.LoadHost(appDir, s); err != nil {
		return nil, err
	}
	if a.Status, err = funchost.LoadFunction(appDir, StatusFunction); err != nil {
		return nil, err
	}
	timer, ok := a.Status.TimerBinding()
	if !ok {
		return nil, fmt.Errorf("%s/function.json has no timerTrigger binding", StatusFunction)
	}
	if a.addr, a.hosted, err = funchost.ListenAddress(s); err != nil {
		return nil, err
	}
	if a.hosted && !a.Host.ForwardsHTTP() {
		log.Error("host.json (with its AzureFunctionsJobHost__ app settings) sets neither customHandler.enableProxyingHttpRequest nor enableForwardingHttpRequest: the host will not forward HTTP requests to their paths")
	}
	if a.Schedule, err = statusSchedule(s, timer); err != nil {
		if !a.hosted {
			return nil, err
		}
		// Under the host the host's timer fires statusfn and owns the
		// schedule: refusing to start would only make the host restart the
		// handler until it gives up, with no timer either way.
		log.Warn("statusfn schedule not understood here; the host's timer drives statusfn", "err", err)
	}

	own, err := config.ResolveStorage(s, "AzureWebJobsStorage")
	if err != nil {
		return nil, err
	}
	accounts, err := a.accounts(own, opts.Storage)
	if err != nil {
		return nil, err
	}
	a.Blobs = azstorage.NewBlobs(accounts...)
	ownAccount := accounts[0]

	queueName := s.Get("COPY_QUEUE_NAME", DefaultQueue)
	recordsName := s.Get("COPY_RECORDS_CONTAINER", DefaultRecords)
	if err := api.ValidateContainerName(recordsName, ""); err != nil {
		return nil, settingError("COPY_RECORDS_CONTAINER", err)
	}
	a.Records = azstorage.NewRecords(ownAccount, recordsName)
	mainQ, err := azstorage.NewQueueClient(own, queueName, opts.Storage)
	if err != nil {
		return nil, settingError("COPY_QUEUE_NAME", err)
	}
	poisonQ, err := azstorage.NewQueueClient(own, queueName+"-poison", opts.Storage)
	if err != nil {
		return nil, settingError("COPY_QUEUE_NAME", err)
	}
	a.Queue = azstorage.NewQueue(mainQ, poisonQ)

	cfg, err := serviceConfig(s, a.Host)
	if err != nil {
		return nil, err
	}
	cfg.Now = opts.Now
	for _, acct := range accounts {
		// Every alias of the app's own account reaches its records (names are unique
		// in Azure; an emulator's accounts differ by name too).
		if strings.EqualFold(acct.Config.Name, own.Name) {
			for _, c := range internalContainers(recordsName) {
				cfg.InternalContainers = append(cfg.InternalContainers, copyjob.BlobRef{Account: acct.Alias, Container: c})
			}
		}
	}
	policy := api.Policy{
		AllowedDestinations: list(s.Get("COPY_ALLOWED_DESTINATIONS", "")),
		AllowedSourceHosts:  list(s.Get("COPY_ALLOWED_SOURCE_HOSTS", "")),
		AllowHTTPSources:    boolSetting(s, "COPY_ALLOW_HTTP_SOURCES"),
		InternalContainers:  internalContainers(recordsName),
		CallbackHosts:       list(s.Get("COPY_CALLBACK_ALLOWED_HOSTS", "")),
	}
	for _, acct := range accounts {
		policy.Accounts = append(policy.Accounts, api.Account{Alias: acct.Alias, Name: acct.Config.Name, BlobEndpoint: acct.Config.BlobEndpoint})
	}
	notifier, err := newNotifier(s, policy.CallbackHosts)
	if err != nil {
		return nil, err
	}
	a.Copies = copyjob.NewService(a.Blobs, a.Records, a.Queue, notifier, cfg, log)
	maxChildren, err := batchLimit(s)
	if err != nil {
		return nil, err
	}
	a.Batches = batch.NewService(batch.Deps{Copies: a.Copies, Records: a.Records, Blobs: a.Blobs,
		Store: azstorage.NewBatchRecords(ownAccount, recordsName), Storage: azstorage.NewBatchStorage(a.Blobs), Notifier: notifier},
		batch.Config{MaxChildren: maxChildren, Concurrency: cfg.Concurrency, TickBudget: cfg.TickBudget, Now: cfg.Now}, log)

	copyRules, err := rules.Parse(s.Get("COPY_RULES", ""))
	if err != nil {
		return nil, err
	}
	if err := policy.CheckRules(copyRules); err != nil {
		return nil, err
	}
	eventConcurrency, err := intSetting(s, "COPY_EVENT_CONCURRENCY")
	if err != nil {
		return nil, err
	}
	auth, err := a.auth()
	if err != nil {
		return nil, err
	}
	srv := api.NewServer(a.Copies, api.Options{
		RoutePrefix: api.HostRoutePrefix(a.Host.RoutePrefix), // "" in host.json: no prefix
		Policy:      policy,
		Auth:        auth,
		Rules:       copyRules,
		Events:      api.EventOptions{Concurrency: eventConcurrency, CopyStates: a.Blobs},
		Logger:      log,
		Batches:     a.Batches,
	})
	mux := http.NewServeMux()
	srv.Routes(mux)
	// The timer's invocation path: the host calls it over loopback when hosted; standalone
	// it needs a key like the HTTP functions (the internal scheduler does not use it).
	mux.Handle("/"+StatusFunction, srv.RequireKey(funchost.TimerHandler(StatusFunction, timer.Name, a.runTickOnce, log)))
	// Paths match as the host's routes do; storage-bound requests wait for setup.
	routes := append(srv.Paths(), "/"+StatusFunction)
	// The host's worker pings (GET /) are answered first, quietly.
	a.handler = funchost.HostPings(funchost.InvocationContext(funchost.HostRoutes(routes, srv.NotFound())(a.gate.middleware(mux))))
	return a, nil
}

// statusSchedule resolves and parses statusfn's schedule (5- or 6-field
// NCRONTAB, or a TimeSpan).
func statusSchedule(s funchost.Settings, timer funchost.Binding) (funchost.Schedule, error) {
	expr, err := s.Resolve(timer.Schedule)
	if err != nil {
		return funchost.Schedule{}, fmt.Errorf("%s schedule: %w", StatusFunction, err)
	}
	if strings.TrimSpace(expr) == "" {
		return funchost.Schedule{}, fmt.Errorf("%s schedule %q is empty: set the app setting it names", StatusFunction, timer.Schedule)
	}
	sched, err := funchost.ParseSchedule(expr)
	if err != nil {
		return funchost.Schedule{}, fmt.Errorf("%s schedule %q: %w", StatusFunction, timer.Schedule, err)
	}
	return sched, nil
}

// accounts builds the app's own account (alias "") and every COPY_ACCOUNT_<ALIAS>.
func (a *App) accounts(own config.StorageAccount, opts azstorage.Options) ([]*azstorage.Account, error) {
	first, err := azstorage.NewAccount("", own, opts)
	if err != nil {
		return nil, settingError("AzureWebJobsStorage", err)
	}
	out := []*azstorage.Account{first}
	aliases := map[string]bool{}
	for name := range a.Settings.WithPrefix("COPY_ACCOUNT_") {
		alias, _, _ := strings.Cut(strings.TrimPrefix(strings.ToUpper(name), "COPY_ACCOUNT_"), "__")
		if alias != "" {
			aliases[strings.ToLower(alias)] = true
		}
	}
	names := make([]string, 0, len(aliases))
	for n := range aliases {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, alias := range names {
		if alias == "default" {
			return nil, fmt.Errorf("COPY_ACCOUNT_DEFAULT: the alias \"default\" names the app's own account")
		}
		prefix := "COPY_ACCOUNT_" + strings.ToUpper(alias)
		cfg, err := config.ResolveStorage(a.Settings, prefix)
		if err != nil {
			return nil, err
		}
		acct, err := azstorage.NewAccount(alias, cfg, opts)
		if err != nil {
			return nil, settingError(prefix, err)
		}
		out = append(out, acct)
	}
	return out, nil
}

func (a *App) auth() (api.Auth, error) {
	trust, err := a.trustClientPrincipal()
	if err != nil {
		return api.Auth{}, err
	}
	if a.hosted {
		return api.Auth{Disabled: true, TrustClientPrincipal: trust}, nil // the host checks keys before forwarding
	}
	keys := list(a.Settings.Get("BLOBCOPY_FUNCTION_KEYS", ""))
	if len(keys) > 0 {
		return api.Auth{Keys: keys, TrustClientPrincipal: trust}, nil
	}
	if boolSetting(a.Settings, "BLOBCOPY_AUTH_DISABLED") {
		if !funchost.IsLoopbackAddress(a.addr) {
			return api.Auth{}, fmt.Errorf("BLOBCOPY_AUTH_DISABLED=true is allowed only on a loopback address, not %s", a.addr)
		}
		return api.Auth{Disabled: true, TrustClientPrincipal: trust}, nil
	}
	return api.Auth{}, errors.New("standalone mode needs BLOBCOPY_FUNCTION_KEYS (comma-separated keys) or, on loopback, BLOBCOPY_AUTH_DISABLED=true")
}

// trustClientPrincipal decides whether X-MS-CLIENT-PRINCIPAL may be believed. Only App
// Service Authentication strips that header from incoming requests, so under the host
// the setting takes effect only while the platform says its authentication is on
// (WEBSITE_AUTH_ENABLED); the operator's setting is asked too, because Flex Consumption
// documented Easy Auth as unsupported (unauthenticated callers not blocked), so the
// platform's flag alone is not taken as proof. Standalone, nothing strips it: loopback
// only, for tests.
func (a *App) trustClientPrincipal() (bool, error) {
	if !boolSetting(a.Settings, "BLOBCOPY_TRUST_CLIENT_PRINCIPAL") {
		return false, nil
	}
	if a.hosted {
		if !boolSetting(a.Settings, "WEBSITE_AUTH_ENABLED") {
			// Refusing to start would only make the host restart the handler.
			a.Log.Warn("BLOBCOPY_TRUST_CLIENT_PRINCIPAL=true but App Service Authentication is off (WEBSITE_AUTH_ENABLED is not true): X-MS-CLIENT-PRINCIPAL is ignored and every caller is a key caller")
			return false, nil
		}
		return true, nil
	}
	if !funchost.IsLoopbackAddress(a.addr) {
		return false, fmt.Errorf("BLOBCOPY_TRUST_CLIENT_PRINCIPAL=true is allowed in standalone mode only on a loopback address, not %s: nothing strips a forged X-MS-CLIENT-PRINCIPAL there", a.addr)
	}
	return true, nil
}

func serviceConfig(s funchost.Settings, host funchost.HostConfig) (copyjob.Config, error) {
	var cfg copyjob.Config
	durations := []struct {
		name string
		dst  *time.Duration
	}{
		{"COPY_SOURCE_SAS_LIFETIME", &cfg.SASLifetime},
		{"COPY_FIRST_POLL", &cfg.FirstPoll},
		{"COPY_MAX_POLL_INTERVAL", &cfg.MaxPollInterval},
		{"COPY_START_GRACE", &cfg.StartGrace},
		{"COPY_FULL_SWEEP_INTERVAL", &cfg.FullSweepInterval},
	}
	for _, d := range durations {
		if v, ok := s.Lookup(d.name); ok && v != "" {
			p, err := time.ParseDuration(v)
			if err != nil || p <= 0 {
				return cfg, fmt.Errorf("setting %s: %q is not a positive duration such as \"30s\"", d.name, v)
			}
			*d.dst = p
		}
	}
	ints := []struct {
		name string
		dst  *int
	}{
		{"COPY_MAX_FAILURES", &cfg.MaxFailures},
		{"COPY_POLL_CONCURRENCY", &cfg.Concurrency},
		{"COPY_MAX_CALLBACK_ATTEMPTS", &cfg.MaxCallbackAttempts},
	}
	for _, n := range ints {
		if v, ok := s.Lookup(n.name); ok && v != "" {
			p, err := strconv.Atoi(v)
			if err != nil || p <= 0 || p > 1000 {
				return cfg, fmt.Errorf("setting %s: %q is not an integer from 1 to 1000", n.name, v)
			}
			*n.dst = p
		}
	}
	if v := s.Get("COPY_CALLBACK_RETRY_DELAYS", ""); v != "" {
		for _, part := range strings.Split(v, ",") {
			d, err := time.ParseDuration(strings.TrimSpace(part))
			if err != nil || d <= 0 || d >= 7*24*time.Hour {
				return cfg, fmt.Errorf("setting COPY_CALLBACK_RETRY_DELAYS: %q is not a comma-separated list of positive durations under 7 days such as \"5s,5m,30m\"", v)
			}
			cfg.CallbackRetryDelays = append(cfg.CallbackRetryDelays, d)
		}
	}
	// A dequeue hides a message for the longest poll interval (copyjob's visitVisibility),
	// and Azure Queue takes at most 7 days: every tick would fail.
	if cfg.MaxPollInterval >= 7*24*time.Hour {
		return cfg, fmt.Errorf("setting COPY_MAX_POLL_INTERVAL: %s is not under 7 days (Azure Queue hides a message for at most 7 days)", cfg.MaxPollInterval)
	}
	// Leave a margin below functionTimeout so the tick reports before the host kills it.
	if host.FunctionTimeout > 0 {
		cfg.TickBudget = host.FunctionTimeout * 8 / 10
	}
	return cfg, nil
}

// newNotifier builds the completion callback sender: signed with COPY_CALLBACK_SECRET
// when set, and checking the allowlist again at send time.
func newNotifier(s funchost.Settings, callbackHosts []string) (*notify.HTTP, error) {
	opts := notify.Options{Allowed: func(u *url.URL) bool { return api.CallbackHostAllowed(u, callbackHosts) }}
	if v := s.Get("COPY_CALLBACK_SECRET", ""); v != "" {
		secret, err := notify.ParseSecret(v)
		if err != nil {
			return nil, settingError("COPY_CALLBACK_SECRET", err)
		}
		opts.Secret = secret
	}
	return notify.New(opts), nil
}

// batchLimit reads BATCH_MAX_CHILDREN: the most children one batch may have (0 when
// unset: the batch package's default, 100,000).
func batchLimit(s funchost.Settings) (int, error) {
	v, ok := s.Lookup("BATCH_MAX_CHILDREN")
	if !ok || v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 || n > 10_000_000 {
		return 0, fmt.Errorf("setting BATCH_MAX_CHILDREN: %q is not an integer from 1 to 10000000", v)
	}
	return n, nil
}

// intSetting reads an optional integer setting from 1 to 1000; 0 when unset.
func intSetting(s funchost.Settings, name string) (int, error) {
	v, ok := s.Lookup(name)
	if !ok || v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 || n > 1000 {
		return 0, fmt.Errorf("setting %s: %q is not an integer from 1 to 1000", name, v)
	}
	return n, nil
}

func list(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func boolSetting(s funchost.Settings, name string) bool {
	b, _ := strconv.ParseBool(s.Get(name, "false"))
	return b
}

// Handler serves the HTTP functions and the timer invocation path.
func (a *App) Handler() http.Handler { return a.handler }

// Hosted reports whether the Functions host runs the handler.
func (a *App) Hosted() bool { return a.hosted }

// Address is where the handler listens.
func (a *App) Address() string { return a.addr }

// EnsureStorage creates the app's queue, poison queue and records container;
// once it has succeeded, requests needing them are served.
func (a *App) EnsureStorage(ctx context.Context) error {
	if err := a.Records.EnsureContainer(ctx); err != nil {
		return err
	}
	if why := a.Records.IndexRefusal(); why != "" {
		a.Log.WarnContext(ctx, "the records' blob index cannot be used: the sweep for untracked starts lists every record instead (see docs/operations.md)", "err", why)
	}
	if err := a.Queue.EnsureQueues(ctx); err != nil {
		return err
	}
	a.gate.ready.Store(true)
	return nil
}

// runTickOnce is statusfn with at most one tick per process at a time: a call
// while a tick runs returns funchost.ErrAlreadyRunning at once (409 over HTTP,
// a logged skip for the scheduler) rather than waiting, since the running tick
// already does what the second would.
func (a *App) runTickOnce(ctx context.Context, info funchost.TimerInfo, log *funchost.InvocationLog) error {
	if !a.ticking.TryLock() {
		return funchost.ErrAlreadyRunning
	}
	defer a.ticking.Unlock()
	return a.runTick(ctx, info, log)
}

// runTick is statusfn: one status tick, its report logged into the invocation's Logs.
// The batch tick (enumeration and tracking of batches) runs beside the copy tick,
// within the same budget.
func (a *App) runTick(ctx context.Context, info funchost.TimerInfo, log *funchost.InvocationLog) error {
	start := time.Now()
	batchDone := make(chan error, 1)
	go func() {
		br, err := a.Batches.Tick(ctx)
		args := []any{"operation", "batchTick", "batches", br.Batches, "started", br.Started, "changed", br.Changed,
			"resumed", br.Resumed, "aborted", br.Aborted, "finished", br.Finished, "listings", br.Listings, "budgetExhausted", br.BudgetExhausted}
		if err != nil {
			log.Error("batch tick failed", append(args, "err", err)...)
		} else if br.Batches > 0 {
			log.Info("batch tick done", args...)
		}
		batchDone <- err
	}()
	report, err := a.Copies.Tick(ctx)
	if berr := <-batchDone; err == nil {
		err = berr
	}
	args := []any{"operation", "statusTick", "pastDue", info.IsPastDue, "duration", time.Since(start).String(),
		"dequeued", report.Dequeued, "pending", report.Pending, "completed", report.Completed,
		"resumed", report.Resumed, "poisoned", report.Poisoned, "failed", report.Failed, "budgetExhausted", report.BudgetExhausted}
	if err != nil {
		log.Error("status tick failed", append(args, "err", err)...)
		return err
	}
	log.Info("status tick done", args...)
	return nil
}

// Run listens first, then sets up the app's storage in the background (requests
// needing it answer 503 until then) and serves until ctx ends. Standalone, it also
// runs statusfn on its schedule; under the host the host's timer invokes /statusfn.
func (a *App) Run(ctx context.Context) error {
	// Listen before anything else runs: with the address taken, the handler must exit
	// non-zero at once rather than log "started" and run timer ticks unreachable; and
	// the host's readiness ping must be answered whatever storage does.
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", a.addr)
	if err != nil {
		return listenError(a.addr, a.hosted, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, 2)
	go func() {
		errs <- funchost.Serve(ctx, ln, a.handler, a.Log, funchost.ServerOptions{
			WriteTimeout: funchost.WriteTimeoutFor(a.Host.FunctionTimeout),
		})
	}()
	if !a.StorageReady() {
		go a.ensureStorageInBackground(ctx, 30*time.Second)
	}
	running := 1
	if !a.hosted {
		timer, _ := a.Status.TimerBinding()
		sched := funchost.NewScheduler(StatusFunction, a.Schedule, a.runTickOnce, a.Log, funchost.SchedulerOptions{
			RunOnStartup: timer.RunOnStartup, Timeout: a.Host.FunctionTimeout,
		})
		go func() { errs <- sched.Run(ctx) }()
		running++
	}
	a.Log.Info("blobcopy handler started", "address", a.addr, "hosted", a.hosted, "statusSchedule", a.Schedule.String())
	var first error
	for range running {
		if err := <-errs; err != nil && first == nil && !errors.Is(err, context.Canceled) {
			first = err
			cancel() // one part failed: stop the other rather than run half an app
		}
	}
	a.waitBehindAnswers(behindAnswersGrace)
	return first
}

// behindAnswersGrace bounds how long an exit waits for the work requests left running
// behind their answers: tracking-message deletions (one Delete Message each) and
// outcome callbacks (up to the notifier's timeout each).
const behindAnswersGrace = 5 * time.Second

// waitBehindAnswers lets that work land, for at most limit: a deletion that does not
// costs the tick a visit to a finished job; a callback cut off is sent again by the tick
// once its effects claim expires, with the same delivery id (at least once).
func (a *App) waitBehindAnswers(limit time.Duration) {
	done := make(chan struct{})
	go func() { a.Copies.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(limit):
		a.Log.Warn("exiting before the work left behind answers ended (tracking message deletions, callbacks); the status tick finishes it", "waited", limit.String())
	}
}

// listenError explains a failed listen; a taken address is the usual case (an earlier
// handler, or another `make run`, still running).
func listenError(addr string, hosted bool, err error) error {
	if !errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	if hosted {
		return fmt.Errorf("listen on %s (FUNCTIONS_CUSTOMHANDLER_PORT): the port is already in use by another process: %w", addr, err)
	}
	return fmt.Errorf("listen on %s: the address is already in use by another process (an earlier handler or `make run` still running?); stop it or set BLOBCOPY_LISTEN_ADDRESS to a free host:port: %w", addr, err)
}

// internalContainers are the containers of the app's own storage account
// (AzureWebJobsStorage) that no copy reads or writes: its records and batches, and
// the Functions host's, which hold the function keys (azure-webjobs-secrets) and its
// locks and timer schedules (azure-webjobs-hosts).
func internalContainers(records string) []string {
	return []string{records, "azure-webjobs-hosts", "azure-webjobs-secrets"}
}
