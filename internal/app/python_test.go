package app_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os/exec"
	"strings"
	"testing"

	"github.com/blobcopy/blobcopy/internal/copyjob"
)

// pythonClient runs the article's Python calls (Debian's azure-storage-blob under
// /usr/bin/python3, installed by `make deps`).
func pythonClient(t *testing.T, args ...string) map[string]any {
	t.Helper()
	out, err := exec.CommandContext(context.Background(), "/usr/bin/python3", append([]string{"testdata/article_client.py"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("python client %s: %v\n%s\n(make deps installs python3-azure)", args[0], err, out)
	}
	var v map[string]any
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("python client output %q: %v", out, err)
	}
	return v
}

// TestIndependentPythonClientSeesTheCopy: what the handler did is read back with the
// article's own Python calls, a second real client.
func TestIndependentPythonClientSeesTheCopy(t *testing.T) {
	h := newHarness(t, nil)
	content := "copied by blobcopy, read by python"
	src := h.upload("acct2", "src", "py.txt", []byte(content))
	r := h.startCopy(map[string]any{"source": src, "destination": map[string]any{"container": "dst", "blob": "py.txt"}})
	if r.status != http.StatusOK {
		t.Fatalf("start: %d %s", r.status, r.body)
	}
	j := r.job(t)
	got := pythonClient(t, "status", h.az.ConnectionString("devstoreaccount1"), "dst", "py.txt")
	if got["status"] != "success" || got["id"] != j.CopyID || got["content"] != content || got["progress"] != "34/34" {
		t.Errorf("python sees %v; job copy id %s", got, j.CopyID)
	}
	if s, _ := got["source"].(string); !strings.HasPrefix(s, src) {
		t.Errorf("python sees copy source %q, want %s...", s, src)
	}
	if j.Status != copyjob.StatusSuccess {
		t.Errorf("job status %s", j.Status)
	}

}
