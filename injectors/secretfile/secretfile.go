// Package secretfile materializes file secrets: one file per secret at its
// absolute path, below one of the allowed roots, created 0600 (or 0400) from
// the first instant, owned by the environment's user, written atomically
// through internal/atomicfile below an *os.Root so that no symlink however
// planted leads a write outside the allowed roots.
package secretfile

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"

	"github.com/secrets-agent/secrets-agent/injectors"
	"github.com/secrets-agent/secrets-agent/internal/atomicfile"
	"github.com/secrets-agent/secrets-agent/internal/dirs"
	imanifest "github.com/secrets-agent/secrets-agent/internal/manifest"
	"github.com/secrets-agent/secrets-agent/internal/safeopen"
	"github.com/secrets-agent/secrets-agent/secrets"
)

// OrigSuffix is appended to a path to name the place where a file that was
// there before the agent managed the path is kept until the secret goes away.
const OrigSuffix = ".secrets-agent-orig"

// Note texts, for outcomes the user should know about.
const (
	NoteInPlace  = "rewritten in place: target is a mount point"
	NoteEmptied  = "emptied in place: target is a mount point"
	NoteReplaced = "left in place: changed by someone since the agent wrote it"
)

// Options configure the injector.
type Options struct {
	// AllowedRoots are absolute directories ("~" already expanded); a target
	// must lie strictly below one of them. The longest that matches is the
	// *os.Root every operation on the target goes through.
	AllowedRoots []string
	// Mode of every file: 0600 when zero; 0400 is allowed; any bit outside
	// 0600 is an error from New.
	Mode fs.FileMode
	// Owner owns the files and the parent directories the injector creates
	// (-1 leaves an id as the agent's).
	Owner injectors.Owner
	// StateDir holds the manifest, secretfile.json (0600).
	StateDir string
}

// Injector puts file secrets on disk. It implements injectors.Injector.
type Injector struct {
	roots    []string // cleaned, longest first
	mode     fs.FileMode
	owner    injectors.Owner
	stateDir string

	mu       sync.Mutex
	man      *manifest
	unsaved  bool              // the manifest changed since it was last read or saved
	sessions map[string]string // path -> session last applied (memory only)
	cleaned  bool              // stale temp files have been removed

	// reserved are the paths no secret may target (Avoid), the start-up
	// files in the home among them.
	reserved []injectors.Reserved
}

var (
	_ injectors.Injector    = (*Injector)(nil)
	_ injectors.Incremental = (*Injector)(nil)
)

// New checks o and loads the manifest from o.StateDir (a missing manifest is
// an empty one; an unreadable or corrupt one is an error naming it).
func New(o Options) (*Injector, error) {
	if len(o.AllowedRoots) == 0 {
		return nil, errors.New("secretfile: no allowed roots")
	}
	in := &Injector{mode: o.Mode, owner: o.Owner, stateDir: o.StateDir, sessions: map[string]string{},
		reserved: startupReserved(o.Owner.Home)}
	for _, r := range o.AllowedRoots {
		if !path.IsAbs(r) {
			return nil, fmt.Errorf("secretfile: allowed root %q is not an absolute path", r)
		}
		in.roots = append(in.roots, path.Clean(r))
	}
	sort.Slice(in.roots, func(i, j int) bool { return len(in.roots[i]) > len(in.roots[j]) })
	if in.mode == 0 {
		in.mode = 0o600
	}
	if in.mode&^0o600 != 0 {
		return nil, fmt.Errorf("secretfile: mode %#o is wider than 0600", uint32(in.mode))
	}
	if in.mode&0o400 == 0 {
		return nil, fmt.Errorf("secretfile: mode %#o does not let the owner read the file", uint32(in.mode))
	}
	if !path.IsAbs(o.StateDir) {
		return nil, fmt.Errorf("secretfile: state dir %q is not an absolute path", o.StateDir)
	}
	m, err := loadManifest(o.StateDir)
	if err != nil {
		return nil, fmt.Errorf("secretfile: %w", err)
	}
	m.sync(nil)
	in.man = m
	return in, nil
}

