// Package notify delivers completion callbacks: the job's outcome POSTed as JSON to a
// URL the caller named, on an allowlisted host, signed the Standard Webhooks way.
package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/blobcopy/blobcopy/internal/copyjob"
)

// Outcome is the callback body.
type Outcome struct {
	JobID             string           `json:"jobId"`
	CopyID            string           `json:"copyId,omitempty"`
	Status            copyjob.Status   `json:"status"`
	StatusDescription string           `json:"statusDescription,omitempty"`
	Progress          copyjob.Progress `json:"progress"`
	Source            string           `json:"source"`
	Destination       string           `json:"destination"`
	CompletedAt       *time.Time       `json:"completedAt,omitempty"`
}

// Standard Webhooks headers (https://www.standardwebhooks.com/).
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// Options configure an HTTP notifier.
type Options struct {
	// Secret signs every body (COPY_CALLBACK_SECRET); nil sends unsigned callbacks.
	Secret *Secret
	// Allowed is checked again at send time (the request was checked when the job was
	// created; the allowlist may have changed since). Nil allows every host.
	Allowed func(u *url.URL) bool
	// Timeout bounds one attempt; 10 s when zero: a slow receiver must not stall a tick.
	Timeout time.Duration
	// Now is the clock of webhook-timestamp.
	Now func() time.Time
}

// HTTP posts outcomes. One Notify is one attempt; the copy service retries across ticks.
type HTTP struct {
	client  *http.Client
	secret  *Secret
	allowed func(u *url.URL) bool
	now     func() time.Time
}

// ErrRedirect is the error of an attempt answered with a redirect: callbacks never
// follow one (the Location could lie outside the allowlist).
var ErrRedirect = errors.New("callback answered a redirect, which is not followed")

// New returns a notifier that never follows redirects and sends through no proxy.
func New(opts Options) *HTTP {
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.Proxy = nil
	return &HTTP{
		client: &http.Client{
			Timeout:   timeout,
			Transport: transport,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
		secret: opts.Secret, allowed: opts.Allowed, now: now,
	}
}

// NewHTTP returns an unsigned notifier with the default options.
func NewHTTP() *HTTP { return New(Options{}) }

// Notify posts the job's outcome; any answer but 2xx is an error, a 3xx included. Errors
// name the receiver by its origin only: receivers keep their credential in the query or
// in the path (Slack, Teams and Discord webhook URLs).
func (n *HTTP) Notify(ctx context.Context, callbackURL string, job *copyjob.Job) error {
	u, err := url.Parse(callbackURL)
	if err != nil || u.Host == "" {
		return errors.New("callback URL is not an absolute URL")
	}
	target := origin(u)
	if u.Scheme != "https" && !(u.Scheme == "http" && loopback(u.Hostname())) {
		return fmt.Errorf("callback to %s refused: https only (plain http to loopback receivers only)", target)
	}
	if n.allowed != nil && !n.allowed(u) {
		return fmt.Errorf("callback to %s refused: host not in COPY_CALLBACK_ALLOWED_HOSTS", target)
	}
	body, err := json.Marshal(Outcome{
		JobID: job.ID, CopyID: job.CopyID, Status: job.Status, StatusDescription: job.StatusDescription,
		Progress: job.Progress, Source: job.Source.URL, Destination: job.Destination.URL, CompletedAt: job.CompletedAt,
	})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, callbackURL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("callback request to %s: cannot build it", target)
	}
	id := job.ID
	if job.Callback != nil && job.Callback.DeliveryID != "" {
		id = job.Callback.DeliveryID
	}
	ts := n.now().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "blobcopy-callback/1")
	req.Header.Set(HeaderID, id)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	if n.secret != nil {
		req.Header.Set(HeaderSignature, n.secret.Sign(id, ts, body))
	}
	resp, err := n.client.Do(req)
	if err != nil {
		return fmt.Errorf("callback to %s: %s", target, transportReason(err))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode >= 300 && resp.StatusCode <= 399:
		return fmt.Errorf("callback to %s answered %s: %w", target, resp.Status, ErrRedirect)
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		return fmt.Errorf("callback to %s answered %s", target, resp.Status)
	}
	return nil
}

// transportReason describes a failed attempt without the URL *url.Error quotes in full.
func transportReason(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timed out"
	}
	return err.Error()
}

// origin is scheme://host[:port], all an error may say of a callback URL.
func origin(u *url.URL) string {
	return (&url.URL{Scheme: u.Scheme, Host: u.Host}).String()
}

func loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
