package copysim

import (
	"context"
	"net/http"
	"strconv"
	"time"
)

// FaultTiming says whether an injected fault replaces the operation or only its answer.
type FaultTiming int

const (
	// Before: the fault is answered instead of the operation; nothing happens.
	Before FaultTiming = iota
	// After: the operation is carried out, then its answer is lost (Drop) or replaced
	// by the fault's status. This is how a client meets "500 OperationTimedOut" or a
	// reset connection for a Copy Blob that did start: Azure documents that a 500
	// OperationTimedOut or 503 ServerBusy answer may follow an operation that was
	// carried out (https://learn.microsoft.com/rest/api/storageservices/common-rest-api-error-codes),
	// and a client timeout or a lost connection gives no verdict at all.
	After
)

// Fault is one injected failure; see Server.FailNext.
type Fault struct {
	When FaultTiming
	// Status and Code are the error answered (e.g. 503 "ServerBusy", 500
	// "OperationTimedOut", 500 "InternalError"). Status 0 answers no error: with Delay
	// alone the request is only slow.
	Status int
	Code   string
	// RetryAfter adds a Retry-After header (whole seconds, rounded up), as a throttled
	// service may send with 503 ServerBusy; azcore waits that long (capped by its
	// MaxRetryDelay) before retrying.
	RetryAfter time.Duration
	// Drop closes the connection without any answer (the answer is lost): the client
	// sees a reset connection or EOF, like a client timeout.
	Drop bool
	// Delay holds the request this long: before the operation with Before, before
	// the answer with After (a slow service). The request's context cuts it short.
	Delay time.Duration
	// Times is how many matching requests the fault applies to (default 1).
	Times int
	// Blob limits the fault to requests for this blob name ("" = any blob).
	Blob string
}

// FailNext injects f into the next f.Times requests for op (e.g. OpCopyBlob). Faults
// queue up: a request takes the oldest matching one.
func (s *Server) FailNext(op string, f Fault) {
	if f.Times <= 0 {
		f.Times = 1
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &fault{op: op, Fault: f})
}

// ClearFaults forgets every injected fault not used yet.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

type fault struct {
	op string
	Fault
}

// takeFaultLocked returns the fault that applies to x, if any, and uses it up.
func (s *Server) takeFaultLocked(x *exchange) *Fault {
	for i, f := range s.faults {
		if f.op != x.op || (f.Blob != "" && f.Blob != x.blob) {
			continue
		}
		f.Times--
		if f.Times <= 0 {
			s.faults = append(s.faults[:i:i], s.faults[i+1:]...)
		}
		c := f.Fault
		return &c
	}
	return nil
}

// answer replaces x's answer with the fault's error.
func (f *Fault) answer(x *exchange) {
	x.header = http.Header{}
	x.body = nil
	x.fail(f.Status, f.Code, "(injected fault)")
	if f.RetryAfter > 0 {
		secs := int((f.RetryAfter + time.Second - 1) / time.Second)
		x.header.Set("Retry-After", strconv.Itoa(secs))
	}
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// drop closes the client's connection without answering; false when the connection
// cannot be taken over (never with the simulator's HTTP/1.1 server).
func drop(w http.ResponseWriter) bool {
	hj, ok := w.(http.Hijacker)
	if !ok {
		return false
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return false
	}
	_ = conn.Close()
	return true
}
