package config

import (
	"errors"
	"net/url"
	"testing"
)

// CanonicalHost: the host an HTTP stack that follows the WHATWG URL standard (Node's,
// so Azurite's) resolves; expectations from the standard's own examples and from
// Node's new URL().
func TestCanonicalHost(t *testing.T) {
	for _, tt := range []struct{ raw, want string }{
		{"https://myacct.blob.core.windows.net/c/x", "https://myacct.blob.core.windows.net/c/x"},
		{"https://MyAcct.blob.core.windows.net/c/x", "https://MyAcct.blob.core.windows.net/c/x"}, // ASCII: compared without case
		{"https://\uff4dyacct.blob.core.windows.net/c/x", "https://myacct.blob.core.windows.net/c/x"},
		{"https://myacct\u3002blob.core.windows.net/c/x", "https://myacct.blob.core.windows.net/c/x"},
		{"https://MY\u00adACCT.blob.core.windows.net/c/x", "https://myacct.blob.core.windows.net/c/x"},
		{"https://b\u00fccher.example/c/x", "https://xn--bcher-kva.example/c/x"},
		{"http://\uff11\uff12\uff17.0.0.1:10000/a/c/x", "http://127.0.0.1:10000/a/c/x"},
		{"http://0x7f.0.0.1:10000/a/c/x", "http://127.0.0.1:10000/a/c/x"},
		{"http://127.1:10000/a/c/x", "http://127.0.0.1:10000/a/c/x"},
		{"http://0177.0.0.01/a/c/x", "http://127.0.0.1/a/c/x"},
		{"http://2130706433/a/c/x", "http://127.0.0.1/a/c/x"},
		{"http://127.0.0.1./a/c/x", "http://127.0.0.1/a/c/x"},
		{"http://10.0.0.1:8080/a", "http://10.0.0.1:8080/a"},
		{"http://[::ffff:127.0.0.1]:10000/a", "http://[::ffff:127.0.0.1]:10000/a"},
		{"http://1.example/a", "http://1.example/a"},
		{"http://example.0xg/a", "http://example.0xg/a"}, // not hex: a domain label
	} {
		u, err := url.Parse(tt.raw)
		if err != nil {
			t.Fatal(err)
		}
		before := u.String()
		got, err := CanonicalHost(u)
		if err != nil {
			t.Errorf("CanonicalHost(%s): %v", tt.raw, err)
			continue
		}
		if got.String() != tt.want {
			t.Errorf("CanonicalHost(%s) = %s, want %s", tt.raw, got, tt.want)
		}
		if u.String() != before {
			t.Errorf("CanonicalHost modified its argument: %s", u)
		}
	}
	for _, raw := range []string{
		"http://1.2.3.4.5/a", // five numbers
		"http://256.0.0.1/a", // a byte over 255
		"http://1.2.3.256/a", // the last number over its byte
		"http://1.2.65536/a", // the last number over its two bytes
		"http://09.0.0.1/a",  // an octal number with a 9
		"http://a\u200db.example/a",
		"http://\u2100x.example/a", // maps to "a/cx.example"
		"http://ex\uff0fample/a",   // maps to "ex/ample"
		"http://ex\uff20ample/a",   // maps to "ex@ample"
		"http://ex\uff1a80/a",      // maps to "ex:80"
	} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := CanonicalHost(u); !errors.Is(err, ErrHostSpelling) {
			t.Errorf("CanonicalHost(%s) = %v, %v, want ErrHostSpelling", raw, got, err)
		}
	}
}

func TestUnambiguousPath(t *testing.T) {
	for raw, want := range map[string]error{
		"https://a.example/c/x":                nil,
		"https://a.example/c/x?q=a\\b#f\\g":    nil, // the query and fragment are not paths
		"https://a.example/c%5Cx":              nil, // an escaped backslash is a character everywhere
		"https://a.example/c\\x":               ErrBackslashInPath,
		"http://127.0.0.1:1/acct\\copyjobs\\x": ErrBackslashInPath,
	} {
		if got := UnambiguousPath(raw); !errors.Is(got, want) || (want == nil) != (got == nil) {
			t.Errorf("UnambiguousPath(%s) = %v, want %v", raw, got, want)
		}
	}
}
