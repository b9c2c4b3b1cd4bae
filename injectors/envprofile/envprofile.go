// Package envprofile delivers environment-variable secrets to shells: it
// writes the fragments env.sh (POSIX sh, sourced by bash, dash and zsh),
// env.fish and env (dotenv) into one directory, and carries the shell hooks
// that source them at login and again at the next prompt when they change
// (see InstallHooks).
package envprofile

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/secrets-agent/secrets-agent/injectors"
	"github.com/secrets-agent/secrets-agent/internal/atomicfile"
	"github.com/secrets-agent/secrets-agent/internal/dirs"
	imanifest "github.com/secrets-agent/secrets-agent/internal/manifest"
	"github.com/secrets-agent/secrets-agent/internal/safeopen"
	"github.com/secrets-agent/secrets-agent/secrets"
)

// manifestName is the manifest's file name in Options.StateDir.
const manifestName = "envprofile.json"

// Options configures the injector.
type Options struct {
	// Dir is where env.sh, env.fish and env go. If missing it is created 0700
	// and owned by Owner (its missing parents 0755, owned by the agent).
	Dir string
	// Owner owns Dir (when created) and every fragment.
	Owner injectors.Owner
	// StateDir holds the manifest: which secret set which variable, and a
	// salted HMAC of each value so that a restarted agent can tell updated
	// from unchanged. Never a value. Empty keeps that in memory only.
	StateDir string
}

// Injector writes the env fragments. Use New.
type Injector struct {
	opts Options
	// man is what the last Apply left on disk; nil until loaded.
	man *manifest
	// cleaned: the first Apply removed the temp files a crash left.
	cleaned bool
}

// manifest records the variables the injector set. It holds no value, only
// HMACs under Key (internal/manifest says what that protects).
type manifest struct {
	Version int                  `json:"version"`
	Key     imanifest.Key        `json:"key"`
	Vars    map[string]manifestV `json:"vars"`
	// Gen is the generation of the fragments that set Vars; "" if unknown
	// (a manifest from before it was kept).
	Gen string `json:"gen,omitempty"`
	// Delta is what the delta files in Dir hold, if any: the change from
	// the generation before Gen to Gen.
	Delta *delta `json:"delta,omitempty"`
}

// delta is the change from the fragments of generation From to those of To,
// by name: the variables whose value changed (Set), that are new (Add) and
// that went away (Unset). It holds names only; the delta files
// (renderDelta) take the values from the variables of To.
type delta struct {
	From  string   `json:"from"`
	To    string   `json:"to"`
	Set   []string `json:"set,omitempty"`
	Add   []string `json:"add,omitempty"`
	Unset []string `json:"unset,omitempty"`
}

// namesChanged reports whether To sets other names than From.
func (d *delta) namesChanged() bool { return len(d.Add) > 0 || len(d.Unset) > 0 }

// positions returns where each name is in the sorted list of names of From
// and of To (1 is the first), given To's list.
func (d *delta) positions(to []string) (fromAt, toAt map[string]int) {
	added := make(map[string]bool, len(d.Add))
	for _, n := range d.Add {
		added[n] = true
	}
	from := append([]string(nil), d.Unset...)
	toAt = make(map[string]int, len(to))
	for i, n := range to {
		toAt[n] = i + 1
		if !added[n] {
			from = append(from, n)
		}
	}
	sort.Strings(from)
	fromAt = make(map[string]int, len(from))
	for i, n := range from {
		fromAt[n] = i + 1
	}
	return fromAt, toAt
}

type manifestV struct {
	Secret secrets.Ref `json:"secret"`
	MAC    string      `json:"mac"`
}

// New returns the injector. It checks the options but touches no file.
func New(o Options) (*Injector, error) {
	if o.Dir == "" || !filepath.IsAbs(o.Dir) {
		return nil, fmt.Errorf("envprofile: dir %q must be an absolute path", o.Dir)
	}
	if o.StateDir != "" && !filepath.IsAbs(o.StateDir) {
		return nil, fmt.Errorf("envprofile: state dir %q must be an absolute path", o.StateDir)
	}
	o.Dir = filepath.Clean(o.Dir)
	return &Injector{opts: o}, nil
}

