package app_test

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/blobcopy/blobcopy/internal/app"
)

// TestReadmeDocumentsEverySetting: the README's configuration table names every
// catalogued setting, and every test its Reliability table cites exists.
func TestReadmeDocumentsEverySetting(t *testing.T) {
	root := repoRoot(t)
	readme, err := os.ReadFile(root + "/README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(readme)
	for _, s := range app.Settings {
		if !strings.Contains(text, "| `"+s.Name+"` |") {
			t.Errorf("README's configuration table lacks %s", s.Name)
		}
	}
	section := text[strings.Index(text, "## Reliability"):]
	section = section[:strings.Index(section[3:], "\n## ")+3]
	security := text[strings.Index(text, "## Security model"):]
	security = security[:strings.Index(security[3:], "\n## ")+3]
	var sources strings.Builder
	for _, dir := range []string{"cmd/handler", "cmd/blobcopy", "internal/api", "internal/app", "internal/copyjob", "internal/batch", "internal/funchost", "internal/eventgrid", "internal/redact", "internal/notify", "internal/rules", "internal/azstorage", "internal/config"} {
		entries, err := os.ReadDir(root + "/" + dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), "_test.go") {
				b, _ := os.ReadFile(root + "/" + dir + "/" + e.Name())
				sources.Write(b)
			}
		}
	}
	names := regexp.MustCompile("`((?:Test|Fuzz)[A-Za-z0-9_]+)`").FindAllStringSubmatch(section, -1)
	if len(names) < 15 {
		t.Fatalf("the Reliability table cites only %d tests", len(names))
	}
	secNames := regexp.MustCompile("`((?:Test|Fuzz)[A-Za-z0-9_]+)`").FindAllStringSubmatch(security, -1)
	if len(secNames) < 10 {
		t.Fatalf("the Security table cites only %d tests", len(secNames))
	}
	for _, m := range append(names, secNames...) {
		if !strings.Contains(sources.String(), "func "+m[1]+"(") {
			t.Errorf("README cites %s, which does not exist", m[1])
		}
	}
}