// Name returns "secretfile".
func (in *Injector) Name() string { return "secretfile" }

// Kind returns secrets.MountFile.
func (in *Injector) Kind() secrets.MountKind { return secrets.MountFile }

// Apply makes every desired secret's path hold its value with the
// injector's mode and owner, and removes what it wrote for secrets no longer
// desired. Nothing changed means no write at all (Result.Writes 0). A
// cancelled ctx fails the secrets not yet applied and removes nothing. The
// steps are apply's.
func (in *Injector) Apply(ctx context.Context, desired []secrets.Secret) injectors.Result {
	return in.apply(ctx, desired, nil)
}

// ApplyOnly is Apply restricted to the targets in touched
// (injectors.Incremental): only those are written or removed, and no other
// managed file is looked at. Before the first Apply it is Apply, so that the
// temp files a crash left beside every path are removed.
func (in *Injector) ApplyOnly(ctx context.Context, desired []secrets.Secret, touched []string) injectors.Result {
	only := make(map[string]bool, len(touched))
	for _, t := range touched {
		only[t] = true
	}
	return in.apply(ctx, desired, only)
}

// apply is Apply when only is nil, else ApplyOnly for the targets in only.
//
// Steps:
//
//	(1) On the first Apply, remove temp files a crash left beside every
//	    managed or desired path (atomicfile.CleanTemps).
//	(2) For each desired secret (one failure never stops the others):
//	    (2a) in order, check the path, keep a pre-existing file aside and
//	         create missing parents 0700 (prepare); then record every new
//	         path in the manifest as not yet written and save it, so that
//	         an agent killed during (2b) leaves files the next agent knows
//	         as its own rather than keeps aside as someone else's;
//	    (2b) write the values through atomicfile, up to `writers` at once:
//	         the targets are distinct, and overlapping fsyncs let the file
//	         system commit them together, which makes a cold apply of
//	         hundreds of files several times faster (write);
//	    (2c) in order, record each result in the manifest (record).
//	(3) For each managed path no longer desired (sorted): delete the file if
//	    it is still the one the agent left, and put back the file kept aside.
//	(4) Remove directories the injector created that hold no managed path
//	    and are empty, deepest first.
//	(5) Save the manifest when it changed; report every managed path.
//
// With only set, (2) and (3) take only the targets in it and (4) runs only
// when one was removed; before the first Apply only is ignored, so that (1)
// sees every path. A cancelled ctx fails the secrets not yet applied and
// skips (3) and (4).
func (in *Injector) apply(ctx context.Context, desired []secrets.Secret, only map[string]bool) injectors.Result {
	in.mu.Lock()
	defer in.mu.Unlock()
	if !in.cleaned {
		only = nil
	}
	p := in.newPass(only)
	defer p.close()

	// (1)
	all := desired
	if only != nil {
		desired = nil
		for _, s := range all {
			if only[s.Mount.Target] {
				desired = append(desired, s)
			}
		}
	}
	wanted := targetsOf(desired)
	if !in.cleaned {
		in.cleanTemps(p, wanted)
		in.cleaned = true
	}
	dirsBefore := len(in.man.Dirs)

	// (2a)
	outcomes := make([]injectors.Outcome, len(desired))
	jobs := make([]*job, len(desired))
	for i, s := range desired {
		if err := ctx.Err(); err != nil {
			outcomes[i] = injectors.Fail(s, s.Mount.Target, err)
			continue
		}
		jobs[i], outcomes[i] = p.prepare(s)
	}
	in.saveIntent(jobs, only, dirsBefore)
	// (2b)
	writeAll(jobs, in.mode, in.owner)
	// (2c)
	for i, j := range jobs {
		if j != nil {
			outcomes[i] = p.record(j)
		}
	}
	p.res.Outcomes = outcomes

	if err := ctx.Err(); err != nil {
		p.res.Err = fmt.Errorf("secretfile: %w", err)
	} else {
		// (3)
		removed := false
		for _, target := range removable(in.man.Files, only) {
			if !wanted[target] {
				p.res.Outcomes = append(p.res.Outcomes, p.remove(target, in.man.Files[target]))
				removed = true
			}
		}
		// (4)
		if only != nil && removed {
			wanted = targetsOf(all) // a directory may hold desired paths outside only
		}
		if only == nil || removed {
			p.removeEmptyDirs(wanted)
		}
	}

	// (5)
	if err := in.saveNow(only); err != nil {
		p.res.Err = errors.Join(p.res.Err, fmt.Errorf("secretfile: %w", err))
	}
	p.res.Paths = in.man.enc.Keys()
	return p.res
}

