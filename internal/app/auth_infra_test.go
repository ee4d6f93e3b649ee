package app

import (
	"regexp"
	"strings"
	"testing"
)

// TestEntraAuthOption: App Service Authentication with Entra ID is an opt-in of
// main.bicep (modules/auth.bicep) that validates bearer tokens without blocking key
// callers and Event Grid, and turns BLOBCOPY_TRUST_CLIENT_PRINCIPAL on with it; the app
// roles it documents are the ones the code checks.
func TestEntraAuthOption(t *testing.T) {
	main := infraFile(t, "infra/main.bicep")
	auth := infraFile(t, "infra/modules/auth.bicep")
	app := infraFile(t, "infra/modules/app.bicep")

	if !regexp.MustCompile(`(?m)^param entraAuthEnabled bool = false$`).MatchString(main) {
		t.Error("App Service Authentication must be an opt-in parameter (entraAuthEnabled, default false)")
	}
	mod := block(t, main, "module auth 'modules/auth.bicep' = if (entraAuthEnabled) {")
	for _, want := range []string{"functionAppName: app.outputs.functionAppName", "clientId: entraClientId"} {
		if !strings.Contains(mod, want) {
			t.Errorf("the auth module is not given %q", want)
		}
	}
	if !strings.Contains(main, "trustClientPrincipal: entraAuthEnabled ? 'true' : 'false'") {
		t.Error("BLOBCOPY_TRUST_CLIENT_PRINCIPAL does not follow entraAuthEnabled")
	}
	if !regexp.MustCompile(`name: 'BLOBCOPY_TRUST_CLIENT_PRINCIPAL'\s*value: trustClientPrincipal\s*}`).MatchString(app) {
		t.Error("app.bicep does not set BLOBCOPY_TRUST_CLIENT_PRINCIPAL from its parameter")
	}

	if !regexp.MustCompile(`resource \w+ 'Microsoft\.Web/sites/config@\d{4}-\d{2}-\d{2}' = \{\s*parent: functionApp\s*name: 'authsettingsV2'`).MatchString(auth) {
		t.Error("auth.bicep does not configure the function app's authsettingsV2")
	}
	checks := map[string]string{
		"platform on":                   `platform: {\s*enabled: true\s*}`,
		"anonymous requests reach keys": `requireAuthentication: false\s*unauthenticatedClientAction: 'AllowAnonymous'`,
		"Entra provider on":             `azureActiveDirectory: {\s*enabled: true`,
		"the API's client id":           `clientId: clientId`,
		"the tenant's v2.0 issuer":      `openIdIssuer: '\$\{environment\(\)\.authentication\.loginEndpoint\}\$\{tenant\(\)\.tenantId\}/v2\.0'`,
		"audiences checked":             `allowedAudiences: audiences`,
		"no token store":                `tokenStore: {\s*enabled: false\s*}`,
		"https only":                    `requireHttps: true`,
	}
	for what, re := range checks {
		if !regexp.MustCompile(re).MatchString(auth) {
			t.Errorf("auth.bicep: %s (%s)", what, re)
		}
	}
	if strings.Contains(auth, "clientSecretSettingName") {
		t.Error("bearer validation needs no client secret; none may be configured")
	}

	// The roles the template documents are the roles the code checks.
	lits := goStringLiterals(t)
	for _, role := range []string{"Copies.ReadAll", "Copies.Admin"} {
		if !lits[role] {
			t.Errorf("the code does not check the app role %s", role)
		}
		if !strings.Contains(auth, role) {
			t.Errorf("auth.bicep does not document the app role %s", role)
		}
	}
	// The Flex Consumption caveat stays with the option.
	if !strings.Contains(auth, "EasyAuth as not supported") || !strings.Contains(auth, "WEBSITE_AUTH_ENABLED") {
		t.Error("auth.bicep lost its Flex Consumption caveat")
	}
}
