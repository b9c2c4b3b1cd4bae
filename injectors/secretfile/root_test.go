package secretfile

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/secrets-agent/secrets-agent/injectors"
)

// TestMissingAllowedRootIsCreatedWhenFirstNeeded: an allowed root that does
// not exist yet (the default /run/secrets on a fresh machine) is created
// when a secret first needs it, the agent's, 0711; one in the user's home
// is not.
func TestMissingAllowedRootIsCreatedWhenFirstNeeded(t *testing.T) {
	var run string
	f := newFixture(t, func(o *Options) {
		run = filepath.Join(filepath.Dir(o.StateDir), "run-secrets")
		o.Owner.Home = filepath.Join(filepath.Dir(o.StateDir), "home")
		o.AllowedRoots = append(o.AllowedRoots, run, filepath.Join(o.Owner.Home, "missing"))
	})
	target := filepath.Join(run, "api", "key")
	wantAction(t, f.apply(sec("s", target, "v")), target, injectors.Created)
	fi, err := os.Stat(run)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != rootMode {
		t.Errorf("created allowed root mode %v, want %v", fi.Mode().Perm(), os.FileMode(rootMode))
	}
	if b, err := os.ReadFile(target); err != nil || string(b) != "v" {
		t.Errorf("secret below the created root: %q, %v", b, err)
	}

	inHome := f.path("missing/key")
	wantAction(t, f.apply(sec("s", target, "v"), sec("h", inHome, "v")), inHome, injectors.Failed)
	if _, err := os.Stat(f.path("missing")); err == nil {
		t.Error("an allowed root in the user's home was created")
	}
}
