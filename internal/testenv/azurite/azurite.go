// Package azurite starts disposable, in-memory Azurite instances for tests.
//
// Each instance listens on free ports of 127.0.0.1, keeps its data in memory
// only, and is stopped when the test ends. Several storage accounts can be
// configured (the well-known devstoreaccount1 is always present), and with
// Options.OAuth the instance serves HTTPS with a throw-away certificate and
// accepts bearer tokens from Instance.TokenCredential, which makes user
// delegation SAS work locally.
//
// Azurite completes every Copy Blob synchronously and cannot read sources
// outside itself; pending copies, progress and aborts need the copysim
// package instead.
package azurite

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"
)

// Well-known development account that Azurite always serves.
const (
	DevAccountName = "devstoreaccount1"
	DevAccountKey  = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

const (
	startTimeout = 30 * time.Second
	stopGrace    = 5 * time.Second
	startTries   = 3
	outputLimit  = 16 << 10
)

// Account is a storage account served by the instance. Key is base64.
type Account struct {
	Name string
	Key  string
}

// NewAccount returns an account with a random 64-byte key.
func NewAccount(name string) Account {
	var b [64]byte
	_, _ = rand.Read(b[:]) // never fails on supported platforms
	return Account{Name: name, Key: base64.StdEncoding.EncodeToString(b[:])}
}

// Service selects Azurite services that Start waits for.
type Service uint8

// Services that can be combined in Options.Services.
const (
	Blob Service = 1 << iota
	Queue
	Table
)

// Options configure Start. The zero value starts blob and queue over HTTP
// with only devstoreaccount1.
type Options struct {
	// Accounts are served in addition to devstoreaccount1.
	Accounts []Account
	// OAuth serves HTTPS with a self-signed certificate and enables
	// "--oauth basic", so bearer tokens from TokenCredential are accepted.
	OAuth bool
	// Services to wait for; zero means Blob|Queue. The single azurite binary
	// always runs all three, each on its own free port.
	Services Service
}

// Instance is a running Azurite.
type Instance struct {
	bin      string
	opts     Options
	accounts map[string]string // name -> key
	dir      string            // workspace and certificate directory
	debugLog string            // Azurite debug log path when $AZURITE_DEBUG is set

	blobPort, queuePort, tablePort int

	certFile, keyFile string
	certPool          *x509.CertPool
	httpClient        *http.Client
	cred              azcore.TokenCredential

	mu     sync.Mutex
	proc   *process
	output *tailBuffer
}

// Start launches Azurite and stops it when the test ends. It fails the test
// (never skips) when Azurite is not installed or does not come up.
func Start(tb testing.TB, opts Options) *Instance {
	tb.Helper()
	if opts.Services == 0 {
		opts.Services = Blob | Queue
	}
	bin, err := findBinary()
	if err != nil {
		tb.Fatalf("azurite not installed: run `make test` (it installs azurite into .tools): %v", err)
	}
	inst := &Instance{
		bin:      bin,
		opts:     opts,
		accounts: map[string]string{DevAccountName: DevAccountKey},
		dir:      tb.TempDir(),
	}
	for _, a := range opts.Accounts {
		if a.Name == "" || a.Key == "" {
			tb.Fatalf("azurite: account %q needs a name and a base64 key", a.Name)
		}
		inst.accounts[a.Name] = a.Key
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = dialLocalhostSubdomains
	if opts.OAuth {
		dnsNames := []string{"localhost", "*.localhost"}
		for name := range inst.accounts {
			dnsNames = append(dnsNames, name+".localhost")
		}
		certFile, keyFile, cert, err := selfSignedCert(inst.dir, dnsNames)
		if err != nil {
			tb.Fatalf("azurite: %v", err)
		}
		inst.certFile, inst.keyFile = certFile, keyFile
		inst.certPool = x509.NewCertPool()
		inst.certPool.AddCert(cert)
		tr.TLSClientConfig = &tls.Config{RootCAs: inst.certPool, MinVersion: tls.VersionTLS12}
		inst.cred = newFakeTokenCredential("none")
	}
	inst.httpClient = &http.Client{Transport: tr}
	if os.Getenv("AZURITE_DEBUG") != "" {
		// Azurite's debug log shows, e.g., the string-to-sign of a rejected
		// SAS. It is kept after the test (outside tb.TempDir) for reading.
		f, err := os.CreateTemp("", "azurite-debug-*.log")
		if err != nil {
			tb.Fatalf("azurite: debug log: %v", err)
		}
		f.Close()
		inst.debugLog = f.Name()
		tb.Logf("azurite debug log: %s", inst.debugLog)
	}
	tb.Cleanup(inst.Stop)

	var lastErr error
	for try := 0; try < startTries; try++ {
		if err := inst.pickPorts(); err != nil {
			tb.Fatalf("azurite: pick ports: %v", err)
		}
		lastErr = inst.launch()
		if lastErr == nil {
			return inst
		}
		if !errors.Is(lastErr, errPortInUse) {
			break
		}
	}
	tb.Fatalf("azurite: start: %v", lastErr)
	return nil
}

// Restart stops Azurite and starts it again on the same ports, for tests of
// outages. Azurite keeps data in memory only, so every container, blob and
// queue is lost: callers must create them again.
func (i *Instance) Restart(tb testing.TB) {
	tb.Helper()
	i.Stop()
	deadline := time.Now().Add(startTimeout)
	for {
		err := i.launch()
		if err == nil {
			return
		}
		// The old process has exited, but give the kernel a moment if a port
		// is still reported busy.
		if !errors.Is(err, errPortInUse) || time.Now().After(deadline) {
			tb.Fatalf("azurite: restart: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Stop terminates Azurite (SIGTERM to its process group, SIGKILL after 5 s).
// It is safe to call more than once; Start registers it with tb.Cleanup.
func (i *Instance) Stop() {
	i.mu.Lock()
	p := i.proc
	i.proc = nil
	i.mu.Unlock()
	if p != nil {
		p.stop(stopGrace)
	}
}

// BlobEndpoint is the path-style blob endpoint of account, without a
// trailing slash, e.g. http://127.0.0.1:PORT/devstoreaccount1.
func (i *Instance) BlobEndpoint(account string) string {
	return fmt.Sprintf("%s://127.0.0.1:%d/%s", i.scheme(), i.blobPort, account)
}

// QueueEndpoint is the path-style queue endpoint of account.
func (i *Instance) QueueEndpoint(account string) string {
	return fmt.Sprintf("%s://127.0.0.1:%d/%s", i.scheme(), i.queuePort, account)
}

// ProductStyleBlobEndpoint is the blob endpoint of account in the
// production shape https://<account>.localhost:PORT, where Azurite takes the
// account from the host name. Only HTTPClient/ClientOptions can reach it:
// their dialer sends every *.localhost host to 127.0.0.1.
//
// It exists because azblob's service.Client.GetUserDelegationCredential takes
// the account name from the first label of the host, which is "127" for the
// path-style BlobEndpoint, so a SAS signed with that credential is rejected.
func (i *Instance) ProductStyleBlobEndpoint(account string) string {
	return fmt.Sprintf("%s://%s.localhost:%d", i.scheme(), account, i.blobPort)
}

// UserDelegationCredential gets a user delegation key for account with cred
// (e.g. TokenCredential; needs OAuth). It goes through
// ProductStyleBlobEndpoint so that the credential carries the right account
// name; SAS signed with it work with the path-style URLs of BlobEndpoint.
func (i *Instance) UserDelegationCredential(ctx context.Context, account string, cred azcore.TokenCredential, start, expiry time.Time) (*service.UserDelegationCredential, error) {
	svc, err := service.NewClient(i.ProductStyleBlobEndpoint(account)+"/", cred,
		&service.ClientOptions{ClientOptions: i.ClientOptions()})
	if err != nil {
		return nil, fmt.Errorf("service client: %w", err)
	}
	udc, err := svc.GetUserDelegationCredential(ctx, service.KeyInfo{
		Start:  to.Ptr(start.UTC().Format(sas.TimeFormat)),
		Expiry: to.Ptr(expiry.UTC().Format(sas.TimeFormat)),
	}, nil)
	if err != nil {
		return nil, fmt.Errorf("get user delegation key for %s: %w", account, err)
	}
	return udc, nil
}

// TableEndpoint is the path-style table endpoint of account.
func (i *Instance) TableEndpoint(account string) string {
	return fmt.Sprintf("%s://127.0.0.1:%d/%s", i.scheme(), i.tablePort, account)
}

// ConnectionString returns a connection string for account with explicit
// blob and queue endpoints.
func (i *Instance) ConnectionString(account string) string {
	return fmt.Sprintf("DefaultEndpointsProtocol=%s;AccountName=%s;AccountKey=%s;BlobEndpoint=%s;QueueEndpoint=%s;",
		i.scheme(), account, i.Key(account), i.BlobEndpoint(account), i.QueueEndpoint(account))
}

// Key returns the base64 key of account, or "" for an unknown account.
func (i *Instance) Key(account string) string { return i.accounts[account] }

// Accounts returns the names of all accounts served, devstoreaccount1 included.
func (i *Instance) Accounts() []string {
	names := make([]string, 0, len(i.accounts))
	for n := range i.accounts {
		names = append(names, n)
	}
	return names
}

// CertPool trusts the instance's certificate; nil without OAuth.
func (i *Instance) CertPool() *x509.CertPool { return i.certPool }

// HTTPClient is a client that trusts the instance's certificate (a plain
// client without OAuth).
func (i *Instance) HTTPClient() *http.Client { return i.httpClient }

// ClientOptions returns azcore options whose transport is HTTPClient, for
// embedding into blob/queue ClientOptions.
func (i *Instance) ClientOptions() azcore.ClientOptions {
	return azcore.ClientOptions{Transport: i.httpClient}
}

// TokenCredential returns a credential whose unsigned JWTs Azurite accepts
// in OAuth mode; nil without OAuth (bearer tokens need HTTPS).
func (i *Instance) TokenCredential() azcore.TokenCredential { return i.cred }

// Output returns the tail of Azurite's combined stdout and stderr.
func (i *Instance) Output() string {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.output == nil {
		return ""
	}
	return i.output.String()
}

func (i *Instance) scheme() string {
	if i.opts.OAuth {
		return "https"
	}
	return "http"
}

func (i *Instance) pickPorts() error {
	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	i.blobPort, i.queuePort, i.tablePort = ports[0], ports[1], ports[2]
	return nil
}

var errPortInUse = errors.New("port in use")

// launch starts the process on the chosen ports and waits for readiness.
func (i *Instance) launch() error {
	args := []string{
		"--inMemoryPersistence", "--silent", "--skipApiVersionCheck", "--loose", "--disableTelemetry",
		"--blobHost", "127.0.0.1", "--blobPort", strconv.Itoa(i.blobPort),
		"--queueHost", "127.0.0.1", "--queuePort", strconv.Itoa(i.queuePort),
		"--tableHost", "127.0.0.1", "--tablePort", strconv.Itoa(i.tablePort),
	}
	if i.debugLog != "" {
		args = append(args, "--debug", i.debugLog)
	}
	env := append(os.Environ(), "AZURITE_ACCOUNTS="+i.accountsEnv())
	if i.opts.OAuth {
		args = append(args, "--oauth", "basic", "--cert", i.certFile, "--key", i.keyFile)
		// Azurite verifies a copy source by fetching it from itself over
		// HTTPS; without trusting its own certificate that check fails (500).
		env = append(env, "NODE_EXTRA_CA_CERTS="+i.certFile)
	}
	out := newTailBuffer(outputLimit)
	cmd := exec.Command(i.bin, args...)
	cmd.Dir = i.dir
	cmd.Env = env
	cmd.Stdout = out
	cmd.Stderr = out
	// Own process group: the launcher script may fork, and Stop must reach
	// every descendant.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("exec %s: %w", i.bin, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	i.mu.Lock()
	i.proc, i.output = p, out
	i.mu.Unlock()

	if err := i.waitReady(p); err != nil {
		i.Stop()
		tail := out.String()
		if strings.Contains(tail, "EADDRINUSE") {
			err = fmt.Errorf("%w: %w", errPortInUse, err)
		}
		return fmt.Errorf("%w\nazurite output:\n%s", err, tail)
	}
	return nil
}

func (i *Instance) waitReady(p *process) error {
	var ports []int
	if i.opts.Services&Blob != 0 {
		ports = append(ports, i.blobPort)
	}
	if i.opts.Services&Queue != 0 {
		ports = append(ports, i.queuePort)
	}
	if i.opts.Services&Table != 0 {
		ports = append(ports, i.tablePort)
	}
	deadline := time.Now().Add(startTimeout)
	for _, port := range ports {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		for {
			select {
			case <-p.done:
				return fmt.Errorf("azurite exited before listening on %s: %v", addr, p.err)
			default:
			}
			// A connection alone could reach another Azurite (another test package's, on a
			// port both picked): this one must also say it listens there. One that lost the
			// port says EADDRINUSE and exits.
			c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
			if err == nil {
				c.Close()
				out := i.outputText()
				if strings.Contains(out, "EADDRINUSE") {
					return fmt.Errorf("azurite could not bind %s (port taken)", addr)
				}
				if strings.Contains(out, fmt.Sprintf("successfully listening at %s://127.0.0.1:%d", i.scheme(), port)) {
					break
				}
				err = errors.New("something else answers on the port")
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("azurite not listening on %s after %s: %w", addr, startTimeout, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

// outputText is what this Azurite printed so far.
func (i *Instance) outputText() string {
	i.mu.Lock()
	out := i.output
	i.mu.Unlock()
	if out == nil {
		return ""
	}
	return out.String()
}

func (i *Instance) accountsEnv() string {
	parts := []string{DevAccountName + ":" + DevAccountKey}
	for _, a := range i.opts.Accounts {
		if a.Name != DevAccountName {
			parts = append(parts, a.Name+":"+a.Key)
		}
	}
	return strings.Join(parts, ";")
}

// process is one Azurite run.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func (p *process) stop(grace time.Duration) {
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
	// Children that ignored SIGTERM would otherwise keep the ports.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}

// dialLocalhostSubdomains dials 127.0.0.1 for any "<name>.localhost" host,
// which the system resolver does not necessarily know.
func dialLocalhostSubdomains(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	if host, port, err := net.SplitHostPort(addr); err == nil && strings.HasSuffix(host, ".localhost") {
		addr = net.JoinHostPort("127.0.0.1", port)
	}
	return d.DialContext(ctx, network, addr)
}

// findBinary returns $AZURITE_BIN or <module root>/.tools/node_modules/.bin/azurite.
func findBinary() (string, error) {
	if bin := os.Getenv("AZURITE_BIN"); bin != "" {
		if _, err := os.Stat(bin); err != nil {
			return "", fmt.Errorf("AZURITE_BIN: %w", err)
		}
		return bin, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("working directory: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			bin := filepath.Join(dir, ".tools", "node_modules", ".bin", "azurite")
			if _, err := os.Stat(bin); err != nil {
				return "", fmt.Errorf("%s: %w", bin, err)
			}
			return bin, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// freePorts reserves n distinct ports by listening on 127.0.0.1:0 and
// releases them; a rare clash with another process is handled by retrying.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for len(ports) < n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("listen: %w", err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// tailBuffer keeps the last limit bytes written to it.
type tailBuffer struct {
	mu    sync.Mutex
	limit int
	buf   []byte
}

func newTailBuffer(limit int) *tailBuffer { return &tailBuffer{limit: limit} }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.limit; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
