// Package redact keeps credentials out of logs, job records, errors and responses.
//
// A SAS travels in a URL's query string; its signature (sig) is the secret, but the
// other SAS fields name the signer and the key, so every credential-bearing parameter
// is replaced, not only sig.
package redact

import (
	"context"
	"log/slog"
	"net/url"
	"regexp"
	"strings"
)

// Placeholder replaces a redacted value.
const Placeholder = "REDACTED"

// secretParams are query parameters that carry or identify a credential. Names are
// compared case-insensitively because Azure treats SAS parameter names that way.
var secretParams = map[string]bool{
	"sig":          true, // SAS signature
	"skoid":        true, // user-delegation key: signer object id
	"sktid":        true, // signer tenant
	"skt":          true,
	"ske":          true,
	"sks":          true,
	"skv":          true,
	"saoid":        true,
	"suoid":        true,
	"code":         true, // Azure Functions key
	"access_token": true,
	"token":        true,
	"api-key":      true,
	"apikey":       true,
	"key":          true,
	"password":     true,
	"secret":       true,
}

// IsSecretParam reports whether a query parameter name carries a credential.
func IsSecretParam(name string) bool { return secretParams[strings.ToLower(name)] }

// URL returns u with credential-bearing query values and any userinfo password replaced.
// A string that does not parse as a URL is scrubbed as free text.
func URL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return Text(raw)
	}
	return parsedURL(u)
}

func parsedURL(u *url.URL) string {
	c := *u
	if c.User != nil {
		if _, has := c.User.Password(); has {
			c.User = url.UserPassword(c.User.Username(), Placeholder)
		}
	}
	if c.RawQuery != "" {
		q := c.Query()
		changed := false
		for name := range q {
			if IsSecretParam(name) {
				q[name] = []string{Placeholder}
				changed = true
			}
		}
		if changed {
			c.RawQuery = q.Encode()
		}
	}
	return c.String()
}

// DropsQuery reports whether StripQuery leaves out part of raw's query (anything but
// snapshot and versionid).
func DropsQuery(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return true
	}
	for name := range u.Query() {
		switch strings.ToLower(name) {
		case "snapshot", "versionid":
		default:
			return true
		}
	}
	return false
}

// StripQuery returns the URL without any query except the ones that select what is read
// (snapshot, versionid): the form kept in job records.
func StripQuery(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return Text(raw)
	}
	c := *u
	c.User = nil
	q := u.Query()
	kept := url.Values{}
	for name, v := range q {
		switch strings.ToLower(name) {
		case "snapshot", "versionid":
			kept[name] = v
		}
	}
	c.RawQuery = kept.Encode()
	c.Fragment = ""
	return c.String()
}

var (
	secretInText = regexp.MustCompile(`(?i)\b(sig|skoid|sktid|skt|ske|sks|skv|saoid|suoid|code|access_token|token|api-key|apikey|password|secret)=([^&\s"'<>;]*)`)
	keyInText    = regexp.MustCompile(`(?i)\b(AccountKey|SharedAccessSignature|SharedAccessKey)=([^;\s"']*)`)
	bearerInText = regexp.MustCompile(`(?i)\bBearer\s+[A-Za-z0-9\-_.~+/]+=*`)
	// userInText is a URL's "user:password@": the user (which may hold an '@', as Go's
	// url.Parse reads it) up to the first ':', the password up to the authority's last
	// '@' (greedy, within the authority: no '/', '?', '#' or white space).
	userInText = regexp.MustCompile(`(?i)([a-z][a-z0-9+.\-]*://[^/?#\s:"'<>]*):[^/?#\s"'<>]*@`)
)

// Text scrubs credentials from free text such as an error message that embeds a URL or
// a connection string: credential-bearing parameters, connection-string keys, bearer
// tokens and the password of a URL's user info (https://user:password@host).
func Text(s string) string {
	if !mayHoldSecret(s) {
		return s
	}
	return scrub(s)
}

// mayHoldSecret is Text's fast path (issue 13: the patterns cost about 13 µs per log
// line, and every line of every start went through them). Each pattern needs an '='
// (a parameter or a connection-string field), the word "bearer", whose letters have no
// other case folding than ASCII's, or "://" and an '@' (a URL's user info), which have
// none either, so a string with none of them cannot match.
func mayHoldSecret(s string) bool {
	if strings.IndexByte(s, '=') >= 0 || (strings.IndexByte(s, '@') >= 0 && strings.Contains(s, "://")) {
		return true
	}
	for i := strings.IndexAny(s, "bB"); i >= 0 && i+len("bearer") <= len(s); {
		if strings.EqualFold(s[i:i+len("bearer")], "bearer") {
			return true
		}
		next := strings.IndexAny(s[i+1:], "bB")
		if next < 0 {
			return false
		}
		i += 1 + next
	}
	return false
}

// scrub applies every pattern.
func scrub(s string) string {
	s = secretInText.ReplaceAllString(s, "${1}="+Placeholder)
	s = keyInText.ReplaceAllString(s, "${1}="+Placeholder)
	s = userInText.ReplaceAllString(s, "${1}:"+Placeholder+"@")
	return bearerInText.ReplaceAllString(s, "Bearer "+Placeholder)
}

// Handler wraps a slog.Handler so that no string attribute or message carries a
// credential, whatever the call site passed: a second line of defence behind callers
// that already log redacted URLs.
type Handler struct{ inner slog.Handler }

// NewHandler returns a redacting slog.Handler around inner.
func NewHandler(inner slog.Handler) *Handler { return &Handler{inner: inner} }

func (h *Handler) Enabled(ctx context.Context, l slog.Level) bool { return h.inner.Enabled(ctx, l) }

func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, Text(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(attr(a))
		return true
	})
	return h.inner.Handle(ctx, out)
}

func (h *Handler) WithAttrs(as []slog.Attr) slog.Handler {
	clean := make([]slog.Attr, len(as))
	for i, a := range as {
		clean[i] = attr(a)
	}
	return &Handler{inner: h.inner.WithAttrs(clean)}
}

func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{inner: h.inner.WithGroup(name)}
}

func attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, Text(v.String()))
	case slog.KindGroup:
		g := v.Group()
		clean := make([]any, len(g))
		for i, ga := range g {
			clean[i] = attr(ga)
		}
		return slog.Group(a.Key, clean...)
	case slog.KindAny:
		if err, ok := v.Any().(error); ok {
			return slog.String(a.Key, Text(err.Error()))
		}
		if u, ok := v.Any().(*url.URL); ok && u != nil {
			return slog.String(a.Key, parsedURL(u))
		}
		return slog.Attr{Key: a.Key, Value: v}
	default:
		return slog.Attr{Key: a.Key, Value: v}
	}
}
