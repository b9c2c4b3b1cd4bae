package secretfile

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secrets-agent/secrets-agent/injectors"
	"github.com/secrets-agent/secrets-agent/internal/testutil"
	"github.com/secrets-agent/secrets-agent/secrets"
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

// TestRootInHomeSymlinkedOutOfItIsRefused: the user replaces an allowed
// root in their home (~/sub) with a symlink to a system directory (a
// stand-in for /etc/profile.d); the secret below it fails and nothing is
// written there. A link that stays in the home is followed.
func TestRootInHomeSymlinkedOutOfItIsRefused(t *testing.T) {
	var sys string
	f := newFixture(t, func(o *Options) {
		o.Owner.Home = filepath.Join(filepath.Dir(o.StateDir), "home")
		o.AllowedRoots = append(o.AllowedRoots, filepath.Join(o.Owner.Home, "sub"), filepath.Join(o.Owner.Home, "inside"))
		sys = filepath.Join(filepath.Dir(o.StateDir), "profile.d")
	})
	if err := os.Mkdir(sys, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(f.path("real"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(sys, f.path("sub")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("real", f.path("inside")); err != nil {
		t.Fatal(err)
	}
	evil, ok := f.path("sub/evil.sh"), f.path("inside/key")
	res := f.in.Apply(t.Context(), []secrets.Secret{sec("evil", evil, "echo pwned"), sec("ok", ok, "v")})
	o := wantAction(t, res, evil, injectors.Failed)
	if o.Err == nil || !strings.Contains(o.Err.Error(), f.path("sub")) {
		t.Errorf("error %v, want one naming the root", o.Err)
	}
	if ents, _ := os.ReadDir(sys); len(ents) != 0 {
		t.Errorf("written through the user's symlink into the system dir: %v", ents)
	}
	wantAction(t, res, ok, injectors.Created)
	wantFile(t, f.path("real/key"), "v", 0o600)
}

// TestRootOutsideHomeIsReachedThroughTrustedDirectoriesOnly: an allowed
// root outside the home is refused when it or a directory on its way is a
// symlink (planted by whoever owns its parent), is owned by someone other
// than root or the user, or may be written by others without the sticky
// bit; the secrets of the other roots still apply.
func TestRootOutsideHomeIsReachedThroughTrustedDirectoriesOnly(t *testing.T) {
	type row struct {
		root   string // below the fixture's base
		plant  func(t *testing.T, base string)
		errHas string
	}
	mkdir := func(t *testing.T, p string, mode os.FileMode) {
		t.Helper()
		if err := os.MkdirAll(p, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	link := func(to, at string) func(t *testing.T, base string) {
		return func(t *testing.T, base string) {
			mkdir(t, filepath.Join(base, to), 0o755)
			mkdir(t, filepath.Dir(filepath.Join(base, at)), 0o755)
			if err := os.Symlink(filepath.Join(base, to), filepath.Join(base, at)); err != nil {
				t.Fatal(err)
			}
		}
	}
	rows := map[string]row{
		"root is a symlink":   {"srv/secrets", link("sys", "srv/secrets"), "is a symlink"},
		"parent is a symlink": {"lnk/secrets", link("srv2", "lnk"), "is a symlink"},
		"world-writable parent": {"open/secrets", func(t *testing.T, base string) {
			mkdir(t, filepath.Join(base, "open/secrets"), 0o755)
			mkdir(t, filepath.Join(base, "open"), 0o777)
		}, "writable by others"},
		"sticky parent": {"tmp/secrets", func(t *testing.T, base string) {
			mkdir(t, filepath.Join(base, "tmp/secrets"), 0o755)
			mkdir(t, filepath.Join(base, "tmp"), 0o777|os.ModeSticky)
		}, ""},
	}
	if os.Geteuid() == 0 {
		uid, gid := testutil.Nobody(t)
		rows["parent owned by another user"] = row{"theirs/secrets", func(t *testing.T, base string) {
			mkdir(t, filepath.Join(base, "theirs/secrets"), 0o755)
			if err := os.Chown(filepath.Join(base, "theirs"), uid, gid); err != nil {
				t.Fatal(err)
			}
		}, fmt.Sprintf("is owned by uid %d", uid)}
	}
	var base string
	f := newFixture(t, func(o *Options) {
		base = filepath.Dir(o.StateDir)
		for _, r := range rows {
			o.AllowedRoots = append(o.AllowedRoots, filepath.Join(base, r.root))
		}
	})
	ss := []secrets.Secret{sec("good", f.path("good"), "v")}
	for name, r := range rows {
		r.plant(t, base)
		ss = append(ss, sec(name, filepath.Join(base, r.root, "evil.sh"), "echo pwned"))
	}
	res := f.in.Apply(t.Context(), ss)
	wantAction(t, res, f.path("good"), injectors.Created)
	for name, r := range rows {
		target := filepath.Join(base, r.root, "evil.sh")
		if r.errHas == "" {
			wantAction(t, res, target, injectors.Created)
			continue
		}
		o := wantAction(t, res, target, injectors.Failed)
		if o.Err == nil || !strings.Contains(o.Err.Error(), r.errHas) {
			t.Errorf("%s: error %v, want one saying %q", name, o.Err, r.errHas)
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(base, "sys")); len(ents) != 0 {
		t.Errorf("written through a symlinked root: %v", ents)
	}
}
