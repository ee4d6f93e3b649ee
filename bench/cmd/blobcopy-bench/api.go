package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"
)

// apiClient talks to a handler with keep-alive, like the Functions host does.
var apiClient = &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 64, MaxConnsPerHost: 64}}

func copyBody(source, account, container, blob string) []byte {
	dst := map[string]string{"container": container, "blob": blob}
	if account != "" {
		dst["account"] = account
	}
	b, _ := json.Marshal(map[string]any{"source": source, "destination": dst})
	return b
}

// postCopy starts a copy through a handler's HTTP API and expects 200 or 202.
func postCopy(base string, body []byte) (int, error) {
	resp, err := apiClient.Post(base+"/api/copies", "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusAccepted {
		return resp.StatusCode, fmt.Errorf("POST /api/copies: %d %s", resp.StatusCode, b)
	}
	return resp.StatusCode, nil
}

// httpFloor makes a request the handler answers without storage: PUT on
// /api/openapi.json, 405 with an error JSON, through the same routing and access log.
func httpFloor(base string) error {
	req, err := http.NewRequest(http.MethodPut, base+"/api/openapi.json", nil)
	if err != nil {
		return err
	}
	resp, err := apiClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusMethodNotAllowed {
		return fmt.Errorf("PUT /api/openapi.json: %d", resp.StatusCode)
	}
	return nil
}

// copyRequest is POST /api/copies with body, for an in-process handler.
func copyRequest(body []byte) *http.Request {
	req := httptest.NewRequest(http.MethodPost, "/api/copies", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	return req
}

// startAnswered tells whether rec holds a started copy's answer (200 or 202), else why not.
func startAnswered(rec *httptest.ResponseRecorder) error {
	if rec.Code != http.StatusOK && rec.Code != http.StatusAccepted {
		return fmt.Errorf("POST /api/copies: %d %s", rec.Code, rec.Body.String())
	}
	return nil
}

// serveCopy starts a copy through an in-process handler (no network).
func serveCopy(h http.Handler, body []byte) (int, string, error) {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, copyRequest(body))
	if err := startAnswered(rec); err != nil {
		return rec.Code, "", err
	}
	var v struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	}
	_ = json.Unmarshal(rec.Body.Bytes(), &v)
	return rec.Code, v.Status, nil
}

// timerPayload is the host's invocation of statusfn.
const timerPayload = `{"Data":{"timer":{"Schedule":{"AdjustForDST":true},"ScheduleStatus":null,"IsPastDue":false}},"Metadata":{}}`

// invokeTimer runs one status tick in a handler through its host invocation path and
// returns the invocation's log lines.
func invokeTimer(base string) ([]string, error) {
	resp, err := apiClient.Post(base+"/statusfn", "application/json", strings.NewReader(timerPayload))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("POST /statusfn: %d %s", resp.StatusCode, b)
	}
	var out struct{ Logs []string }
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("statusfn answer: %w: %s", err, b)
	}
	return out.Logs, nil
}
