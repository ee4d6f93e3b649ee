package azstorage

import (
	"bytes"
	"encoding/json"
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
)

// Azurite authorizes nothing by role, so no integration test notices a storage call the
// deployed identity may not make. This test closes that gap: it finds every method the
// package calls on an azblob / azqueue client (go/types over the package's own source),
// looks up the data action each needs (the table below, from Azure's "Permissions for Blob
// service operations" and "... Queue service operations"), and checks that infra/ grants
// that action to the app's identity on every kind of account the call reaches. A new SDK
// call without an entry here, or without a grant in the Bicep, fails the build.

// Kinds of account the app's identity works on, as infra/ assigns roles to them.
const (
	appAccount  = "app"         // the app's own account: records, queue, default destination
	sourceAcct  = "source"      // main.bicep sourceAccounts
	destAccount = "destination" // main.bicep destinationAccounts
)

// copySides: a call on a copy source reaches a source account, and also the app's account
// or a destination account when the copy stays within one account (the app still signs a
// user-delegation SAS and, with leaseSource, leases the source there).
var (
	sourceSides      = []string{sourceAcct, appAccount, destAccount}
	destinationSides = []string{destAccount, appAccount}
)

// need is what one SDK call requires on some kinds of account.
type need struct {
	accounts []string
	actions  []string // every one is required
	why      string
}

// sdkCall describes one SDK method: the REST operation it sends (empty: none, the method
// only builds a client or signs locally) and what that needs.
type sdkCall struct {
	operation string
	needs     []need
}

const (
	blobRead      = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read"
	blobWrite     = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write"
	blobDelete    = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/delete"
	blobTagsWrite = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/tags/write"
	blobFilter    = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/filter/action"
	containerWrt  = "Microsoft.Storage/storageAccounts/blobServices/containers/write"
	delegationKey = "Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action"
	queueWrite    = "Microsoft.Storage/storageAccounts/queueServices/queues/write"
	msgAdd        = "Microsoft.Storage/storageAccounts/queueServices/queues/messages/add/action"
	msgProcess    = "Microsoft.Storage/storageAccounts/queueServices/queues/messages/process/action"
	msgWrite      = "Microsoft.Storage/storageAccounts/queueServices/queues/messages/write"
)

// copyNeeds are Copy Blob's and Copy Blob From URL's: write on the destination (an existing
// or a new blob; x-ms-access-tier is the Blob.Write.Tier suboperation of the same action),
// tags/write for x-ms-tags (the tags option), and read on the source by the SAS signer, whose
// user-delegation SAS carries only the permissions its signer holds.
var copyNeeds = []need{
	{destinationSides, []string{blobWrite}, "write the destination (metadata, tier, overwrite)"},
	{destinationSides, []string{blobTagsWrite}, "tags option: x-ms-tags"},
	{sourceSides, []string{blobRead}, "the source SAS reads with its signer's permissions"},
}

var leaseNeeds = []need{{sourceSides, []string{blobWrite}, "leaseSource: Lease Blob is authorized by blobs/write"}}

