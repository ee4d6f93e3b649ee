// Package azstorage adapts Azure Blob and Queue storage (azblob, azqueue/v2, azidentity)
// to the copy domain's interfaces: Blobs, Records and Queue.
package azstorage

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2"

	"github.com/blobcopy/blobcopy/internal/config"
	"github.com/blobcopy/blobcopy/internal/copyjob"
)

// Options configure the SDK clients of every account.
type Options struct {
	// ClientOptions carry the transport, retry policy and per-call policies (e.g. a
	// request counter) used by every blob and queue client.
	ClientOptions azcore.ClientOptions
	// Credential replaces the azidentity credential of identity-based accounts (tests use
	// a fake token credential against Azurite's OAuth mode).
	Credential azcore.TokenCredential
}

// Account is one configured storage account with its clients.
type Account struct {
	Alias   string
	Config  config.StorageAccount
	Service *service.Client

	sharedKey *service.SharedKeyCredential
	token     azcore.TokenCredential
	opts      Options

	udkMu     sync.Mutex
	udk       *service.UserDelegationCredential
	udkExpiry time.Time // the key's end, as asked (to the second, as sent)
	udkAt     time.Time // when it was fetched
}

// NewAccount builds the blob clients for an account.
func NewAccount(alias string, cfg config.StorageAccount, opts Options) (*Account, error) {
	a := &Account{Alias: alias, Config: cfg, opts: opts}
	endpoint := strings.TrimSuffix(cfg.BlobEndpoint, "/") + "/"
	copts := &service.ClientOptions{ClientOptions: opts.ClientOptions}
	// Copies, not appends to, the caller's policies: they are shared by every account.
	copts.PerCallPolicies = append(slices.Clone(opts.ClientOptions.PerCallPolicies), serverTimeoutPolicy{})
	var err error
	switch {
	case cfg.AccountKey != "":
		a.sharedKey, err = service.NewSharedKeyCredential(cfg.Name, cfg.AccountKey)
		if err != nil {
			return nil, fmt.Errorf("account %q: %w", cfg.Name, err)
		}
		a.Service, err = service.NewClientWithSharedKeyCredential(endpoint, a.sharedKey, copts)
	case cfg.Identity != nil:
		a.token, err = tokenCredential(cfg, opts)
		if err != nil {
			return nil, err
		}
		a.Service, err = service.NewClient(endpoint, a.token, copts)
	case cfg.SAS != "":
		a.Service, err = service.NewClientWithNoCredential(endpoint+"?"+strings.TrimPrefix(cfg.SAS, "?"), copts)
	default:
		return nil, fmt.Errorf("account %q: no credential (key, identity or SAS)", cfg.Name)
	}
	if err != nil {
		return nil, fmt.Errorf("account %q: blob client: %w", cfg.Name, err)
	}
	return a, nil
}

func tokenCredential(cfg config.StorageAccount, opts Options) (azcore.TokenCredential, error) {
	if opts.Credential != nil {
		return opts.Credential, nil
	}
	id := cfg.Identity
	// A client id names a user-assigned managed identity, with or without
	// __credential=managedidentity.
	if strings.EqualFold(id.Credential, "managedidentity") || id.ClientID != "" {
		miOpts := &azidentity.ManagedIdentityCredentialOptions{}
		if id.ClientID != "" {
			miOpts.ID = azidentity.ClientID(id.ClientID)
		}
		cred, err := azidentity.NewManagedIdentityCredential(miOpts)
		if err != nil {
			return nil, fmt.Errorf("account %q: managed identity: %w", cfg.Name, err)
		}
		return cred, nil
	}
	cred, err := azidentity.NewDefaultAzureCredential(nil)
	if err != nil {
		return nil, fmt.Errorf("account %q: DefaultAzureCredential: %w", cfg.Name, err)
	}
	return cred, nil
}

// CanSign reports whether the app can sign a SAS for this account's blobs.
func (a *Account) CanSign() bool { return a.sharedKey != nil || a.token != nil }