// targetsOf returns the set of the targets of ss.
func targetsOf(ss []secrets.Secret) map[string]bool {
	out := make(map[string]bool, len(ss))
	for _, s := range ss {
		out[s.Mount.Target] = true
	}
	return out
}

// saveIntent records the new paths of jobs in
// the manifest with an all-zero identity (not yet written) and saves it when
// that, or creating directories (the manifest held dirsBefore), changed
// it, before any of them is written. only is the pass's (saveNow). A failed
// save is not reported here: Apply saves again at its end and reports.
func (in *Injector) saveIntent(jobs []*job, only map[string]bool, dirsBefore int) {
	added := len(in.man.Dirs) != dirsBefore
	for _, j := range jobs {
		if j != nil && j.prev == nil && in.man.Files[j.s.Mount.Target] == nil {
			j.ent.Secret, j.ent.Mode = j.s.Ref(), in.mode
			in.man.Files[j.s.Mount.Target] = j.ent
			added = true
		}
	}
	if added {
		_ = in.saveNow(only) // a failure is reported by the save at the end of Apply
	}
}

// saveNow saves the manifest when it changed since it was last read or
// saved; nil when there was nothing to save. only says where Files may have
// changed since the last save: at the paths in it, or anywhere when it is
// nil (manifest.sync); the entries of other paths are not looked at, so a
// pass that changed one file encodes one entry and copies the others' bytes.
func (in *Injector) saveNow(only map[string]bool) error {
	if in.man.sync(only) {
		in.unsaved = true
	}
	if !in.unsaved {
		return nil
	}
	if _, err := imanifest.SaveBytes(in.stateDir, manifestName, in.man.encode()); err != nil {
		return err
	}
	in.unsaved = false
	return nil
}

// cleanTemps removes the temp files a crash left beside the managed and
// desired paths.
func (in *Injector) cleanTemps(p *pass, wanted map[string]bool) {
	paths := slices.Sorted(maps.Keys(in.man.Files))
	for t := range wanted {
		if in.man.Files[t] == nil {
			paths = append(paths, t)
		}
	}
	for _, t := range paths {
		if _, root, rel, err := p.locate(t); err == nil {
			n, _ := atomicfile.CleanTemps(root, rel) // a failure shows again when the path is written
			p.res.Writes += n
		}
	}
}

// place is where a target resolves to: its parent directory and its name.
type place struct {
	dir  fileID
	base string
}

// pass is the state of one Apply: the roots it opened and its result.
type pass struct {
	in       *Injector
	roots    map[string]*os.Root
	rootErrs map[string]error
	targets  map[string]string // desired target -> secret id, this pass
	// places: where each desired target of this pass resolved to (its
	// parent directory's identity and its name), for the one it came from.
	places map[place]string
	res    injectors.Result
	// only: the targets of an ApplyOnly pass, the only paths whose manifest
	// entries it may change; nil for a whole Apply.
	only   map[string]bool
	resIDs *[]reservedID // identities of the reserved paths, once looked up
	// rootChecks: each allowed root's checkRoot verdict, this pass.
	rootChecks map[string]error
}

