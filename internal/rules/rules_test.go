package rules

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name, raw string
		err       string
	}{
		{"empty", "", ""},
		{"valid", `[{"name":"a","sourceContainer":"inbox","destination":{"container":"outbox"}}]`, ""},
		{"not json", `{`, "COPY_RULES"},
		{"unknown field", `[{"name":"a","sourceContainer":"inbox","destination":{"container":"outbox"},"x":1}]`, "unknown field"},
		{"no name", `[{"sourceContainer":"inbox","destination":{"container":"outbox"}}]`, "name is required"},
		{"duplicate", `[{"name":"a","sourceContainer":"inbox","destination":{"container":"outbox"}},{"name":"a","sourceContainer":"inbox","destination":{"container":"outbox"}}]`, "duplicate"},
		{"bad container", `[{"name":"a","sourceContainer":"IN","destination":{"container":"outbox"}}]`, "sourceContainer"},
		{"bad destination", `[{"name":"a","sourceContainer":"inbox","destination":{"container":"a--b"}}]`, "destination.container"},
		{"loop", `[{"name":"a","sourceContainer":"inbox","acceptCopyEvents":true,"destination":{"container":"inbox","prefix":"copies/"}}]`, "inside the source area"},
		{"same area ignoring copy events", `[{"name":"a","sourceContainer":"inbox","destination":{"container":"inbox","prefix":"copies/"}}]`, ""},
		{"dot-dot prefix", `[{"name":"a","sourceContainer":"inbox","destination":{"container":"outbox","prefix":"x/.."}}]`, "destination.prefix"},
		{"dot prefix", `[{"name":"a","sourceContainer":"inbox","destination":{"container":"outbox","prefix":"./"}}]`, "destination.prefix"},
		{"control character in the prefix", `[{"name":"a","sourceContainer":"inbox","destination":{"container":"outbox","prefix":"x\u0001/"}}]`, "destination.prefix"},
		{"a prefix with dots in a name", `[{"name":"a","sourceContainer":"inbox","destination":{"container":"outbox","prefix":"v1.2/"}}]`, ""},
	}
	for _, tt := range tests {
		_, err := Parse(tt.raw)
		if (tt.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("%s: err = %v, want %q", tt.name, err, tt.err)
		}
	}
}

func TestCoversAndDestination(t *testing.T) {
	r := Rule{Name: "r", SourceAccount: "src", SourceContainer: "inbox", SourcePrefix: "in/",
		Destination: Destination{Container: "inbox", Prefix: "in/copies/"}}
	tests := []struct {
		account, container, blob string
		want                     bool
	}{
		{"src", "inbox", "in/a.csv", true},
		{"SRC", "inbox", "in/a b.csv", true},
		{"other", "inbox", "in/a.csv", false},
		{"src", "outbox", "in/a.csv", false},
		{"src", "inbox", "out/a.csv", false},
		{"src", "inbox", "in/copies/a.csv", false}, // its own destination area
	}
	for _, tt := range tests {
		if got := r.Covers(tt.account, tt.container, tt.blob); got != tt.want {
			t.Errorf("Covers(%s, %s, %s) = %v, want %v", tt.account, tt.container, tt.blob, got, tt.want)
		}
	}
	if got := r.DestinationBlob("in/2026/a.csv"); got != "in/copies/2026/a.csv" {
		t.Errorf("DestinationBlob = %q", got)
	}
	if _, ok := Match([]Rule{r}, "src", "inbox", "in/x"); !ok {
		t.Error("Match missed")
	}
	if _, ok := ByName([]Rule{r}, "r"); !ok {
		t.Error("ByName missed")
	}
}
