package api

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"strings"

	"github.com/blobcopy/blobcopy/internal/config"
	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/eventgrid"
	"github.com/blobcopy/blobcopy/internal/rules"
)

// Policy says which copies the service accepts: where sources may come from, where
// copies may go, where callbacks may be sent, and which storage accounts a rule's
// source names. The copy handlers and the event handler both check requests against
// it (see the README's security model).
type Policy struct {
	// AllowedDestinations are "account/container" patterns (path.Match syntax, account
	// is the configured alias, "default" for the app's account); empty allows all.
	AllowedDestinations []string
	// AllowedSourceHosts are host names, "*.suffix" patterns allowed; empty allows all.
	AllowedSourceHosts []string
	// AllowHTTPSources permits plain-http sources on any host (development only);
	// loopback sources are always allowed over http.
	AllowHTTPSources bool
	// InternalContainers are the app's own containers: never a destination.
	InternalContainers []string
	// CallbackHosts are the hosts completion callbacks may go to: "host" (port 443, or
	// any port for a loopback host) or "host:port"; empty disables callbacks.
	CallbackHosts []string
	// Accounts are the configured storage accounts: a rule's source is resolved to
	// its account's configured blob endpoint.
	Accounts []Account
}

// Account is a configured storage account as the policy needs it.
type Account struct {
	Alias        string // "" for the app's own account
	Name         string // the storage account name, as in an event's topic
	BlobEndpoint string // e.g. https://name.blob.core.windows.net or http://127.0.0.1:10000/name
}

func forbidden(code copyjob.Code, target, msg string) *requestError {
	return &requestError{status: http.StatusForbidden, detail: ErrorDetail{Code: string(code), Target: target, Message: msg}}
}

// CheckSource checks a source URL: absolute http(s), https off loopback unless allowed,
// and a host in COPY_ALLOWED_SOURCE_HOSTS when that is set.
func (p *Policy) CheckSource(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return badRequest(string(copyjob.CodeInvalidRequest), "source", "source must be an absolute http(s) URL")
	}
	// As storage will read it (see config.ReadAsStorage): "ｅxample.com" is example.com
	// for the allowlist too.
	if u, err = config.ReadAsStorage(raw, u); err != nil {
		if errors.Is(err, config.ErrBackslashInPath) {
			return badRequest(string(copyjob.CodeInvalidRequest), "source", `the source URL's path holds a backslash, which some HTTP stacks read as "/": write "/", or "%5C" for the character`)
		}
		return badRequest(string(copyjob.CodeInvalidRequest), "source", "the source URL's host is not a valid domain name or IP address")
	}
	host := u.Hostname()
	if u.Scheme == "http" && !p.AllowHTTPSources && !isLoopback(host) {
		return forbidden(copyjob.CodeSourceNotAllowed, "source", "sources must use https (plain http is allowed for loopback development only)")
	}
	if len(p.AllowedSourceHosts) > 0 && !hostAllowed(host, p.AllowedSourceHosts) {
		return forbidden(copyjob.CodeSourceNotAllowed, "source", "the source host "+host+" is not in the allowlist setting COPY_ALLOWED_SOURCE_HOSTS")
	}
	return nil
}

// CheckDestination keeps copies out of the app's own containers and inside
// COPY_ALLOWED_DESTINATIONS when that is set.
func (p *Policy) CheckDestination(d DestinationInput) error {
	account := d.Account
	if account == "" {
		account = "default"
	}
	for _, c := range p.InternalContainers {
		if account == "default" && d.Container == c {
			return forbidden(copyjob.CodeDestinationNotAllowed, "destination.container", "container "+c+" is the app's own (its records, the Functions host's keys and locks) and cannot be a destination")
		}
	}
	if len(p.AllowedDestinations) == 0 {
		return nil
	}
	for _, pat := range p.AllowedDestinations {
		if ok, _ := path.Match(pat, account+"/"+d.Container); ok {
			return nil
		}
	}
	return forbidden(copyjob.CodeDestinationNotAllowed, "destination", account+"/"+d.Container+" is not in the allowlist setting COPY_ALLOWED_DESTINATIONS")
}

// CheckCallback checks a callback URL: https (http only to a loopback host), no
// userinfo, and a host (and port) in COPY_CALLBACK_ALLOWED_HOSTS.
func (p *Policy) CheckCallback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
		return badRequest(string(copyjob.CodeInvalidRequest), "callbackUrl", "callbackUrl must be an absolute http(s) URL without user information")
	}
	if u.Scheme == "http" && !isLoopback(u.Hostname()) {
		return forbidden("CallbackNotAllowed", "callbackUrl", "callbacks must use https (plain http is allowed to loopback receivers only)")
	}
	if !CallbackHostAllowed(u, p.CallbackHosts) {
		return forbidden("CallbackNotAllowed", "callbackUrl", "the callback host is not in the allowlist setting COPY_CALLBACK_ALLOWED_HOSTS")
	}
	return nil
}

// CallbackHostAllowed reports whether u's host and port match an allowlist entry. An
// entry "host:port" allows that port only; an entry "host" allows the scheme's default
// port, or any port when the host is loopback (local receivers listen on ephemeral
// ports). "*.suffix" entries match subdomains.
func CallbackHostAllowed(u *url.URL, allowed []string) bool {
	host := strings.ToLower(u.Hostname())
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[strings.ToLower(u.Scheme)]
	}
	for _, entry := range allowed {
		entry = strings.ToLower(strings.TrimSpace(entry))
		eh, ep, err := net.SplitHostPort(entry)
		if err != nil {
			eh, ep = strings.Trim(entry, "[]"), ""
		}
		if !hostAllowed(host, []string{eh}) {
			continue
		}
		switch {
		case ep != "" && ep == port:
			return true
		case ep == "" && (isLoopback(host) || port == "443"):
			return true
		}
	}
	return false
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

