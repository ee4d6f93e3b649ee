package main

import (
	"maps"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// requestCounter counts storage requests by REST operation. As an azcore per-retry
// policy it sees every HTTP request an SDK client sends (retries included); as a
// reverse proxy it sees whatever a foreign client (the Python peer) sends.
type requestCounter struct {
	mu     sync.Mutex
	counts map[string]int
}

func newRequestCounter() *requestCounter { return &requestCounter{counts: map[string]int{}} }

// Do implements policy.Policy.
func (c *requestCounter) Do(req *policy.Request) (*http.Response, error) {
	c.add(operation(req.Raw()))
	return req.Next()
}

func (c *requestCounter) add(op string) {
	c.mu.Lock()
	c.counts[op]++
	c.mu.Unlock()
}

// take returns the counts since the last take (or reset) and starts again.
func (c *requestCounter) take() opCounts {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.counts
	c.counts = map[string]int{}
	return out
}

func (c *requestCounter) reset() { _ = c.take() }

// opCounts are requests by operation.
type opCounts map[string]int

func (o opCounts) total() int {
	n := 0
	for _, v := range o {
		n += v
	}
	return n
}

// String lists operations in a stable order: "Put Message 1, Put Blob 2".
func (o opCounts) String() string {
	keys := slices.Sorted(maps.Keys(o))
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+" "+strconv.Itoa(o[k]))
	}
	return strings.Join(parts, ", ")
}

// operation names the Blob or Queue REST operation of a path-style request
// (/<account>/<container or queue>/...).
func operation(r *http.Request) string {
	q := r.URL.Query()
	comp, m := q.Get("comp"), r.Method
	segs := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(segs) >= 3 && segs[2] == "messages" {
		if len(segs) == 3 {
			switch {
			case m == http.MethodPost:
				return "Put Message"
			case m == http.MethodGet && q.Get("peekonly") == "true":
				return "Peek Messages"
			case m == http.MethodGet:
				return "Get Messages"
			case m == http.MethodDelete:
				return "Clear Messages"
			}
		} else {
			switch m {
			case http.MethodPut:
				return "Update Message"
			case http.MethodDelete:
				return "Delete Message"
			}
		}
		return m + " messages?"
	}
	if q.Get("restype") == "container" {
		switch {
		case comp == "list":
			return "List Blobs"
		case m == http.MethodPut && comp == "":
			return "Create Container"
		case m == http.MethodDelete:
			return "Delete Container"
		}
		return "Container " + m + " " + comp
	}
	if len(segs) == 2 { // a queue (blob containers always carry restype=container)
		switch {
		case m == http.MethodPut && comp == "":
			return "Create Queue"
		case comp == "metadata":
			return "Get Queue Metadata"
		case m == http.MethodDelete:
			return "Delete Queue"
		}
		return "Queue " + m + " " + comp
	}
	if len(segs) < 3 {
		return "Service " + m + " " + comp
	}
	switch {
	case comp == "lease":
		return "Lease Blob (" + header(r, "x-ms-lease-action") + ")"
	case comp == "copy":
		return "Abort Copy Blob"
	case comp == "snapshot":
		return "Snapshot Blob"
	case comp == "tags":
		return "Blob Tags " + m
	case comp == "block":
		return "Put Block"
	case comp == "blocklist":
		return "Put Block List"
	case comp != "":
		return "Blob " + m + " " + comp
	case m == http.MethodPut && header(r, "x-ms-copy-source") != "" && header(r, "x-ms-requires-sync") == "true":
		return "Copy Blob From URL"
	case m == http.MethodPut && header(r, "x-ms-copy-source") != "":
		return "Copy Blob"
	case m == http.MethodPut:
		return "Put Blob"
	case m == http.MethodHead:
		return "Get Blob Properties"
	case m == http.MethodGet:
		return "Get Blob"
	case m == http.MethodDelete:
		return "Delete Blob"
	}
	return "Blob " + m
}

// header reads a request header whether it was set canonically (net/http, proxies)
// or, as the Azure SDK's generated code does, under its lower-case name.
func header(r *http.Request, name string) string {
	if v := r.Header.Get(name); v != "" {
		return v
	}
	if v := r.Header[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// countingProxy is a reverse proxy to target that counts requests by operation.
type countingProxy struct {
	*requestCounter
	srv *httptest.Server
}

func newCountingProxy(target string) (*countingProxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	p := &countingProxy{requestCounter: newRequestCounter()}
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(u)
		pr.Out.Host = u.Host
	}}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.add(operation(r))
		rp.ServeHTTP(w, r)
	}))
	return p, nil
}

func (p *countingProxy) URL() string { return p.srv.URL }
func (p *countingProxy) Close()      { p.srv.Close() }
