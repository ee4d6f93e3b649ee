package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/blobcopy/blobcopy/internal/batch"
	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/redact"
)

// ErrorDetail is Azure's error shape: {"error":{"code","message","target","details"}}.
type ErrorDetail struct {
	Code    string        `json:"code"`
	Message string        `json:"message"`
	Target  string        `json:"target,omitempty"`
	Details []ErrorDetail `json:"details,omitempty"`
}

// ErrorResponse is the body of every error answer. Job is set when the error concerns a
// known job (the owner of a pending copy, a job that is no longer pending).
type ErrorResponse struct {
	Error ErrorDetail `json:"error"`
	Job   *JobView    `json:"job,omitempty"`
}

// Error codes of the HTTP layer (the domain's codes are in copyjob).
const (
	CodeInvalidJSON          = "InvalidJson"
	CodeUnknownField         = "UnknownField"
	CodeInvalidBlobName      = "InvalidBlobName"
	CodeInvalidContainerName = "InvalidContainerName"
	CodeRequestTooLarge      = "RequestBodyTooLarge"
	CodeUnsupportedMedia     = "UnsupportedMediaType"
	CodeMethodNotAllowed     = "MethodNotAllowed"
	CodeNotFound             = "ResourceNotFound"
	CodeUnauthorized         = "Unauthorized"
	CodeInternal             = "InternalError"
)

// statusFor maps domain codes to HTTP statuses.
func statusFor(code copyjob.Code) int {
	switch code {
	case copyjob.CodeInvalidRequest, copyjob.CodeSourceNotReadable:
		return http.StatusBadRequest
	case copyjob.CodeJobNotFound, copyjob.CodeContainerNotFound, copyjob.CodeSourceNotFound, batch.CodeBatchNotFound:
		return http.StatusNotFound
	case copyjob.CodeCopyNotPending, copyjob.CodeDestinationExists, copyjob.CodePendingCopyOperation, copyjob.CodeSourceLeased,
		copyjob.CodeDestinationLeased, copyjob.CodeStorageRefused, copyjob.CodeStartRetriesExhausted, copyjob.CodeCopyNotRetryable, copyjob.CodeSourceQueryNotKept,
		batch.CodeBatchFinished:
		return http.StatusConflict
	case copyjob.CodeIdempotencyMismatch:
		return http.StatusUnprocessableEntity
	case copyjob.CodeForbidden, copyjob.CodeDestinationNotAllowed, copyjob.CodeSourceNotAllowed:
		return http.StatusForbidden
	case copyjob.CodeStorageUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// requestError is a 4xx the HTTP layer finds itself (decoding, validation).
type requestError struct {
	status int
	detail ErrorDetail
}

func (e *requestError) Error() string { return e.detail.Code + ": " + e.detail.Message }

func badRequest(code, target, msg string) *requestError {
	return &requestError{status: http.StatusBadRequest, detail: ErrorDetail{Code: code, Target: target, Message: msg}}
}

// writeJSON answers with v, its length said: a whole answer can be sent (answerFirst)
// before the handler returns, and the client knows it has all of it.
func writeJSON(w http.ResponseWriter, status int, v any) {
	var body bytes.Buffer
	enc := json.NewEncoder(&body)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(body.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(body.Bytes())
}

// responder writes answers: jobs with their links, and errors in Azure's shape. The
// copy handlers and the event handler each hold one (a value, not a back-pointer).
type responder struct {
	prefix string // route prefix, "/api"
	log    *slog.Logger
	// retryAfter is suggested to pollers of pending jobs.
	retryAfter time.Duration
}

// writeJobFor answers with a job as the caller sees it: 202 + Location + Retry-After
// while it runs (for a start), 200 with the final state otherwise.
func (s responder) writeJobFor(w http.ResponseWriter, c Caller, job *copyjob.Job, isStart bool) {
	status := http.StatusOK
	if !job.Status.Terminal() {
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int(s.retryAfter/time.Second))))
		if isStart {
			status = http.StatusAccepted
		}
	}
	w.Header().Set("Location", s.prefix+"/copies/"+job.ID)
	writeJSON(w, status, s.viewFor(c, job))
}

// viewFor is the job as the caller sees it: the owner only for Copies.Admin.
func (s responder) viewFor(c Caller, j *copyjob.Job) JobView {
	v := newJobView(j, s.prefix)
	if c.Admin {
		v.Owner = j.Owner
	}
	return v
}

// writeError answers err in Azure's error shape, with the code also in x-ms-error-code.
// Messages are scrubbed: a storage error can quote a URL.
func (s responder) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var (
		status int
		body   ErrorResponse
		rerr   *requestError
		derr   *copyjob.Error
	)
	switch {
	case errors.As(err, &rerr):
		status, body.Error = rerr.status, rerr.detail
	case errors.As(err, &derr):
		status = statusFor(derr.Code)
		body.Error = ErrorDetail{Code: string(derr.Code), Message: derr.Message, Target: derr.Target}
		if derr.Err != nil && status < 500 {
			body.Error.Details = []ErrorDetail{{Code: "Cause", Message: derr.Err.Error()}}
		}
		// The job an error is about (e.g. the one whose copy is pending on the
		// destination) is shown, and named, only to a caller who may read it.
		if c := callerFrom(r.Context()); derr.Job != nil && c.canRead(derr.Job) {
			v := s.viewFor(c, derr.Job)
			body.Job = &v
		} else if derr.Job != nil {
			body.Error = hideJob(body.Error, derr.Job.ID)
		}
	default:
		status = http.StatusInternalServerError
		body.Error = ErrorDetail{Code: CodeInternal, Message: "internal error"}
	}
	body.Error.Message = redact.Text(body.Error.Message)
	for i := range body.Error.Details {
		body.Error.Details[i].Message = redact.Text(body.Error.Details[i].Message)
	}
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelError
		if status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", strconv.Itoa(5))
		}
	}
	s.log.Log(r.Context(), level, "request failed", "method", r.Method, "path", r.URL.Path,
		"status", status, "code", body.Error.Code, "err", err)
	w.Header().Set("x-ms-error-code", body.Error.Code)
	writeJSON(w, status, body)
}

// hideJob takes a job's id out of an error a caller may not see that job in.
func hideJob(d ErrorDetail, id string) ErrorDetail {
	hide := func(m string) string {
		return strings.ReplaceAll(strings.ReplaceAll(m, "job "+id, "another caller's job"), id, "(another caller's job)")
	}
	d.Message = hide(d.Message)
	details := make([]ErrorDetail, len(d.Details))
	for i, x := range d.Details {
		details[i] = hideJob(x, id)
	}
	if d.Details != nil {
		d.Details = details
	}
	return d
}
