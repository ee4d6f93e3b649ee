package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// callbackSink receives the completion callbacks of local copies (callbackUrl
// http://127.0.0.1:<port>/anything) and prints one line per delivery, so callbacks can
// be tried without another tool. It answers 204, which the handler records as delivered.
func callbackSink(ln net.Listener, log *slog.Logger) *http.Server {
	srv := &http.Server{
		ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPost {
				http.Error(w, "POST callbacks here", http.StatusMethodNotAllowed)
				return
			}
			body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
			var j struct {
				JobID  string `json:"jobId"`
				Status string `json:"status"`
			}
			_ = json.Unmarshal(body, &j)
			log.Info("callback received", "path", r.URL.Path, "jobId", j.JobID, "status", j.Status, "body", string(body))
			w.WriteHeader(http.StatusNoContent)
		}),
	}
	go func() { _ = srv.Serve(ln) }()
	return srv
}

func callbackURL(port int) string { return fmt.Sprintf("http://127.0.0.1:%d/callbacks", port) }