// newPass starts a pass for the targets in only (nil: every one).
func (in *Injector) newPass(only map[string]bool) *pass {
	return &pass{in: in, roots: map[string]*os.Root{}, rootErrs: map[string]error{}, targets: map[string]string{},
		places: map[place]string{}, rootChecks: map[string]error{}, only: only}
}

func (p *pass) close() {
	for _, r := range p.roots {
		r.Close()
	}
}

// locate finds the allowed root target lies below (the longest), opens it
// once per pass (openRoot), and returns it with target's path relative to it.
func (p *pass) locate(target string) (rootPath string, root *os.Root, rel string, err error) {
	for _, r := range p.in.roots {
		switch {
		case r == "/" && len(target) > 1 && target[0] == '/':
			rel = target[1:]
		case strings.HasPrefix(target, r+"/") && len(target) > len(r)+1:
			rel = target[len(r)+1:]
		default:
			continue
		}
		if err := p.rootErrs[r]; err != nil {
			return r, nil, rel, err
		}
		if root := p.roots[r]; root != nil {
			return r, root, rel, nil
		}
		root, err := p.in.openRoot(r)
		if err != nil {
			err = fmt.Errorf("open allowed root %s: %w", r, err)
			p.rootErrs[r] = err
			return r, nil, rel, err
		}
		p.roots[r] = root
		return r, root, rel, nil
	}
	return "", nil, "", fmt.Errorf("%s is not below an allowed root (%s)", target, strings.Join(p.in.roots, ", "))
}

// job is one desired secret on its way to disk: what prepare found, and
// what write did.
type job struct {
	s        secrets.Secret
	root     *os.Root
	rel      string
	existed  bool   // a regular file was at the path when prepared
	prev     *entry // the manifest entry before this pass; nil if new
	ent      *entry // the entry to record
	notes    []string
	out      atomicfile.Outcome
	err      error
	after    fs.FileInfo // the file as written, for its identity
	afterErr error
}

