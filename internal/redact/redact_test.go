package redact

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"testing"
)

const sas = "sv=2023-11-03&se=2026-11-26T00%3A00%3A00Z&sr=b&sp=r&skoid=abc&sktid=tenant&sig=c2VjcmV0c2lnbmF0dXJl"

func TestURL(t *testing.T) {
	tests := []struct {
		name, in string
		mustNot  []string
		mustHave []string
	}{
		{"sas", "https://a.blob.core.windows.net/c/b.txt?" + sas, []string{"c2VjcmV0c2lnbmF0dXJl", "skoid=abc", "tenant"}, []string{"sig=REDACTED", "sp=r", "/c/b.txt"}},
		{"function key", "http://127.0.0.1:7071/api/copies?code=topsecret", []string{"topsecret"}, []string{"code=REDACTED"}},
		{"upper case name", "https://h/c/b?SIG=abc123", []string{"abc123"}, []string{"REDACTED"}},
		{"password", "https://user:pw123@h/c", []string{"pw123"}, []string{"user"}},
		{"plain", "https://h/c/b?snapshot=2026-01-01", nil, []string{"snapshot=2026-01-01"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := URL(tt.in)
			for _, s := range tt.mustNot {
				if strings.Contains(got, s) {
					t.Errorf("URL(%q) = %q still holds %q", tt.in, got, s)
				}
			}
			for _, s := range tt.mustHave {
				if !strings.Contains(got, s) {
					t.Errorf("URL(%q) = %q lacks %q", tt.in, got, s)
				}
			}
		})
	}
}

func TestStripQuery(t *testing.T) {
	got := StripQuery("https://a.blob.core.windows.net/c/b?snapshot=2026-01-01T00:00:00.0000000Z&" + sas)
	want := "https://a.blob.core.windows.net/c/b?snapshot=2026-01-01T00%3A00%3A00.0000000Z"
	if got != want {
		t.Fatalf("StripQuery = %q, want %q", got, want)
	}
}

func TestText(t *testing.T) {
	in := `copy failed: GET https://a/c/b?` + sas + ` with DefaultEndpointsProtocol=https;AccountName=x;AccountKey=Zm9vYmFy==;EndpointSuffix=core.windows.net Authorization: Bearer eyJhbGciOi.eyJzdWIi.sig`
	got := Text(in)
	for _, s := range []string{"c2VjcmV0c2lnbmF0dXJl", "Zm9vYmFy", "eyJhbGciOi", "skoid=abc"} {
		if strings.Contains(got, s) {
			t.Errorf("Text left %q in %q", s, got)
		}
	}
	if !strings.Contains(got, "AccountName=x") {
		t.Errorf("Text removed too much: %q", got)
	}
}

// TestTextScrubsUserInfoPasswords: a URL's "user:password@" in free text (a log line, an
// error quoting the URL) keeps its user and loses its password, as URL does for a URL,
// whatever the password holds within the authority; what only looks alike is left alone.
func TestTextScrubsUserInfoPasswords(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"source=https://svc:S3cretPassw0rd@acct.blob.core.windows.net/src/in/",
			"source=https://svc:REDACTED@acct.blob.core.windows.net/src/in/"},
		{`batch submitted source="HTTP://svc:pw@h/c"`, `batch submitted source="HTTP://svc:REDACTED@h/c"`},
		{"get https://u:p@ss:w@h:443/c?x=1 failed", "get https://u:REDACTED@h:443/c?x=1 failed"}, // url.Parse: up to the last '@'
		{"sftp://a@b.c:pw@h/x", "sftp://a@b.c:REDACTED@h/x"},                                     // url.Parse: the user holds an '@'
		{"https://:pw@h/c", "https://:REDACTED@h/c"},
		{"two https://a:1@h and http://b:2@k", "two https://a:REDACTED@h and http://b:REDACTED@k"},
		{"https://user@h:8080/c mail me@x.y", "https://user@h:8080/c mail me@x.y"}, // no password
		{"https://h:443/c/a@b.txt", "https://h:443/c/a@b.txt"},                     // an '@' past the authority
		{"note: a:b@c", "note: a:b@c"},                                             // no URL
	} {
		if got := Text(tt.in); got != tt.want {
			t.Errorf("Text(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestHandlerRedactsEveryAttr(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(NewHandler(slog.NewJSONHandler(&buf, nil)))
	u, _ := url.Parse("https://a/c/b?" + sas)
	log.With("pre", "x?sig=aaa111").Info("start https://h/b?sig=bbb222",
		"url", u, "err", errors.New("boom ?sig=ccc333"), slog.Group("g", "s", "sig=ddd444"))
	out := buf.String()
	for _, s := range []string{"aaa111", "bbb222", "c2VjcmV0c2lnbmF0dXJl", "ccc333", "ddd444"} {
		if strings.Contains(out, s) {
			t.Errorf("log output holds %q: %s", s, out)
		}
	}
	if !strings.Contains(out, "REDACTED") {
		t.Errorf("log output shows no redaction marker: %s", out)
	}
}

// The fast path may only skip strings no pattern matches: Text must equal scrub,
// the patterns alone, on every input. The seeds include the forms that only case
// folding matches (ſ folds to s, K to k) and a Bearer token with no '='.
func FuzzTextSkipsOnlyWhatCannotMatch(f *testing.F) {
	for _, s := range []string{
		"", "plain text", "Bearer abc.def", "xBEARER  tok", "bearer", "b", "bearerbearer tok",
		"ſig=abc", "AccountKey=x", "accountkey=x", "ToKen=1", "a=b", "Authorization: bEaReR\tq.w.e",
		"https://a/c/b?" + sas, "copy outcome recorded", "/api/copies", "babbage bearer\nx",
		"https://u:p@h/c", "ſftp://u:p@h", "Khttp://a@b:c@d/e", "x://@:@", "a://b", "me@x.y", ":// @",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := Text(s), scrub(s); got != want {
			t.Fatalf("Text(%q) = %q, the patterns give %q", s, got, want)
		}
	})
}

// BenchmarkHandler is one log line through the redacting handler: a start's (no
// credential anywhere) and one whose source URL carries a SAS.
func BenchmarkHandler(b *testing.B) {
	log := slog.New(NewHandler(slog.NewJSONHandler(io.Discard, nil))).With("jobId", "0352f4af-3b11-4c5d-878b-f5c9da2f3a2e")
	for _, source := range []string{"https://a.blob.core.windows.net/c/a.txt", "https://a.blob.core.windows.net/c/a.txt?" + sas} {
		b.Run(map[bool]string{false: "start", true: "sas"}[strings.Contains(source, "?")], func(b *testing.B) {
			for b.Loop() {
				log.Info("copy pending", "status", "pending", "actor", "start",
					"destination", "https://a.blob.core.windows.net/c/b.txt", "source", source)
			}
		})
	}
}
