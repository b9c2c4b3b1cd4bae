package envprofile

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/secrets-agent/secrets-agent/injectors"
	"github.com/secrets-agent/secrets-agent/internal/testutil"
	"github.com/secrets-agent/secrets-agent/secrets"
)

func actions(res injectors.Result) map[string]injectors.Action {
	m := map[string]injectors.Action{}
	for _, o := range res.Outcomes {
		m[o.Target] = o.Action
	}
	return m
}

// TestUnchangedSetWritesNothing: a second Apply of the same set, and one by a
// restarted agent (new injector, same state dir), perform zero writes.
func TestUnchangedSetWritesNothing(t *testing.T) {
	dir, state := filepath.Join(t.TempDir(), "env"), t.TempDir()
	opts := Options{Dir: dir, Owner: injectors.Owner{UID: -1, GID: -1}, StateDir: state}
	in, _ := New(opts)
	env := corpusSecrets()[:5]
	if res := in.Apply(context.Background(), env); res.Writes != 4 || res.Err != nil {
		t.Fatalf("first apply: %d writes (want 3 fragments + manifest), err %v", res.Writes, res.Err)
	}
	res := in.Apply(context.Background(), env)
	if res.Writes != 0 {
		t.Errorf("second apply wrote %d times", res.Writes)
	}
	for target, a := range actions(res) {
		if a != injectors.Unchanged {
			t.Errorf("%s: %s, want unchanged", target, a)
		}
	}
	restarted, _ := New(opts)
	if res := restarted.Apply(context.Background(), env); res.Writes != 0 {
		t.Errorf("apply after restart wrote %d times", res.Writes)
	}
	if len(res.Paths) != 3 {
		t.Errorf("paths %v, want the three fragments", res.Paths)
	}
}

// TestRotationRemovalAndRepairAreReported: each change gets its action and a
// fresh generation; a deleted fragment is put back.
func TestRotationRemovalAndRepairAreReported(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "env")
	in, _ := New(Options{Dir: dir, Owner: injectors.Owner{UID: -1, GID: -1}})
	a, b := envSecret("a", "AAA", []byte("1")), envSecret("b", "BBB", []byte("2"))
	ctx := context.Background()
	if got := actions(in.Apply(ctx, []secrets.Secret{a, b})); got["AAA"] != injectors.Created || got["BBB"] != injectors.Created {
		t.Errorf("first apply: %v", got)
	}
	gen1 := currentGenOf(t, dir)
	a.Value = []byte("rotated")
	got := actions(in.Apply(ctx, []secrets.Secret{a}))
	if got["AAA"] != injectors.Updated || got["BBB"] != injectors.Removed {
		t.Errorf("rotate+remove: %v", got)
	}
	if gen2 := currentGenOf(t, dir); gen2 == gen1 {
		t.Error("generation did not change")
	}
	if err := os.Remove(filepath.Join(dir, "env.fish")); err != nil {
		t.Fatal(err)
	}
	res := in.Apply(ctx, []secrets.Secret{a})
	if res.Writes != 1 || actions(res)["AAA"] != injectors.Repaired {
		t.Errorf("repair: %d writes, %v", res.Writes, actions(res))
	}
}

func currentGenOf(t *testing.T, dir string) string {
	t.Helper()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	data, _ := os.ReadFile(filepath.Join(dir, "env.sh"))
	gen := data[len(genPrefix):]
	for i, c := range gen {
		if c == '\n' {
			return string(gen[:i])
		}
	}
	return ""
}

// TestFragmentsAre0600AndOwnedByTheUser runs as root serving a non-root
// user: the dir is created 0700 and every fragment and delta file is 0600,
// all theirs.
func TestFragmentsAre0600AndOwnedByTheUser(t *testing.T) {
	testutil.NeedRoot(t, "chown files to another user")
	const uid, gid = 4242, 4343
	dir := filepath.Join(t.TempDir(), "run", "env")
	in, _ := New(Options{Dir: dir, Owner: injectors.Owner{UID: uid, GID: gid}})
	env := corpusSecrets()[:3]
	if res := in.Apply(context.Background(), env); res.Err != nil {
		t.Fatal(res.Err)
	}
	env[0].Value = []byte("rotated") // and now a delta file beside each
	if res := in.Apply(context.Background(), env); res.Err != nil {
		t.Fatal(res.Err)
	}
	check := func(p string, mode os.FileMode) {
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode().Perm() != mode || st.Uid != uid || st.Gid != gid {
			t.Errorf("%s: mode %v owner %d:%d, want %v %d:%d", p, fi.Mode().Perm(), st.Uid, st.Gid, mode, uid, gid)
		}
	}
	check(dir, 0o700)
	for _, f := range Formats {
		check(filepath.Join(dir, f.FileName()), 0o600)
		if f.DeltaName() != "" {
			check(filepath.Join(dir, f.DeltaName()), 0o600)
		}
	}
}

// TestDirInTheHomeIsNotFollowedOutOfIt: with the fragment dir in the user's
// home, a symlink the user plants there (to another user's dir) must not make
// an agent running as root write through it.
func TestDirInTheHomeIsNotFollowedOutOfIt(t *testing.T) {
	base := t.TempDir()
	home, victim := filepath.Join(base, "home"), filepath.Join(base, "victim")
	for _, d := range []string{home, victim} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(victim, filepath.Join(home, ".secrets")); err != nil {
		t.Fatal(err)
	}
	in, err := New(Options{Dir: filepath.Join(home, ".secrets"), Owner: injectors.Owner{UID: -1, GID: -1, Home: home}, StateDir: filepath.Join(base, "state")})
	if err != nil {
		t.Fatal(err)
	}
	res := in.Apply(context.Background(), []secrets.Secret{envSecret("a", "TOKEN", []byte("v"))})
	if res.Err == nil {
		t.Errorf("Apply through a symlink out of the home succeeded")
	}
	if entries, _ := os.ReadDir(victim); len(entries) != 0 {
		t.Errorf("the agent wrote into the other dir: %v", entries)
	}
}

// TestSecretsPastExecveBoundsFailAloneAndAreNotWritten: a value over one
// environment string's limit, and the secrets past the total budget, fail
// each on their own; the others are written.
func TestSecretsPastExecveBoundsFailAloneAndAreNotWritten(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "env")
	in, _ := New(Options{Dir: dir, Owner: injectors.Owner{UID: -1, GID: -1}})
	env := []secrets.Secret{
		envSecret("a", "HUGE", bytes.Repeat([]byte("h"), secrets.MaxEnvString)),
		envSecret("b", "FINE", []byte("fine")),
	}
	for i := range 11 { // 11 x 100 KiB: the last by name does not fit
		env = append(env, envSecret(fmt.Sprintf("c%d", i), fmt.Sprintf("BULK_%02d", i), bytes.Repeat([]byte("b"), 100<<10)))
	}
	got := actions(in.Apply(context.Background(), env))
	for name, want := range map[string]injectors.Action{"HUGE": injectors.Failed, "FINE": injectors.Created, "BULK_00": injectors.Created, "BULK_09": injectors.Created, "BULK_10": injectors.Failed} {
		if got[name] != want {
			t.Errorf("%s: %s, want %s", name, got[name], want)
		}
	}
	sh, err := os.ReadFile(filepath.Join(dir, "env.sh"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sh, []byte("HUGE=")) || bytes.Contains(sh, []byte("BULK_10=")) || !bytes.Contains(sh, []byte("FINE=")) {
		t.Errorf("env.sh holds a refused variable or lacks FINE")
	}
}
