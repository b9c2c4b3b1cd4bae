package dockercfg

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/secrets-agent/secrets-agent/internal/atomicfile"
	"github.com/secrets-agent/secrets-agent/secrets"
)

// TestRestartRemovesTempFilesACrashLeft: an agent killed between creating
// config.json's (or the manifest's) temp file and renaming it leaves that
// file, holding credentials, behind. The next agent's first Apply removes
// every such temp file and nothing else.
func TestRestartRemovesTempFilesACrashLeft(t *testing.T) {
	f := newFixture(t, Inline)
	f.write(t, `{"auths": {}}`)
	if err := os.MkdirAll(f.stateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	temps := []string{
		filepath.Join(f.cfgDir, atomicfile.TempName(configName)),
		filepath.Join(f.stateDir, atomicfile.TempName(manifestName)),
	}
	other := filepath.Join(f.cfgDir, "config.json12345") // docker's own temp name: not ours, stays
	for _, p := range append(temps, other) {
		if err := os.WriteFile(p, []byte(`{"auths": {"old.example.com": {"auth": "b2xkOnB3"}}}`), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	res := f.in.Apply(context.Background(), []secrets.Secret{registrySecret("s", "r.example.com", "u", "p")})
	if res.Err != nil {
		t.Fatalf("apply: %v", res.Err)
	}
	for _, p := range temps {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("temp file %s is still there (%v)", p, err)
		}
	}
	if _, err := os.Lstat(other); err != nil {
		t.Errorf("a file that is not our temp file was removed: %v", err)
	}
}
