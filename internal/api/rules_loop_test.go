package api_test

import (
	"net/http"
	"testing"

	"github.com/blobcopy/blobcopy/internal/api"
	"github.com/blobcopy/blobcopy/internal/rules"
)

// TestRuleCannotFeedItselfThroughAnAlias (review R1): a rule whose destination is inside its own
// source area must be refused at load ("the destination lies inside the source area")
// or never cover its own copies (README: "A blob inside the rule's own destination area
// is never covered, so a rule cannot feed itself"). Both checks compare the destination's
// account ALIAS with the source's storage account NAME, so a rule naming the account by
// its alias (or "default" for the app's account) passes, and with acceptCopyEvents every
// copy's own BlobCreated (api CopyBlob) starts another copy: copied/x, copied/copied/x, ...
func TestRuleCannotFeedItselfThroughAnAlias(t *testing.T) {
	for _, tc := range []struct{ name, rulesJSON, account, blobInDst string }{
		{"alias", `[{"name":"loop","sourceAccount":"my-storage-account","sourceContainer":"incoming",
			"destination":{"account":"docs","container":"incoming","prefix":"copied/"},"acceptCopyEvents":true}]`,
			"my-storage-account", "copied/report.csv"},
		{"default", `[{"name":"loop","sourceAccount":"app","sourceContainer":"uploads",
			"destination":{"account":"default","container":"uploads","prefix":"copied/"},"acceptCopyEvents":true}]`,
			"app", "copied/report.csv"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs, err := rules.Parse(tc.rulesJSON)
			if err != nil {
				t.Logf("rules refused at load (good): %v", err)
				return
			}
			pol := api.Policy{Accounts: []api.Account{appAccount, docsAccount}, CallbackHosts: []string{"hooks.example.com"}}
			if err := pol.CheckRules(rs); err != nil {
				t.Logf("rules refused by policy (good): %v", err)
				return
			}
			f := newFixture(t, api.Policy{}, rs)
			container := rs[0].SourceContainer
			host := "https://" + docsHost
			ref := docsBlob(container, tc.blobInDst)
			if tc.account == "app" {
				ref.Account = ""
				host = "https://" + appAccount.BlobEndpoint[len("https://"):]
			}
			// The blob the rule's own copy wrote, raising BlobCreated with api CopyBlob.
			f.env.Blobs.Put(ref, 10, nil)
			r := f.do(t, http.MethodPost, "/api/copies", batch(
				blobCreated("own-copy", tc.account, container, tc.blobInDst, "CopyBlob", host+"/"+container+"/"+tc.blobInDst, `"0x1"`),
			), eventGridHeaders)
			res := deliveryResult(t, r)["own-copy"]
			if res.Outcome == api.OutcomeStarted {
				calls := f.env.Blobs.StartCopyCalls()
				t.Fatalf("the rule's own copy started another copy (a loop): outcome %s, copies %+v", res.Outcome, calls)
			}
		})
	}
}