// prepare decides what to do for one secret. It returns either a job to write or
// the secret's failed outcome.
//
//	(a) The target must be a clean absolute path below an allowed root,
//	    not reserved (checkReserved), and not the same place as another
//	    target of this pass: reached through a symlink (~/b/x with ~/b ->
//	    ~/a, beside ~/a/x), two secrets would rewrite one file in turn on
//	    every pass, each repairing the other's "drift", for ever.
//	(b) Lstat it below the root: a symlink anywhere on the way that leads
//	    outside the root is an error here (os.Root), and an existing
//	    directory, device, FIFO, socket or symlink is refused.
//	(c) A regular file there that the agent does not manage yet is moved
//	    aside to path + OrigSuffix, unless that name is taken (then the
//	    secret fails). Where the rename fails with EBUSY or EXDEV the path is
//	    a mount point: nothing is moved, the file is rewritten in place.
//	(d) Create missing parents 0700 owned by the owner; record them.
func (p *pass) prepare(s secrets.Secret) (*job, injectors.Outcome) {
	in, target := p.in, s.Mount.Target
	fail := func(err error) (*job, injectors.Outcome) { return nil, injectors.Fail(s, target, err) }

	// (a)
	if s.Mount.Kind != secrets.MountFile {
		return fail(fmt.Errorf("secret is a %s secret, not a file secret", s.Mount.Kind))
	}
	if !path.IsAbs(target) || path.Clean(target) != target {
		return fail(fmt.Errorf("%q is not a clean absolute path", target))
	}
	if other, ok := p.targets[target]; ok {
		return fail(fmt.Errorf("%s is also the target of secret %s", target, other))
	}
	p.targets[target] = s.ID
	rootPath, root, rel, err := p.locate(target)
	if err != nil {
		return fail(err)
	}
	if err := p.checkReserved(target, root, rel); err != nil {
		return fail(err)
	}
	if other, ok := p.places[placeOf(root, rel)]; ok {
		return fail(fmt.Errorf("%s is the same file as %s, the target of secret %s (reached through a symlink)", target, other, p.targets[other]))
	}

	// (b)
	fi, err := root.Lstat(rel)
	j := &job{s: s, root: root, rel: rel, existed: err == nil, prev: in.man.Files[target]}
	switch {
	case err == nil && !fi.Mode().IsRegular():
		return fail(fmt.Errorf("%s is %s: %w", target, safeopen.Describe(fi.Mode()), atomicfile.ErrNotRegular))
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return fail(fmt.Errorf("%s cannot be reached inside allowed root %s: %w", target, rootPath, err))
	}

	// (c)
	j.ent = j.prev
	// An entry that says a file was kept aside, was never written, and has
	// no file aside while one stands at the path is a move an agent was
	// killed before making: that file is still the user's, so move it now.
	_, asideErr := root.Lstat(rel + OrigSuffix)
	interrupted := j.prev != nil && j.prev.KeptAside && j.prev.Ino == 0 && j.existed && errors.Is(asideErr, fs.ErrNotExist)
	if j.ent == nil || interrupted {
		if j.ent == nil {
			j.ent = &entry{}
		}
		if j.existed {
			// Recorded and saved before the move, so that a crash between
			// the two leaves an entry the next pass completes, and the
			// original is put back even if the write fails.
			j.ent.Secret, j.ent.Mode, j.ent.KeptAside = s.Ref(), in.mode, true
			in.man.Files[target] = j.ent
			_ = in.saveNow(p.only) // a failure is reported by the save at the end of Apply
			mountPoint, err := keepAside(root, rel)
			if err != nil || mountPoint {
				j.ent.KeptAside = false
				if j.prev == nil {
					delete(in.man.Files, target)
				}
			}
			if err != nil {
				return fail(fmt.Errorf("keep the existing %s aside: %w", target, err))
			}
			if !mountPoint {
				p.res.Writes++
				j.notes = append(j.notes, "kept the existing file aside as "+target+OrigSuffix)
			}
		}
	}

	// (d)
	created, err := dirs.MkdirAll(root, path.Dir(rel), 0o700, in.owner.UID, in.owner.GID)
	p.res.Writes += len(created)
	for _, d := range created {
		in.man.Dirs = append(in.man.Dirs, path.Join(rootPath, d))
	}
	if err != nil {
		return fail(fmt.Errorf("create parents of %s: %w", target, err))
	}
	if at := placeOf(root, rel); at != (place{}) {
		p.places[at] = target
	}
	return j, injectors.Outcome{}
}

// placeOf is where rel below root resolves to (symlinks inside root
// followed, as a write would); the zero place when its parent is missing.
func placeOf(root *os.Root, rel string) place {
	if fi, err := root.Stat(path.Dir(rel)); err == nil {
		return place{idOf(fi), path.Base(rel)}
	}
	return place{}
}

// writers bounds how many files writeAll writes at once.
const writers = 8

// writeAll runs atomicfile.Write for every non-nil job, up to
// writers at once, then an Lstat of the result for its identity. It touches
// nothing but the jobs.
func writeAll(jobs []*job, mode fs.FileMode, owner injectors.Owner) {
	next := make(chan *job)
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for j := range next {
				j.out, j.err = atomicfile.Write(j.root, j.rel, j.s.Value, atomicfile.Options{Mode: mode, UID: owner.UID, GID: owner.GID})
				if j.err == nil {
					j.after, j.afterErr = j.root.Lstat(j.rel)
				}
			}
		})
	}
	for _, j := range jobs {
		if j != nil {
			next <- j
		}
	}
	close(next)
	wg.Wait()
}

