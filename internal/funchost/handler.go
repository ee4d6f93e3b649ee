package funchost

import (
	"context"
	"encoding/json"
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

// InvocationHandler serves the host's POST /<functionName> invocations.
// Any other method answers 405 and any other path 404, both as Azure error
// JSON.
func InvocationHandler(functionName string, invoke InvokeFunc, logger *slog.Logger) http.Handler {
	if logger == nil {
		logger = slog.Default()
	}
	logger = logger.With("function", functionName)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Function names are case-insensitive in Azure.
		if !strings.EqualFold(strings.TrimPrefix(r.URL.Path, "/"), functionName) {
			WriteError(w, http.StatusNotFound, "FunctionNotFound", fmt.Sprintf("no function at %s; this handler serves /%s", r.URL.Path, functionName))
			return
		}
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			WriteError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", fmt.Sprintf("method %s is not allowed; the Functions host invokes with POST", r.Method))
			return
		}
		req, err := DecodeInvokeRequest(http.MaxBytesReader(w, r.Body, maxInvocationBytes))
		if err != nil {
			logger.WarnContext(r.Context(), "rejected invocation", "error", err)
			WriteError(w, http.StatusBadRequest, "InvalidInvocationPayload", err.Error())
			return
		}
		invLogger := logger
		if sys, ok, err := req.Sys(); err == nil && ok {
			invLogger = logger.With("randGuid", sys.RandGuid)
		}
		log := NewInvocationLog(invLogger)
		outputs, err := invokeRecovering(r.Context(), invoke, req, log)
		switch {
		case err == nil:
			writeJSON(w, http.StatusOK, InvokeResponse{Outputs: outputs, Logs: log.Lines()})
		case IsInvalidPayload(err):
			logger.WarnContext(r.Context(), "rejected invocation", "error", err)
			WriteError(w, http.StatusBadRequest, "InvalidInvocationPayload", err.Error())
		default:
			log.Error("invocation failed", "error", err)
			writeJSON(w, http.StatusInternalServerError, InvokeResponse{Outputs: outputs, Logs: log.Lines()})
		}
	})
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
