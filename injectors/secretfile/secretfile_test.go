package secretfile

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/secrets-agent/secrets-agent/injectors"
	"github.com/secrets-agent/secrets-agent/internal/atomicfile"
	"github.com/secrets-agent/secrets-agent/internal/testutil"
	"github.com/secrets-agent/secrets-agent/secrets"
)

// fixture is a throw-away home (the one allowed root, unless a test adds
// more), a state dir and an injector over them. base holds both, so a
// sibling of home stands for "outside the allowed roots".
type fixture struct {
	t     testing.TB
	base  string
	home  string
	state string
	opts  Options
	in    *Injector
}

func newFixture(t testing.TB, mutate ...func(*Options)) *fixture {
	t.Helper()
	base := t.TempDir()
	f := &fixture{t: t, base: base, home: filepath.Join(base, "home"), state: filepath.Join(base, "state")}
	if err := os.Mkdir(f.home, 0o755); err != nil {
		t.Fatal(err)
	}
	f.opts = Options{AllowedRoots: []string{f.home}, Owner: injectors.Owner{UID: -1, GID: -1}, StateDir: f.state}
	for _, m := range mutate {
		m(&f.opts)
	}
	f.restart()
	return f
}

// restart makes a new injector over the same state, as after an agent restart.
func (f *fixture) restart() {
	f.t.Helper()
	in, err := New(f.opts)
	if err != nil {
		f.t.Fatal(err)
	}
	f.in = in
}

func (f *fixture) apply(ss ...secrets.Secret) injectors.Result {
	f.t.Helper()
	res := f.in.Apply(context.Background(), ss)
	if res.Err != nil {
		f.t.Fatalf("Apply: %v", res.Err)
	}
	return res
}

func (f *fixture) path(rel string) string { return filepath.Join(f.home, rel) }

// sec is a file secret; its session follows its value, as the control
// plane's does.
func sec(id, target, value string) secrets.Secret {
	return secrets.Secret{
		ID: id, Name: "NAME_" + id, Scope: secrets.ScopeUser, Session: "session-of-" + value,
		Mount: secrets.Mount{Kind: secrets.MountFile, Target: target}, Value: secrets.Value(value),
	}
}

// outcomeFor returns the outcome for target, failing the test without one.
func outcomeFor(t testing.TB, res injectors.Result, target string) injectors.Outcome {
	t.Helper()
	for _, o := range res.Outcomes {
		if o.Target == target {
			return o
		}
	}
	t.Fatalf("no outcome for %s in %+v", target, res.Outcomes)
	return injectors.Outcome{}
}

func wantAction(t testing.TB, res injectors.Result, target string, want injectors.Action) injectors.Outcome {
	t.Helper()
	o := outcomeFor(t, res, target)
	if o.Action != want {
		t.Errorf("%s: action %s (err %v, note %q), want %s", target, o.Action, o.Err, o.Note, want)
	}
	return o
}

func wantFile(t testing.TB, p, content string, mode fs.FileMode) {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm() != mode {
		t.Errorf("%s: mode %v, want regular %v", p, fi.Mode(), mode)
	}
	if b, _ := os.ReadFile(p); string(b) != content {
		t.Errorf("%s: content %q, want %q", p, b, content)
	}
}

func wantGone(t testing.TB, p string) {
	t.Helper()
	if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s: still there (%v)", p, err)
	}
}

func stat(t testing.TB, p string) *syscall.Stat_t {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t)
}

// TestCreatesFile0600FromTheFirstInstant checks the final file and the
// parents created for it under umask 0 and 022. That the file is never
// wider "from the first instant" holds by construction: atomicfile creates
// the temp file O_EXCL with mode 0600 (a umask can only narrow it), fchmods
// it to the mode before writing a byte, and renames it into place, so no
// name ever points at a wider file with the value in it. atomicfile's
// TestTempFileHasFinalModeBeforeRename observes the temp file between write
// and rename to prove it.
func TestCreatesFile0600FromTheFirstInstant(t *testing.T) {
	for _, umask := range []int{0, 0o022} {
		t.Run(fmt.Sprintf("umask %03o", umask), func(t *testing.T) {
			f := newFixture(t) // before the umask: a temp dir others may write is no place for a root
			old := syscall.Umask(umask)
			t.Cleanup(func() { syscall.Umask(old) })
			target := f.path(".config/app/token")
			res := f.apply(sec("s1", target, "v1"))
			wantAction(t, res, target, injectors.Created)
			wantFile(t, target, "v1", 0o600)
			for _, d := range []string{".config", ".config/app"} {
				if fi, err := os.Stat(f.path(d)); err != nil || fi.Mode().Perm() != 0o700 {
					t.Errorf("%s: %v %v, want a 0700 directory", d, fi.Mode(), err)
				}
			}
			if fi, err := os.Stat(filepath.Join(f.state, manifestName)); err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("manifest: %v, want 0600", err)
			}
		})
	}
}

