// Package atomicfile is the one place that puts secret bytes on disk. Every
// injector writes through it, always below an *os.Root, so that no path
// however crafted and no symlink however planted makes a write land outside
// the directory tree the caller opened.
package atomicfile

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"syscall"

	"github.com/secrets-agent/secrets-agent/internal/safeopen"
)

// Options says how the file must end up.
type Options struct {
	// Mode is the permission bits of the file. A new file is created 0600
	// (narrower if the umask says so) and set to exactly Mode before any byte
	// is written; secrets pass 0600 or narrower, so no secret file is ever
	// wider than 0600, even for an instant.
	Mode fs.FileMode
	// UID and GID own the file; -1 leaves that id as the writer's.
	UID, GID int
}

// Outcome is what Write did.
type Outcome int

// The outcomes of Write.
const (
	// Unchanged: content, mode and owner were already right; nothing was written.
	Unchanged Outcome = iota
	// Written: the file was replaced by rename (or created).
	Written
	// WrittenInPlace: the target is a mount point (rename fails with EBUSY or
	// EXDEV), so its content was truncated and rewritten in place.
	WrittenInPlace
	// MetadataFixed: content was right; mode or owner was corrected.
	MetadataFixed
)

func (o Outcome) String() string {
	return [...]string{"unchanged", "written", "written in place", "metadata fixed"}[o]
}

// ErrNotRegular is returned when the target exists and is not a regular file
// (a directory, device, socket, FIFO or symlink). It is never replaced.
var ErrNotRegular = errors.New("target exists and is not a regular file")

const tempMarker = ".secrets-agent-tmp-"

// maxTempBase bounds how much of the target's base name a temp name repeats,
// so that a temp name stays within NAME_MAX (255 bytes) for any target name.
const maxTempBase = 128

// testHookBeforeRename, when set by a test, is called with the temp file's
// name after it has been written and closed and before it is renamed.
var testHookBeforeRename func(root *os.Root, tmp string)

// Write makes name, relative to root, hold exactly data with opts' mode and
// owner. It guarantees that a reader of name sees either the old content or
// the new, never a partial file, and that the file is never wider than
// opts.Mode. It does not guarantee anything about concurrent writers of the
// same name: callers serialize.
//
// Steps:
//
//	(1) Lstat the target: a non-regular target is refused with ErrNotRegular.
//	(2) If it is there, compare content, mode and owner: all equal is
//	    Unchanged with no write; only mode/owner off is fixed on the open file
//	    descriptor (MetadataFixed) — unless the file has more than one link,
//	    where a chmod/chown would also change the other names (perhaps a file
//	    outside root), so it is replaced by rename instead.
//	(3) Create a temp file beside it, O_EXCL, mode 0600 (the umask can only
//	    narrow that); fchown, fchmod to opts.Mode, and only then write, fsync,
//	    close. So the bytes are never in a file wider than 0600 or opts.Mode.
//	(4) Rename the temp file over the target; if the target is a mount point
//	    (EBUSY, EXDEV), rewrite the target in place instead (WrittenInPlace).
//	(5) Fsync the directory so that the rename survives a crash.
//
// On any error the temp file is removed and the target is as it was (or, for
// an in-place rewrite that failed midway, possibly truncated: that case is
// reported). Parent directories must exist; see MkdirAll.
func Write(root *os.Root, name string, data []byte, opts Options) (out Outcome, err error) {
	name = path.Clean(name)
	// (1)
	fi, err := root.Lstat(name)
	switch {
	case err == nil && !fi.Mode().IsRegular():
		return Unchanged, fmt.Errorf("write %s: %w (it is %s)", name, ErrNotRegular, safeopen.Describe(fi.Mode()))
	case err == nil:
		// (2)
		out, done, err := compareAndFix(root, name, fi, data, opts)
		if err != nil || done {
			return out, err
		}
	case !errors.Is(err, fs.ErrNotExist):
		return Unchanged, fmt.Errorf("write %s: %w", name, err)
	}

	// (3)
	tmp := TempName(name)
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return Unchanged, fmt.Errorf("write %s: create temp file: %w", name, err)
	}
	defer func() {
		if f != nil {
			f.Close()
		}
		if err != nil {
			_ = root.Remove(tmp)
		}
	}()
	if err := setMeta(f, opts); err != nil {
		return Unchanged, fmt.Errorf("write %s: %w", name, err)
	}
	if _, err := f.Write(data); err != nil {
		return Unchanged, fmt.Errorf("write %s: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		return Unchanged, fmt.Errorf("write %s: fsync: %w", name, err)
	}
	cerr := f.Close()
	f = nil
	if cerr != nil {
		return Unchanged, fmt.Errorf("write %s: close: %w", name, cerr)
	}

	// (4)
	if testHookBeforeRename != nil {
		testHookBeforeRename(root, tmp)
	}
	out = Written
	if err := root.Rename(tmp, name); err != nil {
		if !errors.Is(err, syscall.EBUSY) && !errors.Is(err, syscall.EXDEV) {
			return Unchanged, fmt.Errorf("write %s: rename temp file: %w", name, err)
		}
		_ = root.Remove(tmp)
		if err := writeInPlace(root, name, fi, data, opts); err != nil {
			return Unchanged, err
		}
		out = WrittenInPlace
	}

	// (5)
	if err := SyncDir(root, path.Dir(name)); err != nil {
		return out, fmt.Errorf("write %s: %w", name, err)
	}
	return out, nil
}

