package copysim

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"time"
)

// AutoProgress drives every copy a simulator starts like a slow real copy:
// the copy stays pending for Duration, its progress grows every Step, and
// it then completes (Complete: an external source is fetched when the
// simulator has Options.FetchSource). A copy aborted, overwritten or ended
// by anyone meanwhile is left alone. It is what `make run`'s slowdemo account
// runs, so 202, Retry-After, live progress, abort and callbacks can be tried.
//
// Use it as Options.OnCopyStart, then Attach the server:
//
//	ap := &copysim.AutoProgress{Duration: 20 * time.Second}
//	sim := copysim.New(copysim.Options{FetchSource: true, OnCopyStart: ap.OnCopyStart})
//	ap.Attach(sim)
//	defer ap.Close()
type AutoProgress struct {
	// Duration is how long each copy stays pending (default 20 s).
	Duration time.Duration
	// Step is how often progress grows (default 1 s).
	Step time.Duration
	// Logger receives one line when a copy starts and one when it ends.
	Logger *slog.Logger

	mu     sync.Mutex
	srv    *Server
	closed bool
	stop   chan struct{}
	wg     sync.WaitGroup
}

// Attach names the simulator whose copies are driven; call it before the
// first copy starts.
func (a *AutoProgress) Attach(s *Server) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.srv = s
	if a.stop == nil {
		a.stop = make(chan struct{})
	}
}

// Close stops driving copies (they stay pending) and waits for the drivers.
func (a *AutoProgress) Close() {
	a.mu.Lock()
	if !a.closed && a.stop != nil {
		close(a.stop)
	}
	a.closed = true
	a.mu.Unlock()
	a.wg.Wait()
}

// OnCopyStart is the Options.OnCopyStart hook: it starts driving cs.
func (a *AutoProgress) OnCopyStart(cs CopyStart) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.srv == nil || a.closed {
		return
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		a.drive(cs)
	}()
}

func (a *AutoProgress) log() *slog.Logger {
	if a.Logger != nil {
		return a.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func (a *AutoProgress) drive(cs CopyStart) {
	duration, step := a.Duration, a.Step
	if duration <= 0 {
		duration = 20 * time.Second
	}
	if step <= 0 {
		step = time.Second
	}
	s := a.srv
	log := a.log().With("copyId", cs.ID, "destination", cs.Account+"/"+cs.Container+"/"+cs.Blob)
	total := s.sourceSize(cs)
	if total > 0 {
		_ = s.SetTotal(cs.Account, cs.Container, cs.Blob, total)
	}
	log.Info("copy pending", "source", cs.Source, "bytes", total, "endsIn", duration.String())

	start := time.Now()
	t := time.NewTicker(step)
	defer t.Stop()
	for {
		select {
		case <-a.stop:
			return
		case <-t.C:
		}
		elapsed := time.Since(start)
		if elapsed >= duration {
			break
		}
		if !s.stillPending(cs) {
			log.Info("copy ended by someone else")
			return
		}
		if total > 0 {
			_ = s.SetProgress(cs.Account, cs.Container, cs.Blob, int64(float64(total)*elapsed.Seconds()/duration.Seconds()))
		}
	}
	if !s.stillPending(cs) {
		log.Info("copy ended by someone else")
		return
	}
	if err := s.Complete(cs.Account, cs.Container, cs.Blob); err != nil {
		log.Info("copy not completed", "err", err)
		return
	}
	st, _ := s.Copy(cs.Account, cs.Container, cs.Blob)
	log.Info("copy ended", "status", st.Status, "description", st.Description)
}

// stillPending reports whether the copy cs started is still the pending copy
// of its destination.
func (s *Server) stillPending(cs CopyStart) bool {
	st, ok := s.Copy(cs.Account, cs.Container, cs.Blob)
	return ok && st.ID == cs.ID && st.Status == StatusPending
}

// sourceSize is the size of the copy's source: known for an internal source,
// asked with a HEAD (through the source URL with its SAS, never logged) for
// an external one; 0 when unknown.
func (s *Server) sourceSize(cs CopyStart) int64 {
	s.mu.Lock()
	b := s.lookup(cs.Account, cs.Container, cs.Blob)
	if b == nil || b.copy == nil || b.copy.ID != cs.ID {
		s.mu.Unlock()
		return 0
	}
	total, internal, src := b.copy.Total, b.copy.internal != nil, b.copy.sourceURL.String()
	s.mu.Unlock()
	if internal {
		return total
	}
	req, err := http.NewRequest(http.MethodHead, src, nil)
	if err != nil {
		return 0
	}
	resp, err := s.opts.HTTPClient.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0
	}
	n, err := strconv.ParseInt(resp.Header.Get("Content-Length"), 10, 64)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// NewOnListener is New serving on ln (e.g. a fixed port for a long-running
// local simulator) instead of a random loopback port. The server owns ln.
func NewOnListener(opts Options, ln net.Listener) (*Server, error) {
	if ln == nil {
		return nil, errors.New("copysim: nil listener")
	}
	s := New(opts)
	// New serves on a random port; move the same handler onto ln.
	s.srv.Close()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(s.serveHTTP))
	_ = srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	s.srv = srv
	return s, nil
}
