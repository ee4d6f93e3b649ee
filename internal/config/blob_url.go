package config

import (
	"net/url"
	"strings"
)

// OwnsURL reports whether u points into this account's blob endpoint: same
// host (and port) and, for path-style endpoints such as Azurite's, under the
// account's path.
func (a StorageAccount) OwnsURL(u *url.URL) bool {
	_, ok := a.relativeBlobPath(u)
	return ok
}

// BlobPath splits a blob URL of this account into its container and blob
// name. The blob name may contain '/'; both are unescaped. ok is false for
// URLs of other accounts and for URLs naming no blob.
func (a StorageAccount) BlobPath(u *url.URL) (container, blob string, ok bool) {
	rest, ok := a.relativeBlobPath(u)
	if !ok {
		return "", "", false
	}
	container, blob, found := strings.Cut(rest, "/")
	if !found || container == "" || blob == "" {
		return "", "", false
	}
	return container, blob, true
}

// relativeBlobPath returns u's unescaped path below the blob endpoint.
func (a StorageAccount) relativeBlobPath(u *url.URL) (string, bool) {
	if u == nil || a.BlobEndpoint == "" {
		return "", false
	}
	endpoint, err := url.Parse(a.BlobEndpoint)
	if err != nil {
		return "", false
	}
	if !strings.EqualFold(hostPort(endpoint), hostPort(u)) {
		return "", false
	}
	base := strings.TrimSuffix(endpoint.Path, "/")
	// u.Path is already unescaped, so "a%20b/c%2Fd" reads "a b/c/d", which
	// is how the service reads it too.
	path := u.Path
	if base != "" {
		rest, found := strings.CutPrefix(path, base)
		if !found || rest != "" && !strings.HasPrefix(rest, "/") {
			return "", false
		}
		path = rest
	}
	return strings.TrimPrefix(path, "/"), true
}

// hostPort returns host:port with the scheme's default port made explicit,
// so "https://a.blob.core.windows.net" and ":443" compare equal.
func hostPort(u *url.URL) string {
	port := u.Port()
	if port == "" {
		switch strings.ToLower(u.Scheme) {
		case "http":
			port = "80"
		case "https":
			port = "443"
		}
	}
	return strings.ToLower(u.Hostname()) + ":" + port
}
