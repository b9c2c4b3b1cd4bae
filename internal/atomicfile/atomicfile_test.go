package atomicfile

import (
	"bytes"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/secrets-agent/secrets-agent/internal/dirs"
)

// openRoot returns a fresh directory and an *os.Root opened on it.
func openRoot(t *testing.T) (string, *os.Root) {
	t.Helper()
	dir := t.TempDir()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	return dir, root
}

// setUmask sets the process umask for one test and puts the old one back.
// Tests that call it must not run in parallel.
func setUmask(t *testing.T, mask int) {
	t.Helper()
	old := syscall.Umask(mask)
	t.Cleanup(func() { syscall.Umask(old) })
}

func statT(t *testing.T, p string) (fs.FileInfo, *syscall.Stat_t) {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi, fi.Sys().(*syscall.Stat_t)
}

// TestTempFileHasFinalModeBeforeRename looks at the temp file between its
// write and its rename: it already has exactly the requested mode (never the
// umask's 0644 or 0666), and it holds the full content.
func TestTempFileHasFinalModeBeforeRename(t *testing.T) {
	for _, tc := range []struct {
		umask int
		mode  fs.FileMode
	}{{0, 0o600}, {0o022, 0o600}, {0, 0o400}, {0o022, 0o400}} {
		t.Run(strconv.FormatInt(int64(tc.umask), 8)+"_"+tc.mode.String(), func(t *testing.T) {
			setUmask(t, tc.umask)
			dir, root := openRoot(t)
			var seen []fs.FileMode
			testHookBeforeRename = func(r *os.Root, tmp string) {
				fi, err := r.Lstat(tmp)
				if err != nil {
					t.Errorf("lstat temp: %v", err)
					return
				}
				seen = append(seen, fi.Mode().Perm())
			}
			t.Cleanup(func() { testHookBeforeRename = nil })
			for _, data := range []string{"first", "second value"} {
				if _, err := Write(root, "f", []byte(data), Options{Mode: tc.mode, UID: -1, GID: -1}); err != nil {
					t.Fatal(err)
				}
			}
			if len(seen) != 2 || seen[0] != tc.mode || seen[1] != tc.mode {
				t.Errorf("temp file modes = %v, want %v twice", seen, tc.mode)
			}
			if fi, _ := statT(t, filepath.Join(dir, "f")); fi.Mode().Perm() != tc.mode {
				t.Errorf("file mode = %v, want %v", fi.Mode().Perm(), tc.mode)
			}
		})
	}
}

func TestUnchangedContentIsNotWritten(t *testing.T) {
	dir, root := openRoot(t)
	opts := Options{Mode: 0o600, UID: -1, GID: -1}
	if out, err := Write(root, "f", []byte("v"), opts); err != nil || out != Written {
		t.Fatalf("first write = %v, %v; want written", out, err)
	}
	_, before := statT(t, filepath.Join(dir, "f"))
	out, err := Write(root, "f", []byte("v"), opts)
	if err != nil || out != Unchanged {
		t.Fatalf("second write = %v, %v; want unchanged", out, err)
	}
	_, after := statT(t, filepath.Join(dir, "f"))
	if before.Ino != after.Ino || before.Mtim != after.Mtim || before.Ctim != after.Ctim {
		t.Error("unchanged write touched the file")
	}
}

func TestMetadataDriftIsFixedOnTheSameFile(t *testing.T) {
	dir, root := openRoot(t)
	p := filepath.Join(dir, "f")
	opts := Options{Mode: 0o600, UID: -1, GID: -1}
	if _, err := Write(root, "f", []byte("v"), opts); err != nil {
		t.Fatal(err)
	}
	_, before := statT(t, p)
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := Write(root, "f", []byte("v"), opts)
	if err != nil || out != MetadataFixed {
		t.Fatalf("write = %v, %v; want metadata fixed", out, err)
	}
	fi, after := statT(t, p)
	if fi.Mode().Perm() != 0o600 || before.Ino != after.Ino {
		t.Errorf("mode %v ino changed %v; want 0600 on the same inode", fi.Mode().Perm(), before.Ino != after.Ino)
	}
}

