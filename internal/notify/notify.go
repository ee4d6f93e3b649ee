// Package notify delivers completion callbacks: the job's outcome POSTed as JSON to a
// URL the caller named, on an allowlisted host.
package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
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

// HTTP posts outcomes. One Notify is one attempt; the copy service retries across ticks.
type HTTP struct {
	Client *http.Client
}

// NewHTTP returns a notifier with a short timeout: a slow receiver must not stall a tick.
func NewHTTP() *HTTP { return &HTTP{Client: &http.Client{Timeout: 10 * time.Second}} }

// Notify posts the job's outcome; any non-2xx answer is an error.
func (n *HTTP) Notify(ctx context.Context, callbackURL string, job *copyjob.Job) error {
	body, err := json.Marshal(Outcome{
		JobID: job.ID, CopyID: job.CopyID, Status: job.Status, StatusDescription: job.StatusDescription,
		Progress: job.Progress, Source: job.Source.URL, Destination: job.Destination.URL, CompletedAt: job.CompletedAt,
	})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, callbackURL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("callback request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "blobcopy-callback/1")
	resp, err := n.Client.Do(req)
	if err != nil {
		return fmt.Errorf("callback: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("callback answered %s", resp.Status)
	}
	return nil
}