func hostAllowed(host string, allowed []string) bool {
	host = strings.ToLower(host)
	for _, a := range allowed {
		a = strings.ToLower(strings.TrimSpace(a))
		if a == host || (strings.HasPrefix(a, "*.") && strings.HasSuffix(host, a[1:])) {
			return true
		}
	}
	return false
}

// aliasAccountName is the storage account name of a configured alias ("" or "default"
// for the app's own account).
func (p *Policy) aliasAccountName(alias string) (string, bool) {
	if len(p.Accounts) == 0 {
		return "", true // no accounts known: left unresolved (treated as any account)
	}
	if alias == "default" {
		alias = ""
	}
	for _, a := range p.Accounts {
		if strings.EqualFold(a.Alias, alias) {
			return a.Name, true
		}
	}
	return "", false
}

// accountName is Azure's storage account naming rule.
var accountName = regexp.MustCompile(`^[a-z0-9]{3,24}$`)

// account returns the configured account with that storage account name.
func (p *Policy) account(name string) (Account, bool) {
	for _, a := range p.Accounts {
		if strings.EqualFold(a.Name, name) {
			return a, true
		}
	}
	return Account{}, false
}

// endpoint is the blob endpoint of a storage account: its configured one, or Azure's
// public endpoint for an account the app has no settings for.
func (p *Policy) endpoint(name string) (Account, error) {
	if a, ok := p.account(name); ok {
		return a, nil
	}
	if !accountName.MatchString(name) {
		return Account{}, fmt.Errorf("%q is not a storage account name", name)
	}
	return Account{Name: name, BlobEndpoint: "https://" + name + ".blob.core.windows.net"}, nil
}

// BlobURL is the URL of a blob of the named storage account, on the account's blob
// endpoint; container and blob are decoded names.
func (p *Policy) BlobURL(accountName, container, blob string) (*url.URL, error) {
	a, err := p.endpoint(accountName)
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(a.BlobEndpoint)
	if err != nil {
		return nil, fmt.Errorf("blob endpoint of %s: %w", accountName, err)
	}
	c := *u
	c.RawQuery, c.Fragment, c.RawPath = "", "", ""
	c.Path = strings.TrimSuffix(u.Path, "/") + "/" + container + "/" + blob
	return &c, nil
}

// locate reads a blob URL as (storage account name, container, blob), decoded, for a
// URL on a configured account's endpoint or on Azure's public blob endpoints (a Data
// Lake dfs URL is read as its blob endpoint URL). ok is false for any other URL.
func (p *Policy) locate(raw string) (account, container, blob string, u *url.URL, ok bool) {
	u, err := eventgrid.BlobEndpointURL(raw)
	if err != nil {
		return "", "", "", nil, false
	}
	for _, a := range p.Accounts {
		sa := config.StorageAccount{Name: a.Name, BlobEndpoint: a.BlobEndpoint}
		if c, b, found := sa.BlobPath(u); found {
			return a.Name, c, b, u, true
		}
	}
	name, rest, _ := strings.Cut(strings.ToLower(u.Hostname()), ".")
	if !strings.HasPrefix(rest, "blob.") || !accountName.MatchString(name) {
		return "", "", "", nil, false
	}
	c, b, found := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
	if !found || c == "" || b == "" {
		return "", "", "", nil, false
	}
	return name, c, b, u, true
}

// sameBlob reports whether two URLs name the same blob: same host and port, same
// decoded path (url.URL.Path is decoded, so "a%20b" and "a b" compare equal).
func sameBlob(a, b *url.URL) bool {
	return strings.EqualFold(hostPort(a), hostPort(b)) && a.Path == b.Path
}

func hostPort(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[strings.ToLower(u.Scheme)]
	}
	return u.Hostname() + ":" + port
}

// BindWebhookSource checks that the webhook form's source lies in the rule's source
// area (account, container, prefix) and returns it on the account's blob endpoint, with
// the blob's decoded name.
func (p *Policy) BindWebhookSource(rule rules.Rule, source string) (sourceURL, blob string, err error) {
	account, container, blob, u, ok := p.locate(source)
	if !ok || !rule.Covers(account, container, blob) {
		return "", "", forbidden(copyjob.CodeSourceNotAllowed, "source",
			fmt.Sprintf("the source is not a blob of rule %q's source area (account, container %s, prefix %q)", rule.Name, rule.SourceContainer, rule.SourcePrefix))
	}
	return u.String(), blob, nil
}

// CheckRules checks what the policy can check of the COPY_RULES before any event
// arrives: each rule's destination and callback URL, and, once each destination alias
// is resolved to its storage account's name, that no rule or cycle of rules copies
// without end (rules.Resolve). It names each rule's destination account in rs.
func (p *Policy) CheckRules(rs []rules.Rule) error {
	if err := rules.Resolve(rs, p.aliasAccountName); err != nil {
		return err
	}
	for _, r := range rs {
		if err := p.CheckDestination(DestinationInput{Account: r.Destination.Account, Container: r.Destination.Container}); err != nil {
			return fmt.Errorf("COPY_RULES (%s): %w", r.Name, err)
		}
		if r.CallbackURL != "" {
			if err := p.CheckCallback(r.CallbackURL); err != nil {
				return fmt.Errorf("COPY_RULES (%s): %w", r.Name, err)
			}
		}
	}
	return nil
}
