package secretfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secrets-agent/secrets-agent/injectors"
	"github.com/secrets-agent/secrets-agent/secrets"
)

// TestReservedTargetsAreRefusedAndOthersApplied: a target that is a reserved
// path, lies below a reserved dir, holds a reserved file, reaches one through
// a symlink inside the root, or names a kept-aside file fails alone with an
// error naming whose path it is; nothing is written there, and a good secret
// beside them is applied.
func TestReservedTargetsAreRefusedAndOthersApplied(t *testing.T) {
	f := newFixture(t)
	docker := f.path(".docker/config.json")
	state := f.path(".local/state/secrets-agent")
	if err := os.MkdirAll(f.path(".docker"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(docker, []byte(`{"auths":{}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(state, 0o700); err != nil {
		t.Fatal(err)
	}
	// Planted by the user: a link to ~/.docker and one to the state dir.
	if err := os.Symlink(".docker", f.path("dlink")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(".local/state", f.path("slink")); err != nil {
		t.Fatal(err)
	}
	f.in.Avoid([]injectors.Reserved{
		{Path: docker, What: "the docker config dockercfg manages"},
		{Path: state + "/", What: "the agent's state dir"}, // cleaned by Avoid
		{Path: "relative/ignored", What: "nothing"},
	})
	cases := []struct{ target, errHas string }{
		{docker, "is the docker config dockercfg manages"},
		{docker + "/x", "is below " + docker},
		{f.path(".docker"), "holds " + docker},
		{state + "/secretfile.json", "is below " + state},
		{state, "is the agent's state dir"},
		{f.path(".local"), "holds " + state},
		{f.path("dlink/config.json"), "the docker config dockercfg manages (reached through a symlink"},
		{f.path("slink/secrets-agent/evil"), "the agent's state dir (reached through a symlink"},
		{f.path("x" + OrigSuffix), "keeps a file aside"},
	}
	ss := []secrets.Secret{sec("good", f.path("good"), "good value")}
	for i, c := range cases {
		ss = append(ss, sec("r"+string(rune('a'+i)), c.target, "sekret"))
	}
	res := f.in.Apply(t.Context(), ss)
	wantAction(t, res, f.path("good"), injectors.Created)
	wantFile(t, f.path("good"), "good value", 0o600)
	for _, c := range cases {
		o := wantAction(t, res, c.target, injectors.Failed)
		if o.Err == nil || !strings.Contains(o.Err.Error(), c.errHas) {
			t.Errorf("%s: error %v, want one saying %q", c.target, o.Err, c.errHas)
		}
	}
	if b, _ := os.ReadFile(docker); string(b) != `{"auths":{}}` {
		t.Errorf("docker config rewritten: %q", b)
	}
	if ents, _ := os.ReadDir(state); len(ents) != 0 {
		t.Errorf("written into the state dir: %v", ents)
	}
}

// TestAvoidAgainReplacesTheReservedSet: a reload hands a new set; a path no
// longer reserved is a target like any other.
func TestAvoidAgainReplacesTheReservedSet(t *testing.T) {
	f := newFixture(t)
	p := f.path("tok")
	f.in.Avoid([]injectors.Reserved{{Path: p, What: "the agent's token file"}})
	wantAction(t, f.in.Apply(t.Context(), []secrets.Secret{sec("a", p, "v")}), p, injectors.Failed)
	f.in.Avoid(nil)
	wantAction(t, f.apply(sec("a", p, "v")), p, injectors.Created)
}

// TestReservedPathNotYetWrittenIsRefusedThroughASymlink: the docker config
// does not exist yet (dockercfg runs after secretfile in a pass); a target
// reaching its name through a planted link to its directory is still refused.
func TestReservedPathNotYetWrittenIsRefusedThroughASymlink(t *testing.T) {
	f := newFixture(t)
	if err := os.MkdirAll(f.path(".docker"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(".docker", f.path("dlink")); err != nil {
		t.Fatal(err)
	}
	f.in.Avoid([]injectors.Reserved{{Path: f.path(".docker/config.json"), What: "the docker config dockercfg manages"}})
	target := f.path("dlink/config.json")
	o := wantAction(t, f.in.Apply(t.Context(), []secrets.Secret{sec("a", target, "v")}), target, injectors.Failed)
	if o.Err == nil || !strings.Contains(o.Err.Error(), "reached through a symlink") {
		t.Errorf("error %v, want a refusal through the symlink", o.Err)
	}
	wantGone(t, f.path(".docker/config.json"))
}

// TestNamesThatOnlyLookLikeReservedOnesAreTargets: a shared prefix is not
// "below": ~/token2 and ~/tokendir/x are fine when ~/token is reserved.
func TestNamesThatOnlyLookLikeReservedOnesAreTargets(t *testing.T) {
	f := newFixture(t)
	f.in.Avoid([]injectors.Reserved{{Path: f.path("token"), What: "the agent's token file"}})
	res := f.apply(sec("a", f.path("token2"), "a"), sec("b", f.path("tokendir/x"), "b"), sec("c", f.path("toke"), "c"))
	for _, p := range []string{"token2", "tokendir/x", "toke"} {
		wantAction(t, res, f.path(p), injectors.Created)
	}
}

// TestRootSymlinkedToAReservedDirIsRefused: the user replaces the allowed
// root ~/sub with a link to the agent's state dir (or to a dir holding it)
// inside the home; a target below it fails, naming the state dir, and the
// manifest is not overwritten.
func TestRootSymlinkedToAReservedDirIsRefused(t *testing.T) {
	f := newFixture(t, func(o *Options) {
		o.Owner.Home = filepath.Join(filepath.Dir(o.StateDir), "home")
		o.AllowedRoots = append(o.AllowedRoots, filepath.Join(o.Owner.Home, "sub"), filepath.Join(o.Owner.Home, "up"))
	})
	state := f.path(".local/state/secrets-agent")
	if err := os.MkdirAll(state, 0o700); err != nil {
		t.Fatal(err)
	}
	manifest := filepath.Join(state, "envprofile.json")
	if err := os.WriteFile(manifest, []byte(`{"files":{}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(".local/state/secrets-agent", f.path("sub")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(".local/state/secrets-agent/deeper", f.path("up")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(state, "deeper"), 0o700); err != nil {
		t.Fatal(err)
	}
	f.in.Avoid([]injectors.Reserved{{Path: state, What: "the agent's state dir"}})
	forged, deeper := f.path("sub/envprofile.json"), f.path("up/x")
	res := f.in.Apply(t.Context(), []secrets.Secret{sec("m", forged, `{"forged":true}`), sec("d", deeper, "v"), sec("good", f.path("good"), "v")})
	for _, target := range []string{forged, deeper} {
		o := wantAction(t, res, target, injectors.Failed)
		if o.Err == nil || !strings.Contains(o.Err.Error(), "the agent's state dir") {
			t.Errorf("%s: error %v, want one naming the state dir", target, o.Err)
		}
	}
	wantAction(t, res, f.path("good"), injectors.Created)
	if b, _ := os.ReadFile(manifest); string(b) != `{"files":{}}` {
		t.Errorf("the manifest was overwritten: %q", b)
	}
	wantGone(t, filepath.Join(state, "deeper", "x"))
}

// TestTwoTargetsReachingOneFileDoNotFight: ~/b is the user's link to ~/a,
// so ~/a/x and ~/b/x are one file. The second secret fails naming the
// first, and passes after the first write nothing: no secret rewrites the
// other's value as drift.
func TestTwoTargetsReachingOneFileDoNotFight(t *testing.T) {
	f := newFixture(t)
	if err := os.Mkdir(f.path("a"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("a", f.path("b")); err != nil {
		t.Fatal(err)
	}
	ss := []secrets.Secret{sec("one", f.path("a/x"), "one"), sec("two", f.path("b/x"), "two"),
		sec("new1", f.path("a/new/y"), "one"), sec("new2", f.path("b/new/y"), "two")}
	res := f.in.Apply(t.Context(), ss)
	wantAction(t, res, f.path("a/x"), injectors.Created)
	wantAction(t, res, f.path("a/new/y"), injectors.Created)
	for _, c := range []struct{ target, other string }{{f.path("b/x"), f.path("a/x")}, {f.path("b/new/y"), f.path("a/new/y")}} {
		o := wantAction(t, res, c.target, injectors.Failed)
		if o.Err == nil || !strings.Contains(o.Err.Error(), "same file as "+c.other) {
			t.Errorf("%s: error %v, want one naming %s", c.target, o.Err, c.other)
		}
	}
	for range 3 {
		if res := f.in.Apply(t.Context(), ss); res.Writes != 0 {
			t.Fatalf("a later pass wrote %d times: %+v", res.Writes, res.Outcomes)
		}
	}
	wantFile(t, f.path("a/x"), "one", 0o600)
	wantFile(t, f.path("a/new/y"), "one", 0o600)
}

// TestStartupFilesInTheHomeAreRefused: files shells, sshd, git and prompt
// tools read at start-up are refused, by name and through a link the user
// planted (also where the directory they belong in does not exist yet),
// before and after Avoid; a key in ~/.ssh and ~/.ssh/config (read only when
// the user runs ssh) are written.
func TestStartupFilesInTheHomeAreRefused(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.Owner.Home = filepath.Join(filepath.Dir(o.StateDir), "home") })
	if err := os.MkdirAll(f.path(".config/fish"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(".config", f.path("cfg")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(".", f.path("me")); err != nil {
		t.Fatal(err)
	}
	refused := map[string]string{
		"me/.ssh/rc":                     "the file sshd runs at every login (reached through a symlink",
		"cfg/git/config":                 "git's config directory, read at every git command (prompts run git status) (reached through a symlink",
		".bashrc":                        "a shell start-up file",
		".profile":                       "a shell start-up file",
		".zshenv":                        "a shell start-up file",
		".config/fish/conf.d/x.fish":     "is below " + f.path(".config/fish"),
		"cfg/fish/config.fish":           "fish's start-up directory (reached through a symlink",
		".ssh/authorized_keys":           "keys that may log in",
		".ssh/rc":                        "sshd runs at every login",
		".gitconfig":                     "git's config",
		".config/git/config":             "is below " + f.path(".config/git"),
		".config/starship.toml":          "starship",
		".config/systemd/user/x.service": "systemd units",
	}
	allowed := []string{".ssh/id_ed25519", ".ssh/config", ".config/app/token"}
	for _, avoid := range []bool{false, true} {
		if avoid {
			f.in.Avoid([]injectors.Reserved{{Path: f.path("tok"), What: "the agent's token file"}})
		}
		var ss []secrets.Secret
		for rel := range refused {
			ss = append(ss, sec(rel, f.path(rel), "touch /tmp/pwned"))
		}
		for _, rel := range allowed {
			ss = append(ss, sec(rel, f.path(rel), "v"))
		}
		res := f.in.Apply(t.Context(), ss)
		for rel, errHas := range refused {
			o := wantAction(t, res, f.path(rel), injectors.Failed)
			if o.Err == nil || !strings.Contains(o.Err.Error(), errHas) {
				t.Errorf("%s (Avoid called: %v): error %v, want one saying %q", rel, avoid, o.Err, errHas)
			}
			if _, err := os.Lstat(f.path(rel)); err == nil {
				t.Errorf("%s was written", rel)
			}
		}
		for _, rel := range allowed {
			if o := outcomeFor(t, res, f.path(rel)); o.Action == injectors.Failed {
				t.Errorf("%s: %v; want it written", rel, o.Err)
			}
		}
	}
}
