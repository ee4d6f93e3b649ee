// Package contract is one test suite for the copy domain's ports (copyjob.Blobs,
// copyjob.Records, copyjob.Queue), run against every implementation: the in-memory
// fakes of copyjobtest and the azstorage adapters on Azurite and on the copy simulator.
// It checks the behaviour documented in copyjob/ports.go, so that a test that passes on
// the fakes means the same on storage (the way litestream runs one ReplicaClient suite
// against every backend).
//
// Each Run function takes a factory that returns a fresh, isolated implementation (a
// new container or queue on a shared emulator is enough) together with the test-side
// hooks the port itself does not offer: put a blob, let someone else lease it, finish a
// pending copy, inject a transient fault.
package contract

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/blobcopy/blobcopy/internal/copyjob"
)

// FaultInjector is implemented by a Records the factory returns (or by a QueueHarness)
// that can inject transient failures into its next operation op (a copyjobtest.Op*
// name): before the operation (nothing happens, storage answers 503) or after it (the
// operation happens, its answer is lost). It returns false when it cannot.
type FaultInjector interface {
	InjectTransient(t *testing.T, op string, after bool) bool
}

// Sentinels are every sentinel error of the copy domain; each error a port returns
// wraps exactly one of them.
var Sentinels = []error{
	copyjob.ErrNotFound, copyjob.ErrExists, copyjob.ErrConflict, copyjob.ErrPendingCopy,
	copyjob.ErrNoPendingCopy, copyjob.ErrCopyIDMismatch, copyjob.ErrSourceUnreadable,
	copyjob.ErrLeaseConflict, copyjob.ErrLeaseNotHeld, copyjob.ErrForbidden,
	copyjob.ErrInvalidSource, copyjob.ErrUnknownAccount, copyjob.ErrUnavailable,
	copyjob.ErrSourceNotFound, copyjob.ErrDestinationLeased, copyjob.ErrInvalidValue,
	copyjob.ErrRefused,
}

// sentinelsOf lists the sentinels err wraps.
func sentinelsOf(err error) []error {
	var out []error
	for _, s := range Sentinels {
		if errors.Is(err, s) {
			out = append(out, s)
		}
	}
	return out
}

// wantErr fails the test unless err wraps want and no other sentinel, and its text
// carries no SAS signature.
func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: no error, want %v", what, want)
		return
	}
	got := sentinelsOf(err)
	if len(got) != 1 || got[0] != want {
		t.Errorf("%s: error %q wraps %v, want exactly %q", what, err, names(got), want)
	}
	noSecret(t, what, err)
}

// wantOK fails the test on an error.
func wantOK(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Errorf("%s: %v (sentinels %v)", what, err, names(sentinelsOf(err)))
	}
}

// noSecret fails the test if an error's text carries a SAS signature.
func noSecret(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil && strings.Contains(strings.ToLower(err.Error()), "sig=") {
		t.Errorf("%s: error text carries a SAS signature: %q", what, err)
	}
}

func names(errs []error) []string {
	out := make([]string, 0, len(errs))
	for _, e := range errs {
		out = append(out, fmt.Sprintf("%q", e))
	}
	return out
}