func TestMode0400(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.Mode = 0o400 })
	target := f.path("key")
	wantAction(t, f.apply(sec("s1", target, "v1")), target, injectors.Created)
	wantFile(t, target, "v1", 0o400)
	res := f.apply(sec("s1", target, "v1"))
	wantAction(t, res, target, injectors.Unchanged)
	if res.Writes != 0 {
		t.Errorf("second apply wrote %d times", res.Writes)
	}
	wantAction(t, f.apply(sec("s1", target, "v2")), target, injectors.Updated)
	wantFile(t, target, "v2", 0o400)
}

func TestNewRejectsUnsafeOptions(t *testing.T) {
	dir := t.TempDir()
	corrupt := filepath.Join(dir, "corrupt")
	if err := os.MkdirAll(corrupt, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(corrupt, manifestName), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := Options{AllowedRoots: []string{dir}, StateDir: dir}
	for name, tc := range map[string]struct {
		mutate func(*Options)
		want   string
	}{
		"mode 0644":        {func(o *Options) { o.Mode = 0o644 }, "wider than 0600"},
		"mode 0700":        {func(o *Options) { o.Mode = 0o700 }, "wider than 0600"},
		"mode 0200":        {func(o *Options) { o.Mode = 0o200 }, "read"},
		"setuid":           {func(o *Options) { o.Mode = 0o600 | fs.ModeSetuid }, "wider than 0600"},
		"no roots":         {func(o *Options) { o.AllowedRoots = nil }, "no allowed roots"},
		"relative root":    {func(o *Options) { o.AllowedRoots = []string{"~/x"} }, "not an absolute path"},
		"relative state":   {func(o *Options) { o.StateDir = "state" }, "not an absolute path"},
		"corrupt manifest": {func(o *Options) { o.StateDir = corrupt }, manifestName},
	} {
		t.Run(name, func(t *testing.T) {
			o := good
			tc.mutate(&o)
			_, err := New(o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New: %v, want an error containing %q", err, tc.want)
			}
		})
	}
	if _, err := New(good); err != nil {
		t.Errorf("New with good options: %v", err)
	}
}

func TestOwnedByEnvironmentUser(t *testing.T) {
	testutil.NeedRoot(t, "chown files to another user")
	uid, gid := testutil.Nobody(t)
	f := newFixture(t, func(o *Options) { o.Owner = injectors.Owner{UID: uid, GID: gid} })
	target := f.path(".ssh/keys/id")
	wantAction(t, f.apply(sec("s1", target, "v1")), target, injectors.Created)
	for _, p := range []string{".ssh", ".ssh/keys", ".ssh/keys/id"} {
		if st := stat(t, f.path(p)); int(st.Uid) != uid || int(st.Gid) != gid {
			t.Errorf("%s owned by %d:%d, want %d:%d", p, st.Uid, st.Gid, uid, gid)
		}
	}
	if st := stat(t, f.home); int(st.Uid) != os.Geteuid() {
		t.Errorf("the home (not created by the injector) was chowned to %d", st.Uid)
	}
	// Someone chowns it back to root: repaired.
	if err := os.Chown(target, 0, 0); err != nil {
		t.Fatal(err)
	}
	wantAction(t, f.apply(sec("s1", target, "v1")), target, injectors.Repaired)
	if st := stat(t, target); int(st.Uid) != uid {
		t.Errorf("owner not repaired: %d", st.Uid)
	}
}

func TestUnchangedSecondApplyWritesNothing(t *testing.T) {
	f := newFixture(t)
	ss := []secrets.Secret{
		sec("a", f.path("a"), "va"),
		sec("b", f.path("d1/d2/b"), "vb"),
		sec("c", f.path("d1/c"), ""),
	}
	first := f.apply(ss...)
	if first.Writes == 0 {
		t.Fatal("first apply wrote nothing")
	}
	manifest := filepath.Join(f.state, manifestName)
	before, mBefore := stat(t, f.path("d1/d2/b")), stat(t, manifest)
	for i, in := range []string{"same injector", "after a restart"} {
		if i == 1 {
			f.restart()
		}
		res := f.apply(ss...)
		if res.Writes != 0 {
			t.Errorf("%s: second apply wrote %d times", in, res.Writes)
		}
		for _, s := range ss {
			wantAction(t, res, s.Mount.Target, injectors.Unchanged)
		}
		if len(res.Paths) != 3 {
			t.Errorf("%s: Paths = %v, want the 3 managed paths", in, res.Paths)
		}
	}
	after, mAfter := stat(t, f.path("d1/d2/b")), stat(t, manifest)
	if before.Ino != after.Ino || before.Ctim != after.Ctim || mBefore.Ino != mAfter.Ino || mBefore.Mtim != mAfter.Mtim {
		t.Error("an unchanged apply touched a file or the manifest")
	}
}

// entriesNamed returns the entries of dir whose names contain s.
func entriesNamed(t *testing.T, dir, s string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if strings.Contains(e.Name(), s) {
			out = append(out, e.Name())
		}
	}
	return out
}

