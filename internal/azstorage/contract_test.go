package azstorage_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/lease"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2"

	"github.com/blobcopy/blobcopy/internal/azstorage"
	"github.com/blobcopy/blobcopy/internal/config"
	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/copyjob/copyjobtest"
	"github.com/blobcopy/blobcopy/internal/copyjob/copyjobtest/contract"
	"github.com/blobcopy/blobcopy/internal/testenv/azurite"
	"github.com/blobcopy/blobcopy/internal/testenv/copysim"
)

// The adapters held to the contract of copyjob/ports.go, the same suite the in-memory
// fakes pass (copyjobtest/contract): records, queue and the synchronous blob paths on
// Azurite; pending copies, aborts, injected transient faults and the lease-state
// distinction on the copy simulator (Azurite finishes every copy at once).

// oneAnswer: no retries, so that each injected fault reaches the classification.
var oneAnswer = policy.RetryOptions{MaxRetries: -1}

var quickRetries = policy.RetryOptions{MaxRetries: 2, RetryDelay: 10 * time.Millisecond, MaxRetryDelay: 50 * time.Millisecond}

func testCtx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

var seq atomic.Int64

func unique(prefix string) string { return fmt.Sprintf("%s%d", prefix, seq.Add(1)) }

// azuriteAccount is the dev account's adapter; with faults, requests go through it and
// are not retried (each injected fault reaches the classification).
func azuriteAccount(t *testing.T, az *azurite.Instance, faults *faultPolicy, extra ...policy.Policy) (*azstorage.Account, config.StorageAccount, azstorage.Options) {
	t.Helper()
	cfg := config.StorageAccount{Name: azurite.DevAccountName, BlobEndpoint: az.BlobEndpoint(azurite.DevAccountName),
		QueueEndpoint: az.QueueEndpoint(azurite.DevAccountName), AccountKey: az.Key(azurite.DevAccountName)}
	copts := az.ClientOptions()
	copts.Retry = quickRetries
	if faults != nil {
		copts.Retry = oneAnswer
		copts.PerRetryPolicies = append(copts.PerRetryPolicies, faults)
	}
	copts.PerRetryPolicies = append(copts.PerRetryPolicies, extra...)
	opts := azstorage.Options{ClientOptions: copts}
	a, err := azstorage.NewAccount("", cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	return a, cfg, opts
}

func TestContractRecordsOnAzurite(t *testing.T) {
	az := azurite.Start(t, azurite.Options{})
	contract.RunRecords(t, func(t *testing.T) copyjob.Records {
		faults := &faultPolicy{}
		a, _, _ := azuriteAccount(t, az, faults)
		r := azstorage.NewRecords(a, unique("records"))
		if err := r.EnsureContainer(testCtx(t)); err != nil {
			t.Fatal(err)
		}
		return faultyRecords{r, faults}
	})
}

// TestContractRecordsWithoutBlobIndex: on an account that refuses blob index tags (one
// with a hierarchical namespace has no blob index; Azurite has one, so a policy refuses
// x-ms-tags here), EnsureContainer's probe notices, records are written without tags,
// and Untracked lists instead: the same contract holds.
func TestContractRecordsWithoutBlobIndex(t *testing.T) {
	az := azurite.Start(t, azurite.Options{})
	contract.RunRecords(t, func(t *testing.T) copyjob.Records {
		faults := &faultPolicy{}
		a, _, _ := azuriteAccount(t, az, faults, refuseTags{})
		r := azstorage.NewRecords(a, unique("records"))
		if err := r.EnsureContainer(testCtx(t)); err != nil {
			t.Fatal(err)
		}
		if r.IndexRefusal() == "" {
			t.Fatal("EnsureContainer did not notice that the account refuses blob index tags")
		}
		return faultyRecords{r, faults}
	})
}

// refuseTags answers a request carrying blob index tags, or searching them, as an
// account without the blob index would (400; the code is illustrative).
type refuseTags struct{}

func (refuseTags) Do(req *policy.Request) (*http.Response, error) {
	//lint:ignore SA1008 the generated SDK code sets x-ms-* headers by lowercase key, not through Header.Set
	if len(req.Raw().Header["x-ms-tags"]) == 0 && req.Raw().URL.Query().Get("comp") != "blobs" {
		return req.Next()
	}
	h := http.Header{}
	h.Set("x-ms-error-code", "FeatureNotSupportedForAccount")
	return &http.Response{StatusCode: http.StatusBadRequest, Status: "400 Bad Request", Header: h,
		Body: io.NopCloser(strings.NewReader("")), Request: req.Raw()}, nil
}

type faultyRecords struct {
	*azstorage.Records
	faults *faultPolicy
}

func (r faultyRecords) InjectTransient(_ *testing.T, _ string, after bool) bool {
	r.faults.next(after)
	return true
}

// faultPolicy fails the next request(s) of a client, the way storage does: a 503
// ServerBusy answer without carrying the request out, or the request carried out and
// its answer lost (a reset connection). The adapters under it see real SDK errors.
type faultPolicy struct {
	mu      sync.Mutex
	pending []bool // after?
}

func (p *faultPolicy) next(after bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pending = append(p.pending, after)
}

func (p *faultPolicy) Do(req *policy.Request) (*http.Response, error) {
	p.mu.Lock()
	if len(p.pending) == 0 {
		p.mu.Unlock()
		return req.Next()
	}
	after := p.pending[0]
	p.pending = p.pending[1:]
	p.mu.Unlock()
	if !after {
		h := http.Header{}
		h.Set("x-ms-error-code", "ServerBusy")
		h.Set("Retry-After", "1")
		return &http.Response{StatusCode: http.StatusServiceUnavailable, Status: "503 Server Busy", Header: h,
			Body: io.NopCloser(strings.NewReader("")), Request: req.Raw()}, nil
	}
	resp, err := req.Next()
	if err == nil {
		resp.Body.Close()
	}
	return nil, errors.New("injected: connection reset after the request was carried out")
}

func TestContractQueueOnAzurite(t *testing.T) {
	az := azurite.Start(t, azurite.Options{})
	contract.RunQueue(t, func(t *testing.T) contract.QueueHarness {
		faults := &faultPolicy{}
		_, cfg, opts := azuriteAccount(t, az, faults)
		name := unique("contract")
		main, err := azstorage.NewQueueClient(cfg, name, opts)
		if err != nil {
			t.Fatal(err)
		}
		poison, err := azstorage.NewQueueClient(cfg, name+"-poison", opts)
		if err != nil {
			t.Fatal(err)
		}
		q := azstorage.NewQueue(main, poison)
		if err := q.EnsureQueues(testCtx(t)); err != nil {
			t.Fatal(err)
		}
		return &azuriteQueue{q: q, poison: poison, faults: faults}
	})
}

type azuriteQueue struct {
	q      *azstorage.Queue
	poison *azqueue.QueueClient
	faults *faultPolicy
}

func (h *azuriteQueue) InjectTransient(_ *testing.T, _ string, after bool) bool {
	h.faults.next(after)
	return true
}

func (h *azuriteQueue) Queue() copyjob.Queue { return h.q }
func (h *azuriteQueue) Wait(d time.Duration) { time.Sleep(d) }
func (h *azuriteQueue) Poisoned(t *testing.T) []contract.Poisoned {
	resp, err := h.poison.PeekMessages(testCtx(t), &azqueue.PeekMessagesOptions{NumberOfMessages: to.Ptr(int32(32))})
	if err != nil {
		t.Fatal(err)
	}
	var out []contract.Poisoned
	for _, m := range resp.Messages {
		var e azstorage.PoisonEntry
		if err := json.Unmarshal([]byte(*m.MessageText), &e); err != nil {
			t.Fatalf("poison entry %q: %v", *m.MessageText, err)
		}
		out = append(out, contract.Poisoned{Text: e.Message, Reason: e.Reason})
	}
	return out
}

func TestContractBlobsOnAzurite(t *testing.T) {
	acct2 := azurite.NewAccount("acct2")
	az := azurite.Start(t, azurite.Options{Accounts: []azurite.Account{acct2}})
	contract.RunBlobs(t, func(t *testing.T) contract.BlobsHarness {
		faults := &faultPolicy{}
		a, _, opts := azuriteAccount(t, az, faults)
		other, err := azstorage.NewAccount("other", config.StorageAccount{Name: acct2.Name, BlobEndpoint: az.BlobEndpoint(acct2.Name), AccountKey: acct2.Key}, opts)
		if err != nil {
			t.Fatal(err)
		}
		h := newBlobsHarness(t, nil, a, other)
		h.faults = faults
		return h
	})
}

func TestContractBlobsOnCopySim(t *testing.T) {
	contract.RunBlobs(t, func(t *testing.T) contract.BlobsHarness {
		sim := copysim.New(copysim.Options{})
		t.Cleanup(sim.Close)
		cfg := config.StorageAccount{Name: "simacct", BlobEndpoint: sim.AccountEndpoint("simacct"), AccountKey: copysim.AccountKey}
		opts := azstorage.Options{ClientOptions: azcore.ClientOptions{Retry: oneAnswer}}
		a, err := azstorage.NewAccount("", cfg, opts)
		if err != nil {
			t.Fatal(err)
		}
		otherCfg := config.StorageAccount{Name: "otheracct", BlobEndpoint: sim.AccountEndpoint("otheracct"), AccountKey: copysim.AccountKey}
		other, err := azstorage.NewAccount("other", otherCfg, opts)
		if err != nil {
			t.Fatal(err)
		}
		return newBlobsHarness(t, sim, a, other)
	})
}

// blobsHarness drives an adapter on Azurite (sim nil) or on the copy simulator, with
// the accounts "" (Ref) and "other" (OtherRef).
type blobsHarness struct {
	accounts  map[string]*azstorage.Account
	blobs     *azstorage.Blobs
	container string
	sim       *copysim.Server
	faults    *faultPolicy // Azurite: injected by an SDK policy
}

func newBlobsHarness(t *testing.T, sim *copysim.Server, accounts ...*azstorage.Account) *blobsHarness {
	h := &blobsHarness{accounts: map[string]*azstorage.Account{}, blobs: azstorage.NewBlobs(accounts...), container: unique("contract"), sim: sim}
	for _, a := range accounts {
		h.accounts[a.Alias] = a
		if _, err := a.Service.CreateContainer(testCtx(t), h.container, nil); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

func (h *blobsHarness) account(ref copyjob.BlobRef) *azstorage.Account {
	return h.accounts[ref.Account]
}

func (h *blobsHarness) OtherRef(name string) copyjob.BlobRef {
	return copyjob.BlobRef{Account: "other", Container: h.container, Blob: name}
}

func (h *blobsHarness) Blobs() copyjob.Blobs { return h.blobs }
func (h *blobsHarness) Ref(name string) copyjob.BlobRef {
	return copyjob.BlobRef{Container: h.container, Blob: name}
}

func (h *blobsHarness) Put(t *testing.T, ref copyjob.BlobRef, data []byte) {
	t.Helper()
	if h.sim != nil {
		if err := h.sim.PutBlob(h.account(ref).Config.Name, ref.Container, ref.Blob, data, nil); err != nil {
			t.Fatal(err)
		}
		return
	}
	bb := h.account(ref).Service.NewContainerClient(ref.Container).NewBlockBlobClient(ref.Blob)
	if _, err := bb.UploadBuffer(testCtx(t), data, nil); err != nil {
		t.Fatal(err)
	}
}

func (h *blobsHarness) LeaseAsOther(t *testing.T, ref copyjob.BlobRef, id string) {
	t.Helper()
	lc, err := lease.NewBlobClient(h.account(ref).Service.NewContainerClient(ref.Container).NewBlobClient(ref.Blob), &lease.BlobClientOptions{LeaseID: to.Ptr(id)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lc.AcquireLease(testCtx(t), -1, nil); err != nil {
		t.Fatal(err)
	}
}

func (h *blobsHarness) PendingCopies() bool { return h.sim != nil }

func (h *blobsHarness) CompleteCopy(t *testing.T, ref copyjob.BlobRef) {
	t.Helper()
	if err := h.sim.Complete(h.account(ref).Config.Name, ref.Container, ref.Blob); err != nil {
		t.Fatal(err)
	}
}

func (h *blobsHarness) FailCopy(t *testing.T, ref copyjob.BlobRef, description string) {
	t.Helper()
	if err := h.sim.Fail(h.account(ref).Config.Name, ref.Container, ref.Blob, description); err != nil {
		t.Fatal(err)
	}
}

// simOps maps the port's operations onto the requests the adapter makes.
var simOps = map[string]string{
	copyjobtest.OpStartCopy:      copysim.OpCopyBlob,
	copyjobtest.OpCopyState:      copysim.OpGetBlobProperties,
	copyjobtest.OpAbortCopy:      copysim.OpAbortCopyBlob,
	copyjobtest.OpAcquireLease:   copysim.OpLeaseBlob,
	copyjobtest.OpReleaseLease:   copysim.OpLeaseBlob,
	copyjobtest.OpSnapshot:       copysim.OpSnapshotBlob,
	copyjobtest.OpDeleteSnapshot: copysim.OpDeleteBlob,
}

func (h *blobsHarness) InjectTransient(t *testing.T, op string, after bool) bool {
	simOp, ok := simOps[op]
	if !ok {
		return false
	}
	if h.faults != nil {
		h.faults.next(after)
		return true
	}
	f := copysim.Fault{Status: 503, Code: "ServerBusy", RetryAfter: time.Second}
	if after {
		f = copysim.Fault{When: copysim.After, Drop: true}
	}
	h.sim.FailNext(simOp, f)
	return true
}

// cutShort makes the next answer's body break after its first bytes, like a connection
// reset while a record is being read.
type cutShort struct {
	mu    sync.Mutex
	armed bool
}

func (p *cutShort) Do(req *policy.Request) (*http.Response, error) {
	resp, err := req.Next()
	p.mu.Lock()
	armed := p.armed
	p.armed = false
	p.mu.Unlock()
	if err != nil || !armed {
		return resp, err
	}
	resp.Body = &brokenBody{inner: resp.Body}
	return resp, nil
}

type brokenBody struct {
	inner io.ReadCloser
	read  int
}

func (b *brokenBody) Read(p []byte) (int, error) {
	if b.read >= 8 {
		return 0, errors.New("injected: connection reset while reading the body")
	}
	n, err := b.inner.Read(p[:min(len(p), 8-b.read)])
	b.read += n
	return n, err
}

func (b *brokenBody) Close() error { return b.inner.Close() }

// TestRecordsGetCutShort: a record read that breaks mid-body is a transient failure:
// it must wrap copyjob.ErrUnavailable like every other lost answer (ports.go).
func TestRecordsGetCutShort(t *testing.T) {
	az := azurite.Start(t, azurite.Options{})
	cut := &cutShort{}
	cfg := config.StorageAccount{Name: azurite.DevAccountName, BlobEndpoint: az.BlobEndpoint(azurite.DevAccountName), AccountKey: az.Key(azurite.DevAccountName)}
	copts := az.ClientOptions()
	copts.Retry = oneAnswer
	copts.PerRetryPolicies = append(copts.PerRetryPolicies, cut)
	a, err := azstorage.NewAccount("", cfg, azstorage.Options{ClientOptions: copts})
	if err != nil {
		t.Fatal(err)
	}
	r := azstorage.NewRecords(a, unique("records"))
	if err := r.EnsureContainer(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	job := &copyjob.Job{ID: "cut", Status: copyjob.StatusPending}
	if err := r.Create(testCtx(t), job); err != nil {
		t.Fatal(err)
	}
	cut.mu.Lock()
	cut.armed = true
	cut.mu.Unlock()
	_, err = r.Get(testCtx(t), job.ID)
	if !errors.Is(err, copyjob.ErrUnavailable) {
		t.Errorf("Get cut short: %v, want copyjob.ErrUnavailable", err)
	}
}
