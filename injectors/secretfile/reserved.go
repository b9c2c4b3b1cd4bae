package secretfile

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
	"syscall"

	"github.com/secrets-agent/secrets-agent/injectors"
	"github.com/secrets-agent/secrets-agent/internal/dirs"
)

// Avoid records the paths no file secret may target: the agent's own files
// and the outputs of the other injectors. It implements injectors.Avoider.
// Paths that are not absolute are ignored; the others are cleaned.
func (in *Injector) Avoid(reserved []injectors.Reserved) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.reserved = in.reserved[:0]
	for _, r := range reserved {
		if path.IsAbs(r.Path) {
			r.Path = path.Clean(r.Path)
			in.reserved = append(in.reserved, r)
		}
	}
}

// reservedID is a reserved path's file identity, and its parent's with its
// name (it may not exist yet), for spotting a target that reaches it
// through a symlink inside an allowed root.
type reservedID struct {
	r    injectors.Reserved
	self fileID // zero when it does not exist
	dir  fileID // its parent; zero when that does not exist
	base string
}

// fileID is a file's device and inode.
type fileID struct{ dev, ino uint64 }

func idOf(fi fs.FileInfo) fileID {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return fileID{uint64(st.Dev), st.Ino}
	}
	return fileID{}
}

// checkReserved refuses a target that is reserved. The rules, in order:
//
//	(a) By name: the target is a reserved path, lies below one, or is a
//	    directory path that holds one (compared as clean absolute paths,
//	    "~" already expanded). A name ending in OrigSuffix is where the
//	    injector keeps a user's file aside, so it is refused too.
//	(b) By identity, for the target and each directory on its way below
//	    the root (symlinks inside the root followed, as a write would):
//	    it is the same file as a reserved path, or it has the same name in
//	    the same directory as one (which may not exist yet). This catches
//	    ~/link/config.json with ~/link -> ~/.docker.
func (p *pass) checkReserved(target string, root *os.Root, rel string) error {
	// (a)
	if strings.HasSuffix(target, OrigSuffix) {
		return fmt.Errorf("%s: names ending in %s are where the agent keeps a file aside", target, OrigSuffix)
	}
	for _, r := range p.in.reserved {
		switch {
		case target == r.Path:
			return fmt.Errorf("%s is %s; a file secret may not target it", target, r.What)
		case dirs.Below(r.Path, target):
			return fmt.Errorf("%s is below %s (%s); a file secret may not target it", target, r.Path, r.What)
		case dirs.Below(target, r.Path):
			return fmt.Errorf("%s is a directory path that holds %s (%s); a file secret may not target it", target, r.Path, r.What)
		}
	}
	// (b)
	ids := p.reservedIDs()
	if len(ids) == 0 {
		return nil
	}
	rootPath := strings.TrimSuffix(target[:len(target)-len(rel)], "/")
	for c := rel; c != "."; c = path.Dir(c) {
		var self, dir fileID
		if fi, err := root.Lstat(c); err == nil && c == rel {
			self = idOf(fi)
		} else if fi, err := root.Stat(c); err == nil {
			self = idOf(fi)
		}
		if fi, err := root.Stat(path.Dir(c)); err == nil {
			dir = idOf(fi)
		}
		for _, id := range ids {
			if (self != fileID{} && self == id.self) || (dir != fileID{} && dir == id.dir && path.Base(c) == id.base) {
				return fmt.Errorf("%s: %s is %s (reached through a symlink or another link); a file secret may not target it",
					target, path.Join(rootPath, c), id.r.What)
			}
		}
	}
	return nil
}

// reservedIDs returns the identities of the reserved paths, looked up once
// per pass.
func (p *pass) reservedIDs() []reservedID {
	if p.resIDs != nil {
		return *p.resIDs
	}
	var ids []reservedID
	for _, r := range p.in.reserved {
		id := reservedID{r: r, base: path.Base(r.Path)}
		if fi, err := os.Stat(r.Path); err == nil {
			id.self = idOf(fi)
		}
		if fi, err := os.Stat(path.Dir(r.Path)); err == nil {
			id.dir = idOf(fi)
		}
		if id.self != (fileID{}) || id.dir != (fileID{}) {
			ids = append(ids, id)
		}
	}
	p.resIDs = &ids
	return ids
}
