// Package safeopen opens files and directories that a user may have created
// or replaced, without ever blocking on what it finds there.
//
// An agent running as root reads paths in directories its user owns: the
// env fragments, secret files and their parents, ~/.docker/config.json, and
// its own config, token file and manifests. A plain open(2) of a FIFO blocks
// until a writer comes, which never happens, so one `mkfifo` would hang the
// agent for good. Every function here opens with O_NONBLOCK (a FIFO opens at
// once, a device never waits for carrier), checks with fstat what it opened
// (a regular file or a directory, as asked) and only then reads. Inside an
// *os.Root nothing follows a symlink in the last component either; ReadPath,
// for the files an operator names (config, token file), follows symlinks as
// those are often links into a mounted secret volume.
//
// What it does not do: it does not check owners (callers that care compare
// the Stat_t of the file they got), and it does not bound the time a read
// of a regular file on a slow filesystem takes.
package safeopen

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// ErrNotRegular is returned for a path that exists and is not a regular file
// (a directory, FIFO, socket, device or symlink) where a regular file is
// wanted.
var ErrNotRegular = errors.New("not a regular file")

// ErrNotDir is returned for a path that exists and is not a directory where
// a directory is wanted.
var ErrNotDir = errors.New("not a directory")

// ErrTooLarge is returned for a file over the size a reader accepts.
var ErrTooLarge = errors.New("file too large")

// Describe names the type of a file mode as an error should: "a FIFO", "a
// directory", "a regular file" and so on.
func Describe(m fs.FileMode) string {
	switch t := m.Type(); {
	case t == 0:
		return "a regular file"
	case t&fs.ModeDir != 0:
		return "a directory"
	case t&fs.ModeSymlink != 0:
		return "a symlink"
	case t&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case t&fs.ModeSocket != 0:
		return "a socket"
	case t&fs.ModeDevice != 0:
		return "a device"
	default:
		return "not a regular file (" + t.String() + ")"
	}
}

// regular opens name below root (or the path name when root is nil,
// following symlinks) with flags|O_NONBLOCK|O_NOCTTY and checks it is a
// regular file. name is Lstat'ed (Stat'ed without a root) first and anything
// but a regular file is refused without being opened: opening a device or a
// FIFO has effects of its own (a watchdog armed, a tty made the controlling
// terminal, a FIFO's blocked writer let go). What is opened must then be that
// very file: os.Root follows a symlink that stays inside the root even with
// O_NOFOLLOW, and a swap between the two calls is refused, not read (the
// swapped-in file was opened, but with O_NOCTTY and O_NONBLOCK, and is
// closed unread). The error names the path and what is there instead.
func regular(root *os.Root, name string, flags int) (*os.File, fs.FileInfo, error) {
	var f *os.File
	var lfi fs.FileInfo
	var err error
	flags |= syscall.O_NONBLOCK | syscall.O_NOCTTY
	if root != nil {
		if lfi, err = root.Lstat(name); err != nil {
			return nil, nil, err // *PathError: names the path and the cause
		}
		if !lfi.Mode().IsRegular() {
			return nil, nil, fmt.Errorf("open %s: %w (it is %s)", join(root, name), ErrNotRegular, Describe(lfi.Mode()))
		}
		f, err = root.OpenFile(name, flags|syscall.O_NOFOLLOW, 0)
	} else {
		if lfi, err = os.Stat(name); err != nil {
			return nil, nil, err
		}
		if !lfi.Mode().IsRegular() {
			return nil, nil, fmt.Errorf("open %s: %w (it is %s)", filepath.Clean(name), ErrNotRegular, Describe(lfi.Mode()))
		}
		f, err = os.OpenFile(name, flags, 0)
	}
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("stat %s: %w", filepath.Clean(f.Name()), err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("open %s: %w (it is %s)", filepath.Clean(f.Name()), ErrNotRegular, Describe(fi.Mode()))
	}
	if lfi != nil && !os.SameFile(lfi, fi) {
		f.Close()
		return nil, nil, fmt.Errorf("open %s: %w (it was replaced while being opened)", filepath.Clean(f.Name()), ErrNotRegular)
	}
	return f, fi, nil
}

