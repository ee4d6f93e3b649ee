package rules

import "testing"

// TestMirrorToAnotherAccountIsAccepted (review R5): the common disaster-recovery rule
// "mirror container uploads (whichever account raises the event) into the backup
// account's uploads container" was accepted at 25bb3f3 (its destination alias "backup"
// is not its source account) and is refused by Parse since ec32e55 ("the destination
// lies inside the source area"), so an app configured with it no longer starts after
// the upgrade. Its copies cannot start it again: each copy's BlobCreated has api
// CopyBlob, which a rule without acceptCopyEvents ignores (README "Which events copy").
// The same rule with acceptCopyEvents does loop and is rightly refused.
func TestMirrorToAnotherAccountIsAccepted(t *testing.T) {
	raw := `[{"name":"dr","sourceContainer":"uploads","destination":{"account":"backup","container":"uploads"}}]`
	rs, err := Parse(raw)
	if err == nil {
		err = Resolve(rs, func(alias string) (string, bool) {
			return map[string]string{"": "appstore", "backup": "backupstore"}[alias], true
		})
	}
	if err != nil {
		t.Fatalf("a mirror rule into another account, ignoring copy events, is refused at start-up: %v", err)
	}
}