// signRead returns a read-only SAS query for one blob valid for lifetime from now
// (starting 5 minutes back, for clock skew), and when it ends. It signs with the account
// key when it holds one, otherwise with a user-delegation key (cached, so a burst of
// copies costs one Get User Delegation Key); a user-delegation SAS ends at its key's end
// when the key ends first (see userDelegation), and expiry says so.
func (a *Account) signRead(ctx context.Context, container, blobName, snapshot, versionID string, now time.Time, lifetime time.Duration) (query, kind string, expiry time.Time, err error) {
	start, expiry := now.Add(-5*time.Minute), now.Add(lifetime)
	v := sas.BlobSignatureValues{
		Protocol:      sas.ProtocolHTTPS,
		StartTime:     start,
		ExpiryTime:    expiry,
		Permissions:   (&sas.BlobPermissions{Read: true}).String(),
		ContainerName: container,
		BlobName:      blobName,
		BlobVersion:   versionID,
	}
	if u, perr := url.Parse(a.Config.BlobEndpoint); perr == nil && u.Scheme == "http" && isLoopback(u.Hostname()) {
		// A local emulator (Azurite) serves plain HTTP; anywhere else the SAS stays
		// HTTPS-only, so it cannot be used, or leak, over an unencrypted connection.
		v.Protocol = sas.ProtocolHTTPSandHTTP
	}
	// A snapshot or version the caller wrote that is no time is a bad request, which no
	// retry cures (Azure answers it 400 InvalidQueryParameterValue): refused here, as an
	// invalid source, before anything is signed for it.
	if v.SnapshotTime, err = snapshotTime(snapshot, versionID); err != nil {
		return "", "", time.Time{}, fmt.Errorf("%w: %w", copyjob.ErrInvalidSource, err)
	}
	// Signing is computed here from the values above: an error is the same on every try,
	// so it is a permanent refusal, never storage being unavailable.
	if a.sharedKey != nil {
		p, err := v.SignWithSharedKey(a.sharedKey)
		if err != nil {
			return "", "", time.Time{}, fmt.Errorf("%w: sign SAS: %w", copyjob.ErrInvalidSource, err)
		}
		return p.Encode(), "accountKey", expiry, nil
	}
	cred, keyEnd, err := a.userDelegation(ctx, now, expiry)
	if err != nil {
		return "", "", time.Time{}, err
	}
	if keyEnd.Before(expiry) {
		// Storage refuses a SAS that outlives its key, and grants no key past 7 days from
		// now: a lifetime up to MaxSASLifetime (168h) ends with the key, a few minutes
		// short. Refusing it instead would refuse the advertised maximum.
		expiry = keyEnd
		v.ExpiryTime = expiry
	}
	p, err := v.SignWithUserDelegation(cred)
	if err != nil {
		return "", "", time.Time{}, fmt.Errorf("%w: sign user-delegation SAS: %w", copyjob.ErrInvalidSource, err)
	}
	return p.Encode(), "userDelegation", expiry, nil
}

// snapshotTime parses a blob's snapshot (zero when none) and checks its version id:
// both are times (2006-01-02T15:04:05.0000000Z).
func snapshotTime(snapshot, versionID string) (time.Time, error) {
	var t time.Time
	if snapshot != "" {
		var err error
		if t, err = time.Parse(time.RFC3339Nano, snapshot); err != nil {
			return time.Time{}, fmt.Errorf("snapshot %q is not a snapshot time (2006-01-02T15:04:05.0000000Z): %w", snapshot, err)
		}
	}
	if versionID != "" {
		if _, err := time.Parse(time.RFC3339Nano, versionID); err != nil {
			return time.Time{}, fmt.Errorf("versionid %q is not a version id (2006-01-02T15:04:05.0000000Z): %w", versionID, err)
		}
	}
	return t, nil
}

const (
	// MaxUserDelegationKey is the longest validity Azure grants a user-delegation key,
	// counted from storage's own clock.
	MaxUserDelegationKey = 7 * 24 * time.Hour
	// udkMargin: a key is asked to end this much short of 7 days from the app's clock, so
	// storage, whose clock may be behind, does not refuse it as too long.
	udkMargin = 5 * time.Minute
	// udkReuseWithin: a SAS asking more than the cached key covers gets a fresh key,
	// unless the cached key was fetched this recently; it then ends with that key, at most
	// this much earlier than with a fresh one, so a burst of 168h copies costs one
	// Get User Delegation Key, not one each.
	udkReuseWithin = time.Minute
	// udkMaxAge: a cached key signs for this long after it was fetched, then a fresh
	// one is fetched (one request). Revoke User Delegation Keys invalidates every SAS
	// signed with a key handed out before, and nothing tells the app: a key kept for its
	// 7 days would have every copy from the account refused (CannotVerifyCopySource)
	// until it expired, whenever the adapter cannot see the refusal (dropKey).
	udkMaxAge = time.Hour
)