// sdkPermissions: receiver package (major version stripped) . type . method.
var sdkPermissions = map[string]sdkCall{
	// Requests.
	"blob.Client.StartCopyFromURL": {"Copy Blob", copyNeeds},
	"blob.Client.CopyFromURL":      {"Copy Blob From URL", copyNeeds},
	"blob.Client.GetProperties": {"Get Blob Properties", []need{
		{destinationSides, []string{blobRead}, "copy status of the destination"},
		{sourceSides, []string{blobRead}, "lease state of a source whose release storage refused (released before, or someone else's)"}}},
	"blob.Client.Delete":                         {"Delete Blob", []need{{destinationSides, []string{blobDelete}, "delete the destination snapshot taken for a start that was then refused"}}},
	"blob.Client.AbortCopyFromURL":               {"Abort Copy Blob", []need{{destinationSides, []string{blobWrite}, "abort"}}},
	"blob.Client.CreateSnapshot":                 {"Snapshot Blob", []need{{destinationSides, []string{blobWrite}, "snapshotDestination"}}},
	"service.Client.CreateContainer":             {"Create Container", []need{{destinationSides, []string{containerWrt}, "a missing destination container is created"}}},
	"service.Client.GetUserDelegationCredential": {"Get User Delegation Key", []need{{sourceSides, []string{delegationKey}, "sign the source's read-only SAS"}}},
	"lease.BlobClient.AcquireLease":              {"Lease Blob", leaseNeeds},
	"lease.BlobClient.RenewLease":                {"Lease Blob", leaseNeeds},
	"lease.BlobClient.ReleaseLease":              {"Lease Blob", leaseNeeds},
	"container.Client.Create":                    {"Create Container", []need{{[]string{appAccount}, []string{containerWrt}, "records container"}}},
	"container.Client.NewListBlobsFlatPager":     {"List Blobs", []need{{[]string{appAccount}, []string{blobRead}, "list job records"}}},
	"blockblob.Client.UploadBuffer": {"Put Blob", []need{{[]string{appAccount}, []string{blobWrite, blobTagsWrite},
		"write job records with their blob index tag (x-ms-tags)"}}},
	"container.Client.FilterBlobs": {"Find Blobs by Tags", []need{{[]string{appAccount}, []string{blobFilter},
		"the sweep finds untracked starts by their tag"}}},
	"blockblob.Client.DownloadStream":     {"Get Blob", []need{{[]string{appAccount}, []string{blobRead}, "read job records"}}},
	"azqueue.QueueClient.Create":          {"Create Queue", []need{{[]string{appAccount}, []string{queueWrite}, "tracking and poison queues"}}},
	"azqueue.QueueClient.EnqueueMessage":  {"Put Message", []need{{[]string{appAccount}, []string{msgAdd}, "tracking message, poison entry"}}},
	"azqueue.QueueClient.DequeueMessages": {"Get Messages", []need{{[]string{appAccount}, []string{msgProcess}, "status tick"}}},
	"azqueue.QueueClient.UpdateMessage":   {"Update Message", []need{{[]string{appAccount}, []string{msgWrite}, "reschedule a poll"}}},
	"azqueue.QueueClient.DeleteMessage":   {"Delete Message", []need{{[]string{appAccount}, []string{msgProcess}, "finished or poisoned message"}}},
	// Methods that send no request: they build clients or sign locally.
	"azqueue.QueueClient.URL":                        {},
	"blob.Client.URL":                                {},
	"blob.Client.WithSnapshot":                       {},
	"blob.Client.WithVersionID":                      {},
	"container.Client.NewBlobClient":                 {},
	"container.Client.NewBlockBlobClient":            {},
	"service.Client.NewContainerClient":              {},
	"sas.BlobPermissions.String":                     {},
	"sas.BlobSignatureValues.SignWithSharedKey":      {},
	"sas.BlobSignatureValues.SignWithUserDelegation": {},
	"sas.QueryParameters.Encode":                     {},
}

