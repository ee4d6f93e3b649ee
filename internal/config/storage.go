// Package config turns app settings into storage account settings: plain
// data, free of Azure SDK types, so adapters decide how to build clients.
package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
)

// Lookup finds an app setting by name. funchost.Settings satisfies it; the
// interface lives here so config does not depend on the host package.
type Lookup interface {
	Lookup(name string) (string, bool)
}

// StorageAccount says where a storage account is and how to authenticate.
// Exactly one of AccountKey, SAS or Identity is set.
type StorageAccount struct {
	Name string
	// BlobEndpoint and QueueEndpoint have no trailing slash; QueueEndpoint
	// is empty when it cannot be told from the settings.
	BlobEndpoint  string
	QueueEndpoint string
	// AccountKey is base64; empty unless the account uses Shared Key.
	AccountKey string
	// Identity is set for identity-based (Microsoft Entra ID) connections.
	Identity *Identity
	// SAS is a shared access signature without the leading '?'.
	SAS string
}

// Identity selects the Entra ID credential for an identity-based connection.
type Identity struct {
	// Credential is "" for DefaultAzureCredential or CredentialManagedIdentity.
	Credential string
	// ClientID picks a user-assigned managed identity; empty for the
	// system-assigned one.
	ClientID string
}

// CredentialManagedIdentity is the only <prefix>__credential value the
// Functions runtime accepts.
const CredentialManagedIdentity = "managedidentity"

// DefaultEndpointSuffix is the public Azure cloud's storage suffix.
const DefaultEndpointSuffix = "core.windows.net"

// Azurite's well-known development account, the same for every install.
const (
	DevStoreAccountName   = "devstoreaccount1"
	DevStoreAccountKey    = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
	DevStoreBlobEndpoint  = "http://127.0.0.1:10000/devstoreaccount1"
	DevStoreQueueEndpoint = "http://127.0.0.1:10001/devstoreaccount1"
)

// UsesKey reports whether the account authenticates with Shared Key.
func (a StorageAccount) UsesKey() bool { return a.AccountKey != "" }

// String describes the account for logs and never includes the key or SAS.
func (a StorageAccount) String() string {
	return fmt.Sprintf("storage account %s (blob %s, queue %s, auth %s)", a.Name, orNone(a.BlobEndpoint), orNone(a.QueueEndpoint), a.auth())
}

// GoString keeps %#v from printing the key.
func (a StorageAccount) GoString() string { return a.String() }

// LogValue keeps slog from printing the key.
func (a StorageAccount) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("name", a.Name),
		slog.String("blobEndpoint", a.BlobEndpoint),
		slog.String("queueEndpoint", a.QueueEndpoint),
		slog.String("auth", a.auth()),
	)
}

