package secretfile

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
	"syscall"

	"github.com/secrets-agent/secrets-agent/injectors"
	"github.com/secrets-agent/secrets-agent/internal/atomicfile"
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

// reservedID is a reserved path's file identity, for spotting a target that
// reaches it through a symlink inside an allowed root.
type reservedID struct {
	r        injectors.Reserved
	dev, ino uint64
}

// checkReserved refuses a target that is reserved. The rules, in order:
//
//	(a) By name: the target is a reserved path, lies below one, or is a
//	    directory path that holds one (compared as clean absolute paths,
//	    "~" already expanded). A name ending in OrigSuffix is where the
//	    injector keeps a user's file aside, so it is refused too.
//	(b) By identity: the existing target, or any directory on its way
//	    below the root (symlinks inside the root followed, as a write
//	    would), is the same file as a reserved path. This catches
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
		case atomicfile.Below(r.Path, target):
			return fmt.Errorf("%s is below %s (%s); a file secret may not target it", target, r.Path, r.What)
		case atomicfile.Below(target, r.Path):
			return fmt.Errorf("%s is a directory path that holds %s (%s); a file secret may not target it", target, r.Path, r.What)
		}
	}
	// (b)
	ids := p.reservedIDs()
	if len(ids) == 0 {
		return nil
	}
	check := func(fi fs.FileInfo, shown string) error {
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		for _, id := range ids {
			if uint64(st.Dev) == id.dev && st.Ino == id.ino {
				return fmt.Errorf("%s: %s is %s (reached through a symlink or another link); a file secret may not target it", target, shown, id.r.What)
			}
		}
		return nil
	}
	if fi, err := root.Lstat(rel); err == nil {
		if err := check(fi, target); err != nil {
			return err
		}
	}
	for d := path.Dir(rel); d != "."; d = path.Dir(d) {
		fi, err := root.Stat(d)
		if err != nil {
			continue // missing (created later as a fresh dir) or unreachable (refused later)
		}
		if err := check(fi, path.Join(target[:len(target)-len(rel)], d)); err != nil {
			return err
		}
	}
	return nil
}

// reservedIDs returns the identity of every reserved path that exists,
// looked up once per pass.
func (p *pass) reservedIDs() []reservedID {
	if p.resIDs != nil {
		return *p.resIDs
	}
	var ids []reservedID
	for _, r := range p.in.reserved {
		fi, err := os.Stat(r.Path)
		if err != nil {
			continue
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			ids = append(ids, reservedID{r: r, dev: uint64(st.Dev), ino: st.Ino})
		}
	}
	p.resIDs = &ids
	return ids
}