// Name returns "envprofile".
func (*Injector) Name() string { return "envprofile" }

// Kind returns secrets.MountEnv.
func (*Injector) Kind() secrets.MountKind { return secrets.MountEnv }

// Reserved returns Dir: the fragments in it are sourced by every shell, so
// no file secret may be written there.
func (in *Injector) Reserved() []injectors.Reserved {
	return []injectors.Reserved{{Path: in.opts.Dir, What: "the env fragment dir of envprofile"}}
}

// Apply makes env.sh, env.fish and env in Dir set exactly the variables of
// desired.
//
// Steps:
//
//	(1) Split desired into variables and failures (bad name, NUL, ...): a
//	    failure is that secret's Failed outcome; the others are still written.
//	(2) Make sure Dir exists and open it as an os.Root. On the first Apply,
//	    remove the temp files a crashed agent left beside the fragments and
//	    the manifest (atomicfile.CleanTemps): they may hold old values.
//	(3) Render the fragments. If env.sh on disk is exactly what this set
//	    renders to under its own generation, keep that generation (and the
//	    delta the manifest holds for it); otherwise take a fresh random one,
//	    so that the hooks see a change, and the delta from the manifest's
//	    generation to it (nextDelta).
//	(4) Write each fragment through atomicfile, 0600, owned by Owner, after
//	    its delta file (or the removal of the one there, when there is no
//	    delta): so a hook that sees the new generation finds its delta. An
//	    unchanged set writes nothing; a file someone changed or removed is
//	    put back. A delta file that cannot be written fails no secret (the
//	    hooks then source the fragment, as a delta file that is not a
//	    regular file or is stale makes them do); the error is the result's,
//	    and the next pass removes the delta files.
//	(5) Compare with the manifest to report created, updated, unchanged
//	    (repaired if a file had to be put back) and removed variables, and
//	    save the manifest if it changed.
func (in *Injector) Apply(ctx context.Context, desired []secrets.Secret) injectors.Result {
	var res injectors.Result
	// (1)
	vars, idx, errs := split(desired)
	for i, s := range desired {
		if err := errs[i]; err != nil {
			res.Outcomes = append(res.Outcomes, injectors.Fail(s, s.Mount.Target, err))
		}
	}
	if err := ctx.Err(); err != nil {
		res.Err = err
		return in.failAll(res, desired, vars, idx, err)
	}
	// (2)
	root, err := in.openDir()
	if err != nil {
		res.Err = err
		return in.failAll(res, desired, vars, idx, err)
	}
	defer root.Close()
	if !in.cleaned {
		in.cleanTemps(root) // not counted in Writes: it would read as a repair
		in.cleaned = true
	}
	if err := in.loadManifest(); err != nil {
		res.Err = err
		return in.failAll(res, desired, vars, idx, err)
	}
	// (3)
	key := in.man.Key
	gen, d := currentGen(root, vars), in.man.Delta
	if gen == "" {
		gen = newGen()
		d = in.man.nextDelta(key, vars, gen)
	}
	if d != nil && d.To != gen {
		d = nil
	}
	// (4)
	fopts := atomicfile.Options{Mode: 0o600, UID: in.opts.Owner.UID, GID: in.opts.Owner.GID}
	var werr, derr error
	for _, f := range Formats {
		if name := f.DeltaName(); name != "" {
			n, err := in.writeDelta(root, name, f, d, vars, fopts)
			res.Writes += n
			if err != nil {
				derr = errors.Join(derr, fmt.Errorf("envprofile: %w", err))
			} else if d != nil {
				res.Paths = append(res.Paths, filepath.Join(in.opts.Dir, name))
			}
		}
		out, err := atomicfile.Write(root, f.FileName(), render(f, vars, gen), fopts)
		if out != atomicfile.Unchanged {
			res.Writes++
		}
		if err != nil {
			werr = errors.Join(werr, fmt.Errorf("envprofile: %w", err))
		}
		res.Paths = append(res.Paths, filepath.Join(in.opts.Dir, f.FileName()))
	}
	if werr != nil {
		res.Err = werr
		return in.failAll(res, desired, vars, idx, werr)
	}
	// (5)
	next := &manifest{Version: imanifest.Version, Key: in.man.Key, Vars: map[string]manifestV{}, Gen: gen, Delta: d}
	if derr != nil {
		next.Delta = nil // the next pass removes what is there
	}
	same := len(vars) == len(in.man.Vars)
	outcomes := make([]injectors.Outcome, len(vars))
	for k, v := range vars {
		s := desired[idx[k]]
		mac := key.MAC(v.value)
		next.Vars[v.name] = manifestV{Secret: s.Ref(), MAC: mac}
		act := injectors.Unchanged
		switch old, ok := in.man.Vars[v.name]; {
		case !ok:
			act, same = injectors.Created, false
		case old.MAC != mac:
			act, same = injectors.Updated, false
		}
		outcomes[k] = injectors.Outcome{Secret: s.Ref(), Target: v.name, Action: act}
	}
	if same && res.Writes > 0 {
		for k := range outcomes {
			outcomes[k].Action = injectors.Repaired
		}
	}
	res.Outcomes = append(res.Outcomes, outcomes...)
	var gone []string
	for name := range in.man.Vars {
		if _, ok := next.Vars[name]; !ok {
			gone = append(gone, name)
		}
	}
	sort.Strings(gone)
	for _, name := range gone {
		res.Outcomes = append(res.Outcomes, injectors.Outcome{Secret: in.man.Vars[name].Secret, Target: name, Action: injectors.Removed})
	}
	n, err := in.saveManifest(next)
	res.Writes += n
	res.Err = errors.Join(derr, err)
	return res
}