func (a StorageAccount) auth() string {
	switch {
	case a.AccountKey != "":
		return "shared key (redacted)"
	case a.SAS != "":
		return "SAS (redacted)"
	case a.Identity != nil:
		desc := "identity"
		if a.Identity.Credential != "" {
			desc += " " + a.Identity.Credential
		} else {
			desc += " DefaultAzureCredential"
		}
		if a.Identity.ClientID != "" {
			desc += " clientId=" + a.Identity.ClientID
		}
		return desc
	default:
		return "none"
	}
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// ConnectionString renders a key- or SAS-based account as a connection
// string with explicit endpoints, which every SDK and Azurite accept. It is
// empty for identity-based accounts, which have no connection string.
func (a StorageAccount) ConnectionString() string {
	if a.AccountKey == "" && a.SAS == "" {
		return ""
	}
	var parts []string
	if u, err := url.Parse(a.BlobEndpoint); err == nil && u.Scheme != "" {
		parts = append(parts, "DefaultEndpointsProtocol="+u.Scheme)
	}
	if a.Name != "" {
		parts = append(parts, "AccountName="+a.Name)
	}
	if a.AccountKey != "" {
		parts = append(parts, "AccountKey="+a.AccountKey)
	} else {
		parts = append(parts, "SharedAccessSignature="+a.SAS)
	}
	if a.BlobEndpoint != "" {
		parts = append(parts, "BlobEndpoint="+a.BlobEndpoint)
	}
	if a.QueueEndpoint != "" {
		parts = append(parts, "QueueEndpoint="+a.QueueEndpoint)
	}
	return strings.Join(parts, ";")
}

// ResolveStorage reads the storage connection named prefix the way the
// Functions runtime does: the setting <prefix> as a connection string or,
// when it is unset or empty, identity-based settings <prefix>__accountName,
// <prefix>__blobServiceUri (alias <prefix>__serviceUri),
// <prefix>__queueServiceUri, <prefix>__credential and <prefix>__clientId.
// Errors name the setting at fault.
func ResolveStorage(s Lookup, prefix string) (StorageAccount, error) {
	if conn, ok := s.Lookup(prefix); ok && strings.TrimSpace(conn) != "" {
		acct, err := ParseConnectionString(conn)
		if err != nil {
			return StorageAccount{}, fmt.Errorf("%s: %w", prefix, err)
		}
		return acct, nil
	}
	return resolveIdentity(s, prefix)
}

func resolveIdentity(s Lookup, prefix string) (StorageAccount, error) {
	get := func(suffix string) (name, value string) {
		name = prefix + "__" + suffix
		v, _ := s.Lookup(name)
		return name, strings.TrimSpace(v)
	}
	nameSetting, accountName := get("accountName")
	blobSetting, blobURI := get("blobServiceUri")
	if blobURI == "" {
		blobSetting, blobURI = get("serviceUri")
	}
	queueSetting, queueURI := get("queueServiceUri")
	credSetting, credential := get("credential")
	_, clientID := get("clientId")

	if accountName == "" && blobURI == "" && queueURI == "" {
		return StorageAccount{}, fmt.Errorf("storage connection %q is not configured: set %s (a connection string) or %s__accountName / %s__blobServiceUri", prefix, prefix, prefix, prefix)
	}
	if credential != "" && !strings.EqualFold(credential, CredentialManagedIdentity) {
		return StorageAccount{}, fmt.Errorf("%s: %q is not supported; use %q or leave it unset", credSetting, credential, CredentialManagedIdentity)
	}
	acct := StorageAccount{
		Name:     accountName,
		Identity: &Identity{Credential: strings.ToLower(credential), ClientID: clientID},
	}
	if accountName != "" {
		if err := validateAccountName(accountName); err != nil {
			return StorageAccount{}, fmt.Errorf("%s: %w", nameSetting, err)
		}
		acct.BlobEndpoint = "https://" + accountName + ".blob." + DefaultEndpointSuffix
		acct.QueueEndpoint = "https://" + accountName + ".queue." + DefaultEndpointSuffix
	}
	if blobURI != "" {
		endpoint, name, err := parseEndpoint(blobURI, "blob")
		if err != nil {
			return StorageAccount{}, fmt.Errorf("%s: %w", blobSetting, err)
		}
		acct.BlobEndpoint = endpoint
		if acct.Name == "" {
			acct.Name = name
		}
		if queueURI == "" && accountName == "" {
			// Only the standard host form tells where the queue service is.
			acct.QueueEndpoint = siblingEndpoint(endpoint, "blob", "queue")
		}
	}
	if queueURI != "" {
		endpoint, name, err := parseEndpoint(queueURI, "queue")
		if err != nil {
			return StorageAccount{}, fmt.Errorf("%s: %w", queueSetting, err)
		}
		acct.QueueEndpoint = endpoint
		if acct.Name == "" {
			acct.Name = name
		}
	}
	if acct.Name == "" {
		return StorageAccount{}, fmt.Errorf("%s: cannot tell the account name from %q; set %s", blobSetting, blobURI, nameSetting)
	}
	return acct, nil
}

// ParseConnectionString parses an Azure Storage connection string. Keys are
// case-insensitive and values may contain '=' (base64 keys end with it).
func ParseConnectionString(conn string) (StorageAccount, error) {
	fields := map[string]string{}
	for part := range strings.SplitSeq(conn, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		key, value, ok := strings.Cut(part, "=")
		key = strings.TrimSpace(key)
		if !ok || key == "" {
			return StorageAccount{}, fmt.Errorf("connection string part %q is not Key=Value", redactPart(part))
		}
		fields[strings.ToLower(key)] = strings.TrimSpace(value)
	}
	if len(fields) == 0 {
		return StorageAccount{}, errors.New("connection string is empty")
	}

	if dev, ok := fields["usedevelopmentstorage"]; ok {
		if !strings.EqualFold(dev, "true") {
			return StorageAccount{}, fmt.Errorf("UseDevelopmentStorage=%q: only true is supported", dev)
		}
		return StorageAccount{
			Name:          DevStoreAccountName,
			AccountKey:    DevStoreAccountKey,
			BlobEndpoint:  DevStoreBlobEndpoint,
			QueueEndpoint: DevStoreQueueEndpoint,
		}, nil
	}

	protocol := strings.ToLower(fields["defaultendpointsprotocol"])
	switch protocol {
	case "":
		protocol = "https"
	case "http", "https":
	default:
		return StorageAccount{}, fmt.Errorf("DefaultEndpointsProtocol %q must be http or https", fields["defaultendpointsprotocol"])
	}
	suffix := strings.Trim(fields["endpointsuffix"], ".")
	if suffix == "" {
		suffix = DefaultEndpointSuffix
	}

	acct := StorageAccount{
		Name:       fields["accountname"],
		AccountKey: fields["accountkey"],
		SAS:        strings.TrimPrefix(fields["sharedaccesssignature"], "?"),
	}
	if acct.Name != "" {
		if err := validateAccountName(acct.Name); err != nil {
			return StorageAccount{}, fmt.Errorf("AccountName: %w", err)
		}
		acct.BlobEndpoint = protocol + "://" + acct.Name + ".blob." + suffix
		acct.QueueEndpoint = protocol + "://" + acct.Name + ".queue." + suffix
	}
	if blob := fields["blobendpoint"]; blob != "" {
		endpoint, name, err := parseEndpoint(blob, "blob")
		if err != nil {
			return StorageAccount{}, fmt.Errorf("BlobEndpoint: %w", err)
		}
		acct.BlobEndpoint = endpoint
		if acct.Name == "" {
			acct.Name = name
		}
	}
	if queue := fields["queueendpoint"]; queue != "" {
		endpoint, name, err := parseEndpoint(queue, "queue")
		if err != nil {
			return StorageAccount{}, fmt.Errorf("QueueEndpoint: %w", err)
		}
		acct.QueueEndpoint = endpoint
		if acct.Name == "" {
			acct.Name = name
		}
	}
	if acct.BlobEndpoint == "" {
		return StorageAccount{}, errors.New("connection string has neither AccountName nor BlobEndpoint")
	}
	switch {
	case acct.AccountKey != "":
		if acct.Name == "" {
			return StorageAccount{}, errors.New("AccountKey needs AccountName")
		}
		if _, err := base64.StdEncoding.DecodeString(acct.AccountKey); err != nil {
			// The decode error's byte offset is safe; the key is not echoed.
			return StorageAccount{}, fmt.Errorf("AccountKey is not valid base64: %w", err)
		}
		acct.SAS = "" // Shared Key wins, as in the SDKs.
	case acct.SAS != "":
	default:
		return StorageAccount{}, errors.New("connection string has neither AccountKey nor SharedAccessSignature")
	}
	return acct, nil
}

// redactPart keeps a malformed part's shape without leaking secrets.
func redactPart(part string) string {
	if len(part) > 12 {
		return part[:6] + "…"
	}
	return part
}

// validateAccountName applies Azure's rule: 3-24 lowercase letters and digits.
func validateAccountName(name string) error {
	if len(name) < 3 || len(name) > 24 {
		return fmt.Errorf("account name %q must be 3 to 24 characters", name)
	}
	for _, c := range name {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return fmt.Errorf("account name %q may hold only lowercase letters and digits", name)
		}
	}
	return nil
}

