package app

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The catalogue (Settings) is the truth about app settings: these tests hold
// local.settings.json, the Bicep template, azure.yaml and the code that reads settings
// to it.

const repoRoot = "../.."

func catalogue(t *testing.T) map[string]Setting {
	t.Helper()
	out := map[string]Setting{}
	for _, s := range Settings {
		if _, dup := out[s.Name]; dup {
			t.Errorf("catalogue: %s is listed twice", s.Name)
		}
		out[s.Name] = s
	}
	return out
}

// inCatalogue reports whether a setting name is catalogued, directly or through a
// pattern entry such as COPY_ACCOUNT_<ALIAS> (which covers COPY_ACCOUNT_X__clientId).
func inCatalogue(cat map[string]Setting, name string) bool {
	if _, ok := cat[name]; ok {
		return true
	}
	for pattern := range cat {
		if prefix, _, ok := strings.Cut(pattern, "<"); ok && strings.HasSuffix(pattern, ">") && strings.HasPrefix(name, prefix) {
			return true
		}
	}
	return false
}

// --- local.settings.json ------------------------------------------------------------

func TestLocalSettingsMatchCatalogue(t *testing.T) {
	cat := catalogue(t)
	raw, err := os.ReadFile(filepath.Join(repoRoot, "local.settings.json"))
	if err != nil {
		t.Fatal(err)
	}
	var local struct {
		Values map[string]string `json:"Values"`
	}
	if err := json.Unmarshal(raw, &local); err != nil {
		t.Fatalf("local.settings.json: %v", err)
	}
	if len(local.Values) == 0 {
		t.Fatal("local.settings.json has no Values")
	}
	for _, s := range Settings {
		v, present := local.Values[s.Name]
		switch {
		case s.Local && !present:
			t.Errorf("%s (Local) is missing from local.settings.json Values", s.Name)
		case !s.Local && present:
			t.Errorf("%s is not Local but appears in local.settings.json Values", s.Name)
		case present && !strings.Contains(s.Default, " (") && v != s.Default:
			// Defaults annotated like "true (local only)" are not literal values.
			t.Errorf("local.settings.json %s = %q, catalogue default %q", s.Name, v, s.Default)
		}
	}
	for name := range local.Values {
		if !inCatalogue(cat, name) {
			t.Errorf("local.settings.json sets %s, which the catalogue (internal/app/settings.go) does not list", name)
		}
	}
}

// --- Bicep --------------------------------------------------------------------------

// cloudDefaults are Infra settings whose Bicep default deliberately differs from the
// catalogue's (local) default, with the reason.
var cloudDefaults = map[string]struct{ value, why string }{
	"AzureWebJobsStorage__credential": {"managedidentity", "the catalogue has no default; the cloud app uses its managed identity"},
	"COPY_CALLBACK_ALLOWED_HOSTS":     {"", "loopback callbacks would let callers make the app POST to its own instance; callbacks stay off until hosts are named"},
}

// runtimeNotSetting are Infra settings that a Flex Consumption app takes from
// functionAppConfig instead of an app setting (setting them there is refused).
var runtimeNotSetting = map[string]*regexp.Regexp{
	"FUNCTIONS_WORKER_RUNTIME": regexp.MustCompile(`(?s)functionAppConfig:\s*\{.*?runtime:\s*\{\s*name:\s*'([^']*)'`),
}

// platformSettings are app settings the platform reads that the handler does not.
var platformSettings = []string{"APPLICATIONINSIGHTS_CONNECTION_STRING", "APPLICATIONINSIGHTS_AUTHENTICATION_STRING"}

// flexRefused are settings a Flex Consumption app must not carry (or that would mean a
// key-based connection).
var flexRefused = []string{"FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_EXTENSION_VERSION", "WEBSITE_RUN_FROM_PACKAGE",
	"WEBSITE_CONTENTSHARE", "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING", "AzureWebJobsStorage", "SCM_DO_BUILD_DURING_DEPLOYMENT"}

