package secretfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
	"syscall"

	"github.com/secrets-agent/secrets-agent/internal/dirs"
	"github.com/secrets-agent/secrets-agent/internal/safeopen"
)

// openRoot opens the allowed root r so that no symlink the environment's
// user (or anyone but root) can plant leads the agent's writes elsewhere:
//
//   - A root in the user's home (the home itself, or below it) is opened
//     through an *os.Root at the home: a symlink on the way may lead
//     anywhere inside the home (the user could write there anyway) but not
//     out of it. Such a root is never created: the user could move it or
//     put a symlink in its place.
//   - Any other root is opened one component at a time from / by
//     openOutsideHome, which refuses a symlink anywhere on the way and a
//     directory that someone other than root or the user could change.
//
// A root that does not exist is an error satisfying
// errors.Is(err, fs.ErrNotExist), unless openOutsideHome creates it.
func (in *Injector) openRoot(r string) (*os.Root, error) {
	if home := in.owner.Home; home != "" && dirs.Below(home, r) {
		h, err := safeopen.OpenRoot(home)
		if err != nil {
			return nil, fmt.Errorf("open the home %s: %w", home, err)
		}
		defer h.Close()
		rel := strings.TrimPrefix(strings.TrimPrefix(r, path.Clean(home)), "/")
		if rel == "" {
			rel = "."
		}
		return safeopen.SubRoot(h, rel)
	}
	uid := in.owner.UID
	if uid < 0 {
		uid = os.Geteuid()
	}
	gid := in.owner.GID
	if gid < 0 {
		gid = os.Getegid()
	}
	return openOutsideHome(r, uid, gid)
}

// rootMode is the mode of an allowed root the injector creates: the
// environment's user reaches their own files below it by path, but cannot
// list it, nor create, rename or replace anything in it.
const rootMode = 0o711

// openOutsideHome opens the absolute directory r one component at a time
// from /, each through the *os.Root of its parent, and checks each before
// going on:
//
//	(a) it is a directory, not a symlink (nor anything else);
//	(b) it is owned by root or by uid (the environment's user): anyone
//	    else could swap what lies below it;
//	(c) unless it is r itself, no group other than root's or gid, and no
//	    other user, may write it, except where the sticky bit stops them
//	    from renaming what they do not own (as in /tmp);
//	(d) what was opened is what was checked (same device and inode), so a
//	    swap between the check and the open is refused, not followed.
//
// A missing r whose parent passed the checks is created, owned by the agent,
// mode rootMode (such as the default /run/secrets on a fresh machine); a
// missing parent is an error satisfying errors.Is(err, fs.ErrNotExist), as
// is r missing where it cannot be made (a user's agent cannot write /run).
func openOutsideHome(r string, uid, gid int) (*os.Root, error) {
	cur, err := safeopen.OpenRoot("/")
	if err != nil {
		return nil, err
	}
	parts := strings.Split(strings.TrimPrefix(path.Clean(r), "/"), "/")
	if parts[0] == "" {
		parts = nil // r is "/"
	}
	for i, part := range parts {
		last := i == len(parts)-1
		at := "/" + path.Join(parts[:i+1]...)
		fi, err := cur.Lstat(part)
		if errors.Is(err, fs.ErrNotExist) && last {
			fi, err = createIn(cur, part)
		}
		if err == nil {
			err = checkComponent(at, fi, uid, gid, last)
		}
		var next *os.Root
		if err == nil {
			next, err = safeopen.SubRoot(cur, part)
		}
		cur.Close()
		if err != nil {
			return nil, err
		}
		// (d)
		if nfi, err := next.Stat("."); err != nil || !os.SameFile(fi, nfi) {
			next.Close()
			return nil, fmt.Errorf("%s was replaced while being opened", at)
		}
		cur = next
	}
	return cur, nil
}

// createIn makes the directory name in parent, mode rootMode, and returns
// it as Lstat does. One that someone made in between is taken as found.
func createIn(parent *os.Root, name string) (fs.FileInfo, error) {
	if err := parent.Mkdir(name, rootMode); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("create: %w", err)
	} else if err == nil {
		if err := parent.Chmod(name, rootMode); err != nil { // Mkdir's mode is narrowed by the umask
			return nil, fmt.Errorf("create: %w", err)
		}
	}
	return parent.Lstat(name)
}

// checkComponent is checks (a) to (c) of openOutsideHome for the directory
// at (fi, as Lstat found it).
func checkComponent(at string, fi fs.FileInfo, uid, gid int, last bool) error {
	// (a)
	if !fi.IsDir() {
		return fmt.Errorf("%s is %s, not a directory: an allowed root outside the home is reached through directories only", at, safeopen.Describe(fi.Mode()))
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("%s: no owner to check", at)
	}
	// (b)
	if st.Uid != 0 && int(st.Uid) != uid {
		return fmt.Errorf("%s is owned by uid %d, neither root nor the environment's user (uid %d): they could swap what lies below it", at, st.Uid, uid)
	}
	// (c)
	if last || fi.Mode()&fs.ModeSticky != 0 {
		return nil
	}
	if fi.Mode().Perm()&0o002 != 0 || (fi.Mode().Perm()&0o020 != 0 && st.Gid != 0 && int(st.Gid) != gid) {
		return fmt.Errorf("%s is writable by others (mode %v, gid %d) without the sticky bit: they could swap what lies below it", at, fi.Mode().Perm(), st.Gid)
	}
	return nil
}
