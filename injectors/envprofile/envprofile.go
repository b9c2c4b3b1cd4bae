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
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

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
	// man is what the last Apply left on disk; nil until loaded. Its Vars
	// are in last and enc instead.
	man *manifest
	// last is every variable man records, sorted by name, with its
	// rendering (and value) once this process rendered it, so that a pass
	// renders and MACs only the variables whose value changed.
	last []known
	// enc is man's Vars, each kept encoded (manifest.Entries), and tail
	// the encoding of man's fields after them.
	enc    imanifest.Entries[manifestV]
	tail   []byte
	encLen int // the length of the manifest last saved, to size the next
	// unsaved: man changed since it was last loaded or saved.
	unsaved bool
	// written: the fragments in Dir are what the last Apply rendered from
	// last under man.Gen (it wrote or found them so), so that a pass whose
	// set differs knows without reading env.sh that its generation is new.
	written bool
	// cleaned: the first Apply removed the temp files a crash left.
	cleaned bool
}

// known is one variable the manifest records.
type known struct {
	name string
	v    manifestV
	r    *rendered // nil until this process rendered it
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

// fromAt returns where a name of From is in From's sorted list of names (1
// is the first), given vars, the variables of To, sorted: its place in To's,
// less the names added before it, plus the names unset before it (Add and
// Unset are sorted). Only names of From may be asked for.
func (d *delta) fromAt(vars []variable) func(name string) int {
	return func(name string) int {
		at, _ := slices.BinarySearchFunc(vars, name, func(v variable, n string) int { return strings.Compare(v.name, n) })
		added, _ := slices.BinarySearch(d.Add, name)
		unset, _ := slices.BinarySearch(d.Unset, name)
		return at - added + unset + 1
	}
}

// toAt returns where a name of vars (sorted) is among them (1 is the first).
func toAt(vars []variable) func(name string) int {
	return func(name string) int {
		at, _ := slices.BinarySearchFunc(vars, name, func(v variable, n string) int { return strings.Compare(v.name, n) })
		return at + 1
	}
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
//	    remove the temp files a crashed agent left beside the fragments
//	    (atomicfile.CleanTemps): they may hold old values. (The manifest's
//	    are removed by manifest.Save.)
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
		cleanTemps(root) // not counted in Writes: it would read as a repair
		in.cleaned = true
	}
	if err := in.loadManifest(); err != nil {
		res.Err = err
		return in.failAll(res, desired, vars, idx, err)
	}
	// (3)
	acts, gone, ch := in.compare(vars)
	changed := len(ch.Set)+len(ch.Add)+len(ch.Unset) > 0
	gen, d := "", in.man.Delta
	if !changed || !in.written {
		gen = currentGen(root, vars)
	}
	in.written = false
	if gen == "" {
		gen = newGen()
		d = in.man.nextDelta(vars, ch, gen)
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
	in.written = true
	// (5)
	if derr != nil {
		d = nil // the next pass removes what is there
	}
	outcomes := make([]injectors.Outcome, len(vars))
	next := make([]known, len(vars))
	varsChanged := false
	for k, v := range vars {
		s := desired[idx[k]]
		mv := manifestV{Secret: s.Ref(), MAC: v.r.mac}
		next[k] = known{name: v.name, v: mv, r: v.r}
		if acts[k].act != injectors.Unchanged || acts[k].old != mv {
			varsChanged = in.enc.Put(v.name, mv) || varsChanged
		}
		outcomes[k] = injectors.Outcome{Secret: s.Ref(), Target: v.name, Action: acts[k].act}
		if !changed && res.Writes > 0 {
			outcomes[k].Action = injectors.Repaired
		}
	}
	res.Outcomes = append(res.Outcomes, outcomes...)
	for _, g := range gone {
		varsChanged = in.enc.Delete(g.name) || varsChanged
		res.Outcomes = append(res.Outcomes, injectors.Outcome{Secret: g.v.Secret, Target: g.name, Action: injectors.Removed})
	}
	in.last = next
	n, err := in.saveManifest(&manifest{Version: imanifest.Version, Key: in.man.Key, Gen: gen, Delta: d}, varsChanged)
	res.Writes += n
	res.Err = errors.Join(derr, err)
	return res
}

// change is what Apply found for one variable: its action, and the
// manifest's entry for it before (zero if it is new).
type change struct {
	act injectors.Action
	old manifestV
}

// compare matches vars (sorted by name) with last (sorted too) in one
// pass. A variable whose value is the one last rendered takes that
// rendering and MAC over; any other is rendered and MACed under the
// manifest's key. It returns what changed for each variable of vars
// (Created, Updated or Unchanged, by the MAC the manifest holds), the
// variables no longer desired, sorted, and the change as a delta's lists,
// each sorted.
func (in *Injector) compare(vars []variable) (acts []change, gone []known, ch delta) {
	acts = make([]change, len(vars))
	render := func(v *variable) {
		if v.r == nil {
			v.lines().mac = in.man.Key.MAC(v.value)
		}
	}
	i, j := 0, 0
	for i < len(vars) || j < len(in.last) {
		switch {
		case j == len(in.last) || i < len(vars) && vars[i].name < in.last[j].name:
			render(&vars[i])
			acts[i].act = injectors.Created
			ch.Add = append(ch.Add, vars[i].name)
			i++
		case i == len(vars) || in.last[j].name < vars[i].name:
			gone = append(gone, in.last[j])
			ch.Unset = append(ch.Unset, in.last[j].name)
			j++
		default:
			v, k := &vars[i], in.last[j]
			if k.r != nil && bytes.Equal(k.r.value, v.value) {
				v.r = k.r
			}
			render(v)
			acts[i] = change{act: injectors.Unchanged, old: k.v}
			if v.r.mac != k.v.MAC {
				acts[i].act = injectors.Updated
				ch.Set = append(ch.Set, v.name)
			}
			i, j = i+1, j+1
		}
	}
	return acts, gone, ch
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
// generation gen setting vars, ch being what changed (compare); nil if m's
// generation is unknown, if vars is empty (the fragments then hold nothing
// and the delta would only outlive them), or if the delta is past its bound
// (minDeltaCap, deltaShare).
func (m *manifest) nextDelta(vars []variable, ch delta, gen string) *delta {
	if m.Gen == "" || len(vars) == 0 {
		return nil
	}
	d := &delta{From: m.Gen, To: gen, Set: ch.Set, Add: ch.Add, Unset: ch.Unset}
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

// cleanTemps, on the first Apply, removes the temp files of the fragments
// in root (the manifest's are manifest.Save's). A failure is not reported: a
// temp file that stays is harmless to the write.
func cleanTemps(root *os.Root) {
	for _, f := range Formats {
		_, _ = atomicfile.CleanTemps(root, f.FileName())
		if name := f.DeltaName(); name != "" {
			_, _ = atomicfile.CleanTemps(root, name)
		}
	}
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
	for name, v := range m.Vars {
		in.last = append(in.last, known{name: name, v: v})
		in.enc.Put(name, v)
	}
	slices.SortFunc(in.last, func(a, b known) int { return strings.Compare(a.name, b.name) })
	m.Vars = nil
	in.man, in.tail = m, m.encodeTail()
	return nil
}

// encodeTail returns the encoding of m's fields after its vars, as
// encoding/json writes them.
func (m *manifest) encodeTail() []byte {
	tail := struct {
		Gen   string `json:"gen,omitempty"`
		Delta *delta `json:"delta,omitempty"`
	}{m.Gen, m.Delta}
	b, err := json.Marshal(tail)
	if err != nil {
		panic(err) // strings only: cannot fail
	}
	return b[1 : len(b)-1] // no braces: `"gen":"...","delta":{...}`, or nothing
}

// saveManifest makes m (without vars: those are in enc, varsChanged saying
// whether this pass changed them) current and writes it with enc's vars, if
// StateDir is set and it changed since it was last loaded or saved. It
// returns the number of writes: 0 when nothing changed or the file already
// said the same. The file is what imanifest.Encode makes of the manifest,
// the vars copied from their cached encodings.
func (in *Injector) saveManifest(m *manifest, varsChanged bool) (int, error) {
	tail := m.encodeTail()
	if varsChanged || !bytes.Equal(tail, in.tail) {
		in.unsaved = true
	}
	in.man, in.tail = m, tail
	if in.opts.StateDir == "" || !in.unsaved {
		return 0, nil
	}
	key, err := json.Marshal(m.Key)
	if err != nil {
		return 0, fmt.Errorf("envprofile: %w", err)
	}
	b := make([]byte, 0, in.encLen+len(tail)+256)
	b = append(b, `{"version":`...)
	b = strconv.AppendInt(b, int64(m.Version), 10)
	b = append(append(append(b, `,"key":`...), key...), `,"vars":`...)
	b = in.enc.AppendJSON(b)
	if len(tail) > 0 {
		b = append(append(b, ','), tail...)
	}
	b = append(b, "}\n"...)
	in.encLen = len(b)
	wrote, err := imanifest.SaveBytes(in.opts.StateDir, manifestName, b)
	if err != nil {
		return 0, fmt.Errorf("envprofile: %w", err)
	}
	in.unsaved = false
	if !wrote {
		return 0, nil
	}
	return 1, nil
}
