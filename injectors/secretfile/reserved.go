package secretfile

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/secrets-agent/secrets-agent/injectors"
	"github.com/secrets-agent/secrets-agent/internal/dirs"
)

// Avoid records the paths no file secret may target: the agent's own files
// and the outputs of the other injectors. It implements injectors.Avoider.
// Paths that are not absolute are ignored; the others are cleaned. The
// start-up files in the home (startupFiles) stay reserved whatever the set.
func (in *Injector) Avoid(reserved []injectors.Reserved) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.reserved = nil
	for _, r := range reserved {
		if path.IsAbs(r.Path) {
			r.Path = path.Clean(r.Path)
			in.reserved = append(in.reserved, r)
		}
	}
	in.reserved = append(in.reserved, startupReserved(in.owner.Home)...)
}

// reservedID locates a reserved path by file identity, for spotting a
// target that reaches it through a symlink inside an allowed root: anc is
// the identity of the path itself when it exists, else of its nearest
// ancestor that does, and rest is the way from there ("." when it exists).
type reservedID struct {
	r    injectors.Reserved
	anc  fileID
	rest string
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
//	(b) By identity, for the root, the target and each directory on its
//	    way below the root (symlinks inside the root followed, as a write
//	    would): one that is a reserved path, or the existing ancestor of
//	    one, makes the rest of the target's way a name to judge as in (a)
//	    from there. This catches ~/link/config.json with ~/link ->
//	    ~/.docker, and ~/h/.ssh/authorized_keys with ~/h -> ~ while ~/.ssh
//	    does not exist yet.
//	(c) By identity, for the allowed root itself as opened and each of its
//	    ancestors (checkRoot): the root is, or lies in, a reserved path.
//	    This catches ~/sub/envprofile.json with ~/sub -> the state dir.
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
	if rootPath == "" {
		rootPath = "/"
	}
	for c := rel; ; c = path.Dir(c) {
		var fi fs.FileInfo
		var err error
		if c == rel {
			fi, err = root.Lstat(c)
		} else {
			fi, err = root.Stat(c)
		}
		if err == nil {
			tail := strings.TrimPrefix(strings.TrimPrefix(rel, c), "/")
			if c == "." {
				tail = rel
			} else if tail == "" {
				tail = "."
			}
			for _, id := range ids {
				if id.reaches(idOf(fi), tail, true) {
					return fmt.Errorf("%s: %s is %s (reached through a symlink or another link); a file secret may not target it",
						target, path.Join(rootPath, c, tail), id.r.What)
				}
			}
		}
		if c == "." {
			break
		}
	}
	// (c)
	if err := p.checkRoot(rootPath, root, ids); err != nil {
		return fmt.Errorf("%s: %w", target, err)
	}
	return nil
}

// reaches reports whether the path tail below the directory (or file) with
// identity at is id's reserved path or lies below it, or, with holds, is a
// directory path that holds it. A zero identity matches nothing.
func (id reservedID) reaches(at fileID, tail string, holds bool) bool {
	if at == (fileID{}) || at != id.anc {
		return false
	}
	return id.rest == "." || tail == id.rest || strings.HasPrefix(tail, id.rest+"/") ||
		(holds && (tail == "." || strings.HasPrefix(id.rest, tail+"/")))
}

// checkRoot is rule (c) of checkReserved, once per allowed root and pass:
// it refuses the root at rootPath, opened as root, when it is or lies in a
// reserved path. The root's real path is resolved by name and then
// confirmed to be the directory opened, so that a symlink swapped in
// between is refused rather than misjudged.
func (p *pass) checkRoot(rootPath string, root *os.Root, ids []reservedID) error {
	if err, done := p.rootChecks[rootPath]; done {
		return err
	}
	err := func() error {
		opened, err := root.Stat(".")
		if err != nil {
			return fmt.Errorf("allowed root %s: %w", rootPath, err)
		}
		real, err := filepath.EvalSymlinks(rootPath)
		if err != nil {
			return fmt.Errorf("allowed root %s: %w", rootPath, err)
		}
		if fi, err := os.Stat(real); err != nil || !os.SameFile(fi, opened) {
			return fmt.Errorf("allowed root %s changed while being checked", rootPath)
		}
		for a := real; ; a = path.Dir(a) {
			if fi, err := os.Stat(a); err == nil {
				tail, _ := filepath.Rel(a, real)
				for _, id := range ids {
					if id.reaches(idOf(fi), tail, false) {
						return fmt.Errorf("allowed root %s leads to %s, which is (or is inside) %s; a file secret may not target it",
							rootPath, real, id.r.What)
					}
				}
			}
			if a == "/" {
				return nil
			}
		}
	}()
	p.rootChecks[rootPath] = err
	return err
}

// reservedIDs returns the identities of the reserved paths, looked up once
// per pass.
func (p *pass) reservedIDs() []reservedID {
	if p.resIDs != nil {
		return *p.resIDs
	}
	var ids []reservedID
	for _, r := range p.in.reserved {
		for a := r.Path; ; a = path.Dir(a) {
			if fi, err := os.Stat(a); err == nil {
				rest, _ := filepath.Rel(a, r.Path)
				ids = append(ids, reservedID{r: r, anc: idOf(fi), rest: rest})
				break
			}
			if a == "/" {
				break
			}
		}
	}
	p.resIDs = &ids
	return ids
}
