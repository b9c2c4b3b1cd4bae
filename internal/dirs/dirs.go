// Package dirs creates and opens directories without leaving where they
// may be: every missing parent made with an exact mode and owner, below an
// *os.Root so that no symlink leads out of it. internal/atomicfile writes
// the files inside them; internal/safeopen opens what is already there.
package dirs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/secrets-agent/secrets-agent/internal/safeopen"
)

// NearestDir returns dir or its nearest ancestor that exists as a
// directory ("/" at worst).
func NearestDir(dir string) string {
	for {
		if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return dir
		}
		dir = parent
	}
}

// MkdirAll creates dir below root and every missing parent, each with mode
// perm and owned by uid:gid (-1 leaves an id). Directories that exist are left
// as they are. It returns the directories it created, outermost first. An
// existing component that is not a directory is an error.
func MkdirAll(root *os.Root, dir string, perm fs.FileMode, uid, gid int) ([]string, error) {
	dir = path.Clean(dir)
	if dir == "." || dir == "/" {
		return nil, nil
	}
	var created []string
	cur := ""
	for _, part := range strings.Split(dir, "/") {
		if part == "" {
			continue
		}
		cur = path.Join(cur, part)
		err := root.Mkdir(cur, perm)
		if errors.Is(err, fs.ErrExist) {
			fi, serr := root.Stat(cur)
			if serr != nil {
				return created, fmt.Errorf("mkdir %s: %w", cur, serr)
			}
			if !fi.IsDir() {
				return created, fmt.Errorf("mkdir %s: exists and is not a directory (it is %s)", cur, safeopen.Describe(fi.Mode()))
			}
			continue
		}
		if err != nil {
			return created, fmt.Errorf("mkdir %s: %w", cur, err)
		}
		created = append(created, cur)
		if uid >= 0 || gid >= 0 {
			if err := root.Lchown(cur, uid, gid); err != nil {
				return created, fmt.Errorf("chown %s: %w", cur, err)
			}
		}
		// Mkdir's mode is narrowed by the umask; set it exactly.
		if err := root.Chmod(cur, perm); err != nil {
			return created, fmt.Errorf("chmod %s: %w", cur, err)
		}
	}
	return created, nil
}

// Open opens dir as an *os.Root, first creating it and every missing
// parent below the nearest directory that exists (NearestDir), each with mode perm and
// owned by uid:gid (-1 leaves an id), as MkdirAll does. A dir that exists is
// opened as it is; anything else there (a FIFO, say) is an error at once.
func Open(dir string, perm fs.FileMode, uid, gid int) (*os.Root, error) {
	base := NearestDir(filepath.Clean(dir))
	if base != filepath.Clean(dir) {
		rel, err := filepath.Rel(base, dir)
		if err != nil {
			return nil, fmt.Errorf("create %s: %w", dir, err)
		}
		r, err := safeopen.OpenRoot(base)
		if err != nil {
			return nil, fmt.Errorf("create %s: %w", dir, err)
		}
		_, err = MkdirAll(r, filepath.ToSlash(rel), perm, uid, gid)
		r.Close()
		if err != nil {
			return nil, fmt.Errorf("create %s: %w", dir, err)
		}
	}
	r, err := safeopen.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dir, err)
	}
	return r, nil
}

// Below reports whether the absolute path p is base or lies below it, by
// their names alone (cleaned; no symlink is looked at).
func Below(base, p string) bool {
	rel, err := filepath.Rel(base, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// OpenUnder is Open for a dir an agent running as root writes for the user
// whose home is home: a dir below home (when home is set) is opened with
// OpenBelow, so that a symlink the user plants there cannot make the agent
// write elsewhere; any other dir (set by the admin) is opened as it is.
func OpenUnder(home, dir string, perm fs.FileMode, uid, gid int) (*os.Root, error) {
	if home != "" && Below(home, dir) {
		return OpenBelow(home, dir, perm, uid, gid)
	}
	return Open(dir, perm, uid, gid)
}

// OpenBelow is Open for a dir that must stay inside base, such as a
// directory in a user's home that an agent running as root writes: base is
// opened as an *os.Root and dir is created and opened through it, so that no
// symlink on the way, dir itself included, leads out of base. A dir that is
// not base or below it is an error.
func OpenBelow(base, dir string, perm fs.FileMode, uid, gid int) (*os.Root, error) {
	if !Below(base, dir) {
		return nil, fmt.Errorf("%s is not below %s", dir, base)
	}
	rel, _ := filepath.Rel(base, dir)
	b, err := safeopen.OpenRoot(base)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", base, err)
	}
	defer b.Close()
	rel = filepath.ToSlash(rel)
	if _, err := MkdirAll(b, rel, perm, uid, gid); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	r, err := safeopen.SubRoot(b, rel)
	if err != nil {
		return nil, fmt.Errorf("open %s inside %s: %w", dir, base, err)
	}
	return r, nil
}
