package rules

import (
	"strings"
	"testing"
)

// TestRuleCannotFeedItselfThroughTheDefaultAlias (review R3): a rule's destination account is an alias ("" or "default" for the app's
// own account, README: "Account is the configured alias (\"\" or \"default\" for the
// app's account)"), its source account a storage account name. Parse's loop check and
// Covers' "a blob inside the rule's own destination area is never covered, so a rule
// cannot feed itself" compare the two as if they were the same kind of name, so the
// guard holds for destination account "" and not for its synonym "default": the rule
// below, refused with "" (TestParse "loop"), is accepted with "default", and covers the
// blobs its own copies create. With acceptCopyEvents, each copy's BlobCreated (api
// CopyBlob) starts the next copy: data/x -> data/mirror/x -> data/mirror/mirror/x ...
func TestRuleCannotFeedItselfThroughTheDefaultAlias(t *testing.T) {
	for _, account := range []string{"", "default"} {
		raw := `[{"name":"m","sourceContainer":"data","acceptCopyEvents":true,` +
			`"destination":{"account":"` + account + `","container":"data","prefix":"mirror/"}}]`
		rs, err := Parse(raw)
		if err != nil {
			continue // refused as a loop: the guard held
		}
		// The app's own account ("appstore") is an account the rule's source area (any
		// account) covers, and the rule's destination is that account's data/mirror/.
		copied := rs[0].DestinationBlob("x.csv")
		if rs[0].Covers("appstore", "data", copied) {
			t.Errorf("destination account %q: rule accepted, and the blob its own copy creates (appstore/data/%s) is covered again "+
				"(next copy: data/%s): a copy loop", account, copied, rs[0].DestinationBlob(copied))
		}
	}
}

// TestResolve: once each destination alias names its storage account, a rule whose
// copies land in its own source area is refused whatever the alias spells, and so are
// rules accepting copy events that feed each other in a cycle; a rule that feeds
// another without a cycle, or a cycle through a rule that ignores copy events, is fine.
func TestResolve(t *testing.T) {
	accounts := map[string]string{"": "appstore", "default": "appstore", "docs": "docsstore"}
	lookup := func(alias string) (string, bool) { name, ok := accounts[alias]; return name, ok }
	for _, tc := range []struct {
		name, rules, wantErr string
	}{
		{"alias of the source account", `[{"name":"a","sourceAccount":"docsstore","sourceContainer":"ccc","acceptCopyEvents":true,"destination":{"account":"docs","container":"ccc","prefix":"m/"}}]`, "inside the source area"},
		{"any source account", `[{"name":"a","sourceContainer":"ccc","acceptCopyEvents":true,"destination":{"account":"docs","container":"ccc","prefix":"m/"}}]`, "inside the source area"},
		{"a mirror ignoring copy events", `[{"name":"a","sourceContainer":"ccc","destination":{"account":"docs","container":"ccc"}}]`, ""},
		{"another account", `[{"name":"a","sourceAccount":"appstore","sourceContainer":"ccc","destination":{"account":"docs","container":"ccc","prefix":"m/"}}]`, ""},
		{"unknown alias", `[{"name":"a","sourceContainer":"ccc","destination":{"account":"nope","container":"ddd"}}]`, "not a configured account"},
		{"a cycle of two", `[{"name":"a","sourceAccount":"appstore","sourceContainer":"inbox","acceptCopyEvents":true,"destination":{"account":"docs","container":"outbox","prefix":"x/"}},
			{"name":"b","sourceAccount":"docsstore","sourceContainer":"outbox","sourcePrefix":"x/","acceptCopyEvents":true,"destination":{"container":"inbox"}}]`, "a -> b -> a"},
		{"a cycle of three", `[{"name":"a","sourceContainer":"box1","acceptCopyEvents":true,"destination":{"container":"box2"}},
			{"name":"b","sourceContainer":"box2","acceptCopyEvents":true,"destination":{"container":"box3"}},
			{"name":"c","sourceContainer":"box3","acceptCopyEvents":true,"destination":{"account":"default","container":"box1","prefix":"back/"}}]`, "a -> b -> c -> a"},
		{"a chain", `[{"name":"a","sourceContainer":"box1","acceptCopyEvents":true,"destination":{"container":"box2"}},
			{"name":"b","sourceContainer":"box2","acceptCopyEvents":true,"destination":{"container":"box3"}}]`, ""},
		{"a cycle through a rule that ignores copy events", `[{"name":"a","sourceContainer":"box1","destination":{"container":"box2"}},
			{"name":"b","sourceContainer":"box2","acceptCopyEvents":true,"destination":{"container":"box1"}}]`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs, err := Parse(tc.rules)
			if err == nil {
				err = Resolve(rs, lookup)
			}
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
			if err == nil && rs[0].DestinationAccountName == "" {
				t.Fatalf("destination account not named: %+v", rs[0])
			}
		})
	}
}