type bicepFile struct {
	path string
	src  string
}

func bicepFiles(t *testing.T) []bicepFile {
	t.Helper()
	var out []bicepFile
	err := filepath.WalkDir(filepath.Join(repoRoot, "infra"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".bicep") {
			return err
		}
		b, err := os.ReadFile(p)
		out = append(out, bicepFile{p, string(b)})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatal("no infra/**/*.bicep")
	}
	return out
}

type appSetting struct {
	name, value, file string
}

var (
	settingEntry = regexp.MustCompile(`name:\s*'([^'$]+)'\s*\n\s*value:\s*([^\n]+)`)
	paramDefault = regexp.MustCompile(`(?m)^param\s+(\w+)\s+\w+\s*=\s*'((?:[^'\\]|\\.)*)'\s*$`)
	identifier   = regexp.MustCompile(`^[A-Za-z_]\w*$`)
)

// appSettings returns the literal entries of every `appSettings:` array.
func appSettings(t *testing.T, files []bicepFile) []appSetting {
	t.Helper()
	var out []appSetting
	for _, f := range files {
		rest := f.src
		for {
			i := strings.Index(rest, "appSettings:")
			if i < 0 {
				break
			}
			rest = rest[i+len("appSettings:"):]
			open := strings.IndexByte(rest, '[')
			if open < 0 {
				t.Fatalf("%s: appSettings without an array", f.path)
			}
			end, err := matchBracket(rest, open)
			if err != nil {
				t.Fatalf("%s: appSettings: %v", f.path, err)
			}
			for _, m := range settingEntry.FindAllStringSubmatch(rest[open:end+1], -1) {
				out = append(out, appSetting{name: m[1], value: strings.TrimSpace(m[2]), file: f.path})
			}
		}
	}
	return out
}

// resolve turns a setting's value expression into a literal: a string literal, or a
// parameter with a literal default in any Bicep file.
func resolve(expr string, files []bicepFile) (string, bool) {
	if len(expr) >= 2 && expr[0] == '\'' && expr[len(expr)-1] == '\'' && !strings.Contains(expr, "${") {
		return strings.ReplaceAll(expr[1:len(expr)-1], `\'`, `'`), true
	}
	if !identifier.MatchString(expr) {
		return "", false
	}
	for _, f := range files {
		for _, m := range paramDefault.FindAllStringSubmatch(f.src, -1) {
			if m[1] == expr {
				return strings.ReplaceAll(m[2], `\'`, `'`), true
			}
		}
	}
	return "", false
}

