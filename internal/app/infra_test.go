package app

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// Structural tests of the production infrastructure (issue 16): Event Grid subscription,
// alerts, lifecycle rule, source-host allowlist, VNet option. The Bicep CLI is not available
// here, so these read the Bicep text; settings_test.go checks its syntax and module wiring.

func infraFile(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// goStringLiterals returns every string literal in the non-test Go source of the repo.
func goStringLiterals(t *testing.T) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	fset := token.NewFileSet()
	for _, dir := range []string{"internal", "cmd"} {
		err := filepath.WalkDir(filepath.Join(repoRoot, dir), func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
				return err
			}
			f, err := parser.ParseFile(fset, p, nil, 0)
			if err != nil {
				return err
			}
			ast.Inspect(f, func(n ast.Node) bool {
				if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
					if s, err := strconv.Unquote(lit.Value); err == nil {
						out[s] = true
					}
				}
				return true
			})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

var (
	alertMsgEq   = regexp.MustCompile(`tostring\(l\.msg\) == "([^"]+)"`)
	alertMsgIn   = regexp.MustCompile(`tostring\(l\.msg\) in \(([^)]*)\)`)
	alertAttr    = regexp.MustCompile(`\bl\.(\w+)`)
	dquoted      = regexp.MustCompile(`"([^"]+)"`)
	alertDecl    = regexp.MustCompile(`(?m)^\s{4}name: '([\w-]+)'\n\s{4}displayName:`)
	slogBuiltins = map[string]bool{"msg": true, "level": true, "time": true}
)

// The alerts key on log messages and attributes the code writes; a renamed message would
// silence an alert without any error, so every one must still be in the code, and
// docs/operations.md must list it.
func TestAlertsUseLogFieldsTheCodeWrites(t *testing.T) {
	alerts := infraFile(t, "infra/modules/alerts.bicep")
	ops := infraFile(t, "docs/operations.md")
	lits := goStringLiterals(t)

	var msgs []string
	for _, m := range alertMsgEq.FindAllStringSubmatch(alerts, -1) {
		msgs = append(msgs, m[1])
	}
	for _, m := range alertMsgIn.FindAllStringSubmatch(alerts, -1) {
		for _, q := range dquoted.FindAllStringSubmatch(m[1], -1) {
			msgs = append(msgs, q[1])
		}
	}
	if len(msgs) < 5 {
		t.Fatalf("found %d log messages in the alert queries: the scan is broken", len(msgs))
	}
	for _, msg := range msgs {
		if !lits[msg] {
			t.Errorf("alert query expects log message %q, which no Go code writes any more: keep the message or update infra/modules/alerts.bicep and docs/operations.md", msg)
		}
		if !strings.Contains(ops, msg) {
			t.Errorf("docs/operations.md does not list log message %q an alert relies on", msg)
		}
	}
	for _, m := range alertAttr.FindAllStringSubmatch(alerts, -1) {
		attr := m[1]
		if slogBuiltins[attr] {
			continue
		}
		if !lits[attr] {
			t.Errorf("alert query reads log attribute %q, which no Go code writes", attr)
		}
		if !strings.Contains(ops, "`"+attr+"`") {
			t.Errorf("docs/operations.md does not list log attribute `%s` an alert relies on", attr)
		}
	}
	// One alert per operational risk the issue names.
	var names []string
	for _, m := range alertDecl.FindAllStringSubmatch(alerts, -1) {
		names = append(names, m[1])
	}
	for _, want := range []string{"poisoned", "pending-too-long", "callback-gave-up", "tick-failed", "storage-throttled"} {
		if !strings.Contains(strings.Join(names, " "), want) {
			t.Errorf("alerts.bicep has no %s alert (have %v)", want, names)
		}
	}
	if !strings.Contains(alerts, "'Microsoft.Insights/metricAlerts@") || !strings.Contains(alerts, "'ServerBusyError'") {
		t.Error("alerts.bicep has no metric alert on the app's storage throttling")
	}
	if !regexp.MustCompile(`ago\(\$\{pendingAlertHours\}h\)`).MatchString(alerts) {
		t.Error("the pending alert does not use the configurable pendingAlertHours")
	}
}

func TestEventGridSubscriptionMatchesTheRules(t *testing.T) {
	eg := infraFile(t, "infra/modules/eventgrid.bicep")
	main := infraFile(t, "infra/main.bicep")
	for _, want := range []string{
		"'Microsoft.EventGrid/systemTopics@", "topicType: 'Microsoft.Storage.StorageAccounts'",
		"'Microsoft.EventGrid/systemTopics/eventSubscriptions@", "endpointType: 'WebHook'",
		"maxEventsPerBatch: maxEventsPerBatch", "preferredBatchSizeInKilobytes: preferredBatchSizeInKilobytes",
		"includedEventTypes: eventTypes", "key: 'data.api'", "operatorType: 'StringIn'",
		"retryPolicy: {", "maxDeliveryAttempts: maxDeliveryAttempts", "eventTimeToLiveInMinutes: eventTimeToLiveInMinutes",
		"deadLetterWithResourceIdentity: {", "endpointType: 'StorageBlob'",
		"key: 'subject'", "operatorType: 'StringBeginsWith'",
	} {
		if !strings.Contains(eg, want) {
			t.Errorf("eventgrid.bicep lacks %q", want)
		}
	}
	// data.api: what the rules accept (internal/api/events.go), CopyBlob only on opt-in,
	// never the events raised before data is written.
	committed := block(t, eg, "var committedApis = [")
	for _, api := range []string{"PutBlob", "PutBlockList", "FlushWithClose", "SftpCommit"} {
		if !strings.Contains(committed, "'"+api+"'") {
			t.Errorf("committedApis lacks %s", api)
		}
	}
	for _, api := range []string{"CopyBlob", "CreateFile", "SftpCreate"} {
		if strings.Contains(committed, "'"+api+"'") {
			t.Errorf("committedApis must not include %s", api)
		}
	}
	if strings.Contains(eg, "'CreateFile'") || strings.Contains(eg, "'SftpCreate'") {
		t.Error("eventgrid.bicep delivers CreateFile / SftpCreate events (raised before any data is written)")
	}
	if !regexp.MustCompile(`acceptsCopyEvents = length\(filter\(accountRules, r => r\.\?acceptCopyEvents \?\? false\)\) > 0`).MatchString(eg) ||
		!strings.Contains(eg, "acceptsCopyEvents ? ['CopyBlob'] : []") {
		t.Error("CopyBlob must be delivered only when a rule of the account sets acceptCopyEvents")
	}
	if !strings.Contains(infraFile(t, "internal/rules/rules.go"), "`json:\"acceptCopyEvents,omitempty\"`") {
		t.Error("the rule field acceptCopyEvents the Bicep reads is gone from internal/rules/rules.go")
	}
	for _, want := range []string{"'Microsoft.Storage.BlobCreated'", "'Microsoft.Storage.BlobRenamed'"} {
		if !strings.Contains(main, want) {
			t.Errorf("main.bicep eventGridEventTypes lacks %s", want)
		}
	}
	// Wired per source account COPY_RULES names, with the function key in the URL, only
	// once the key exists.
	if !regexp.MustCompile(`module eventGrid 'modules/eventgrid\.bicep' = \[for acct in eventGridAccounts: if \(!empty\(eventGridFunctionKey\)\) \{`).MatchString(main) {
		t.Error("main.bicep does not subscribe each of eventGridAccounts once eventGridFunctionKey is set")
	}
	if !strings.Contains(main, "endpointUrl: '${app.outputs.functionAppUri}/api/copies?code=${eventGridFunctionKey}'") {
		t.Error("the webhook URL is not copyfn's with the function key")
	}
	if !regexp.MustCompile(`@secure\(\)\n@description\([^\n]*\n[^@]*param eventGridFunctionKey string`).MatchString(main) ||
		!regexp.MustCompile(`@secure\(\)\n@description\([^)]*\)\nparam endpointUrl string`).MatchString(eg) {
		t.Error("the function key and the URL carrying it must be @secure() parameters")
	}
	if !strings.Contains(main, "filter(sourceAccounts, a => contains(ruleAccountNames, toLower(a.name)))") {
		t.Error("eventGridAccounts must be the sourceAccounts a rule names")
	}
	if !strings.Contains(infraFile(t, "infra/modules/app.bicep"), "'Microsoft.Web/sites/host/functionKeys@") {
		t.Error("app.bicep does not create the eventgrid function key")
	}
}

func TestAzdWiresEventGrid(t *testing.T) {
	y, err := parseSimpleYAML(infraFile(t, "azure.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	run := y["services.handler.hooks.postdeploy.run"]
	if run == "" {
		t.Fatal("azure.yaml: no postdeploy hook")
	}
	script := filepath.Join(repoRoot, strings.Fields(run)[0])
	st, err := os.Stat(script)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode()&0o111 == 0 {
		t.Errorf("%s is not executable", script)
	}
	body := infraFile(t, strings.TrimPrefix(strings.Fields(run)[0], "./"))
	for _, want := range []string{"BLOBCOPY_EVENTGRID_ACCOUNTS", "BLOBCOPY_EVENTGRID_KEY", "azd env set BLOBCOPY_EVENTGRID_KEY", "azd provision"} {
		if !strings.Contains(body, want) {
			t.Errorf("%s lacks %q", script, want)
		}
	}
	if strings.Contains(body, "echo \"$key") || strings.Contains(body, "echo $key") {
		t.Errorf("%s prints the function key", script)
	}
	if !strings.Contains(infraFile(t, "infra/main.bicep"), "output BLOBCOPY_EVENTGRID_ACCOUNTS string") {
		t.Error("main.bicep does not output BLOBCOPY_EVENTGRID_ACCOUNTS for the hook")
	}
	var params struct {
		Parameters map[string]struct {
			Value any `json:"value"`
		} `json:"parameters"`
	}
	if err := json.Unmarshal([]byte(infraFile(t, "infra/main.parameters.json")), &params); err != nil {
		t.Fatalf("main.parameters.json: %v", err)
	}
	if v := params.Parameters["eventGridFunctionKey"].Value; v != "${BLOBCOPY_EVENTGRID_KEY}" {
		t.Errorf("eventGridFunctionKey = %v, want ${BLOBCOPY_EVENTGRID_KEY}", v)
	}
	if _, ok := params.Parameters["copyRules"].Value.([]any); !ok {
		t.Error("copyRules must be an array in main.parameters.json (azd does not JSON-escape substituted values)")
	}
}

func TestRecordsLifecycleRule(t *testing.T) {
	app := infraFile(t, "infra/modules/app.bicep")
	main := infraFile(t, "infra/main.bicep")
	if !strings.Contains(app, "'Microsoft.Storage/storageAccounts/managementPolicies@") {
		t.Fatal("app.bicep has no lifecycle management policy")
	}
	if !strings.Contains(app, "'${recordsContainer}/jobs/'") || !strings.Contains(app, "daysAfterModificationGreaterThan: recordRetentionDays") {
		t.Error("the lifecycle rule must delete <records container>/jobs/ blobs recordRetentionDays after their last change")
	}
	if !regexp.MustCompile(`(?m)^param recordRetentionDays int = 30$`).MatchString(main) {
		t.Error("recordRetentionDays must default to 30 days")
	}
	// The prefix is the one the record store writes.
	if !strings.Contains(infraFile(t, "internal/azstorage/records.go"), `const recordPrefix = "jobs/"`) {
		t.Error(`internal/azstorage/records.go no longer writes records under "jobs/": update the lifecycle rule`)
	}
	if !strings.Contains(app, "'${recordsContainer}/batches/'") || !strings.Contains(infraFile(t, "internal/azstorage/batches.go"), `const batchPrefix = "batches/"`) {
		t.Error(`the lifecycle rule must also delete the batch records (internal/azstorage/batches.go writes them under "batches/")`)
	}
	// Azure ends pending copies after two weeks: a shorter retention could delete live records.
	if !regexp.MustCompile(`@minValue\(15\)\n@description\('''Days after their last change`).MatchString(main) {
		t.Error("recordRetentionDays must not go below 15 days")
	}
}

func TestAllowedSourceHostsDefaultToConfiguredAccounts(t *testing.T) {
	app := infraFile(t, "infra/modules/app.bicep")
	for _, want := range []string{
		"map(sourceAccountNames, n => toLower('${n}.blob.${environment().suffixes.storage}'))",
		"['${storage.name}.blob.${environment().suffixes.storage}']",
		"var effectiveSourceHosts = !empty(allowedSourceHosts) ? allowedSourceHosts : configuredSourceHosts",
	} {
		if !strings.Contains(app, want) {
			t.Errorf("app.bicep lacks %q", want)
		}
	}
	if !regexp.MustCompile(`name: 'COPY_ALLOWED_SOURCE_HOSTS'\s*\n\s*value: effectiveSourceHosts`).MatchString(app) {
		t.Error("COPY_ALLOWED_SOURCE_HOSTS is not set from effectiveSourceHosts")
	}
	if !strings.Contains(infraFile(t, "infra/main.bicep"), "sourceAccountNames: map(sourceAccounts, a => a.name)") {
		t.Error("main.bicep does not pass the source account names to the app module")
	}
}

func TestVNetIntegrationOption(t *testing.T) {
	app := infraFile(t, "infra/modules/app.bicep")
	net := infraFile(t, "infra/modules/network.bicep")
	main := infraFile(t, "infra/main.bicep")
	if !strings.Contains(app, "virtualNetworkSubnetId: empty(appSubnetId) ? null : appSubnetId") {
		t.Error("the function app is not integrated with the subnet when vnetEnabled")
	}
	if !strings.Contains(net, "serviceName: 'Microsoft.App/environments'") {
		t.Error("Flex Consumption needs its subnet delegated to Microsoft.App/environments")
	}
	if !regexp.MustCompile(`(?m)^param vnetEnabled bool = false$`).MatchString(main) {
		t.Error("VNet integration must be an opt-in parameter")
	}
	pe := infraFile(t, "infra/modules/private-endpoints.bicep")
	for _, svc := range []string{"'blob'", "'queue'", "'table'"} {
		if !strings.Contains(pe, svc) {
			t.Errorf("no private endpoint for %s", svc)
		}
	}
}

// block returns the bracketed text that starts at the last character of marker.
func block(t *testing.T, src, marker string) string {
	t.Helper()
	i := strings.Index(src, marker)
	if i < 0 {
		t.Fatalf("%q not found", marker)
	}
	end, err := matchBracket(src, i+len(marker)-1)
	if err != nil {
		t.Fatalf("%q: %v", marker, err)
	}
	return src[i : end+1]
}