// compareAndFix is step (2). done reports that the file is now right.
func compareAndFix(root *os.Root, name string, fi fs.FileInfo, data []byte, opts Options) (Outcome, bool, error) {
	if fi.Size() != int64(len(data)) {
		return Unchanged, false, nil
	}
	// O_NONBLOCK: should the file have been swapped for a FIFO since the
	// Lstat, the open must not hang.
	f, err := root.OpenFile(name, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return Unchanged, false, nil // let the rename path replace it
	}
	defer f.Close()
	ofi, err := f.Stat()
	if err != nil || !os.SameFile(fi, ofi) || !ofi.Mode().IsRegular() {
		return Unchanged, false, nil
	}
	if st, ok := ofi.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
		return Unchanged, false, nil // a hard link: replace it, never chmod it
	}
	if !sameContent(f, data) {
		return Unchanged, false, nil
	}
	if metaMatches(ofi, opts) {
		return Unchanged, true, nil
	}
	if err := setMeta(f, opts); err != nil {
		return Unchanged, false, fmt.Errorf("write %s: %w", name, err)
	}
	return MetadataFixed, true, nil
}

// sameContent reports whether reading f to its end gives exactly data. It
// reads a chunk at a time and stops at the first difference, so that a
// large file that differs early (a fragment's generation line) costs one
// chunk, and never buffers the whole file.
func sameContent(f io.Reader, data []byte) bool {
	buf := make([]byte, min(len(data)+1, 64<<10))
	for {
		n, err := io.ReadFull(f, buf[:min(len(buf), len(data)+1)])
		if !bytes.Equal(buf[:n], data[:min(n, len(data))]) || n > len(data) {
			return false
		}
		data = data[n:]
		switch {
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			return len(data) == 0
		case err != nil:
			return false
		}
	}
}

func metaMatches(fi fs.FileInfo, opts Options) bool {
	if fi.Mode().Perm() != opts.Mode.Perm() || fi.Mode()&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != 0 {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return true
	}
	return (opts.UID < 0 || int(st.Uid) == opts.UID) && (opts.GID < 0 || int(st.Gid) == opts.GID)
}

// setMeta chowns then chmods the open file. Chown comes first because it may
// clear set-id bits; chmod then sets exactly the mode.
func setMeta(f *os.File, opts Options) error {
	if opts.UID >= 0 || opts.GID >= 0 {
		if err := f.Chown(opts.UID, opts.GID); err != nil {
			return fmt.Errorf("chown: %w", err)
		}
	}
	if err := f.Chmod(opts.Mode.Perm()); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	return nil
}

// writeInPlace rewrites a target that cannot be renamed over (a bind-mounted
// single file). Readers may see it truncated for an instant; it is the best a
// mount point allows.
//
// Steps: open without truncating (and without blocking, should it have
// become a FIFO); check it is the regular file Write examined (fi, nil when
// there was none), so that a swap since then is refused rather than written
// through; set owner and mode first, so the new bytes never land in a wider
// file; then truncate, write, fsync.
func writeInPlace(root *os.Root, name string, fi fs.FileInfo, data []byte, opts Options) error {
	f, err := root.OpenFile(name, os.O_WRONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return fmt.Errorf("write %s in place: %w", name, err)
	}
	defer f.Close()
	ofi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("write %s in place: %w", name, err)
	}
	if !ofi.Mode().IsRegular() || (fi != nil && !os.SameFile(fi, ofi)) {
		return fmt.Errorf("write %s in place: target changed while being written: %w", name, ErrNotRegular)
	}
	if err := setMeta(f, opts); err != nil {
		return fmt.Errorf("write %s in place: %w", name, err)
	}
	if err := f.Truncate(0); err != nil {
		return fmt.Errorf("write %s in place: truncate: %w", name, err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s in place: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write %s in place: fsync: %w", name, err)
	}
	return nil
}

// SyncDir fsyncs the directory dir below root, so that renames and removals
// in it are durable.
func SyncDir(root *os.Root, dir string) error {
	d, err := safeopen.Dir(root, dir)
	if err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return fmt.Errorf("fsync dir %s: %w", dir, err)
	}
	return nil
}

// TempName returns a fresh temp file name beside name. Temp names start with
// "." + base + ".secrets-agent-tmp-" (base cut to 128 bytes, so the name
// stays short enough for any target), which IsTemp recognizes.
func TempName(name string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return path.Join(path.Dir(name), tempPrefix(name)+hex.EncodeToString(b[:]))
}

// IsTemp reports whether base (a file name without directory) is a temp file
// that Write would create for the file named target.
func IsTemp(base, target string) bool {
	return strings.HasPrefix(base, tempPrefix(target))
}

func tempPrefix(target string) string {
	base := path.Base(target)
	if len(base) > maxTempBase {
		base = base[:maxTempBase]
	}
	return "." + base + tempMarker
}

// CleanTemps removes temp files a crashed Write may have left beside name. It
// returns how many it removed; a missing directory is not an error. What is
// in the directory's place is never blocked on (a FIFO there is an error).
func CleanTemps(root *os.Root, name string) (int, error) {
	dir := path.Dir(path.Clean(name))
	d, err := safeopen.Dir(root, dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("clean temps of %s: %w", name, err)
	}
	entries, err := d.ReadDir(-1)
	d.Close()
	if err != nil {
		return 0, fmt.Errorf("clean temps of %s: %w", name, err)
	}
	n := 0
	for _, e := range entries {
		if e.Type().IsRegular() && IsTemp(e.Name(), name) {
			if err := root.Remove(path.Join(dir, e.Name())); err == nil {
				n++
			}
		}
	}
	return n, nil
}