// TestSymlinkOutsideRootFailsAndWritesNothingOutside plants symlinks in the
// home that lead out of it: to a directory standing for /etc, to /etc
// itself, and through "..". The agent runs as root here, so only os.Root
// stands between the write and the outside.
func TestSymlinkOutsideRootFailsAndWritesNothingOutside(t *testing.T) {
	f := newFixture(t)
	fakeEtc := filepath.Join(f.base, "etc")
	if err := os.Mkdir(fakeEtc, 0o755); err != nil {
		t.Fatal(err)
	}
	unique := fmt.Sprintf("secrets-agent-test-%d", os.Getpid())
	links := map[string]string{
		".ssh":     fakeEtc,
		".ssh2":    "/etc",
		".rel":     "../etc",
		".deep":    "a/../../etc", // "a" need not exist
		".config":  "/",
		".viaroot": "/etc/..",
	}
	for name, to := range links {
		if err := os.Symlink(to, f.path(name)); err != nil {
			t.Fatal(err)
		}
	}
	var ss []secrets.Secret
	for name := range links {
		ss = append(ss, sec(name, f.path(name+"/"+unique), "secret"), sec(name+"/d", f.path(name+"/"+unique+"-dir/x"), "secret"))
	}
	ss = append(ss, sec("good", f.path("good"), "v"))
	res := f.apply(ss...)
	for _, s := range ss[:len(ss)-1] {
		o := wantAction(t, res, s.Mount.Target, injectors.Failed)
		if o.Err == nil || !strings.Contains(o.Err.Error(), s.Mount.Target) {
			t.Errorf("%s: error %v does not name the path", s.Mount.Target, o.Err)
		}
	}
	wantAction(t, res, f.path("good"), injectors.Created)
	if got := entriesNamed(t, fakeEtc, ""); len(got) != 0 {
		t.Errorf("written outside the root into the stand-in for /etc: %v", got)
	}
	for _, dir := range []string{"/etc", "/", f.base} {
		if got := entriesNamed(t, dir, unique); len(got) != 0 {
			t.Errorf("written outside the root into %s: %v", dir, got)
		}
	}
	// The symlinks are still symlinks (nothing was replaced), and they
	// count as neither managed paths nor dirs we created.
	for name := range links {
		if fi, err := os.Lstat(f.path(name)); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			t.Errorf("%s is no longer a symlink", name)
		}
	}
	if len(res.Paths) != 1 {
		t.Errorf("Paths = %v, want only the good one", res.Paths)
	}
}

