package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// client speaks the blobcopy HTTP API.
type client struct {
	base string // http://127.0.0.1:7071, no trailing slash
	key  string // function key (x-functions-key); "" when none is needed
	http *http.Client
}

// job is the part of a job answer the CLI shows; --json prints the answer unchanged.
type job struct {
	ID                string `json:"id"`
	Status            string `json:"status"`
	StatusDescription string `json:"statusDescription"`
	CopyID            string `json:"copyId"`
	Source            struct {
		URL string `json:"url"`
	} `json:"source"`
	Destination struct {
		Account   string `json:"account"`
		Container string `json:"container"`
		Blob      string `json:"blob"`
		URL       string `json:"url"`
	} `json:"destination"`
	Progress struct {
		BytesCopied int64 `json:"bytesCopied"`
		BytesTotal  int64 `json:"bytesTotal"`
	} `json:"progress"`
	Percent             float64    `json:"percent"`
	DestinationSnapshot string     `json:"destinationSnapshot"`
	CreatedAt           time.Time  `json:"createdAt"`
	CompletedAt         *time.Time `json:"completedAt"`
}

// terminal mirrors the service: only starting and pending are not final.
func (j *job) terminal() bool { return j.Status != "starting" && j.Status != "pending" }

// apiError is an error answer: Azure's {"error":{code,message,target}} shape.
type apiError struct {
	Status  int
	Code    string
	Message string
	Target  string
	Body    []byte
}

func (e *apiError) Error() string {
	msg := fmt.Sprintf("%d %s", e.Status, e.Code)
	if e.Message != "" {
		msg += ": " + e.Message
	}
	if e.Target != "" {
		msg += " (target " + e.Target + ")"
	}
	return msg
}

// answer is a successful call: status, headers and the raw body.
type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) job() (*job, error) {
	var j job
	if err := json.Unmarshal(a.body, &j); err != nil || j.ID == "" {
		return nil, fmt.Errorf("the answer is not a job (%v): %.200s", err, a.body)
	}
	return &j, nil
}

func (c *client) do(ctx context.Context, method, path string, body any, header map[string]string) (answer, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return answer{}, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return answer{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.key != "" {
		req.Header.Set("x-functions-key", c.key)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return answer{}, fmt.Errorf("%s %s: %w (is the handler running? `make run` starts it; --url or BLOBCOPY_URL name another)", method, c.base+path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return answer{}, fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if resp.StatusCode >= 400 {
		e := &apiError{Status: resp.StatusCode, Body: b}
		var wire struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
				Target  string `json:"target"`
			} `json:"error"`
		}
		if json.Unmarshal(b, &wire) == nil && wire.Error.Code != "" {
			e.Code, e.Message, e.Target = wire.Error.Code, wire.Error.Message, wire.Error.Target
		} else {
			e.Code = strings.ReplaceAll(http.StatusText(resp.StatusCode), " ", "")
			e.Message = strings.TrimSpace(string(b))
		}
		return answer{}, e
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

func (c *client) start(ctx context.Context, req map[string]any, idempotencyKey string) (answer, error) {
	var h map[string]string
	if idempotencyKey != "" {
		h = map[string]string{"Idempotency-Key": idempotencyKey}
	}
	return c.do(ctx, http.MethodPost, "/api/copies", req, h)
}

func (c *client) get(ctx context.Context, id string) (answer, error) {
	return c.do(ctx, http.MethodGet, "/api/copies/"+url.PathEscape(id), nil, nil)
}

func (c *client) abort(ctx context.Context, id string, restore bool) (answer, error) {
	var body any
	if restore {
		body = map[string]bool{"restore": true}
	}
	return c.do(ctx, http.MethodPost, "/api/copies/"+url.PathEscape(id)+"/abort", body, nil)
}

// list follows nextLink until every page is read (or limit jobs are), and returns
// the raw job objects.
func (c *client) list(ctx context.Context, status, batch string, limit int) ([]json.RawMessage, error) {
	q := url.Values{}
	if status != "" {
		q.Set("status", status)
	}
	if batch != "" {
		q.Set("batch", batch)
	}
	path := "/api/copies"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	return c.collect(ctx, path, nil, limit)
}

// collect follows a list's nextLink from path until every page is read, or limit items
// (0: no limit) that keep accepts (nil: every item) are collected.
func (c *client) collect(ctx context.Context, path string, keep func(json.RawMessage) bool, limit int) ([]json.RawMessage, error) {
	var all []json.RawMessage
	for path != "" {
		a, err := c.do(ctx, http.MethodGet, path, nil, nil)
		if err != nil {
			return nil, err
		}
		var page struct {
			Value    []json.RawMessage `json:"value"`
			NextLink string            `json:"nextLink"`
		}
		if err := json.Unmarshal(a.body, &page); err != nil {
			return nil, fmt.Errorf("the list answer is not {value, nextLink}: %w", err)
		}
		for _, raw := range page.Value {
			if keep != nil && !keep(raw) {
				continue
			}
			all = append(all, raw)
			if limit > 0 && len(all) >= limit {
				return all, nil
			}
		}
		path = page.NextLink
		if u, err := url.Parse(path); err == nil && u.IsAbs() {
			path = u.RequestURI()
		}
	}
	return all, nil
}
