package envprofile

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/secrets-agent/secrets-agent/injectors"
	"github.com/secrets-agent/secrets-agent/internal/atomicfile"
	"github.com/secrets-agent/secrets-agent/secrets"
)

// TestRestartRemovesTempFilesACrashLeft: an agent killed between creating a
// fragment's (or the manifest's) temp file and renaming it leaves that file,
// holding values, behind. The next agent's first Apply removes every such
// temp file and nothing else.
func TestRestartRemovesTempFilesACrashLeft(t *testing.T) {
	dir, state := filepath.Join(t.TempDir(), "env"), t.TempDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	var temps []string
	for _, f := range Formats {
		temps = append(temps, filepath.Join(dir, atomicfile.TempName(f.FileName())))
	}
	temps = append(temps, filepath.Join(state, atomicfile.TempName(manifestName)))
	other := filepath.Join(dir, ".env.sh.bak") // not ours: stays
	for _, p := range append(temps, other) {
		if err := os.WriteFile(p, []byte("export OLD='old value'\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	in, _ := New(Options{Dir: dir, Owner: injectors.Owner{UID: -1, GID: -1}, StateDir: state})
	res := in.Apply(context.Background(), []secrets.Secret{envSecret("a", "AAA", []byte("1"))})
	if res.Err != nil {
		t.Fatalf("apply: %v", res.Err)
	}
	for _, p := range temps {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("temp file %s is still there (%v)", p, err)
		}
	}
	if _, err := os.Lstat(other); err != nil {
		t.Errorf("a file that is not a temp file was removed: %v", err)
	}
}
