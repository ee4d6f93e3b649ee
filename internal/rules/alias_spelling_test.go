package rules

import "testing"

// TestRuleIgnoringCopyEventsIsValidWhateverTheAliasSpelling (review R6): README
// (after baf068c): "a rule with acceptCopyEvents whose copies would land in its own
// source area is refused (a rule without it ignores its copies' events ...)". check's
// new first case refuses any rule whose Destination.Account (an alias) equals its
// SourceAccount (a storage account name) with the destination inside the source area,
// acceptCopyEvents or not. So "archive every upload into uploads/archive/ of the app's
// account" is refused at start-up when the app's account is spelled "" and accepted when
// it is spelled "default" (the same account), and an alias that happens to equal a
// source account name refuses a rule whose destination is another account.
func TestRuleIgnoringCopyEventsIsValidWhateverTheAliasSpelling(t *testing.T) {
	accounts := map[string]string{"": "appstore", "default": "appstore", "backup": "backupstore"}
	for _, tc := range []struct{ name, raw string }{
		{"app account spelled default", `[{"name":"arch","sourceContainer":"uploads","destination":{"account":"default","container":"uploads","prefix":"archive/"}}]`},
		{"app account spelled empty", `[{"name":"arch","sourceContainer":"uploads","destination":{"container":"uploads","prefix":"archive/"}}]`},
		{"alias equal to a source account name", `[{"name":"dr","sourceAccount":"backup","sourceContainer":"uploads","destination":{"account":"backup","container":"uploads","prefix":"dr/"}}]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs, err := Parse(tc.raw)
			if err == nil {
				err = Resolve(rs, func(alias string) (string, bool) { n, ok := accounts[alias]; return n, ok })
			}
			if err != nil {
				t.Fatalf("a rule without acceptCopyEvents (its copies' CopyBlob events are ignored; Covers skips its destination area) is refused: %v", err)
			}
		})
	}
}