// usedSDKMethods returns every azblob/azqueue method the package's non-test source uses,
// with the position of its first use.
func usedSDKMethods(t *testing.T) map[string]string {
	t.Helper()
	out, err := exec.Command("go", "list", "-export", "-deps", "-json=ImportPath,Export", ".").Output()
	if err != nil {
		t.Fatalf("go list -export: %v", err)
	}
	exports := map[string]string{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var p struct{ ImportPath, Export string }
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		exports[p.ImportPath] = p.Export
	}
	fset := token.NewFileSet()
	names, _ := filepath.Glob("*.go")
	var files []*ast.File
	for _, n := range names {
		if strings.HasSuffix(n, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, n, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	conf := types.Config{Importer: importer.ForCompiler(fset, "gc", func(p string) (io.ReadCloser, error) {
		if e := exports[p]; e != "" {
			return os.Open(e)
		}
		return nil, os.ErrNotExist
	})}
	info := &types.Info{Selections: map[*ast.SelectorExpr]*types.Selection{}}
	if _, err := conf.Check("github.com/blobcopy/blobcopy/internal/azstorage", fset, files, info); err != nil {
		t.Fatalf("type-check: %v", err)
	}
	used := map[string]string{}
	for sel, s := range info.Selections {
		if s.Kind() != types.MethodVal {
			continue
		}
		fn := s.Obj().(*types.Func)
		if fn.Pkg() == nil {
			continue // a universe method (error.Error)
		}
		pkg := fn.Pkg().Path()
		if !strings.HasPrefix(pkg, "github.com/Azure/azure-sdk-for-go/sdk/storage/") {
			continue
		}
		recv := fn.Type().(*types.Signature).Recv().Type()
		if p, ok := recv.(*types.Pointer); ok {
			recv = p.Elem()
		}
		named, ok := recv.(*types.Named)
		if !ok {
			t.Errorf("%s: method %s on an unnamed type", fset.Position(sel.Pos()), fn.Name())
			continue
		}
		key := pkgName(pkg) + "." + named.Obj().Name() + "." + fn.Name()
		pos := fset.Position(sel.Pos()).String()
		if prev, ok := used[key]; !ok || pos < prev {
			used[key] = pos
		}
	}
	return used
}

// pkgName is the package's last path element, skipping a major-version suffix (azqueue/v2).
func pkgName(importPath string) string {
	base := path.Base(importPath)
	if regexp.MustCompile(`^v\d+$`).MatchString(base) {
		base = path.Base(path.Dir(importPath))
	}
	return base
}

func TestEverySDKCallHasItsPermission(t *testing.T) {
	used := usedSDKMethods(t)
	if len(used) < 15 {
		t.Fatalf("found only %d SDK methods in use: the scan is broken (%v)", len(used), used)
	}
	requests := 0
	for key, pos := range used {
		c, ok := sdkPermissions[key]
		if !ok {
			t.Errorf("%s: %s is used but sdkPermissions has no entry: add the REST operation it sends, "+
				"the data action that operation needs (docs/permissions.md) and its grant in infra/", pos, key)
			continue
		}
		if c.operation != "" {
			requests++
		}
	}
	if requests < 10 {
		t.Errorf("only %d of the used SDK methods send a request: the table or the scan is wrong", requests)
	}
	for key := range sdkPermissions {
		if _, ok := used[key]; !ok {
			t.Errorf("sdkPermissions lists %s, which the package no longer uses: remove it (and its grant, if nothing else needs it)", key)
		}
	}
}

// --- what infra/ grants ---------------------------------------------------------------------

// Built-in role definitions infra/ may assign, as Azure's built-in roles reference lists them
// (articles/role-based-access-control/built-in-roles/storage.md).
var builtInRoleDefinitions = map[string]roleDefinition{
	"2a2b9908-6ea1-4ae2-8e65-a410df84e7d1": { // Storage Blob Data Reader
		actions: []string{
			"Microsoft.Storage/storageAccounts/blobServices/containers/read",
			"Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action",
		},
		dataActions: []string{"Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read"},
	},
	"ba92f5b4-2d11-453d-a403-e96b0029c9fe": { // Storage Blob Data Contributor
		actions: []string{
			"Microsoft.Storage/storageAccounts/blobServices/containers/delete",
			"Microsoft.Storage/storageAccounts/blobServices/containers/read",
			"Microsoft.Storage/storageAccounts/blobServices/containers/write",
			"Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action",
		},
		dataActions: []string{
			"Microsoft.Storage/storageAccounts/blobServices/containers/blobs/delete",
			"Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read",
			"Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write",
			"Microsoft.Storage/storageAccounts/blobServices/containers/blobs/move/action",
			"Microsoft.Storage/storageAccounts/blobServices/containers/blobs/add/action",
		},
	},
	"b7e6dc6d-f1e8-4753-8033-0f276bb0955b": { // Storage Blob Data Owner
		actions: []string{
			"Microsoft.Storage/storageAccounts/blobServices/containers/*",
			"Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action",
		},
		dataActions: []string{"Microsoft.Storage/storageAccounts/blobServices/containers/blobs/*"},
	},
	"974c5e8b-45b9-4653-ba55-5f855dd0fb88": { // Storage Queue Data Contributor
		actions: []string{
			"Microsoft.Storage/storageAccounts/queueServices/queues/delete",
			"Microsoft.Storage/storageAccounts/queueServices/queues/read",
			"Microsoft.Storage/storageAccounts/queueServices/queues/write",
		},
		dataActions: []string{
			"Microsoft.Storage/storageAccounts/queueServices/queues/messages/delete",
			"Microsoft.Storage/storageAccounts/queueServices/queues/messages/read",
			"Microsoft.Storage/storageAccounts/queueServices/queues/messages/write",
			"Microsoft.Storage/storageAccounts/queueServices/queues/messages/add/action",
			"Microsoft.Storage/storageAccounts/queueServices/queues/messages/process/action",
		},
	},
	"0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": { // Storage Table Data Contributor (the host's diagnostics)
		actions: []string{
			"Microsoft.Storage/storageAccounts/tableServices/tables/read",
			"Microsoft.Storage/storageAccounts/tableServices/tables/write",
			"Microsoft.Storage/storageAccounts/tableServices/tables/delete",
		},
		dataActions: []string{
			"Microsoft.Storage/storageAccounts/tableServices/tables/entities/read",
			"Microsoft.Storage/storageAccounts/tableServices/tables/entities/write",
			"Microsoft.Storage/storageAccounts/tableServices/tables/entities/delete",
			"Microsoft.Storage/storageAccounts/tableServices/tables/entities/add/action",
			"Microsoft.Storage/storageAccounts/tableServices/tables/entities/update/action",
		},
	},
}

type roleDefinition struct {
	name                 string
	actions, dataActions []string
}

// isDataAction tells a data action (blobs, messages) from a control-plane action.
func isDataAction(a string) bool {
	return strings.Contains(a, "/blobs/") || strings.Contains(a, "/messages/") || strings.Contains(a, "/entities/")
}

// grants reports whether pattern (possibly ending in /*) covers the action.
func grants(pattern, action string) bool {
	if p, ok := strings.CutSuffix(pattern, "/*"); ok {
		return strings.HasPrefix(action, p+"/")
	}
	return strings.EqualFold(pattern, action)
}

func (r roleDefinition) allows(action string) bool {
	list := r.actions
	if isDataAction(action) {
		list = r.dataActions
	}
	return slices.ContainsFunc(list, func(p string) bool { return grants(p, action) })
}

func readInfra(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "infra", rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var (
	quoted      = regexp.MustCompile(`'([^']*)'`)
	objectEntry = regexp.MustCompile(`(?m)^\s*(\w+):\s*'([0-9a-f-]{36})'`)
	listItem    = regexp.MustCompile(`(?m)^\s*([\w.]+)\s*$`)
)

// block returns the text from the opening bracket after marker to its matching close,
// ignoring // comments.
func block(t *testing.T, src, marker string) string {
	t.Helper()
	i := strings.Index(src, marker)
	if i < 0 {
		t.Fatalf("infra: %q not found", marker)
	}
	start := i + len(marker) - 1
	open, close := src[start], map[byte]byte{'[': ']', '{': '}'}[src[start]]
	depth := 0
	for j := start; j < len(src); j++ {
		switch src[j] {
		case '/':
			if strings.HasPrefix(src[j:], "//") {
				for j < len(src) && src[j] != '\n' {
					j++
				}
			}
		case open:
			depth++
		case close:
			depth--
			if depth == 0 {
				return src[start : j+1]
			}
		}
	}
	t.Fatalf("infra: %q is never closed", marker)
	return ""
}

func stripComments(s string) string {
	return regexp.MustCompile(`//[^\n]*`).ReplaceAllString(s, "")
}

// customRoles parses every roleDefinitions resource of a Bicep file by symbol.
func customRoles(t *testing.T, src string) map[string]roleDefinition {
	t.Helper()
	out := map[string]roleDefinition{}
	decl := regexp.MustCompile(`(?m)^resource\s+(\w+)\s+'Microsoft\.Authorization/roleDefinitions@[^']+'\s*=\s*\{`)
	for _, m := range decl.FindAllStringSubmatchIndex(src, -1) {
		sym := src[m[2]:m[3]]
		body := block(t, src[m[0]:], src[m[0]:m[1]])
		var r roleDefinition
		r.name = sym
		for _, a := range quoted.FindAllStringSubmatch(stripComments(block(t, body, "\n        actions: [")), -1) {
			r.actions = append(r.actions, a[1])
		}
		for _, a := range quoted.FindAllStringSubmatch(stripComments(block(t, body, "dataActions: [")), -1) {
			r.dataActions = append(r.dataActions, a[1])
		}
		out[sym] = r
	}
	return out
}

// roleSet resolves `var <name> = [ ... ]` of role references: <map>.<key> for a built-in
// GUID from the named object var, or <symbol>.name for a custom role in the same file.
func roleSet(t *testing.T, src, name string, builtIns map[string]string, custom map[string]roleDefinition) []roleDefinition {
	t.Helper()
	var out []roleDefinition
	for _, m := range listItem.FindAllStringSubmatch(stripComments(block(t, src, "\nvar "+name+" = [")), -1) {
		ref := m[1]
		switch {
		case strings.HasSuffix(ref, ".name"):
			r, ok := custom[strings.TrimSuffix(ref, ".name")]
			if !ok {
				t.Fatalf("%s: %s is not a roleDefinitions resource", name, ref)
			}
			out = append(out, r)
		default:
			_, key, _ := strings.Cut(ref, ".")
			id, ok := builtIns[key]
			if !ok {
				t.Fatalf("%s: %s names no built-in role GUID", name, ref)
			}
			r, ok := builtInRoleDefinitions[id]
			if !ok {
				t.Fatalf("%s: built-in role %s is not in builtInRoleDefinitions: add its actions from Azure's reference", name, id)
			}
			r.name = ref
			out = append(out, r)
		}
	}
	if len(out) == 0 {
		t.Fatalf("var %s lists no roles", name)
	}
	return out
}

func builtInIDs(t *testing.T, src, varName string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, m := range objectEntry.FindAllStringSubmatch(block(t, src, "\nvar "+varName+" = {"), -1) {
		out[m[1]] = m[2]
	}
	return out
}

// accountGrants is, per kind of account, every role infra/ assigns the app's identity there.
func accountGrants(t *testing.T) map[string][]roleDefinition {
	t.Helper()
	main := readInfra(t, "main.bicep")
	app := readInfra(t, "modules/app.bicep")
	custom := customRoles(t, main)
	mainBuiltIns := builtInIDs(t, main, "builtInRoles")
	appBuiltIns := builtInIDs(t, app, "roles")

	// The role sets must actually be assigned: to every source (leases unless an account
	// opts out), every destination, the app's account.
	for _, wiring := range []string{
		`(?s)module sourceRoleAssignments 'modules/account-roles.bicep' = \[for acct in sourceAccounts: \{.*?roleDefinitionIds: sourceRoles\n`,
		`(?s)module sourceLeaseAssignments 'modules/account-roles.bicep' = \[for acct in sourceAccounts: if \(acct\.\?lease \?\? true\) \{.*?roleDefinitionIds: sourceLeaseRoles\n`,
		`(?s)module destinationRoleAssignments 'modules/account-roles.bicep' = \[for acct in destinationAccounts: \{.*?roleDefinitionIds: destinationRoles\n`,
	} {
		if !regexp.MustCompile(wiring).MatchString(main) {
			t.Errorf("infra/main.bicep does not assign roles as %s", wiring)
		}
	}
	if !regexp.MustCompile(`(?s)resource storageRoles 'Microsoft\.Authorization/roleAssignments@[^']+' = \[for roleId in appStorageRoles:.*?scope: storage\n`).MatchString(app) {
		t.Error("infra/modules/app.bicep does not assign appStorageRoles on the app's storage account")
	}
	return map[string][]roleDefinition{
		sourceAcct:  append(roleSet(t, main, "sourceRoles", mainBuiltIns, custom), roleSet(t, main, "sourceLeaseRoles", mainBuiltIns, custom)...),
		destAccount: roleSet(t, main, "destinationRoles", mainBuiltIns, custom),
		appAccount:  roleSet(t, app, "appStorageRoles", appBuiltIns, nil),
	}
}

func TestInfraGrantsEverySDKCall(t *testing.T) {
	granted := accountGrants(t)
	used := usedSDKMethods(t)
	keys := make([]string, 0, len(used))
	for k := range used {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		for _, n := range sdkPermissions[key].needs {
			for _, acct := range n.accounts {
				for _, action := range n.actions {
					if !slices.ContainsFunc(granted[acct], func(r roleDefinition) bool { return r.allows(action) }) {
						t.Errorf("%s (%s, %s): no role infra/ assigns on %s accounts grants %s (%s)",
							key, sdkPermissions[key].operation, used[key], acct, action, n.why)
					}
				}
			}
		}
	}
}

// The custom roles exist because no built-in role fits: each of their actions must be
// needed by some call the code makes on that kind of account, or it is a grant too many.
func TestCustomRolesGrantNothingUnused(t *testing.T) {
	main := readInfra(t, "main.bicep")
	custom := customRoles(t, main)
	if len(custom) == 0 {
		t.Fatal("infra/main.bicep defines no custom role")
	}
	used := usedSDKMethods(t)
	for set, acct := range map[string]string{"sourceLeaseRoles": sourceAcct, "destinationRoles": destAccount} {
		for _, r := range roleSet(t, main, set, nil, custom) {
			for _, action := range append(slices.Clone(r.actions), r.dataActions...) {
				needed := false
				for key := range used {
					for _, n := range sdkPermissions[key].needs {
						if slices.Contains(n.accounts, acct) && slices.ContainsFunc(n.actions, func(a string) bool { return grants(action, a) }) {
							needed = true
						}
					}
				}
				if !needed {
					t.Errorf("custom role %s grants %s, which no SDK call on %s accounts needs", r.name, action, acct)
				}
			}
		}
	}
}

// docs/permissions.md is the human side of the table: every REST operation the code sends
// and every data action it needs is named there.
func TestPermissionsDocNamesEveryOperation(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "permissions.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for key := range usedSDKMethods(t) {
		c := sdkPermissions[key]
		if c.operation != "" && !strings.Contains(doc, c.operation) {
			t.Errorf("docs/permissions.md does not name %s (%s)", c.operation, key)
		}
		for _, n := range c.needs {
			for _, a := range n.actions {
				if !strings.Contains(doc, a) {
					t.Errorf("docs/permissions.md does not name %s (%s)", a, key)
				}
			}
		}
	}
}

func TestGrantMatching(t *testing.T) {
	for _, c := range []struct {
		pattern, action string
		want            bool
	}{
		{blobWrite, blobWrite, true},
		{"Microsoft.Storage/storageAccounts/blobServices/containers/blobs/*", blobTagsWrite, true},
		{"Microsoft.Storage/storageAccounts/blobServices/containers/*", containerWrt, true},
		{"Microsoft.Storage/storageAccounts/blobServices/containers/*", delegationKey, false},
		{blobRead, blobWrite, false},
		{"Microsoft.Storage/storageAccounts/blobServices/containers/blobs/*", "Microsoft.Storage/storageAccounts/blobServices/containers/blobsX/read", false},
	} {
		if got := grants(c.pattern, c.action); got != c.want {
			t.Errorf("grants(%s, %s) = %v, want %v", c.pattern, c.action, got, c.want)
		}
	}
	contributor := builtInRoleDefinitions["ba92f5b4-2d11-453d-a403-e96b0029c9fe"]
	if contributor.allows(blobTagsWrite) {
		t.Error("Storage Blob Data Contributor must not grant tags/write (issue 16: the tags option was refused)")
	}
	reader := builtInRoleDefinitions["2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"]
	if reader.allows(blobWrite) {
		t.Error("Storage Blob Data Reader must not grant blobs/write (issue 16: leaseSource was refused)")
	}
}