func TestBicepSetsEveryInfraSetting(t *testing.T) {
	cat := catalogue(t)
	files := bicepFiles(t)
	settings := appSettings(t, files)
	if len(settings) == 0 {
		t.Fatal("no appSettings entries found in infra/")
	}
	byName := map[string]appSetting{}
	for _, s := range settings {
		if prev, dup := byName[s.name]; dup {
			t.Errorf("app setting %s is set twice (%s, %s)", s.name, prev.file, s.file)
		}
		byName[s.name] = s
	}
	all := ""
	for _, f := range files {
		all += f.src
	}

	for _, c := range Settings {
		if re, ok := runtimeNotSetting[c.Name]; ok && c.Infra {
			m := re.FindStringSubmatch(all)
			if m == nil {
				t.Errorf("%s (Infra): no functionAppConfig.runtime.name in infra/", c.Name)
			} else if m[1] != c.Default {
				t.Errorf("functionAppConfig.runtime.name = %q, want %s's default %q", m[1], c.Name, c.Default)
			}
			continue
		}
		s, present := byName[c.Name]
		if !c.Infra {
			if present {
				t.Errorf("%s is not an Infra setting but %s sets it", c.Name, s.file)
			}
			continue
		}
		if !present {
			t.Errorf("%s (Infra) is not in any appSettings array in infra/", c.Name)
			continue
		}
		want := c.Default
		if o, ok := cloudDefaults[c.Name]; ok {
			want = o.value
		}
		got, literal := resolve(s.value, files)
		switch {
		case literal && got != want:
			t.Errorf("%s: infra default %q, want %q (catalogue default %q)", c.Name, got, want, c.Default)
		case !literal && want != "":
			t.Errorf("%s: value %s does not resolve to a literal; want the catalogue default %q", c.Name, s.value, want)
		}
	}
	for _, s := range settings {
		if !inCatalogue(cat, s.name) && !slices.Contains(platformSettings, s.name) {
			t.Errorf("%s sets %s, which the catalogue does not list", s.file, s.name)
		}
	}
	for _, name := range flexRefused {
		if s, ok := byName[name]; ok {
			t.Errorf("%s sets %s, which a Flex Consumption app with identity-based storage must not carry", s.file, name)
		}
	}
	// Identity-based storage: the app's own account and every extra account.
	if v := byName["AzureWebJobsStorage__credential"].value; v != "'managedidentity'" {
		t.Errorf("AzureWebJobsStorage__credential = %s, want 'managedidentity'", v)
	}
	for _, suffix := range []string{"__blobServiceUri", "__credential", "__clientId"} {
		re := regexp.MustCompile(`name:\s*'COPY_ACCOUNT_\$\{[^}]+\}` + suffix + `'`)
		if !re.MatchString(all) {
			t.Errorf("infra/ builds no COPY_ACCOUNT_<ALIAS>%s setting", suffix)
		}
	}
	if !strings.Contains(all, "'azd-service-name': 'handler'") {
		t.Error("no resource is tagged 'azd-service-name': 'handler'")
	}
}

// Role definitions the template must assign (name -> built-in GUID). Storage Blob Data
// Reader carries generateUserDelegationKey/action itself, so no Storage Blob Delegator;
// internal/azstorage/permissions_test.go checks every role set against the code's calls.
var requiredRoles = map[string]string{
	"Storage Blob Data Owner":        "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
	"Storage Queue Data Contributor": "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
	"Storage Blob Data Reader":       "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1",
}

