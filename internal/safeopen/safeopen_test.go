package safeopen

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// within fails the test when f has not returned after a second: every
// function here must refuse a FIFO at once, never block on it.
func within(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatalf("%s blocked on a FIFO", what)
	}
}

func mkfifo(t *testing.T, p string) {
	t.Helper()
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Fatalf("mkfifo %s: %v", p, err)
	}
}

func TestFIFOsAreRefusedWithoutBlocking(t *testing.T) {
	dir := t.TempDir()
	mkfifo(t, filepath.Join(dir, "fifo"))
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()

	cases := []struct {
		name string
		call func() error
		want error
	}{
		{"ReadFile", func() error { _, err := ReadFile(root, "fifo", 100); return err }, ErrNotRegular},
		{"Open", func() error { _, _, err := Open(root, "fifo"); return err }, ErrNotRegular},
		{"ReadPath", func() error { _, err := ReadPath(filepath.Join(dir, "fifo"), 100); return err }, ErrNotRegular},
		{"Dir", func() error { _, err := Dir(root, "fifo"); return err }, ErrNotDir},
		{"OpenRoot", func() error { _, err := OpenRoot(filepath.Join(dir, "fifo")); return err }, ErrNotDir},
		{"SubRoot", func() error { _, err := SubRoot(root, "fifo"); return err }, ErrNotDir},
		{"a FIFO as a parent", func() error { _, err := ReadFile(root, "fifo/x", 100); return err }, syscall.ENOTDIR},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var err error
			within(t, c.name, func() { err = c.call() })
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			if c.want != syscall.ENOTDIR && !strings.Contains(err.Error(), "a FIFO") {
				t.Errorf("err = %v, want it to say what is there (a FIFO)", err)
			}
		})
	}
}

func TestReadsRegularFilesAndDirectories(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "d"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("f", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	root, err := OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	if got, err := ReadFile(root, "f", 5); err != nil || string(got) != "hello" {
		t.Fatalf("ReadFile = %q, %v", got, err)
	}
	if _, err := ReadFile(root, "f", 4); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("ReadFile over the limit: err = %v, want ErrTooLarge", err)
	}
	if _, err := ReadFile(root, "missing", 4); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("ReadFile of a missing file: err = %v, want ErrNotExist", err)
	}
	if _, err := ReadFile(root, "link", 5); !errors.Is(err, ErrNotRegular) {
		t.Fatalf("ReadFile of a symlink: err = %v, want ErrNotRegular", err)
	}
	if got, err := ReadPath(filepath.Join(dir, "link"), 5); err != nil || string(got) != "hello" {
		t.Fatalf("ReadPath follows a symlink: %q, %v", got, err)
	}
	if err := os.Symlink("/dev/zero", filepath.Join(dir, "zero")); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadPath(filepath.Join(dir, "zero"), 5); !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), "a device") {
		t.Fatalf("ReadPath of a link to /dev/zero: err = %v, want ErrNotRegular naming a device", err)
	}
	if _, err := ReadFile(root, "d", 5); !errors.Is(err, ErrNotRegular) {
		t.Fatalf("ReadFile of a directory: err = %v, want ErrNotRegular", err)
	}
	sub, err := SubRoot(root, "d")
	if err != nil {
		t.Fatalf("SubRoot: %v", err)
	}
	defer sub.Close()
	if err := sub.WriteFile("x", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "d", "x")); err != nil {
		t.Fatalf("SubRoot opened another directory: %v", err)
	}
	d, err := Dir(root, ".")
	if err != nil {
		t.Fatalf("Dir: %v", err)
	}
	d.Close()
}

// TestReadPathRefusesWhatIsNotARegularFileWithoutOpeningIt: a path that is,
// or links to, something other than a regular file is refused before it is
// opened, since an open has effects of its own. A FIFO shows it: a writer
// blocked in open(2) on it is let go by any reader's open, so it stays
// blocked only if ReadPath never opened the FIFO.
func TestReadPathRefusesWhatIsNotARegularFileWithoutOpeningIt(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	mkfifo(t, fifo)
	link := filepath.Join(dir, "link")
	if err := os.Symlink(fifo, link); err != nil {
		t.Fatal(err)
	}
	opened := make(chan struct{})
	go func() {
		f, err := os.OpenFile(fifo, os.O_WRONLY, 0) // blocks until a reader opens
		if err == nil {
			f.Close()
		}
		close(opened)
	}()
	time.Sleep(50 * time.Millisecond) // the writer is in open(2)
	for _, p := range []string{fifo, link} {
		if _, err := ReadPath(p, 100); !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), "a FIFO") {
			t.Errorf("ReadPath(%s) = %v, want ErrNotRegular naming a FIFO", p, err)
		}
	}
	select {
	case <-opened:
		t.Errorf("ReadPath opened the FIFO (its writer was let go)")
	case <-time.After(200 * time.Millisecond):
	}
	// Let the writer go.
	r, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	<-opened
	r.Close()
}

// TestReadPathRefusesADevice: a path linking to a device is refused as one,
// before any open.
func TestReadPathRefusesADevice(t *testing.T) {
	link := filepath.Join(t.TempDir(), "token")
	if err := os.Symlink("/dev/null", link); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadPath(link, 100); !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), "a device") {
		t.Errorf("ReadPath(link to /dev/null) = %v, want ErrNotRegular naming a device", err)
	}
}
