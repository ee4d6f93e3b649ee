package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2"
)

// Figure 2's second baseline: the bare sequence behind the smallest HTTP server, in a
// process of its own (this binary, executed again with bareServeEnv set). Its latency
// is the bare calls plus what any HTTP function pays to be called: the loopback hop
// into another process, one request read and one answer written. The handler is
// called the same way (by the Functions host, or the bench), so the ratio of the two
// is the handler's own overhead; the in-process sequence also counts the hop.
const bareServeEnv = "BLOBCOPY_BENCH_BARE_SERVE"

// serveBare runs in the executed copy: it listens on the address in bareServeEnv, says
// "ready" on stdout and serves POST /api/copies until killed, making the bare
// sequence for the body's destination blob.
func serveBare() error {
	blobEP, queueEP, key, source := os.Getenv("BARE_BLOB_ENDPOINT"), os.Getenv("BARE_QUEUE_ENDPOINT"), os.Getenv("BARE_KEY"), os.Getenv("BARE_SOURCE")
	cred, err := azblob.NewSharedKeyCredential(devAccount, key)
	if err != nil {
		return err
	}
	blobs, err := azblob.NewClientWithSharedKeyCredential(blobEP+"/", cred, nil)
	if err != nil {
		return err
	}
	qcred, err := azqueue.NewSharedKeyCredential(devAccount, key)
	if err != nil {
		return err
	}
	queue, err := azqueue.NewQueueClientWithSharedKeyCredential(queueEP+"/"+bareQueueName, qcred, nil)
	if err != nil {
		return err
	}
	bare := newBareSDKClients(blobs, queue, source)
	ln, err := net.Listen("tcp", os.Getenv(bareServeEnv))
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/copies", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Destination struct {
				Blob string `json:"blob"`
			} `json:"destination"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		deleteMessage, err := bare.sequence(r.Context(), req.Destination.Blob)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		// The answer is sent first, then the message is deleted behind it, as the app
		// does (answerFirst in internal/api).
		const answer = `{"status":"success"}`
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(answer)))
		_, _ = io.WriteString(w, answer)
		_ = http.NewResponseController(w).Flush()
		go func() { _ = deleteMessage(context.WithoutCancel(r.Context())) }()
	})
	fmt.Println("ready")
	return http.Serve(ln, mux)
}

// bareServer is a running copy of this binary serving the bare sequence.
type bareServer struct {
	cmd  *exec.Cmd
	base string
}

// startBareServer runs the served sequence, with extra environment (KEY=VALUE) if any.
func startBareServer(e *env, extraEnv ...string) (*bareServer, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), bareServeEnv+"="+addr,
		"BARE_BLOB_ENDPOINT="+e.az.BlobEndpoint(devAccount), "BARE_QUEUE_ENDPOINT="+e.az.QueueEndpoint(devAccount),
		"BARE_KEY="+e.az.Key(devAccount), "BARE_SOURCE="+srcURL(e.az))
	cmd.Env = append(cmd.Env, extraEnv...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &bareServer{cmd: cmd, base: "http://" + addr}
	ready := make(chan error, 1)
	go func() {
		line := make([]byte, len("ready"))
		_, err := io.ReadFull(out, line)
		if err == nil && !strings.HasPrefix(string(line), "ready") {
			err = fmt.Errorf("said %q", line)
		}
		ready <- err
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case err = <-ready:
	case <-time.After(30 * time.Second):
		err = fmt.Errorf("not ready after 30s")
	}
	if err != nil {
		s.stop()
		return nil, fmt.Errorf("bare server: %w", err)
	}
	return s, nil
}

func (s *bareServer) stop() {
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
}