// userDelegation returns a user-delegation key that covers a SAS until expiry when it
// can, and the key's end: a fresh key ends 7 days less udkMargin from now, so a SAS
// asked to end later ends with it (signRead caps it).
func (a *Account) userDelegation(ctx context.Context, now, expiry time.Time) (*service.UserDelegationCredential, time.Time, error) {
	a.udkMu.Lock()
	defer a.udkMu.Unlock()
	age := now.Sub(a.udkAt)
	if a.udk != nil && age >= 0 && age < udkMaxAge && (!a.udkExpiry.Before(expiry) || age < udkReuseWithin) {
		return a.udk, a.udkExpiry, nil
	}
	start := now.Add(-5 * time.Minute) // clock skew, as the SAS
	keyExpiry := now.Add(MaxUserDelegationKey - udkMargin).Truncate(time.Second)
	info := service.KeyInfo{
		Start:  to.Ptr(start.UTC().Format(sas.TimeFormat)),
		Expiry: to.Ptr(keyExpiry.UTC().Format(sas.TimeFormat)),
	}
	client, err := a.delegationClient()
	if err != nil {
		// The account's configured endpoint: the same on every try.
		return nil, time.Time{}, fmt.Errorf("%w: account %q: user-delegation client: %w", copyjob.ErrInvalidSource, a.Config.Name, err)
	}
	cred, err := client.GetUserDelegationCredential(ctx, info, nil)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("get user delegation key for %q: %w", a.Config.Name, mapBlobErr(err))
	}
	a.udk, a.udkExpiry, a.udkAt = cred, keyExpiry, now
	return cred, keyExpiry, nil
}

// dropKey forgets the cached user-delegation key if it is the one ending at keyEnd (the
// SAS's ske): storage refused a copy source signed with it, as after Revoke User
// Delegation Keys. The next SAS is signed with a fresh key; a key fetched since is kept.
func (a *Account) dropKey(keyEnd time.Time) {
	a.udkMu.Lock()
	defer a.udkMu.Unlock()
	if a.udk != nil && a.udkExpiry.Equal(keyEnd) {
		a.udk, a.udkExpiry, a.udkAt = nil, time.Time{}, time.Time{}
	}
}

// delegationClient is the client Get User Delegation Key goes through. azblob (v1.8.3)
// names the returned credential after the first label of the endpoint's host, which is
// right for <account>.blob.core.windows.net and wrong for an emulator's path-style
// endpoint (http://127.0.0.1:10000/<account> gives "127", and every SAS signed with it
// is refused). For such endpoints the call is made to <account>.localhost and sent to the
// real path-style address by pathStyleTransport.
func (a *Account) delegationClient() (*service.Client, error) {
	u, err := url.Parse(a.Config.BlobEndpoint)
	if err != nil {
		return nil, err
	}
	if net.ParseIP(u.Hostname()) == nil {
		return a.Service, nil
	}
	opts := a.opts.ClientOptions
	opts.Transport = pathStyleTransport{inner: opts.Transport, host: u.Host, prefix: strings.TrimSuffix(u.Path, "/")}
	hostStyle := u.Scheme + "://" + a.Config.Name + ".localhost:" + u.Port() + "/"
	return service.NewClient(hostStyle, a.token, &service.ClientOptions{ClientOptions: opts})
}

// pathStyleTransport rewrites host-style requests (<account>.localhost) to the account's
// path-style endpoint.
type pathStyleTransport struct {
	inner  policy.Transporter
	host   string
	prefix string
}

func (t pathStyleTransport) Do(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	u := *req.URL
	u.Host, u.Path = t.host, t.prefix+u.Path
	if u.RawPath != "" {
		u.RawPath = t.prefix + u.RawPath
	}
	r.URL, r.Host = &u, t.host
	if t.inner != nil {
		return t.inner.Do(r)
	}
	return http.DefaultClient.Do(r)
}

// NewQueueClient returns a queue client of the account for the named queue.
func NewQueueClient(cfg config.StorageAccount, queueName string, opts Options) (*azqueue.QueueClient, error) {
	qurl := strings.TrimSuffix(cfg.QueueEndpoint, "/") + "/" + queueName
	copts := &azqueue.ClientOptions{ClientOptions: opts.ClientOptions}
	switch {
	case cfg.AccountKey != "":
		cred, err := azqueue.NewSharedKeyCredential(cfg.Name, cfg.AccountKey)
		if err != nil {
			return nil, fmt.Errorf("queue %q: %w", queueName, err)
		}
		return azqueue.NewQueueClientWithSharedKeyCredential(qurl, cred, copts)
	case cfg.Identity != nil:
		cred, err := tokenCredential(cfg, opts)
		if err != nil {
			return nil, err
		}
		return azqueue.NewQueueClient(qurl, cred, copts)
	case cfg.SAS != "":
		return azqueue.NewQueueClientWithNoCredential(qurl+"?"+strings.TrimPrefix(cfg.SAS, "?"), copts)
	}
	return nil, fmt.Errorf("queue %q: account %q has no credential", queueName, cfg.Name)
}

func isLoopback(host string) bool {
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
