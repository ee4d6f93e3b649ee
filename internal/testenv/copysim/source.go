package copysim

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// syncCopyLimit is the largest source Copy Blob From URL (x-ms-requires-sync: true)
// accepts: "copies a blob ... synchronously for source blob sizes up to 256 mebibytes
// (MiB)" (https://learn.microsoft.com/rest/api/storageservices/copy-blob-from-url).
// A larger source is refused with 409 CannotVerifyCopySource and the message below,
// the service's answer as reported in Azure/azure-sdk-for-go#19880.
const syncCopyLimit = 256 << 20

// probeTimeout bounds the check of an external source at the start of a copy.
const probeTimeout = 10 * time.Second

// sourceProbe is what the start of a copy learned from an external source. Azure
// verifies the source when Copy Blob is called and refuses an unreadable one with
// CannotVerifyCopySource carrying the source's status
// (https://learn.microsoft.com/rest/api/storageservices/copy-blob: "the source ... must
// be public or authorized"; the error code table lists CannotVerifyCopySource, "Could
// not verify the copy source within the specified time.", as 500 when the source does
// not answer). The simulator probes only with Options.FetchSource: otherwise an
// external source is never contacted.
type sourceProbe struct {
	checked bool
	status  int // the source's HTTP status; 0 when it did not answer
	code    string
	size    int64 // Content-Length, -1 when unknown
	err     error // no answer (refused, reset, DNS, timeout)
}

// internalSource reports whether src names a blob of this simulator.
func (s *Server) internalSource(src *url.URL) bool {
	return src.Host == s.srv.Listener.Addr().String()
}

// probeSource GETs an external copy source (headers only); called without s.mu.
func (s *Server) probeSource(raw string) sourceProbe {
	if !s.opts.FetchSource || raw == "" {
		return sourceProbe{}
	}
	src, err := url.Parse(raw)
	if err != nil || !src.IsAbs() || s.internalSource(src) {
		return sourceProbe{}
	}
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	p := sourceProbe{checked: true, size: -1}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
	if err != nil {
		p.err = err
		return p
	}
	resp, err := s.opts.HTTPClient.Do(req)
	if err != nil {
		p.err = err
		return p
	}
	_ = resp.Body.Close() // only the headers matter here
	p.status, p.size = resp.StatusCode, resp.ContentLength
	p.code = resp.Header.Get("x-ms-error-code")
	if p.code == "" {
		p.code = strings.ReplaceAll(http.StatusText(resp.StatusCode), " ", "")
	}
	return p
}

// verify refuses the copy when the probed source is dead; true when it may start.
// The answer carries x-ms-copy-source-status-code and x-ms-copy-source-error-code, as
// the service does for a source that answered.
func (p sourceProbe) verify(x *exchange) bool {
	switch {
	case !p.checked:
		return true
	case p.err != nil:
		x.fail(http.StatusInternalServerError, "CannotVerifyCopySource",
			fmt.Sprintf("The source did not answer: %s", redactErr(p.err)))
		return false
	case p.status < 200 || p.status > 299:
		x.fail(p.status, "CannotVerifyCopySource", fmt.Sprintf("The source answered %d %s.", p.status, p.code))
		x.header.Set("x-ms-copy-source-status-code", strconv.Itoa(p.status))
		x.header.Set("x-ms-copy-source-error-code", p.code)
		return false
	}
	return true
}