// parseEndpoint validates a service URL and returns it without trailing
// slash, plus the account name it implies: the first host label for
// "<name>.<service>.<suffix>", else the first path segment for path-style
// URLs (Azurite: http://127.0.0.1:10000/<name>), else "".
func parseEndpoint(raw, service string) (endpoint, accountName string, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", "", fmt.Errorf("%q is not a URL: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return "", "", fmt.Errorf("%q is not an absolute http(s) URL", raw)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", "", fmt.Errorf("%q must not carry a query, fragment or user info", raw)
	}
	endpoint = strings.TrimRight(u.String(), "/")

	host := u.Hostname()
	if label, rest, ok := strings.Cut(host, "."); ok && strings.HasPrefix(rest, service+".") {
		return endpoint, label, nil
	}
	if first, _, _ := strings.Cut(strings.Trim(u.Path, "/"), "/"); first != "" && isPathStyleHost(host) {
		return endpoint, first, nil
	}
	return endpoint, "", nil
}

// isPathStyleHost reports hosts that put the account in the path: IP
// addresses and local names, as Azurite and the storage emulator do.
func isPathStyleHost(host string) bool {
	return net.ParseIP(host) != nil || host == "localhost" || !strings.Contains(host, ".")
}

// siblingEndpoint turns https://<name>.blob.<suffix> into the same
// account's other service, or "" when the endpoint is not of that form.
func siblingEndpoint(endpoint, from, to string) string {
	u, err := url.Parse(endpoint)
	if err != nil {
		return ""
	}
	label, rest, ok := strings.Cut(u.Host, ".")
	if !ok || !strings.HasPrefix(rest, from+".") || strings.Trim(u.Path, "/") != "" {
		return ""
	}
	u.Host = label + "." + to + "." + strings.TrimPrefix(rest, from+".")
	return u.String()
}