// TestHardLinkedTargetIsReplacedNotChmodded: a hard link planted at the
// target to a file outside the root, with the secret's content, must not get
// that outside file chmod'ed or chowned; the link is replaced instead.
func TestHardLinkedTargetIsReplacedNotChmodded(t *testing.T) {
	dir, root := openRoot(t)
	outside := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(outside, []byte("v"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(outside, filepath.Join(dir, "f")); err != nil {
		t.Skipf("cannot hard link across temp dirs: %v", err)
	}
	out, err := Write(root, "f", []byte("v"), Options{Mode: 0o600, UID: -1, GID: -1})
	if err != nil || out != Written {
		t.Fatalf("write = %v, %v; want written (replaced)", out, err)
	}
	if fi, _ := statT(t, outside); fi.Mode().Perm() != 0o644 {
		t.Errorf("outside file mode changed to %v", fi.Mode().Perm())
	}
}

func TestRefusesNonRegularTargets(t *testing.T) {
	dir, root := openRoot(t)
	if err := os.WriteFile(filepath.Join(dir, "real"), []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	makers := map[string]func(p string) error{
		"directory": func(p string) error { return os.Mkdir(p, 0o700) },
		"symlink":   func(p string) error { return os.Symlink("real", p) },
		"fifo":      func(p string) error { return syscall.Mkfifo(p, 0o600) },
		"socket": func(p string) error {
			l, err := net.Listen("unix", p)
			if err == nil {
				t.Cleanup(func() { l.Close() })
			}
			return err
		},
		"device": func(p string) error {
			if os.Geteuid() != 0 {
				t.Skip("skipping device: needs root to mknod")
			}
			return syscall.Mknod(p, syscall.S_IFCHR|0o600, 1<<8|3) // like /dev/null
		},
	}
	for kind, mk := range makers {
		t.Run(kind, func(t *testing.T) {
			p := filepath.Join(dir, kind)
			if err := mk(p); err != nil {
				t.Fatal(err)
			}
			before, _ := statT(t, p)
			_, err := Write(root, kind, []byte("secret"), Options{Mode: 0o600, UID: -1, GID: -1})
			if !errors.Is(err, ErrNotRegular) {
				t.Fatalf("err = %v, want ErrNotRegular", err)
			}
			after, _ := statT(t, p)
			if before.Mode() != after.Mode() {
				t.Errorf("target changed from %v to %v", before.Mode(), after.Mode())
			}
		})
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "real")); string(b) != "keep" {
		t.Error("the symlink's target was written through")
	}
}

// TestConcurrentReaderNeverSeesPartialContent rewrites a file many times
// while another goroutine reads it as fast as it can: every read must be one
// of the complete contents.
func TestConcurrentReaderNeverSeesPartialContent(t *testing.T) {
	dir, root := openRoot(t)
	contents := [][]byte{
		bytes.Repeat([]byte("a"), 64<<10),
		bytes.Repeat([]byte("bc"), 40<<10),
		[]byte("short"),
	}
	opts := Options{Mode: 0o600, UID: -1, GID: -1}
	if _, err := Write(root, "f", contents[0], opts); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	var reads, bad int
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			b, err := os.ReadFile(filepath.Join(dir, "f"))
			reads++
			if err != nil || !slices.ContainsFunc(contents, func(c []byte) bool { return bytes.Equal(b, c) }) {
				bad++
			}
		}
	}()
	for i := range 150 {
		if _, err := Write(root, "f", contents[(i+1)%len(contents)], opts); err != nil {
			t.Error(err)
			break
		}
	}
	close(done)
	wg.Wait()
	if bad > 0 {
		t.Errorf("%d of %d reads saw a missing or partial file", bad, reads)
	}
}