// A delta is written only if it changes at most minDeltaCap variables or at
// most one in deltaShare of them. Past that the hooks source the whole
// fragment, which costs them less than a delta of much of it (fish's hook
// sets each variable of a delta on its own, zsh exports each).
const (
	minDeltaCap = 16
	deltaShare  = 8
)

// nextDelta returns the delta from m's generation to the fragments of
// generation gen setting vars, telling changed values by their MACs under
// key; nil if m's generation is unknown, if vars is empty (the fragments
// then hold nothing and the delta would only outlive them), or if the
// delta is past its bound (minDeltaCap, deltaShare).
func (m *manifest) nextDelta(key imanifest.Key, vars []variable, gen string) *delta {
	if m.Gen == "" || len(vars) == 0 {
		return nil
	}
	d := &delta{From: m.Gen, To: gen}
	seen := make(map[string]bool, len(vars))
	for _, v := range vars {
		seen[v.name] = true
		switch old, ok := m.Vars[v.name]; {
		case !ok:
			d.Add = append(d.Add, v.name)
		case old.MAC != key.MAC(v.value):
			d.Set = append(d.Set, v.name)
		}
	}
	for name := range m.Vars {
		if !seen[name] {
			d.Unset = append(d.Unset, name)
		}
	}
	sort.Strings(d.Unset)
	if n := len(d.Set) + len(d.Add) + len(d.Unset); n > minDeltaCap && n*deltaShare > len(vars) {
		return nil
	}
	return d
}

// writeDelta writes, as the delta file name of format f, d
// rendered for vars, or, if d is nil, removes the file there (whatever it
// is: a removal follows no symlink and opens nothing). It returns the
// number of writes and removals.
func (in *Injector) writeDelta(root *os.Root, name string, f Format, d *delta, vars []variable, fopts atomicfile.Options) (int, error) {
	if d == nil {
		err := root.Remove(name)
		switch {
		case err == nil:
			return 1, nil
		case errors.Is(err, fs.ErrNotExist):
			return 0, nil
		}
		return 0, fmt.Errorf("remove %s: %w", name, err)
	}
	out, err := atomicfile.Write(root, name, renderDelta(f, d, vars), fopts)
	if out == atomicfile.Unchanged {
		return 0, err
	}
	return 1, err
}

// failAll adds a Failed outcome with err for every secret that had none.
func (in *Injector) failAll(res injectors.Result, desired []secrets.Secret, vars []variable, idx []int, err error) injectors.Result {
	for k, v := range vars {
		res.Outcomes = append(res.Outcomes, injectors.Fail(desired[idx[k]], v.name, err))
	}
	return res
}

