package dirs

import (
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"github.com/secrets-agent/secrets-agent/internal/testutil"
)

// setUmask sets the process umask for one test and puts the old one back.
// Tests that call it must not run in parallel.
func setUmask(t *testing.T, mask int) {
	t.Helper()
	old := syscall.Umask(mask)
	t.Cleanup(func() { syscall.Umask(old) })
}

func TestMkdirAllCreatesExactModeAndOwner(t *testing.T) {
	setUmask(t, 0o022)
	dir := t.TempDir()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	stat := func(p string) (os.FileInfo, *syscall.Stat_t) {
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		return fi, fi.Sys().(*syscall.Stat_t)
	}
	if err := os.Mkdir(filepath.Join(dir, "a"), 0o755); err != nil {
		t.Fatal(err)
	}
	uid, gid := -1, -1
	if os.Geteuid() == 0 {
		uid, gid = testutil.Nobody(t)
	}
	created, err := MkdirAll(root, "a/b/c", 0o700, uid, gid)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a/b", "a/b/c"}; !slices.Equal(created, want) {
		t.Errorf("created = %v, want %v", created, want)
	}
	for _, d := range created {
		fi, st := stat(filepath.Join(dir, d))
		if fi.Mode().Perm() != 0o700 {
			t.Errorf("%s mode = %v, want 0700", d, fi.Mode().Perm())
		}
		if uid >= 0 && (int(st.Uid) != uid || int(st.Gid) != gid) {
			t.Errorf("%s owned by %d:%d, want %d:%d", d, st.Uid, st.Gid, uid, gid)
		}
	}
	if fi, st := stat(filepath.Join(dir, "a")); fi.Mode().Perm() != 0o755 || int(st.Uid) != os.Geteuid() {
		t.Error("existing directory a was changed")
	}
	if created, err := MkdirAll(root, "a/b/c", 0o700, uid, gid); err != nil || len(created) != 0 {
		t.Errorf("second MkdirAll = %v, %v; want nothing created", created, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "file"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := MkdirAll(root, "file/x", 0o700, -1, -1); err == nil {
		t.Error("MkdirAll through a regular file succeeded")
	}
}

func TestOpenCreatesMissingDirsWithModeAndOpensExisting(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "a", "b")
	r, err := Open(dir, 0o700, -1, -1)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	for _, d := range []string{filepath.Join(base, "a"), dir} {
		fi, err := os.Stat(d)
		if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
			t.Fatalf("%s: %v %v, want a 0700 directory", d, fi.Mode(), err)
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	r, err = Open(dir, 0o700, -1, -1)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o755 {
		t.Fatalf("an existing dir was changed to %v", fi.Mode())
	}
}