func TestRefusesDirectoryDeviceSymlinkTargets(t *testing.T) {
	f := newFixture(t)
	if err := os.WriteFile(f.path("real"), []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		make func(p string) error
		want string
	}{
		"dir":     {func(p string) error { return os.Mkdir(p, 0o700) }, "a directory"},
		"symlink": {func(p string) error { return os.Symlink("real", p) }, "a symlink"},
		"dangling": {func(p string) error {
			return os.Symlink(filepath.Join(f.base, "nowhere"), p)
		}, "a symlink"},
		"fifo": {func(p string) error { return syscall.Mkfifo(p, 0o600) }, "a FIFO"},
		"socket": {func(p string) error {
			l, err := net.Listen("unix", p)
			if err == nil {
				t.Cleanup(func() { l.Close() })
			}
			return err
		}, "a socket"},
	}
	if os.Geteuid() == 0 {
		cases["device"] = struct {
			make func(p string) error
			want string
		}{func(p string) error { return syscall.Mknod(p, syscall.S_IFCHR|0o600, 1<<8|3) }, "a device"}
	}
	var ss []secrets.Secret
	for name, tc := range cases {
		if err := tc.make(f.path(name)); err != nil {
			t.Fatal(err)
		}
		ss = append(ss, sec(name, f.path(name), "secret"))
	}
	res := f.apply(ss...)
	for name, tc := range cases {
		o := wantAction(t, res, f.path(name), injectors.Failed)
		if o.Err == nil || !strings.Contains(o.Err.Error(), f.path(name)) || !strings.Contains(o.Err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one naming the path and %q", name, o.Err, tc.want)
		}
		if _, err := os.Lstat(f.path(name) + OrigSuffix); err == nil {
			t.Errorf("%s was moved aside", name)
		}
	}
	wantFile(t, f.path("real"), "keep", 0o644)
	wantGone(t, filepath.Join(f.base, "nowhere"))
	if len(res.Paths) != 0 {
		t.Errorf("Paths = %v, want none", res.Paths)
	}
}

func TestPreexistingFileKeptAsideAndRestored(t *testing.T) {
	f := newFixture(t)
	target := f.path(".npmrc")
	if err := os.WriteFile(target, []byte("mine"), 0o640); err != nil {
		t.Fatal(err)
	}
	o := wantAction(t, f.apply(sec("s1", target, "secret")), target, injectors.Created)
	if !strings.Contains(o.Note, OrigSuffix) {
		t.Errorf("note %q does not say the file was kept aside", o.Note)
	}
	wantFile(t, target, "secret", 0o600)
	wantFile(t, target+OrigSuffix, "mine", 0o640)

	// Updating the value keeps the original aside, untouched.
	f.restart()
	wantAction(t, f.apply(sec("s1", target, "secret2")), target, injectors.Updated)
	wantFile(t, target+OrigSuffix, "mine", 0o640)

	res := f.apply()
	wantAction(t, res, target, injectors.Restored)
	wantFile(t, target, "mine", 0o640)
	wantGone(t, target+OrigSuffix)
	if len(res.Paths) != 0 {
		t.Errorf("Paths = %v after removal", res.Paths)
	}
}