// record, for one written job, names the action and records
// the path in the manifest.
func (p *pass) record(j *job) injectors.Outcome {
	in, s, target := p.in, j.s, j.s.Mount.Target
	if j.err != nil {
		if j.prev == nil && !j.ent.KeptAside {
			delete(in.man.Files, target) // never written, nothing kept aside: not managed
		}
		return injectors.Fail(s, target, fmt.Errorf("%s: %w", target, j.err))
	}
	if j.out != atomicfile.Unchanged {
		p.res.Writes++
	}
	if j.out == atomicfile.WrittenInPlace {
		j.ent.MountPoint = true
		j.notes = append(j.notes, NoteInPlace)
	}
	prev := j.prev
	action := injectors.Unchanged
	switch {
	case prev == nil || prev.Ino == 0: // new, or kept aside and never written
		action = injectors.Created
	case j.out == atomicfile.Unchanged:
	case !j.existed:
		action = injectors.Repaired // deleted by someone
	case prev.Secret.ID != s.ID || prev.Mode != in.mode:
		action = injectors.Updated
	case j.out == atomicfile.MetadataFixed:
		action = injectors.Repaired // chmod'ed or chowned by someone
	case in.sessions[target] != "" && in.sessions[target] == s.Session:
		action = injectors.Repaired // same value, other content: edited by someone
	default:
		action = injectors.Updated
	}
	j.ent.Secret, j.ent.Mode = s.Ref(), in.mode
	if j.afterErr == nil {
		j.ent.record(j.after)
	}
	in.man.Files[target] = j.ent
	in.sessions[target] = s.Session
	return injectors.Outcome{Secret: s.Ref(), Target: target, Action: action, Note: strings.Join(j.notes, "; ")}
}

// keepAside renames the file at rel to rel + OrigSuffix. It refuses when
// that name exists (it is not the agent's). mountPoint reports that rel
// cannot be renamed because it is a mount point; then nothing was moved.
func keepAside(root *os.Root, rel string) (mountPoint bool, err error) {
	orig := rel + OrigSuffix
	if _, err := root.Lstat(orig); err == nil {
		return false, fmt.Errorf("%s already exists and is not the agent's", path.Base(orig))
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	if err := root.Rename(rel, orig); err != nil {
		if errors.Is(err, syscall.EBUSY) || errors.Is(err, syscall.EXDEV) {
			return true, nil
		}
		return false, err
	}
	return false, atomicfile.SyncDir(root, path.Dir(rel))
}

// remove takes away one managed path whose secret is no longer desired.
//
//	(a) Delete the file only if it is still the regular file the agent left
//	    (same device, inode and mtime); a file someone replaced or edited,
//	    or a non-regular file, is left in place and the outcome says so. A
//	    mount point cannot be deleted: it is emptied in place.
//	(b) If a pre-existing file was kept aside and the path is free, put it
//	    back (Restored).
//	(c) Forget the path. A path that cannot be examined (e.g. a symlink now
//	    leads outside the root) fails and stays managed, to be retried; a
//	    path no longer below any allowed root is forgotten, left in place.
func (p *pass) remove(target string, ent *entry) injectors.Outcome {
	o := injectors.Outcome{Secret: ent.Secret, Target: target, Action: injectors.Removed}
	_, root, rel, err := p.locate(target)
	if err != nil {
		delete(p.in.man.Files, target)
		delete(p.in.sessions, target)
		o.Action, o.Err = injectors.Failed, fmt.Errorf("left %s in place: %w", target, err)
		return o
	}
	// (a)
	var notes []string
	fi, err := root.Lstat(rel)
	free := errors.Is(err, fs.ErrNotExist)
	switch {
	case err != nil && !free:
		o.Action, o.Err = injectors.Failed, fmt.Errorf("remove %s: %w", target, err)
		return o
	case free:
	case !fi.Mode().IsRegular():
		notes = append(notes, fmt.Sprintf("left in place: now %s", safeopen.Describe(fi.Mode())))
	case !ent.isOurs(fi):
		notes = append(notes, NoteReplaced)
	default:
		err := root.Remove(rel)
		switch {
		case err == nil:
			free = true
			p.res.Writes++
		case errors.Is(err, syscall.EBUSY):
			if err := emptyInPlace(root, rel, fi); err != nil {
				o.Action, o.Err = injectors.Failed, fmt.Errorf("empty %s: %w", target, err)
				return o
			}
			p.res.Writes++
			notes = append(notes, NoteEmptied)
		default:
			o.Action, o.Err = injectors.Failed, fmt.Errorf("remove %s: %w", target, err)
			return o
		}
	}
	// (b)
	if ent.KeptAside {
		orig := rel + OrigSuffix
		ofi, err := root.Lstat(orig)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			notes = append(notes, "the file kept aside as "+target+OrigSuffix+" is gone")
		case err != nil:
			o.Action, o.Err = injectors.Failed, fmt.Errorf("restore %s: %w", target+OrigSuffix, err)
			return o
		case !ofi.Mode().IsRegular():
			notes = append(notes, "left "+target+OrigSuffix+" alone: no longer a regular file")
		case !free:
			notes = append(notes, "the original stays at "+target+OrigSuffix+": the path is taken")
		default:
			if err := root.Rename(orig, rel); err != nil {
				o.Action, o.Err = injectors.Failed, fmt.Errorf("restore %s: %w", target, err)
				return o
			}
			p.res.Writes++
			o.Action = injectors.Restored
		}
	}
	if err := atomicfile.SyncDir(root, path.Dir(rel)); err != nil {
		o.Action, o.Err = injectors.Failed, fmt.Errorf("remove %s: %w", target, err)
		return o
	}
	// (c)
	delete(p.in.man.Files, target)
	delete(p.in.sessions, target)
	o.Note = strings.Join(notes, "; ")
	return o
}