func TestCleanTempsRemovesOnlyThatFilesTemps(t *testing.T) {
	dir, root := openRoot(t)
	if err := os.Mkdir(filepath.Join(dir, "d"), 0o700); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("k", 250)
	mine := []string{TempName("d/f"), TempName("d/f"), TempName("d/" + long)}
	others := []string{TempName("d/g"), "d/f", "d/.f", "d/f.secrets-agent-tmp-x"}
	for _, n := range append(slices.Clone(mine), others...) {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// A directory with a temp-like name is not ours to remove.
	if err := os.Mkdir(filepath.Join(dir, TempName("d/f")), 0o700); err != nil {
		t.Fatal(err)
	}
	n, err := CleanTemps(root, "d/f")
	if err != nil || n != 2 {
		t.Errorf("CleanTemps(d/f) = %d, %v; want 2", n, err)
	}
	if n, err := CleanTemps(root, "d/"+long); err != nil || n != 1 {
		t.Errorf("CleanTemps(long name) = %d, %v; want 1", n, err)
	}
	for _, o := range others {
		if _, err := os.Lstat(filepath.Join(dir, o)); err != nil {
			t.Errorf("%s was removed: %v", o, err)
		}
	}
	if n, err := CleanTemps(root, "missing/f"); err != nil || n != 0 {
		t.Errorf("CleanTemps in a missing dir = %d, %v; want 0, nil", n, err)
	}
}

// TestPathsNeverEscapeRoot is a property test without a fuzzer: every name
// built from up to four components out of "..", ".", "" (making "//"), a
// plain directory and symlinks leading inside, up, and outside (relative and
// absolute) is handed to MkdirAll and Write. Whatever succeeds or fails,
// nothing may appear in, or change, the directory outside the root.
func TestPathsNeverEscapeRoot(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "root")
	outside := filepath.Join(base, "outside")
	for _, d := range []string{dir, outside, filepath.Join(dir, "a")} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	links := map[string]string{"out": "../outside", "abs": outside, "in": "a", "up": "..", "upout": "a/../../outside"}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	parts := []string{"..", ".", "", "a", "out", "abs", "in", "up", "upout"}
	var names []string
	var build func(prefix []string)
	build = func(prefix []string) {
		names = append(names, strings.Join(append(slices.Clone(prefix), "f"), "/"))
		if len(prefix) == 4 {
			return
		}
		for _, p := range parts {
			build(append(prefix, p))
		}
	}
	build(nil)
	opts := Options{Mode: 0o600, UID: -1, GID: -1}
	written, refused := 0, 0
	for _, n := range names {
		_, _ = dirs.MkdirAll(root, filepath.Dir(n), 0o700, -1, -1)
		if _, err := Write(root, n, []byte("secret"), opts); err == nil {
			written++
		} else {
			refused++
		}
		_, _ = CleanTemps(root, n)
	}
	if written == 0 || refused == 0 {
		t.Errorf("%d names written, %d refused: the property test does not exercise both", written, refused)
	}
	entries, err := os.ReadDir(outside)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Fatalf("%d names escaped the root; outside holds %v", len(names), entries)
	}
	if entries, _ := os.ReadDir(base); len(entries) != 2 {
		t.Errorf("the root's parent holds %d entries, want 2 (root, outside)", len(entries))
	}
	t.Logf("%d names tried: %d written inside the root, %d refused", len(names), written, refused)
}

// TestSameContentComparesChunkByChunk: the comparison Write uses to skip an
// unchanged file says equal only for exactly the same bytes, for files
// shorter and longer than its chunk.
func TestSameContentComparesChunkByChunk(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 10000) // past one chunk
	lastDiffers := bytes.Clone(big)
	lastDiffers[len(big)-1] = 'X'
	for _, c := range []struct {
		name       string
		file, data []byte
		want       bool
	}{
		{"both empty", nil, nil, true},
		{"equal", []byte("value"), []byte("value"), true},
		{"file shorter", []byte("valu"), []byte("value"), false},
		{"file longer", []byte("value!"), []byte("value"), false},
		{"file not empty", []byte("v"), nil, false},
		{"big equal", big, big, true},
		{"big, last byte differs", lastDiffers, big, false},
		{"big, file one byte longer", append(bytes.Clone(big), 'x'), big, false},
		{"big, file one byte shorter", big[:len(big)-1], big, false},
	} {
		if got := sameContent(bytes.NewReader(c.file), c.data); got != c.want {
			t.Errorf("%s: sameContent = %v, want %v", c.name, got, c.want)
		}
	}
}
