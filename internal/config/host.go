package config

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// whatwgIDNA maps a host as the WHATWG URL standard's "domain to ASCII" does (UTS #46,
// nontransitional, beStrict false): the parser of Node (Azurite) and of browsers.
// Azure's .NET stack maps hosts with UTS #46 as well.
var whatwgIDNA = idna.New(idna.MapForLookup(), idna.BidiRule(), idna.Transitional(false),
	idna.CheckHyphens(false), idna.StrictDomainName(false))

// ErrHostSpelling: a URL's host that no HTTP stack reads as one name.
var ErrHostSpelling = errors.New("host is not a valid domain name or IP address")

// ErrBackslashInPath: a URL whose path holds a raw backslash.
var ErrBackslashInPath = errors.New(`a backslash in the URL's path: write "/" (or "%5C" for the character)`)

// UnambiguousPath refuses a raw URL whose path holds a backslash. The WHATWG URL
// standard (Node, so Azurite; browsers) reads it as "/", Go's parser as a character:
// "/acct\copyjobs\x" would name the app's records to storage and an outside blob to
// every check made on the parsed URL.
func UnambiguousPath(raw string) error {
	if i := strings.IndexAny(raw, "?#"); i >= 0 {
		raw = raw[:i]
	}
	if strings.Contains(raw, `\`) {
		return ErrBackslashInPath
	}
	return nil
}

// ReadAsStorage is how every check must read a source URL: raw (its text) must have no
// backslash in its path (UnambiguousPath), and u (raw parsed) comes back with its host
// as storage reads it (CanonicalHost). Send the URL as u.String() then, so that no other
// reading of the text reaches storage than the one checked.
func ReadAsStorage(raw string, u *url.URL) (*url.URL, error) {
	if err := UnambiguousPath(raw); err != nil {
		return nil, err
	}
	return CanonicalHost(u)
}

// CanonicalHost returns u with its host written as an HTTP stack resolves it, so that
// every check on the URL reads the name storage will read: a host with letters outside
// ASCII in its ASCII form ("ｄev。example" is "dev.example", a soft hyphen vanishes,
// capitals are lower case) and an IPv4 address written as numbers in any base or
// short form ("0x7f.1", "127.1", "127.0.0.1.") in dotted decimal. Go's URL parser
// keeps such hosts as written, so a check on the text would miss the account they
// name. An ASCII domain name and an IPv6 literal come back as written. u is not
// modified.
func CanonicalHost(u *url.URL) (*url.URL, error) {
	host := u.Hostname()
	if strings.Contains(host, ":") { // an IPv6 literal: url.Parse has checked it
		return u, nil
	}
	ascii := host
	if !isASCII(host) {
		var err error
		// The mapping may yield characters no host holds ("℀" is "a/c", "＠" is "@"):
		// the WHATWG parser then fails, and so does this.
		if ascii, err = whatwgIDNA.ToASCII(host); err != nil || strings.IndexFunc(ascii, notDomainChar) >= 0 {
			return nil, fmt.Errorf("%w: %q", ErrHostSpelling, host)
		}
	}
	if endsInNumber(ascii) {
		ip, ok := whatwgIPv4(ascii)
		if !ok {
			return nil, fmt.Errorf("%w: %q ends in a number but is no IPv4 address", ErrHostSpelling, host)
		}
		ascii = ip
	}
	if ascii == host {
		return u, nil
	}
	c := *u
	c.Host = ascii
	if port := u.Port(); port != "" {
		c.Host += ":" + port
	}
	return &c, nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// notDomainChar: not a letter, digit, hyphen, dot or underscore of a domain name in
// ASCII.
func notDomainChar(r rune) bool {
	return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_')
}

// endsInNumber is the WHATWG URL standard's test for a host the IPv4 parser reads: its
// last label (a trailing dot aside) is decimal digits or 0x and hex digits.
func endsInNumber(host string) bool {
	trimmed := strings.TrimSuffix(host, ".")
	if trimmed == "" {
		return false
	}
	last := trimmed[strings.LastIndexByte(trimmed, '.')+1:]
	if last != "" && strings.Trim(last, "0123456789") == "" {
		return true
	}
	_, ok := ipv4Number(last)
	return ok && (strings.HasPrefix(last, "0x") || strings.HasPrefix(last, "0X"))
}

// whatwgIPv4 is the WHATWG URL standard's IPv4 parser: up to four numbers, each
// decimal, octal (a leading 0) or hex (0x), the last filling the bytes left.
func whatwgIPv4(host string) (string, bool) {
	parts := strings.Split(host, ".")
	if parts[len(parts)-1] == "" && len(parts) > 1 {
		parts = parts[:len(parts)-1]
	}
	if len(parts) > 4 {
		return "", false
	}
	var addr uint64
	for i, p := range parts {
		n, ok := ipv4Number(p)
		if !ok {
			return "", false
		}
		if i < len(parts)-1 {
			if n > 255 {
				return "", false
			}
			addr |= n << (8 * (3 - i))
			continue
		}
		if n >= 1<<(8*(5-len(parts))) {
			return "", false
		}
		addr |= n
	}
	return fmt.Sprintf("%d.%d.%d.%d", addr>>24, addr>>16&255, addr>>8&255, addr&255), true
}

func ipv4Number(s string) (uint64, bool) {
	if s == "" {
		return 0, false
	}
	base := 10
	switch {
	case len(s) >= 2 && (s[:2] == "0x" || s[:2] == "0X"):
		s, base = s[2:], 16
	case len(s) >= 2 && s[0] == '0':
		s, base = s[1:], 8
	}
	if s == "" {
		return 0, true
	}
	n, err := strconv.ParseUint(s, base, 64)
	return n, err == nil
}