// emptyInPlace truncates the mount point at rel, if it is still fi, so that
// no value outlives its secret.
func emptyInPlace(root *os.Root, rel string, fi fs.FileInfo) error {
	f, err := root.OpenFile(rel, os.O_WRONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	ofi, err := f.Stat()
	if err != nil {
		return err
	}
	if !os.SameFile(fi, ofi) {
		return errors.New("file changed while being emptied")
	}
	if err := f.Truncate(0); err != nil {
		return err
	}
	return f.Sync()
}

// removeEmptyDirs removes every directory the injector created that holds
// no managed or wanted path, if it is (still) an empty directory, deepest
// first. One that is not empty stays recorded, to be
// removed once it is; one that is gone or no longer a directory is forgotten.
func (p *pass) removeEmptyDirs(wanted map[string]bool) {
	dirs := slices.Clone(p.in.man.Dirs)
	slices.Sort(dirs)
	dirs = slices.Compact(dirs)
	sort.SliceStable(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
	var keep []string
	for _, d := range dirs {
		if holdsAny(d, p.in.man.Files) || holdsAny(d, wanted) {
			keep = append(keep, d)
			continue
		}
		_, root, rel, err := p.locate(d)
		if err != nil {
			continue // no longer below an allowed root: forget it
		}
		fi, err := root.Lstat(rel)
		if err != nil || !fi.IsDir() {
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				keep = append(keep, d) // cannot tell now; retry later
			}
			continue
		}
		if err := root.Remove(rel); err != nil {
			keep = append(keep, d) // not empty (someone put files there)
			continue
		}
		p.res.Writes++
		_ = atomicfile.SyncDir(root, path.Dir(rel))
	}
	sort.Strings(keep)
	p.in.man.Dirs = keep
}

// holdsAny reports whether a path below dir is a key of paths.
func holdsAny[V any](dir string, paths map[string]V) bool {
	for f := range paths {
		if strings.HasPrefix(f, dir+"/") {
			return true
		}
	}
	return false
}

// removable returns the managed paths that may be removed, sorted: every
// one, or those in only when it is not nil.
func removable(files map[string]*entry, only map[string]bool) []string {
	if only == nil {
		return slices.Sorted(maps.Keys(files))
	}
	var out []string
	for t := range only {
		if files[t] != nil {
			out = append(out, t)
		}
	}
	slices.Sort(out)
	return out
}
