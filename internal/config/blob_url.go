package config

import (
	"net"
	"net/url"
	"path"
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
// URLs of other accounts and for URLs naming no blob: no container, a container
// name storage would refuse, or a "." or ".." segment anywhere (an HTTP stack
// resolves those, so the blob read would not be the one the URL's text names).
func (a StorageAccount) BlobPath(u *url.URL) (container, blob string, ok bool) {
	rest, ok := a.relativeBlobPath(u)
	if !ok {
		return "", "", false
	}
	container, blob, found := strings.Cut(rest, "/")
	if !found || !validContainerName(container) || blob == "" || HasDotSegment(blob) {
		return "", "", false
	}
	return container, blob, true
}

// validContainerName accepts the characters of a container name (letters, digits and
// hyphens; a leading '$' for $root, $logs, $web): anything else, storage refuses or
// an HTTP stack rewrites (a backslash, a dot segment).
func validContainerName(name string) bool {
	if name == "" || len(name) > 64 {
		return false
	}
	for i, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-':
		case r == '$' && i == 0:
		default:
			return false
		}
	}
	return true
}

// HasDotSegment reports whether a slash-separated name has a "." or ".." segment, which
// an HTTP stack resolves when the name is a URL's path.
func HasDotSegment(path string) bool {
	for seg := range strings.SplitSeq(path, "/") {
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

// NamedBy reports whether storage could read u as addressing this account, wherever
// its host points: the host's first label (without a trailing dot or the "-secondary"
// suffix of the read-only endpoint) is the account's name, or, where accounts are
// named in the path (an IP address, a single-label host such as localhost, or an
// emulator endpoint like Azurite's), the first path segment is. Copy Blob authorizes a
// source of the destination's own account with the destination request's Shared Key,
// so a URL that names the account but is not on its endpoint must not be taken for an
// outside URL.
func (a StorageAccount) NamedBy(u *url.URL) bool {
	if u == nil || a.Name == "" {
		return false
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	label, _, dotted := strings.Cut(host, ".")
	if strings.EqualFold(strings.TrimSuffix(label, "-secondary"), a.Name) {
		return true
	}
	if dotted && net.ParseIP(host) == nil && !a.pathStyle() {
		return false
	}
	// Read as an HTTP stack resolves it: "//a", "/./a" and "/x/../a" all name a.
	first, _, _ := strings.Cut(strings.TrimPrefix(path.Clean("/"+u.Path), "/"), "/")
	return strings.EqualFold(first, a.Name)
}

// pathStyle: the endpoint names the account in its path (an emulator's).
func (a StorageAccount) pathStyle() bool {
	e, err := url.Parse(a.BlobEndpoint)
	return err == nil && strings.Trim(e.Path, "/") != ""
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