func TestForeignOrigFileFailsTheSecret(t *testing.T) {
	f := newFixture(t)
	target := f.path(".npmrc")
	for p, content := range map[string]string{target: "mine", target + OrigSuffix: "older"} {
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	o := wantAction(t, f.apply(sec("s1", target, "secret")), target, injectors.Failed)
	if o.Err == nil || !strings.Contains(o.Err.Error(), OrigSuffix) {
		t.Errorf("error %v does not name the kept-aside file", o.Err)
	}
	wantFile(t, target, "mine", 0o644)
	wantFile(t, target+OrigSuffix, "older", 0o644)
}

func TestRemovedSecretDeletesOnlyItsFile(t *testing.T) {
	f := newFixture(t)
	if err := os.Mkdir(f.path("existing"), 0o755); err != nil {
		t.Fatal(err)
	}
	a, b := f.path("new/sub/a"), f.path("new/sub/b")
	c := f.path("existing/deep/c")
	edited, swapped, linked := f.path("edited"), f.path("swapped"), f.path("linked")
	all := []secrets.Secret{sec("a", a, "va"), sec("b", b, "vb"), sec("c", c, "vc"),
		sec("e", edited, "ve"), sec("s", swapped, "vs"), sec("l", linked, "vl")}
	f.apply(all...)
	if err := os.WriteFile(f.path("new/users-file"), []byte("u"), 0o600); err != nil {
		t.Fatal(err)
	}

	// Removing a deletes only a; its dir still holds b.
	res := f.apply(all[1:]...)
	wantAction(t, res, a, injectors.Removed)
	wantGone(t, a)
	wantFile(t, b, "vb", 0o600)

	// Removing b empties new/sub (ours: removed) but not new (a user's file
	// is in it); removing c removes existing/deep (ours) but not existing.
	res = f.apply(all[3:]...)
	wantAction(t, res, b, injectors.Removed)
	wantAction(t, res, c, injectors.Removed)
	wantGone(t, f.path("new/sub"))
	wantGone(t, f.path("existing/deep"))
	wantFile(t, f.path("new/users-file"), "u", 0o600)
	if fi, err := os.Stat(f.path("existing")); err != nil || !fi.IsDir() {
		t.Error("a directory the injector did not create was removed")
	}

	// Files the user replaced since the agent wrote them are left in place.
	if err := os.WriteFile(edited, []byte("user edit"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(swapped); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(swapped, []byte("ve"), 0o600); err != nil { // same bytes, another inode
		t.Fatal(err)
	}
	if err := os.Remove(linked); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(f.path("new/users-file"), linked); err != nil {
		t.Fatal(err)
	}
	res = f.apply()
	for _, p := range []string{edited, swapped, linked} {
		if o := wantAction(t, res, p, injectors.Removed); !strings.Contains(o.Note, "left in place") {
			t.Errorf("%s: note %q, want it to say the file was left in place", p, o.Note)
		}
	}
	wantFile(t, edited, "user edit", 0o600)
	wantFile(t, swapped, "ve", 0o600)
	if fi, err := os.Lstat(linked); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Error("the user's symlink was removed")
	}
	wantFile(t, f.path("new/users-file"), "u", 0o600)
	if len(res.Paths) != 0 {
		t.Errorf("Paths = %v, want none", res.Paths)
	}
	// The user's file goes: the now-empty dir we created goes on the next pass.
	if err := os.Remove(f.path("new/users-file")); err != nil {
		t.Fatal(err)
	}
	if res := f.apply(); res.Writes != 1 {
		t.Errorf("writes = %d, want 1 (rmdir)", res.Writes)
	}
	wantGone(t, f.path("new"))
}

func TestPathOutsideAllowedRootsFails(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.AllowedRoots = append(o.AllowedRoots, "/run/secrets-test-root/") })
	for _, target := range []string{
		filepath.Join(f.base, "elsewhere/x"),
		f.home + "2/x", // shares home's prefix, is not below it
		f.home,         // the root itself
		"/etc/x",
	} {
		o := wantAction(t, f.apply(sec("s", target, "v")), target, injectors.Failed)
		if o.Err == nil || !strings.Contains(o.Err.Error(), target) || !strings.Contains(o.Err.Error(), f.home) ||
			!strings.Contains(o.Err.Error(), "/run/secrets-test-root") {
			t.Errorf("%s: error %v, want it to name the path and every allowed root", target, o.Err)
		}
	}
	for _, target := range []string{"relative/x", f.home + "/a/../x", f.home + "//x"} {
		wantAction(t, f.apply(sec("s", target, "v")), target, injectors.Failed)
	}
	wantGone(t, filepath.Join(f.base, "elsewhere"))
	wantGone(t, f.home+"2")
}

// TestLongestAllowedRootWins: with the home and a directory inside it both
// allowed, a symlink in the inner root that leads back up into the home is
// confined to the inner root.
func TestLongestAllowedRootWins(t *testing.T) {
	f := newFixture(t)
	inner := f.path("run/secrets")
	if err := os.MkdirAll(inner, 0o700); err != nil {
		t.Fatal(err)
	}
	f.opts.AllowedRoots = []string{f.home, inner}
	f.restart()
	if err := os.Symlink("..", filepath.Join(inner, "up")); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(inner, "up/x")
	wantAction(t, f.apply(sec("s", target, "v")), target, injectors.Failed)
	wantGone(t, f.path("run/x"))
}