func TestInfraHasNoKeys(t *testing.T) {
	files := bicepFiles(t)
	forbidden := []string{"AccountKey", "listKeys(", "listkeys(", "listAccountSas(", "listServiceSas(", "SharedAccessSignature", "primaryKey"}
	err := filepath.WalkDir(filepath.Join(repoRoot, "infra"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		for _, f := range forbidden {
			if strings.Contains(string(b), f) {
				t.Errorf("%s contains %q: use managed identities, not keys", p, f)
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	all := ""
	for _, f := range files {
		all += f.src
	}
	if !regexp.MustCompile(`allowSharedKeyAccess:\s*false`).MatchString(all) {
		t.Error("the app's storage account does not set allowSharedKeyAccess: false")
	}
	for name, id := range requiredRoles {
		if !strings.Contains(all, "'"+id+"'") {
			t.Errorf("infra/ never assigns %s (%s)", name, id)
		}
	}
}

var (
	resourceDecl    = regexp.MustCompile(`(?m)^\s*resource\s+(\w+)\s+'([^']*)'`)
	resourceKeyword = regexp.MustCompile(`(?m)^\s*resource\s+\w+`)
	resourceType    = regexp.MustCompile(`^[A-Za-z]+\.[A-Za-z]+(/[A-Za-z]+)+@\d{4}-\d{2}-\d{2}(-preview)?$`)
	moduleDecl      = regexp.MustCompile(`(?m)^\s*module\s+(\w+)\s+'([^']*)'`)
	paramDecl       = regexp.MustCompile(`(?m)^param\s+(\w+)\s`)
	symbolDecl      = regexp.MustCompile(`(?m)^(?:param|var|resource|module|output)\s+(\w+)\s`)
)

func TestBicepStructure(t *testing.T) {
	for _, f := range bicepFiles(t) {
		t.Run(filepath.Base(f.path), func(t *testing.T) {
			code, err := stripBicep(f.src)
			if err != nil {
				t.Fatalf("%s: %v", f.path, err)
			}
			if err := balanced(code); err != nil {
				t.Errorf("%s: %v", f.path, err)
			}
			decls := resourceDecl.FindAllStringSubmatch(f.src, -1)
			if len(resourceKeyword.FindAllString(code, -1)) != len(decls) {
				t.Errorf("%s: some resource declaration has no quoted type", f.path)
			}
			for _, m := range decls {
				if !resourceType.MatchString(m[2]) {
					t.Errorf("%s: resource %s has type %q, want Namespace.Provider/type@yyyy-mm-dd", f.path, m[1], m[2])
				}
			}
			for _, m := range moduleDecl.FindAllStringSubmatch(f.src, -1) {
				if _, err := os.Stat(filepath.Join(filepath.Dir(f.path), m[2])); err != nil {
					t.Errorf("%s: module %s: %v", f.path, m[1], err)
				}
			}
			seen := map[string]bool{}
			for _, m := range symbolDecl.FindAllStringSubmatch(f.src, -1) {
				if seen[m[1]] {
					t.Errorf("%s: symbol %s declared twice", f.path, m[1])
				}
				seen[m[1]] = true
			}
			// Every declared parameter is used somewhere in the file.
			for _, m := range paramDecl.FindAllStringSubmatch(f.src, -1) {
				if len(regexp.MustCompile(`\b`+m[1]+`\b`).FindAllStringIndex(f.src, -1)) < 2 {
					t.Errorf("%s: param %s is never used", f.path, m[1])
				}
			}
		})
	}
}

// Module parameters passed by main.bicep are declared by the module, and every module
// parameter without a default is passed.
func TestBicepModuleParams(t *testing.T) {
	files := bicepFiles(t)
	modCall := regexp.MustCompile(`(?s)module\s+\w+\s+'([^']+)'\s*=\s*(?:\[for [^:]+:\s*)?(?:if\s*\(.*?\)\s*)?\{.*?\n  params:\s*\{(.*?)\n  \}`)
	argName := regexp.MustCompile(`(?m)^\s{4}(\w+):`)
	reqParam := regexp.MustCompile(`(?m)^param\s+(\w+)\s+\w+\s*$`)
	anyParam := regexp.MustCompile(`(?m)^param\s+(\w+)\s`)
	calls := 0
	for _, f := range files {
		for _, m := range modCall.FindAllStringSubmatch(f.src, -1) {
			calls++
			modPath := filepath.Join(filepath.Dir(f.path), m[1])
			b, err := os.ReadFile(modPath)
			if err != nil {
				t.Errorf("%s: %v", f.path, err)
				continue
			}
			var declared, required, passed []string
			for _, p := range anyParam.FindAllStringSubmatch(string(b), -1) {
				declared = append(declared, p[1])
			}
			for _, p := range reqParam.FindAllStringSubmatch(string(b), -1) {
				required = append(required, p[1])
			}
			for _, a := range argName.FindAllStringSubmatch(m[2], -1) {
				passed = append(passed, a[1])
			}
			for _, p := range passed {
				if !slices.Contains(declared, p) {
					t.Errorf("%s passes %s to %s, which does not declare it", f.path, p, m[1])
				}
			}
			for _, p := range required {
				if !slices.Contains(passed, p) {
					t.Errorf("%s does not pass required param %s to %s", f.path, p, m[1])
				}
			}
		}
	}
	if calls == 0 {
		t.Error("no module calls found in infra/")
	}
}

// stripBicep returns the code with comments removed and string contents blanked
// (interpolations kept), checking that every string and comment is closed.
func stripBicep(src string) (string, error) {
	var out strings.Builder
	i, err := scanCode(src, 0, false, &out)
	if err != nil {
		return "", err
	}
	if i != len(src) {
		return "", fmt.Errorf("unexpected } at byte %d", i)
	}
	return out.String(), nil
}

// scanCode copies code from src[i:] to out until the end or, inside an
// interpolation, the closing brace (whose index it returns).
func scanCode(src string, i int, interp bool, out *strings.Builder) (int, error) {
	depth := 0
	for i < len(src) {
		switch {
		case strings.HasPrefix(src[i:], "//"):
			j := strings.IndexByte(src[i:], '\n')
			if j < 0 {
				return len(src), nil
			}
			i += j
		case strings.HasPrefix(src[i:], "/*"):
			j := strings.Index(src[i+2:], "*/")
			if j < 0 {
				return 0, fmt.Errorf("unclosed /* comment at byte %d", i)
			}
			i += j + 4
		case strings.HasPrefix(src[i:], "'''"):
			j := strings.Index(src[i+3:], "'''")
			if j < 0 {
				return 0, fmt.Errorf("unclosed ''' string at byte %d", i)
			}
			out.WriteString("''")
			i += j + 6
		case src[i] == '\'':
			out.WriteByte('\'')
			i++
			closed := false
			for i < len(src) && !closed {
				switch {
				case src[i] == '\\':
					i += 2
				case src[i] == '\n':
					return 0, fmt.Errorf("newline in a string at byte %d", i)
				case strings.HasPrefix(src[i:], "${"):
					out.WriteString("${")
					j, err := scanCode(src, i+2, true, out)
					if err != nil {
						return 0, err
					}
					out.WriteByte('}')
					i = j + 1
				case src[i] == '\'':
					closed = true
					i++
				default:
					i++
				}
			}
			if !closed {
				return 0, errors.New("unclosed string at end of file")
			}
			out.WriteByte('\'')
		default:
			c := src[i]
			if interp {
				if c == '{' {
					depth++
				} else if c == '}' {
					if depth == 0 {
						return i, nil
					}
					depth--
				}
			}
			out.WriteByte(c)
			i++
		}
	}
	if interp {
		return 0, errors.New("unclosed ${ interpolation")
	}
	return i, nil
}

// balanced checks (), [] and {} nesting, reporting the line of the first fault.
func balanced(code string) error {
	pairs := map[byte]byte{')': '(', ']': '[', '}': '{'}
	var stack []byte
	var lines []int
	line := 1
	for i := 0; i < len(code); i++ {
		c := code[i]
		switch c {
		case '\n':
			line++
		case '(', '[', '{':
			stack = append(stack, c)
			lines = append(lines, line)
		case ')', ']', '}':
			if len(stack) == 0 || stack[len(stack)-1] != pairs[c] {
				return fmt.Errorf("line %d: unbalanced %q", line, c)
			}
			stack, lines = stack[:len(stack)-1], lines[:len(lines)-1]
		}
	}
	if len(stack) > 0 {
		return fmt.Errorf("line %d: %q is never closed", lines[len(lines)-1], stack[len(stack)-1])
	}
	return nil
}

func matchBracket(s string, open int) (int, error) {
	depth := 0
	inString := false
	for i := open; i < len(s); i++ {
		switch c := s[i]; {
		case inString && c == '\\':
			i++
		case c == '\'' && !strings.HasPrefix(s[i:], "'''"):
			inString = !inString
		case inString:
		case strings.HasPrefix(s[i:], "//"):
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == '[':
			depth++
		case c == ']':
			depth--
			if depth == 0 {
				return i, nil
			}
		}
	}
	return 0, errors.New("unclosed [")
}

// --- azure.yaml ---------------------------------------------------------------------

// parseSimpleYAML reads block-style YAML mappings (no lists, anchors or flow syntax)
// into dotted paths, e.g. "services.handler.host" -> "function".
func parseSimpleYAML(src string) (map[string]string, error) {
	out := map[string]string{}
	type level struct {
		indent int
		key    string
	}
	var stack []level
	sc := bufio.NewScanner(strings.NewReader(src))
	n := 0
	for sc.Scan() {
		n++
		raw := sc.Text()
		if strings.Contains(raw, "\t") {
			return nil, fmt.Errorf("line %d: tab in indentation", n)
		}
		trimmed := strings.TrimSpace(raw)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		indent := len(raw) - len(strings.TrimLeft(raw, " "))
		if indent%2 != 0 {
			return nil, fmt.Errorf("line %d: indentation %d is not a multiple of 2", n, indent)
		}
		key, value, ok := strings.Cut(trimmed, ":")
		if !ok || key == "" || strings.ContainsAny(key, " \"'{}[]") || strings.HasPrefix(trimmed, "- ") {
			return nil, fmt.Errorf("line %d: %q is not a `key: value` line", n, trimmed)
		}
		if value != "" && value[0] != ' ' {
			return nil, fmt.Errorf("line %d: no space after %q:", n, key)
		}
		if i := strings.Index(value, " #"); i >= 0 {
			value = value[:i]
		}
		value = strings.TrimSpace(value)
		for len(stack) > 0 && stack[len(stack)-1].indent >= indent {
			stack = stack[:len(stack)-1]
		}
		if len(stack) > 0 && indent != stack[len(stack)-1].indent+2 || len(stack) == 0 && indent != 0 {
			return nil, fmt.Errorf("line %d: unexpected indentation", n)
		}
		path := key
		if len(stack) > 0 {
			path = stack[len(stack)-1].key + "." + key
		}
		if _, dup := out[path]; dup {
			return nil, fmt.Errorf("line %d: duplicate key %s", n, path)
		}
		if value == "" {
			stack = append(stack, level{indent, path})
			out[path] = ""
			continue
		}
		if unq, err := strconv.Unquote(value); err == nil {
			value = unq
		} else if len(value) >= 2 && value[0] == '\'' && value[len(value)-1] == '\'' {
			value = strings.ReplaceAll(value[1:len(value)-1], "''", "'")
		}
		out[path] = value
	}
	return out, sc.Err()
}

func TestAzureYAML(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(repoRoot, "azure.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	y, err := parseSimpleYAML(string(raw))
	if err != nil {
		t.Fatalf("azure.yaml: %v", err)
	}
	if !regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`).MatchString(y["name"]) {
		t.Errorf("name %q: azd wants lowercase letters, digits and hyphens", y["name"])
	}
	want := map[string]string{
		"services.handler.host":     "function",
		"services.handler.language": "custom",
		"infra.provider":            "bicep",
		"infra.path":                "infra",
		"infra.module":              "main",
	}
	for k, v := range want {
		if y[k] != v {
			t.Errorf("azure.yaml %s = %q, want %q", k, y[k], v)
		}
	}
	if y["services.handler.dist"] == "" {
		t.Error("azure.yaml: language custom needs services.handler.dist")
	}
	if _, err := os.Stat(filepath.Join(repoRoot, y["infra.path"], y["infra.module"]+".bicep")); err != nil {
		t.Errorf("infra module: %v", err)
	}
	if _, err := os.Stat(filepath.Join(repoRoot, y["infra.path"], y["infra.module"]+".parameters.json")); err != nil {
		t.Errorf("infra parameters: %v", err)
	}
	// The prepackage hook stages dist; its script must exist and be executable.
	run := y["services.handler.hooks.prepackage.run"]
	if run == "" {
		t.Fatal("azure.yaml: no services.handler.hooks.prepackage.run")
	}
	script := filepath.Join(repoRoot, y["services.handler.project"], strings.Fields(run)[0])
	st, err := os.Stat(script)
	if err != nil {
		t.Fatalf("prepackage hook: %v", err)
	}
	if st.Mode()&0o111 == 0 {
		t.Errorf("%s is not executable", script)
	}
	b, _ := os.ReadFile(script)
	if !strings.Contains(string(b), y["services.handler.dist"]) {
		t.Errorf("%s does not stage %s", script, y["services.handler.dist"])
	}
	// Every function folder must be staged: the script copies */function.json.
	if !strings.Contains(string(b), "*/function.json") || !strings.Contains(string(b), "host.json") {
		t.Errorf("%s does not stage host.json and every */function.json", script)
	}
	// The service name matches the function app's azd-service-name tag.
	for k := range y {
		if svc, ok := strings.CutPrefix(k, "services."); ok && !strings.Contains(svc, ".") {
			found := false
			for _, f := range bicepFiles(t) {
				found = found || strings.Contains(f.src, "'azd-service-name': '"+svc+"'")
			}
			if !found {
				t.Errorf("service %s: no resource tagged azd-service-name %s", svc, svc)
			}
		}
	}
}

func TestParseSimpleYAMLRejectsBrokenFiles(t *testing.T) {
	for name, src := range map[string]string{
		"tab":         "name: x\nservices:\n\thandler: y\n",
		"odd indent":  "services:\n   handler:\n",
		"no colon":    "name x\n",
		"jump indent": "services:\n    handler: x\n",
		"duplicate":   "name: a\nname: b\n",
	} {
		if _, err := parseSimpleYAML(src); err == nil {
			t.Errorf("%s: accepted %q", name, src)
		}
	}
	y, err := parseSimpleYAML("a:\n  b: 'c'\n  d:\n    e: \"f\" # note\ng: h\n")
	if err != nil || y["a.b"] != "c" || y["a.d.e"] != "f" || y["g"] != "h" {
		t.Errorf("parseSimpleYAML = %v, %v", y, err)
	}
}

func TestStripBicepRejectsBrokenFiles(t *testing.T) {
	for name, src := range map[string]string{
		"brace":         "resource a 'X.Y/z@2020-01-01' = {\n  name: 'a'\n",
		"bracket":       "var a = [\n  1\n}\n",
		"string":        "var a = 'abc\n",
		"interpolation": "var a = 'x${b'\n",
		"comment":       "/* never closed\n",
	} {
		code, err := stripBicep(src)
		if err == nil {
			err = balanced(code)
		}
		if err == nil {
			t.Errorf("%s: accepted %q", name, src)
		}
	}
	code, err := stripBicep("var a = '${toUpper('{')}' // }\nvar b = '''\n{\n'''\n")
	if err != nil || balanced(code) != nil {
		t.Errorf("valid Bicep refused: %v %v", err, balanced(code))
	}
}

// --- code reading settings ----------------------------------------------------------

var settingName = regexp.MustCompile(`^(COPY_|BLOBCOPY_|FUNCTIONS_|AzureWebJobs)[A-Za-z0-9_]*$`)

// TestCodeReadsOnlyCataloguedSettings: every setting name the app package reads
// (Get/Lookup/WithPrefix/Resolve... arguments and any string literal shaped like a
// setting name) is in the catalogue, so the catalogue stays the truth.
func TestCodeReadsOnlyCataloguedSettings(t *testing.T) {
	cat := catalogue(t)
	fset := token.NewFileSet()
	paths, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	reads := 0
	for _, p := range paths {
		if strings.HasSuffix(p, "_test.go") || p == "settings.go" {
			continue
		}
		f, err := parser.ParseFile(fset, p, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CallExpr:
				sel, ok := n.Fun.(*ast.SelectorExpr)
				if !ok || len(n.Args) == 0 || !slices.Contains([]string{"Get", "Lookup", "WithPrefix"}, sel.Sel.Name) {
					return true
				}
				lit, ok := n.Args[0].(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					return true
				}
				name, _ := strconv.Unquote(lit.Value)
				reads++
				if !inCatalogue(cat, name) {
					t.Errorf("%s: %s(%q) reads a setting the catalogue does not list", fset.Position(n.Pos()), sel.Sel.Name, name)
				}
			case *ast.BasicLit:
				if n.Kind != token.STRING {
					return true
				}
				name, _ := strconv.Unquote(n.Value)
				if settingName.MatchString(name) && !inCatalogue(cat, name) {
					t.Errorf("%s: setting name %q is not in the catalogue", fset.Position(n.Pos()), name)
				}
			}
			return true
		})
	}
	if reads == 0 {
		t.Error("found no Get/Lookup calls in internal/app: the scan is broken")
	}
}
