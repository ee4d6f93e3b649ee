package azstorage

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// A server timeout bounds how long storage works on a request (the REST "timeout"
// query parameter). Blob writes default to 10 minutes per MiB at the server ("Setting
// timeouts for Blob service operations"), so a synchronous Copy Blob From URL of up to
// 256 MiB could be carried out long after its caller gave up, or crashed. The copy
// service reasons that a request sent before a start's deadline has been finished or
// abandoned by storage shortly after it (copyjob's storageServerTimeout): Copy Blob
// From URL is therefore sent with the timeout that ends with its context's deadline.

type serverTimeoutKey struct{}

// withServerTimeout makes the requests made with ctx carry timeout=seconds.
func withServerTimeout(ctx context.Context, seconds int) context.Context {
	return context.WithValue(ctx, serverTimeoutKey{}, seconds)
}

// serverTimeoutUntilDeadline is the whole seconds left before ctx's deadline (at least
// 1, at most limit), or limit when ctx has none.
func serverTimeoutUntilDeadline(ctx context.Context, limit time.Duration) int {
	left := limit
	if deadline, ok := ctx.Deadline(); ok {
		left = min(time.Until(deadline), limit)
	}
	return max(int(left/time.Second), 1)
}

// serverTimeoutPolicy appends the timeout parameter withServerTimeout asked for. It
// runs per call, before the Shared Key policy signs the URL, and appends rather than
// re-encodes the query, which may carry a SAS.
type serverTimeoutPolicy struct{}

func (serverTimeoutPolicy) Do(req *policy.Request) (*http.Response, error) {
	if seconds, ok := req.Raw().Context().Value(serverTimeoutKey{}).(int); ok {
		u := req.Raw().URL
		if u.Query().Get("timeout") == "" {
			if u.RawQuery != "" {
				u.RawQuery += "&"
			}
			u.RawQuery += "timeout=" + strconv.Itoa(seconds)
		}
	}
	return req.Next()
}