func TestOneBadSecretDoesNotStopOthers(t *testing.T) {
	f := newFixture(t)
	if err := os.Mkdir(f.path("dir"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.path("file"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ss := []secrets.Secret{
		sec("ok1", f.path("ok1"), "v1"),
		sec("outside", "/elsewhere/x", "v"),
		sec("dir", f.path("dir"), "v"),
		sec("parent-is-file", f.path("file/x"), "v"),
		sec("dup", f.path("ok1"), "v"),
		{ID: "env", Mount: secrets.Mount{Kind: secrets.MountEnv, Target: "X"}},
		sec("ok2", f.path("sub/ok2"), "v2"),
	}
	res := f.in.Apply(context.Background(), ss)
	if res.Err != nil {
		t.Fatalf("injector error: %v", res.Err)
	}
	if len(res.Outcomes) != len(ss) || len(res.Failed()) != 5 {
		t.Errorf("%d outcomes, %d failed; want %d and 5", len(res.Outcomes), len(res.Failed()), len(ss))
	}
	wantFile(t, f.path("ok1"), "v1", 0o600)
	wantFile(t, f.path("sub/ok2"), "v2", 0o600)
	for _, o := range res.Failed() {
		if o.Err == nil {
			t.Errorf("%s failed without an error", o.Target)
		}
	}
}

func TestRepairsChmodAndDeletion(t *testing.T) {
	f := newFixture(t)
	target := f.path("d/token")
	s := sec("s1", target, "v1")
	f.apply(s)
	steps := []struct {
		name   string
		drift  func() error
		want   injectors.Action
		secret secrets.Secret
	}{
		{"chmod 0644", func() error { return os.Chmod(target, 0o644) }, injectors.Repaired, s},
		{"deleted", func() error { return os.Remove(target) }, injectors.Repaired, s},
		{"parent deleted", func() error { return os.RemoveAll(f.path("d")) }, injectors.Repaired, s},
		{"edited", func() error { return os.WriteFile(target, []byte("user"), 0o600) }, injectors.Repaired, s},
		{"value changed", func() error { return nil }, injectors.Updated, sec("s1", target, "v2")},
	}
	for _, st := range steps {
		if err := st.drift(); err != nil {
			t.Fatal(err)
		}
		res := f.apply(st.secret)
		wantAction(t, res, target, st.want)
		if res.Writes == 0 {
			t.Errorf("%s: no write counted", st.name)
		}
		wantFile(t, target, string(st.secret.Value), 0o600)
		if fi, err := os.Stat(f.path("d")); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: parent not 0700", st.name)
		}
	}
}

func TestCleansStaleTempFiles(t *testing.T) {
	f := newFixture(t)
	managed, gone, dropped := f.path("a/managed"), f.path("a/gone"), f.path("b/dropped")
	f.apply(sec("m", managed, "vm"), sec("g", gone, "vg"), sec("d", dropped, "vd"))

	// A crash: temp files left beside a managed path and beside a path the
	// next apply will create; two managed files vanished while the agent was
	// down, one of them still desired.
	fresh := f.path("a/fresh")
	stale := []string{atomicfile.TempName("a/managed"), atomicfile.TempName("a/managed"), atomicfile.TempName("a/fresh")}
	for _, s := range stale {
		if err := os.WriteFile(f.path(s), []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{gone, dropped} {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	f.restart()
	res := f.apply(sec("m", managed, "vm"), sec("g", gone, "vg"), sec("f", fresh, "vf"))
	for _, s := range stale {
		wantGone(t, f.path(s))
	}
	wantAction(t, res, managed, injectors.Unchanged)
	wantAction(t, res, gone, injectors.Repaired)
	wantAction(t, res, fresh, injectors.Created)
	wantAction(t, res, dropped, injectors.Removed)
	wantGone(t, f.path("b"))
	// 3 temps + recreate gone + create fresh + rmdir b.
	if res.Writes != 6 {
		t.Errorf("writes = %d, want 6", res.Writes)
	}
	if want := []string{fresh, gone, managed}; strings.Join(res.Paths, " ") != strings.Join(want, " ") {
		t.Errorf("Paths = %v, want %v", res.Paths, want)
	}
}

func TestManifestHoldsNoValue(t *testing.T) {
	f := newFixture(t)
	values := []string{"correct-horse-battery-staple", "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n"}
	f.apply(sec("a", f.path("a"), values[0]), sec("b", f.path("b"), values[1]))
	b, err := os.ReadFile(filepath.Join(f.state, manifestName))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range values {
		sum := sha256.Sum256([]byte(v))
		for _, leak := range []string{v, hex.EncodeToString(sum[:]), "session-of-" + v} {
			if bytes.Contains(b, []byte(leak)) {
				t.Errorf("manifest holds %q", leak)
			}
		}
	}
	if !bytes.Contains(b, []byte(f.path("a"))) {
		t.Errorf("manifest does not name the managed path:\n%s", b)
	}
}

func TestMountPointRewrittenInPlace(t *testing.T) {
	testutil.NeedRoot(t, "bind-mount a file")
	f := newFixture(t)
	src := filepath.Join(f.base, "mounted-source")
	target := f.path(".config/creds")
	if err := os.WriteFile(src, []byte("placeholder"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(target, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount(src, target, "", syscall.MS_BIND, ""); err != nil {
		t.Skipf("skipping: mounting is not permitted in this sandbox: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(target, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", target, err)
		}
	})

	o := wantAction(t, f.apply(sec("s", target, "v1")), target, injectors.Created)
	if !strings.Contains(o.Note, NoteInPlace) {
		t.Errorf("note %q, want %q", o.Note, NoteInPlace)
	}
	wantFile(t, src, "v1", 0o600) // the mounted file itself holds the value
	wantGone(t, target+OrigSuffix)
	if got := entriesNamed(t, filepath.Dir(target), ".secrets-agent-tmp-"); len(got) != 0 {
		t.Errorf("temp files left: %v", got)
	}

	res := f.apply(sec("s", target, "v1"))
	wantAction(t, res, target, injectors.Unchanged)
	if res.Writes != 0 {
		t.Errorf("unchanged apply wrote %d times", res.Writes)
	}

	o = wantAction(t, f.apply(sec("s", target, "value two")), target, injectors.Updated)
	if !strings.Contains(o.Note, NoteInPlace) {
		t.Errorf("note %q, want %q", o.Note, NoteInPlace)
	}
	wantFile(t, src, "value two", 0o600)

	o = wantAction(t, f.apply(), target, injectors.Removed)
	if !strings.Contains(o.Note, NoteEmptied) {
		t.Errorf("note %q, want %q", o.Note, NoteEmptied)
	}
	wantFile(t, src, "", 0o600) // the value does not outlive its secret
}

func TestSSHKeygenAcceptsPrivateKeySecret(t *testing.T) {
	keygen := testutil.NeedTool(t, "ssh-keygen")
	dir := t.TempDir()
	key := filepath.Join(dir, "key")
	if out, err := exec.Command(keygen, "-q", "-t", "ed25519", "-N", "", "-C", "test", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	priv, err := os.ReadFile(key)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t)
	target := f.path(".ssh/id_ed25519")
	wantAction(t, f.apply(sec("k", target, string(priv))), target, injectors.Created)
	out, err := exec.Command(keygen, "-y", "-f", target).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen -y rejected the key file: %v\n%s", err, out)
	}
	// ssh-keygen -y prints "type base64 comment"; compare type and key.
	got, want := strings.Fields(string(out)), strings.Fields(string(pub))
	if len(got) < 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("public key from the secret file differs:\n got %q\nwant %q", out, pub)
	}
}

// BenchmarkApply250Files is a cold apply of 250 file secrets, spread over
// 25 directories, into a fresh temp home each iteration.
func BenchmarkApply250Files(b *testing.B) {
	base := b.TempDir()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		home := filepath.Join(base, strconv.Itoa(i), "home")
		if err := os.MkdirAll(home, 0o755); err != nil {
			b.Fatal(err)
		}
		in, err := New(Options{AllowedRoots: []string{home}, Owner: injectors.Owner{UID: -1, GID: -1}, StateDir: filepath.Join(base, strconv.Itoa(i), "state")})
		if err != nil {
			b.Fatal(err)
		}
		ss := make([]secrets.Secret, 250)
		for j := range ss {
			ss[j] = sec(strconv.Itoa(j), fmt.Sprintf("%s/dir%02d/secret%03d", home, j%25, j), strings.Repeat("x", 200)+strconv.Itoa(j))
		}
		b.StartTimer()
		res := in.Apply(context.Background(), ss)
		if res.Err != nil || len(res.Failed()) != 0 {
			b.Fatalf("apply: %v %v", res.Err, res.Failed())
		}
	}
}

// TestCancelledApplyRemovesNothing: a pass cut short by its context fails
// what it did not apply and removes nothing, so a shutdown mid-pass never
// wipes files.
func TestCancelledApplyRemovesNothing(t *testing.T) {
	f := newFixture(t)
	kept := f.path("kept")
	f.apply(sec("k", kept, "v"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res := f.in.Apply(ctx, []secrets.Secret{sec("n", f.path("new"), "v")})
	if res.Err == nil || !errors.Is(res.Err, context.Canceled) {
		t.Errorf("Err = %v, want context.Canceled", res.Err)
	}
	wantAction(t, res, f.path("new"), injectors.Failed)
	wantFile(t, kept, "v", 0o600)
	wantGone(t, f.path("new"))
	if len(res.Paths) != 1 || res.Paths[0] != kept {
		t.Errorf("Paths = %v, want [%s]", res.Paths, kept)
	}
}
