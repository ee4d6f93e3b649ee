package app_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/notify"
)

// receiver is a callback endpoint on loopback that records what it got; it fails the
// first failures deliveries.
type receiver struct {
	mu       sync.Mutex
	got      []notify.Outcome
	failures int
	srv      *httptest.Server
}

func newReceiver(t *testing.T, failures int) *receiver {
	r := &receiver{failures: failures}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.failures > 0 {
			r.failures--
			http.Error(w, "not now", http.StatusInternalServerError)
			return
		}
		b, _ := io.ReadAll(req.Body)
		var o notify.Outcome
		if err := json.Unmarshal(b, &o); err != nil || req.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		r.got = append(r.got, o)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) outcomes() []notify.Outcome {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]notify.Outcome(nil), r.got...)
}

func TestCompletionCallbacks(t *testing.T) {
	h := newHarness(t, map[string]string{"COPY_MAX_CALLBACK_ATTEMPTS": "3", "COPY_CALLBACK_RETRY_DELAYS": "1s"})
	h.sim.PutBlob(simAccount, "src", "cb.bin", []byte("callback me"), nil)
	tests := []struct {
		name      string
		failures  int
		delivered bool
		attempts  int
	}{
		{"delivered at once", 0, true, 1},
		{"delivered on the third attempt", 2, true, 3},
		{"given up after the attempts", 10, false, 3},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rcv := newReceiver(t, tt.failures)
			blobName := fmt.Sprintf("cb-%d.bin", i)
			job := h.startPending(map[string]any{"source": h.sim.AccountEndpoint(simAccount) + "/src/cb.bin",
				"destination": map[string]any{"account": "sim", "container": "dst", "blob": blobName}, "callbackUrl": rcv.srv.URL + "/done"})
			if err := h.sim.Complete(simAccount, "dst", blobName); err != nil {
				t.Fatal(err)
			}
			h.tickUntil("callback settled", func() bool {
				cb := h.record(job.ID).Callback
				return cb != nil && (cb.DeliveredAt != nil || cb.GaveUp)
			})
			h.tickUntil("message gone", func() bool { return h.queueLength("copyjobs") == 0 })
			rec := h.record(job.ID)
			if (rec.Callback.DeliveredAt != nil) != tt.delivered || rec.Callback.Attempts != tt.attempts {
				t.Errorf("callback = %+v, want delivered %v after %d attempts", rec.Callback, tt.delivered, tt.attempts)
			}
			got := rcv.outcomes()
			if tt.delivered {
				if len(got) != 1 || got[0].JobID != job.ID || got[0].Status != copyjob.StatusSuccess || got[0].CopyID != job.CopyID || got[0].Progress.BytesTotal != 11 {
					t.Errorf("receiver got %+v", got)
				}
			} else if len(got) != 0 {
				t.Errorf("receiver got %+v", got)
			}
		})
	}
}
