package azstorage_test

import (
	"context"
	"encoding/json"
	"fmt"
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

func azuriteAccount(t *testing.T, az *azurite.Instance) (*azstorage.Account, config.StorageAccount, azstorage.Options) {
	t.Helper()
	cfg := config.StorageAccount{Name: azurite.DevAccountName, BlobEndpoint: az.BlobEndpoint(azurite.DevAccountName),
		QueueEndpoint: az.QueueEndpoint(azurite.DevAccountName), AccountKey: az.Key(azurite.DevAccountName)}
	copts := az.ClientOptions()
	copts.Retry = quickRetries
	opts := azstorage.Options{ClientOptions: copts}
	a, err := azstorage.NewAccount("", cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	return a, cfg, opts
}

func TestContractRecordsOnAzurite(t *testing.T) {
	az := azurite.Start(t, azurite.Options{})
	a, _, _ := azuriteAccount(t, az)
	contract.RunRecords(t, func(t *testing.T) copyjob.Records {
		r := azstorage.NewRecords(a, unique("records"))
		if err := r.EnsureContainer(testCtx(t)); err != nil {
			t.Fatal(err)
		}
		return r
	})
}

func TestContractQueueOnAzurite(t *testing.T) {
	az := azurite.Start(t, azurite.Options{})
	_, cfg, opts := azuriteAccount(t, az)
	contract.RunQueue(t, func(t *testing.T) contract.QueueHarness {
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
		return &azuriteQueue{q: q, poison: poison}
	})
}

type azuriteQueue struct {
	q      *azstorage.Queue
	poison *azqueue.QueueClient
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
	az := azurite.Start(t, azurite.Options{})
	a, _, _ := azuriteAccount(t, az)
	contract.RunBlobs(t, func(t *testing.T) contract.BlobsHarness {
		return newBlobsHarness(t, a, nil)
	})
}

func TestContractBlobsOnCopySim(t *testing.T) {
	contract.RunBlobs(t, func(t *testing.T) contract.BlobsHarness {
		sim := copysim.New(copysim.Options{})
		t.Cleanup(sim.Close)
		cfg := config.StorageAccount{Name: "simacct", BlobEndpoint: sim.AccountEndpoint("simacct"), AccountKey: copysim.AccountKey}
		a, err := azstorage.NewAccount("", cfg, azstorage.Options{ClientOptions: azcore.ClientOptions{Retry: oneAnswer}})
		if err != nil {
			t.Fatal(err)
		}
		return newBlobsHarness(t, a, sim)
	})
}

// blobsHarness drives an adapter on Azurite (sim nil) or on the copy simulator.
type blobsHarness struct {
	a         *azstorage.Account
	blobs     *azstorage.Blobs
	container string
	sim       *copysim.Server
}

func newBlobsHarness(t *testing.T, a *azstorage.Account, sim *copysim.Server) *blobsHarness {
	h := &blobsHarness{a: a, blobs: azstorage.NewBlobs(a), container: unique("contract"), sim: sim}
	if _, err := a.Service.CreateContainer(testCtx(t), h.container, nil); err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *blobsHarness) Blobs() copyjob.Blobs { return h.blobs }
func (h *blobsHarness) Ref(name string) copyjob.BlobRef {
	return copyjob.BlobRef{Container: h.container, Blob: name}
}

func (h *blobsHarness) Put(t *testing.T, ref copyjob.BlobRef, data []byte) {
	t.Helper()
	if h.sim != nil {
		if err := h.sim.PutBlob(h.a.Config.Name, ref.Container, ref.Blob, data, nil); err != nil {
			t.Fatal(err)
		}
		return
	}
	bb := h.a.Service.NewContainerClient(ref.Container).NewBlockBlobClient(ref.Blob)
	if _, err := bb.UploadBuffer(testCtx(t), data, nil); err != nil {
		t.Fatal(err)
	}
}

func (h *blobsHarness) LeaseAsOther(t *testing.T, ref copyjob.BlobRef, id string) {
	t.Helper()
	lc, err := lease.NewBlobClient(h.a.Service.NewContainerClient(ref.Container).NewBlobClient(ref.Blob), &lease.BlobClientOptions{LeaseID: to.Ptr(id)})
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
	if err := h.sim.Complete(h.a.Config.Name, ref.Container, ref.Blob); err != nil {
		t.Fatal(err)
	}
}

func (h *blobsHarness) FailCopy(t *testing.T, ref copyjob.BlobRef, description string) {
	t.Helper()
	if err := h.sim.Fail(h.a.Config.Name, ref.Container, ref.Blob, description); err != nil {
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
	if h.sim == nil || !ok {
		return false
	}
	f := copysim.Fault{Status: 503, Code: "ServerBusy", RetryAfter: time.Second}
	if after {
		f = copysim.Fault{When: copysim.After, Drop: true}
	}
	h.sim.FailNext(simOp, f)
	return true
}