// join names name below root for an error message, cleaned (a SubRoot's
// name ends in "/.").
func join(root *os.Root, name string) string {
	return filepath.Join(root.Name(), name)
}

// Open opens name below root for reading: without following a symlink,
// without blocking, and only if it is a regular file (else ErrNotRegular,
// naming what is there). A missing file is an error satisfying
// errors.Is(err, fs.ErrNotExist).
func Open(root *os.Root, name string) (*os.File, fs.FileInfo, error) {
	return regular(root, name, os.O_RDONLY)
}

// ReadFile reads the regular file name below root as Open opens it. A file
// over limit bytes is ErrTooLarge; a missing one satisfies
// errors.Is(err, fs.ErrNotExist).
func ReadFile(root *os.Root, name string, limit int64) ([]byte, error) {
	f, _, err := Open(root, name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readAll(f, limit)
}

// ReadPath reads the regular file at path, following symlinks (so a config
// or token file may be a link into a mounted volume), without blocking, and
// only if what it opened is a regular file. Its errors are as ReadFile's.
func ReadPath(path string, limit int64) ([]byte, error) {
	f, _, err := regular(nil, path, os.O_RDONLY)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readAll(f, limit)
}

func readAll(f *os.File, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", filepath.Clean(f.Name()), err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("read %s: %w (over %d bytes)", filepath.Clean(f.Name()), ErrTooLarge, limit)
	}
	return data, nil
}

// Dir opens the directory name below root for reading its entries or
// fsyncing it. O_DIRECTORY makes the kernel refuse anything else at once
// (ErrNotDir, naming what is there), so a FIFO in its place cannot block.
// name may be ".".
func Dir(root *os.Root, name string) (*os.File, error) {
	f, err := root.OpenFile(name, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NONBLOCK, 0)
	if errors.Is(err, syscall.ENOTDIR) {
		return nil, notDir(join(root, name), func() (fs.FileInfo, error) { return root.Lstat(name) })
	}
	return f, err
}

// notDir is the error for a path that is not a directory, naming what it is.
func notDir(p string, lstat func() (fs.FileInfo, error)) error {
	if fi, err := lstat(); err == nil {
		return fmt.Errorf("open %s: %w (it is %s)", p, ErrNotDir, Describe(fi.Mode()))
	}
	return fmt.Errorf("open %s: %w", p, ErrNotDir)
}

// OpenRoot is os.OpenRoot for a directory a user may have replaced: what
// is at dir must be a directory, or the open fails at once with ErrNotDir
// instead of blocking on a FIFO. (os.OpenRoot opens its path with neither
// O_DIRECTORY nor O_NONBLOCK; a trailing slash makes the kernel require a
// directory in the same lookup, so nothing can be swapped in between.)
// Symlinks on the way, dir itself included, are followed, as os.OpenRoot
// does.
func OpenRoot(dir string) (*os.Root, error) {
	p := dir
	if !strings.HasSuffix(p, "/") {
		p += "/"
	}
	r, err := os.OpenRoot(p)
	if errors.Is(err, syscall.ENOTDIR) {
		return nil, notDir(dir, func() (fs.FileInfo, error) { return os.Lstat(dir) })
	}
	return r, err
}

// SubRoot is root.OpenRoot(name) for a directory a user may have replaced:
// name must be a directory below root, reached without leaving root, or the
// open fails at once with ErrNotDir instead of blocking on a FIFO. (It opens
// name + "/.", so that os.Root opens name itself with O_DIRECTORY; the
// returned root's Name ends in "/.".)
func SubRoot(root *os.Root, name string) (*os.Root, error) {
	if name == "." || name == "" {
		return root.OpenRoot(".")
	}
	r, err := root.OpenRoot(strings.TrimSuffix(name, "/") + "/.")
	if errors.Is(err, syscall.ENOTDIR) {
		return nil, notDir(join(root, name), func() (fs.FileInfo, error) { return root.Lstat(name) })
	}
	return r, err
}

// ReadIn reads the regular file name in the directory dir, as ReadFile
// does below OpenRoot(dir): neither dir nor name may block the read, and name
// is not followed if it is a symlink.
func ReadIn(dir, name string, limit int64) ([]byte, error) {
	root, err := OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	return ReadFile(root, name, limit)
}
