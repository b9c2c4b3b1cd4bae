package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secrets-agent/secrets-agent/internal/testutil"
)

// TestDemoRunsAndPrintsNoValue runs `make demo`'s script for one pass
// (DEMO_ONCE=1) against the built binaries: it succeeds, every variable
// matches the winning scope's value, and no value it stored is printed.
func TestDemoRunsAndPrintsNoValue(t *testing.T) {
	root := testutil.ModuleRoot(t)
	cmd := exec.Command("bash", filepath.Join(root, "scripts", "demo.sh"))
	cmd.Env = append(os.Environ(), "DEMO_ONCE=1", "BIN="+testutil.Binaries(t), "TMPDIR="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	}
	s := string(out)
	if n := strings.Count(s, "matches the winning scope's value"); n != 3 || strings.Contains(s, "MISMATCH") {
		t.Fatalf("demo: %d variables match the winning scope, want 3:\n%s", n, s)
	}
	for _, v := range []string{"hello from alice", "hello from the project", "postgres://", "alice-api-key", "org-api-key",
		"not-really-a-key", "only-for-the-api", "alicepass", "hubpass", "orgpass"} {
		if strings.Contains(s, v) {
			t.Errorf("demo printed the value %q", v)
		}
	}
}