// openDir creates Dir if missing (0700, owned by Owner; its
// missing parents 0755, as /run/secrets-agent holds every user's dir) and
// opens it.
//
// A Dir in Owner's home is reached through an os.Root at the home
// (dirs.OpenUnder).
func (in *Injector) openDir() (*os.Root, error) {
	dir, home := in.opts.Dir, in.opts.Owner.Home
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) && (home == "" || !dirs.Below(home, dir)) {
		parent := filepath.Dir(dir)
		if err := os.MkdirAll(parent, 0o755); err != nil {
			return nil, fmt.Errorf("envprofile: create %s: %w", parent, err)
		}
	}
	root, err := dirs.OpenUnder(home, dir, 0o700, in.opts.Owner.UID, in.opts.Owner.GID)
	if err != nil {
		return nil, fmt.Errorf("envprofile: %w", err)
	}
	return root, nil
}

// cleanTemps, on the first Apply, removes the temp
// files of the fragments in root and of the manifest, and returns how many.
// A failure is not reported: a temp file that stays is harmless to the write.
func (in *Injector) cleanTemps(root *os.Root) int {
	n := 0
	for _, f := range Formats {
		c, _ := atomicfile.CleanTemps(root, f.FileName())
		n += c
		if name := f.DeltaName(); name != "" {
			c, _ := atomicfile.CleanTemps(root, name)
			n += c
		}
	}
	if in.opts.StateDir == "" {
		return n
	}
	state, err := safeopen.OpenRoot(in.opts.StateDir)
	if err != nil {
		return n // no state dir yet: no temp file in it either
	}
	defer state.Close()
	c, _ := atomicfile.CleanTemps(state, manifestName)
	return n + c
}

// currentGen returns the generation of env.sh in root if the file is
// exactly what vars render to under that generation, else "". Whatever a
// user put in its place (a FIFO, a symlink) is "" at once, never waited on.
func currentGen(root *os.Root, vars []variable) string {
	cur, err := safeopen.ReadFile(root, FormatSh.FileName(), 8<<20)
	if err != nil {
		return ""
	}
	first, _, _ := bytes.Cut(cur, []byte("\n"))
	gen, ok := bytes.CutPrefix(first, []byte(genPrefix))
	if !ok || len(gen) == 0 {
		return ""
	}
	for _, c := range gen {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return ""
		}
	}
	if !bytes.Equal(cur, render(FormatSh, vars, string(gen))) {
		return ""
	}
	return string(gen)
}

// newGen returns a fresh random generation token (hex).
func newGen() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// loadManifest reads the manifest once per process. A missing manifest (or
// no StateDir) starts empty with a fresh key; one that cannot be read is an
// error (the corruption rule of internal/manifest), and every Apply fails
// with it.
func (in *Injector) loadManifest() error {
	if in.man != nil {
		return nil
	}
	m := &manifest{Version: imanifest.Version, Vars: map[string]manifestV{}}
	if in.opts.StateDir != "" {
		if _, err := imanifest.Load(in.opts.StateDir, manifestName, m); err != nil {
			return fmt.Errorf("envprofile: %w", err)
		}
		if m.Vars == nil {
			m.Vars = map[string]manifestV{}
		}
	}
	if !m.Key.Valid() {
		k, err := imanifest.NewKey()
		if err != nil {
			return fmt.Errorf("envprofile: %w", err)
		}
		m.Key = k
		m.Vars = map[string]manifestV{} // MACs under another key mean nothing
		m.Gen, m.Delta = "", nil        // and no delta can be told from them
	}
	in.man = m
	return nil
}

// saveManifest writes m (if StateDir is set) and makes it current. It returns
// the number of writes: 0 when the file already said the same.
func (in *Injector) saveManifest(m *manifest) (int, error) {
	in.man = m
	if in.opts.StateDir == "" {
		return 0, nil
	}
	wrote, err := imanifest.Save(in.opts.StateDir, manifestName, m)
	if err != nil {
		return 0, fmt.Errorf("envprofile: %w", err)
	}
	if !wrote {
		return 0, nil
	}
	return 1, nil
}
