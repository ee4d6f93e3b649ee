package funchost

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
)

// maxInvocationBytes bounds a request body; queue messages (64 KiB) and
// timer payloads are far smaller.
const maxInvocationBytes = 4 << 20

// InvokeFunc handles one decoded invocation and returns its output bindings.
// Returning an *InvalidPayloadError (for example from req.Bind) answers 400;
// any other error answers 500, which the host records as a failure.
type InvokeFunc func(ctx context.Context, req InvokeRequest, log *InvocationLog) (outputs map[string]any, err error)

// TimerFunc runs one timer tick, under the host or the standalone Scheduler.
type TimerFunc func(ctx context.Context, info TimerInfo, log *InvocationLog) error

// InvocationIDHeader carries the host's invocation id on every request it
// sends to the handler (DefaultHttpWorkerService.cs, AddHeaders).
const InvocationIDHeader = "X-Azure-Functions-InvocationId"

// ErrAlreadyRunning is returned by a function that refuses to run while
// another invocation of it is in progress; InvocationHandler answers 409.
var ErrAlreadyRunning = errors.New("another invocation of this function is running")

// InvocationHandler serves the host's POST /<functionName> invocations.
// Any other method answers 405 and any other path 404, both as Azure error
// JSON. Every line the invocation logs carries the host's invocation id
// (X-Azure-Functions-InvocationId; a fresh id when a caller other than the
// host sends none) and is routed as InvocationLog describes.
func InvocationHandler(functionName string, invoke InvokeFunc, logger *slog.Logger) http.Handler {
	if logger == nil {
		logger = slog.Default()
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Function names are case-insensitive in Azure.
		if !strings.EqualFold(strings.Trim(r.URL.Path, "/"), functionName) {
			WriteError(w, http.StatusNotFound, "FunctionNotFound", fmt.Sprintf("no function at %s; this handler serves /%s", r.URL.Path, functionName))
			return
		}
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			WriteError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", fmt.Sprintf("method %s is not allowed; the Functions host invokes with POST", r.Method))
			return
		}
		id := r.Header.Get(InvocationIDHeader)
		if id == "" {
			id = newInvocationID()
		}
		ctx := WithInvocationID(r.Context(), id)
		invLogger := logger.With("function", functionName, InvocationIDAttr, id)
		req, err := DecodeInvokeRequest(http.MaxBytesReader(w, r.Body, maxInvocationBytes))
		if err != nil {
			invLogger.ErrorContext(ctx, "rejected invocation", "error", err)
			WriteError(w, http.StatusBadRequest, "InvalidInvocationPayload", err.Error())
			return
		}
		log := NewInvocationLog(logger, "function", functionName, InvocationIDAttr, id)
		outputs, err := invokeRecovering(ctx, invoke, req, log)
		switch {
		case err == nil:
			log.Finish(false)
			writeJSON(w, http.StatusOK, InvokeResponse{Outputs: outputs, Logs: log.Lines()})
		case IsInvalidPayload(err):
			log.Error("rejected invocation", "error", err)
			log.Finish(true)
			WriteError(w, http.StatusBadRequest, "InvalidInvocationPayload", err.Error())
		case errors.Is(err, ErrAlreadyRunning):
			log.Finish(false)
			invLogger.WarnContext(ctx, "invocation refused: the previous one is still running")
			w.Header().Set("Retry-After", "30")
			WriteError(w, http.StatusConflict, "InvocationInProgress", fmt.Sprintf("%s is already running in this process; one runs at a time", functionName))
		default:
			log.Error("invocation failed", "error", err)
			log.Finish(true)
			// The host ignores a non-2xx body; Logs stay for other callers
			// (standalone), redacted like every line.
			writeJSON(w, http.StatusInternalServerError, InvokeResponse{Outputs: outputs, Logs: log.AllLines()})
		}
	})
}

// newInvocationID returns a random (version 4) UUID for an invocation the
// host did not name.
func newInvocationID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// TimerHandler serves the host's invocations of a timer-triggered function
// whose trigger binding is named bindingName.
func TimerHandler(functionName, bindingName string, run TimerFunc, logger *slog.Logger) http.Handler {
	return InvocationHandler(functionName, func(ctx context.Context, req InvokeRequest, log *InvocationLog) (map[string]any, error) {
		var info TimerInfo
		if err := req.Bind(bindingName, &info); err != nil {
			return nil, err
		}
		return nil, run(ctx, info, log)
	}, logger)
}

// invokeRecovering turns a panic into an error so one bad invocation fails
// alone instead of taking the handler process (and every other one) down.
func invokeRecovering(ctx context.Context, invoke InvokeFunc, req InvokeRequest, log *InvocationLog) (outputs map[string]any, err error) {
	defer func() {
		if p := recover(); p != nil {
			log.Logger().Error("invocation panicked", "panic", p, "stack", string(debug.Stack()))
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return invoke(ctx, req, log)
}

// WriteError answers with Azure's error shape,
// {"error":{"code":...,"message":...}}, and the x-ms-error-code header.
func WriteError(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("x-ms-error-code", code)
	type azureError struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	writeJSON(w, status, struct {
		Error azureError `json:"error"`
	}{azureError{Code: code, Message: message}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		// Only reachable with unencodable outputs: a programming error.
		status = http.StatusInternalServerError
		w.Header().Set("x-ms-error-code", "InternalError")
		body = []byte(`{"error":{"code":"InternalError","message":"response is not encodable: ` + jsonEscape(err.Error()) + `"}}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

func jsonEscape(s string) string {
	b, _ := json.Marshal(s)
	return string(b[1 : len(b)-1])
}
