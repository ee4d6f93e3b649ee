package azstorage_test

// The source SAS the app signs (account key or user-delegation key) as the copy sends
// it. These tests need no emulator: a fake transport answers what Azure answers to Get
// User Delegation Key and Copy Blob, and records the Copy Blob requests.

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/blobcopy/blobcopy/internal/azstorage"
	"github.com/blobcopy/blobcopy/internal/config"
	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/copyjob/copyjobtest"
)

const sasTestKey = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

type fakeToken struct{}

func (fakeToken) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: "fake-token", ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// fakeStorage answers like Azure: Get User Delegation Key gives a key valid for what
// was asked (at most 7 days, which Azure enforces); Copy Blob (and Copy Blob From URL)
// answers 202 success. It records every x-ms-copy-source it received.
type fakeStorage struct {
	mu      sync.Mutex
	sources []string
	syncs   []bool
	udkAsks int
	// revoked: keys handed out before were revoked (Revoke User Delegation Keys); a
	// Copy Blob whose source SAS was signed with one is refused 403 CannotVerifyCopySource.
	generation int
}

// revoke revokes every user-delegation key handed out so far.
func (s *fakeStorage) revoke() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.generation++
}

func (s *fakeStorage) Do(req *http.Request) (*http.Response, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	resp := &http.Response{Request: req, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(""))}
	resp.Header.Set("x-ms-request-id", "r")
	resp.Header.Set("x-ms-version", "2025-01-05")
	q := req.URL.Query()
	switch {
	case req.Method == http.MethodPost && q.Get("comp") == "userdelegationkey":
		s.udkAsks++
		body, _ := io.ReadAll(req.Body)
		start := between(string(body), "<Start>", "</Start>")
		expiry := between(string(body), "<Expiry>", "</Expiry>")
		ts, _ := time.Parse(time.RFC3339, start)
		te, _ := time.Parse(time.RFC3339, expiry)
		if time.Until(te) > 7*24*time.Hour {
			resp.StatusCode = http.StatusBadRequest
			resp.Header.Set("x-ms-error-code", "InvalidInput")
			return resp, nil
		}
		xml := fmt.Sprintf(`<?xml version="1.0" encoding="utf-8"?><UserDelegationKey><SignedOid>gen-%d</SignedOid><SignedTid>00000000-0000-0000-0000-000000000002</SignedTid><SignedStart>%s</SignedStart><SignedExpiry>%s</SignedExpiry><SignedService>b</SignedService><SignedVersion>2025-01-05</SignedVersion><Value>%s</Value></UserDelegationKey>`,
			s.generation, ts.UTC().Format(time.RFC3339), te.UTC().Format(time.RFC3339), base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef")))
		resp.StatusCode = http.StatusOK
		resp.Header.Set("Content-Type", "application/xml")
		resp.Body = io.NopCloser(strings.NewReader(xml))
		return resp, nil
	case req.Method == http.MethodPut && hdr(req, "x-ms-copy-source") != "":
		s.sources = append(s.sources, hdr(req, "x-ms-copy-source"))
		if src, err := url.Parse(hdr(req, "x-ms-copy-source")); err == nil {
			if oid := src.Query().Get("skoid"); oid != "" && oid != fmt.Sprintf("gen-%d", s.generation) {
				resp.StatusCode = http.StatusForbidden
				resp.Header.Set("x-ms-error-code", "CannotVerifyCopySource")
				resp.Body = io.NopCloser(strings.NewReader(`<?xml version="1.0" encoding="utf-8"?><Error><Code>CannotVerifyCopySource</Code><Message>This request is not authorized to perform this operation.</Message></Error>`))
				return resp, nil
			}
		}
		s.syncs = append(s.syncs, hdr(req, "x-ms-requires-sync") == "true")
		resp.StatusCode = http.StatusAccepted
		resp.Header.Set("x-ms-copy-id", "11111111-2222-3333-4444-555555555555")
		resp.Header.Set("x-ms-copy-status", "success")
		resp.Header.Set("ETag", `"0x1"`)
		resp.Header.Set("Last-Modified", time.Now().UTC().Format(http.TimeFormat))
		return resp, nil
	}
	resp.StatusCode = http.StatusNotImplemented
	return resp, nil
}

// hdr reads a request header however the SDK spelled its name (azblob sets x-ms-*
// headers without canonicalizing them).
func hdr(req *http.Request, name string) string {
	for k, v := range req.Header {
		if strings.EqualFold(k, name) && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

func between(s, a, b string) string {
	_, rest, _ := strings.Cut(s, a)
	v, _, _ := strings.Cut(rest, b)
	return v
}

// sasTestService: the app's own account "" (Shared Key, the destination), account
// "entra" (an Entra identity only: the app signs user-delegation SAS for it), both
// answered by st; records and queue are the in-memory fakes.
func sasTestService(t *testing.T, st *fakeStorage) (*copyjob.Service, *azstorage.Blobs) {
	t.Helper()
	opts := azstorage.Options{ClientOptions: azcore.ClientOptions{Transport: st, Retry: policy.RetryOptions{MaxRetries: -1}},
		Credential: fakeToken{}}
	own, err := azstorage.NewAccount("", config.StorageAccount{Name: "appacct", BlobEndpoint: "https://appacct.blob.core.windows.net", AccountKey: sasTestKey}, opts)
	if err != nil {
		t.Fatal(err)
	}
	entra, err := azstorage.NewAccount("entra", config.StorageAccount{Name: "entraacct", BlobEndpoint: "https://entraacct.blob.core.windows.net",
		Identity: &config.Identity{Credential: "managedidentity"}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	blobs := azstorage.NewBlobs(own, entra)
	env := copyjobtest.NewEnv()
	env.Clock.Set(time.Now().UTC())
	svc := copyjob.NewService(blobs, env.Records, env.Queue, nil, copyjob.Config{Now: env.Clock.Now}, nil)
	return svc, blobs
}

// A source the app signs for whose ?snapshot= or ?versionid= is not a time is a bad
// request, which no retry cures (Azure answers such a value 400
// InvalidQueryParameterValue). It is refused as an invalid source (400), not taken for
// storage being unavailable (503 + Retry-After, an Event Grid delivery redelivered for a
// day, a keyed start attempted again by the tick until StartRetriesExhausted), and no
// Copy Blob is sent; with an account key and with a user-delegation key alike.
func TestMalformedSnapshotOrVersionOfASignedSourceIsABadRequest(t *testing.T) {
	for _, tt := range []struct{ source, dstAccount string }{
		{"https://entraacct.blob.core.windows.net/photos/cat.jpg?snapshot=yesterday", ""},
		{"https://entraacct.blob.core.windows.net/photos/cat.jpg?versionid=latest", ""},
		{"https://appacct.blob.core.windows.net/photos/cat.jpg?snapshot=yesterday", "entra"},
		{"https://appacct.blob.core.windows.net/photos/cat.jpg?versionid=2026-13-01T00:00:00.0000000Z", "entra"},
	} {
		st := &fakeStorage{}
		svc, _ := sasTestService(t, st)
		_, _, err := svc.Start(context.Background(), copyjob.StartRequest{
			Origin:      "api",
			Source:      tt.source,
			Destination: copyjob.BlobRef{Account: tt.dstAccount, Container: "copies", Blob: "cat.jpg"},
			Options:     copyjob.Options{Overwrite: true},
		})
		switch {
		case err == nil:
			t.Errorf("%s: accepted", tt.source)
		case copyjob.Retryable(err):
			t.Errorf("%s: answered as retryable (%s, HTTP 503 + Retry-After), not a 400: %v", tt.source, copyjob.CodeOf(err), err)
		case copyjob.CodeOf(err) != copyjob.CodeInvalidRequest:
			t.Errorf("%s: %v, want %s (400)", tt.source, err, copyjob.CodeInvalidRequest)
		}
		if len(st.sources) != 0 {
			t.Errorf("%s: Copy Blob sent for it: %v", tt.source, st.sources)
		}
	}
}

// Every sasLifetime the API accepts (up to MaxSASLifetime, 168h) is signed with a
// user-delegation key too. Storage grants no key past 7 days from its now and refuses a
// SAS that outlives its key, so a SAS the key cannot cover ends with the key, a few
// minutes short of 168h, and the recorded expiry is the SAS's true one. Before, such a
// lifetime was refused with an error the copy service took for storage being
// unavailable: 503 + Retry-After, retried by the client and the tick until
// StartRetriesExhausted, for a request no retry could make succeed. A burst of such
// copies shares one key.
func TestUserDelegationSASUpToTheAdvertisedMaximumEndsWithItsKey(t *testing.T) {
	for _, lifetime := range []time.Duration{24 * time.Hour, 167 * time.Hour, 168 * time.Hour} {
		st := &fakeStorage{}
		svc, _ := sasTestService(t, st)
		for i, blob := range []string{"cat.jpg", "dog.jpg"} {
			before := time.Now()
			job, _, err := svc.Start(context.Background(), copyjob.StartRequest{
				Origin:      "api",
				Source:      "https://entraacct.blob.core.windows.net/photos/" + blob,
				Destination: copyjob.BlobRef{Container: "copies", Blob: blob},
				Options:     copyjob.Options{Overwrite: true, SASLifetime: copyjob.Duration(lifetime)},
			})
			after := time.Now()
			switch {
			case err != nil && copyjob.Retryable(err):
				t.Errorf("sasLifetime %s (accepted by the API, at most MaxSASLifetime %s): answered as retryable (%s, HTTP 503 + Retry-After) "+
					"though no retry can succeed: %v", lifetime, svc.Config().MaxSASLifetime, copyjob.CodeOf(err), err)
				continue
			case err != nil:
				t.Errorf("sasLifetime %s refused: %v", lifetime, err)
				continue
			case job.Status != copyjob.StatusSuccess || job.Source.SASKind != "userDelegation" || job.Source.SASExpiresAt == nil:
				t.Errorf("sasLifetime %s: job %s sas %s expires %v", lifetime, job.Status, job.Source.SASKind, job.Source.SASExpiresAt)
				continue
			}
			u, _ := url.Parse(st.sources[i])
			se, perr := time.Parse(time.RFC3339, u.Query().Get("se"))
			got := *job.Source.SASExpiresAt
			// The SAS ends when asked, or with its key: never later than asked, never more
			// than a few minutes (udkMargin, udkReuseWithin) earlier.
			if perr != nil || !se.Equal(got.Truncate(time.Second)) || got.After(after.Add(lifetime)) || got.Before(before.Add(lifetime-10*time.Minute)) {
				t.Errorf("sasLifetime %s: SAS se=%s (%v), recorded expiry %s, asked %s", lifetime, u.Query().Get("se"), perr, got, before.Add(lifetime))
			}
			if lifetime <= 167*time.Hour && got.Before(before.Add(lifetime)) {
				t.Errorf("sasLifetime %s: a key could cover it, yet the SAS ends at %s", lifetime, got)
			}
		}
		if st.udkAsks != 1 {
			t.Errorf("sasLifetime %s: two copies in a row asked for %d user-delegation keys, want 1", lifetime, st.udkAsks)
		}
	}
}

// After the source account's user-delegation keys are revoked (Revoke User Delegation
// Keys: "all Identity SAS tokens generated from the user delegation keys will also be
// revoked"), the copy signed with the cached key is refused with CannotVerifyCopySource
// and the key is dropped: POST /api/copies/{id}/retry, advertised for a copy that failed
// because "a key was rotated" ("a new attempt ... with a fresh SAS"), signs with a fresh
// key and succeeds. Before, the key was kept for up to 7 days and every copy from the
// account, retries included, was refused until it expired or the process restarted.
func TestRetryAfterRevokedDelegationKeysSignsWithAFreshKey(t *testing.T) {
	st := &fakeStorage{}
	svc, _ := sasTestService(t, st)
	ctx := context.Background()
	start := func(blob string) (*copyjob.Job, error) {
		job, _, err := svc.Start(ctx, copyjob.StartRequest{
			Origin: "api", Source: "https://entraacct.blob.core.windows.net/photos/" + blob,
			Destination: copyjob.BlobRef{Container: "copies", Blob: blob}, Options: copyjob.Options{Overwrite: true},
		})
		return job, err
	}
	if _, err := start("before.jpg"); err != nil {
		t.Fatalf("first copy: %v", err)
	}
	st.revoke() // an operator revokes the source account's user-delegation keys
	job, err := start("after.jpg")
	if err == nil || job == nil || job.Status != copyjob.StatusStartFailed {
		t.Fatalf("copy signed with the revoked key: job %+v err %v, want startFailed CannotVerifyCopySource", job, err)
	}
	job, err = svc.Retry(ctx, job.ID, copyjob.RetryOptions{})
	if err != nil || job.Status != copyjob.StatusSuccess || st.udkAsks != 2 {
		t.Errorf("retry after the revocation (the README's \"a key was rotated\" case): status %s, err %v; "+
			"Get User Delegation Key was asked %d time(s): the retry's \"fresh\" SAS was signed with the revoked key", job.Status, err, st.udkAsks)
	}
}

// A cached user-delegation key signs for at most an hour after it was fetched: a
// revocation the adapter cannot see (a copy refused later, while pending) stops costing
// copies after that hour, not after the key's 7 days. Within the hour, copies share it.
func TestCachedDelegationKeyIsRenewedWithinAnHour(t *testing.T) {
	st := &fakeStorage{}
	svc, blobs := sasTestService(t, st)
	// The adapter's clock starts in the past: the fake grants no key ending more than 7
	// days after the real now.
	at := time.Now().Add(-3 * time.Hour)
	blobs.SetNow(func() time.Time { return at })
	for _, step := range []struct {
		after time.Duration
		asks  int
	}{{0, 1}, {30 * time.Minute, 1}, {59 * time.Minute, 1}, {61 * time.Minute, 2}, {90 * time.Minute, 2}, {122 * time.Minute, 3}} {
		at = time.Now().Add(-3 * time.Hour).Add(step.after)
		blob := fmt.Sprintf("b%d.jpg", int(step.after.Minutes()))
		job, _, err := svc.Start(context.Background(), copyjob.StartRequest{
			Origin: "api", Source: "https://entraacct.blob.core.windows.net/photos/" + blob,
			Destination: copyjob.BlobRef{Container: "copies", Blob: blob}, Options: copyjob.Options{Overwrite: true},
		})
		if err != nil || job.Status != copyjob.StatusSuccess {
			t.Fatalf("copy at +%s: %v", step.after, err)
		}
		if st.udkAsks != step.asks {
			t.Errorf("copy at +%s: %d user-delegation keys asked so far, want %d", step.after, st.udkAsks, step.asks)
		}
	}
}

// Copy Blob From URL (requiresSync) reads its source only when it "is either public or
// authorized with a shared access signature" (Copy Blob From URL, REST reference); unlike
// the asynchronous Copy Blob, the destination request's Shared Key does not authorize a
// source in the same account. A synchronous copy within a Shared Key account is sent
// with a read-only SAS for its source, signed with the account key for that one call
// (minutes, not sasLifetime); an asynchronous one still goes without any SAS (Copy
// Blob's Shared Key reads it). Before, every requiresSync copy within such an account of
// a private container was refused by Azure (CannotVerifyCopySource).
func TestSyncCopyWithinTheAccountCarriesASAS(t *testing.T) {
	for _, sync := range []bool{true, false} {
		st := &fakeStorage{}
		svc, _ := sasTestService(t, st)
		before := time.Now()
		job, _, err := svc.Start(context.Background(), copyjob.StartRequest{
			Origin:      "api",
			Source:      "https://appacct.blob.core.windows.net/source/hello.txt?snapshot=2026-01-01T00:00:00.0000000Z",
			Destination: copyjob.BlobRef{Container: "backup", Blob: "hello.txt"},
			Options:     copyjob.Options{Overwrite: true, RequiresSync: sync},
		})
		if err != nil {
			t.Fatalf("requiresSync %v: start: %v", sync, err)
		}
		if len(st.sources) != 1 || st.syncs[0] != sync {
			t.Fatalf("requiresSync %v: copy requests: %v sync %v", sync, st.sources, st.syncs)
		}
		u, _ := url.Parse(st.sources[0])
		q := u.Query()
		switch {
		case job.Source.Kind != copyjob.SourceSameAccount:
			t.Errorf("requiresSync %v: source kind %s", sync, job.Source.Kind)
		case q.Get("snapshot") != "2026-01-01T00:00:00.0000000Z":
			t.Errorf("requiresSync %v: x-ms-copy-source %q lost the snapshot", sync, st.sources[0])
		case !sync && q.Get("sig") != "":
			t.Errorf("Copy Blob (asynchronous) within the account was sent a SAS it needs not: %q", st.sources[0])
		case sync && q.Get("sig") == "":
			t.Errorf("Copy Blob From URL (x-ms-requires-sync) was sent x-ms-copy-source %q with no SAS: "+
				"Azure reads a Copy Blob From URL source only when it is public or carries a SAS, so this copy is refused there", st.sources[0])
		case sync:
			se, perr := time.Parse(time.RFC3339, q.Get("se"))
			if q.Get("sp") != "r" || q.Get("sr") != "bs" || perr != nil || se.After(before.Add(15*time.Minute)) || se.Before(before.Add(5*time.Minute)) {
				t.Errorf("Copy Blob From URL's source SAS: %v; want read-only, for the snapshot, for the one call (5 to 15 minutes)", q)
			}
		}
	}

	// A snapshot that is no time: 400, as storage would answer it, and nothing sent.
	st := &fakeStorage{}
	svc, _ := sasTestService(t, st)
	_, _, err := svc.Start(context.Background(), copyjob.StartRequest{
		Origin:      "api",
		Source:      "https://appacct.blob.core.windows.net/source/hello.txt?snapshot=yesterday",
		Destination: copyjob.BlobRef{Container: "backup", Blob: "hello.txt"},
		Options:     copyjob.Options{Overwrite: true, RequiresSync: true},
	})
	if copyjob.CodeOf(err) != copyjob.CodeInvalidRequest || len(st.sources) != 0 {
		t.Errorf("requiresSync copy of a snapshot that is no time: %v (code %s), copy requests %v; want %s, none sent",
			err, copyjob.CodeOf(err), st.sources, copyjob.CodeInvalidRequest)
	}
}
