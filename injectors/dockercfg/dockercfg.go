// Package dockercfg keeps registry credentials in docker's config.json equal
// to the registry secrets: inline as auths[host] = {"auth": base64(user:pass)},
// or as credHelpers[host] = "secrets-agent" so that docker asks the agent's
// credential helper and no password is written to disk. Every key and entry
// it did not write survives, including top-level keys docker/cli's own
// ConfigFile struct does not know.
package dockercfg

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/secrets-agent/secrets-agent/injectors"
	"github.com/secrets-agent/secrets-agent/internal/atomicfile"
	"github.com/secrets-agent/secrets-agent/internal/dirs"
	"github.com/secrets-agent/secrets-agent/internal/safeopen"
	"github.com/secrets-agent/secrets-agent/internal/tilde"
	"github.com/secrets-agent/secrets-agent/secrets"
)

// Mode says how credentials reach docker.
type Mode string

// The modes.
const (
	// Inline writes auths[host] = {"auth": base64(user:password)}.
	Inline Mode = "inline"
	// Helper writes credHelpers[host] = HelperName; docker then runs
	// docker-credential-<HelperName>, which asks the agent. No password is
	// written to disk.
	Helper Mode = "helper"
	// Auto is Helper when the user's config.json has a credsStore, else
	// Inline. With a credsStore docker asks the store first and uses auths
	// only when the store has nothing for the host (checked with docker
	// 28.2), so a stale login in the store would win over the secret;
	// credHelpers[host] wins over credsStore. It is decided on every pass.
	Auto Mode = "auto"
)

// DefaultHelperName is the credential helper docker runs in helper mode:
// docker-credential-secrets-agent.
const DefaultHelperName = "secrets-agent"

const (
	configName = "config.json"
	// maxAttempts bounds how often Apply starts over because another program
	// changed config.json while it was merging.
	maxAttempts = 5
	// maxConfigSize bounds what Apply reads as config.json.
	maxConfigSize = 16 << 20
)

// Options configure the injector.
type Options struct {
	// ConfigDir is where config.json lives; "~" means Owner.Home. Empty
	// means "~/.docker"; the agent passes $DOCKER_CONFIG where it wants that.
	ConfigDir string
	// Mode is Inline, Helper or Auto; empty means Inline.
	Mode Mode
	// HelperName is the credHelpers value in helper mode; empty means
	// DefaultHelperName.
	HelperName string
	// Owner owns the config dir and config.json when the injector creates
	// them.
	Owner injectors.Owner
	// StateDir holds the manifest, dockercfg.json.
	StateDir string
}

// Injector keeps config.json's registry entries equal to the registry
// secrets. It is not safe for concurrent Apply calls (the agent serializes).
type Injector struct {
	o         Options
	configDir string
	// beforeCommit, when set, runs after a merge and before the re-read that
	// guards the write: a test seam to play another writer.
	beforeCommit func()
	// cleaned: the first Apply removed the temp files a crash left.
	cleaned bool
}

// New returns an injector for o. It touches nothing on disk.
func New(o Options) (*Injector, error) {
	switch o.Mode {
	case "":
		o.Mode = Inline
	case Inline, Helper, Auto:
	default:
		return nil, fmt.Errorf("dockercfg: mode %q: must be inline, helper or auto", o.Mode)
	}
	if o.HelperName == "" {
		o.HelperName = DefaultHelperName
	}
	if !validHelperName(o.HelperName) {
		return nil, fmt.Errorf("dockercfg: helper name %q: must be letters, digits, '.', '_' or '-'", o.HelperName)
	}
	dir := o.ConfigDir
	if dir == "" {
		dir = "~/.docker"
	}
	dir, err := tilde.Expand(dir, o.Owner.Home)
	if err != nil {
		return nil, fmt.Errorf("dockercfg: config dir %w", err)
	}
	if !filepath.IsAbs(dir) {
		return nil, fmt.Errorf("dockercfg: config dir %q: must be absolute", dir)
	}
	if !filepath.IsAbs(o.StateDir) {
		return nil, fmt.Errorf("dockercfg: state dir %q: must be absolute", o.StateDir)
	}
	return &Injector{o: o, configDir: filepath.Clean(dir)}, nil
}

func validHelperName(s string) bool {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return s != ""
}

// Name is "dockercfg".
func (in *Injector) Name() string { return "dockercfg" }

// Kind is secrets.MountRegistry.
func (in *Injector) Kind() secrets.MountKind { return secrets.MountRegistry }

// ConfigPath is the config.json the injector manages.
func (in *Injector) ConfigPath() string { return filepath.Join(in.configDir, configName) }

// Reserved returns ConfigPath: a file secret there and this injector would
// rewrite the file back and forth for ever.
func (in *Injector) Reserved() []injectors.Reserved {
	return []injectors.Reserved{{Path: in.ConfigPath(), What: "the docker config dockercfg manages"}}
}

// Key returns the auths/credHelpers key for a registry host, the key docker
// itself looks up: Docker Hub's names are "https://index.docker.io/v1/",
// other hosts are lower-cased, without scheme or path, port kept.
func Key(host string) string { return secrets.RegistryKey(host) }

// want is one desired entry.
type want struct {
	s    secrets.Secret
	key  string
	auth string             // base64 user:password, as docker writes it
	out  *injectors.Outcome // its outcome, which the pass that writes it fills in
}

// pass is one merge of the desired entries into one reading of config.json.
type pass struct {
	before  []byte // config.json as read; nil when it did not exist
	mode    Mode
	doc     *document
	recs    []record // the manifest's entries after this pass
	perm    fs.FileMode
	uid     int
	gid     int
	removed []injectors.Outcome
	// fixMode: the content is right but the file's mode is wider than an
	// inline credential allows.
	fixMode bool
}

// Apply makes config.json's entries for the registry secrets equal desired
// and removes the entries it wrote for secrets no longer desired. With nothing
// to change it writes nothing (Writes 0).
//
// Merge algorithm:
//
//	(1) Check each desired secret: registry mount, decodable value (with
//	    secrets.RegistryAuth), one secret per key. A bad one fails alone; its
//	    earlier entry, if any, is left as it is.
//	(2) Load the manifest (which entries the injector wrote and the HMAC of
//	    each); open the state dir and the config dir with os.Root, creating
//	    them 0700 (the config dir owned by Owner) where missing; a config
//	    dir in the home that someone else owns is given to Owner
//	    (takeOverDir), so the user can reach config.json. On the
//	    first Apply, remove the temp files a crashed agent left beside
//	    config.json and the manifest (atomicfile.CleanTemps): they may hold
//	    credentials.
//	(3) Read config.json (no symlink followed) once it has settled: empty
//	    or not valid JSON while a program writes it is a user's edit in
//	    flight, waited for (readSettled; all waits of one Apply together
//	    at most settleBudget). Parse it as a generic JSON
//	    object. Not valid JSON: the pass fails, the file is untouched.
//	(4) Decide the mode: Auto is Helper when credsStore is set.
//	(4b) A config.json someone else owns is taken over (owned by Owner,
//	    0600) when it holds no credentials but the injector's, else the
//	    pass fails (takeOver).
//	(5) For each desired secret set auths[key] = {"auth": ...} (keeping
//	    any non-credential field of an entry already there) or
//	    credHelpers[key] = HelperName. Note when docker may not read it
//	    (credsStore, or someone's credHelpers[key], in inline mode).
//	(6) For each manifest entry no longer desired: delete it if its HMAC
//	    matches (it is what the injector wrote); else someone replaced it
//	    (a later docker login): keep it and forget it. An entry of a host
//	    still desired in the other section (the mode changed) is deleted
//	    as part of that host's outcome (updated, noting the move), not
//	    reported as a removal of its own.
//	(7) Nothing changed (and the mode is right): stop, no write. Else
//	    encode the object, then read config.json again: if it differs from
//	    (3), or a program holds it open for writing, another program writes
//	    in between; start again at (3), at most maxAttempts times. Keep the
//	    file read open, to look at after (9).
//	(8) Write the manifest with both the old and the new HMACs, so that a
//	    crash after (9) still knows the new entries as the injector's.
//	(9) Write config.json through atomicfile (temp file, fsync, rename),
//	    keeping its mode and owner (0600 and Owner when creating; group and
//	    other bits cleared when it holds an inline credential).
//	(9b) Look at the file (9) replaced: a program that had it open for
//	    writing across the rename (an in-place edit) wrote into a file no
//	    one will read again. Wait for it to finish (lateWrite), then merge
//	    that write as in (5)-(6) and go back to (7), where config.json
//	    must still hold what (9) wrote.
//	(10) Write the manifest with the new HMACs only.
//
// The remaining window: another program that renames its own file over
// config.json between the re-read of (7) and the rename of (9) — the time
// to write and fsync a temp file — loses its write. docker/cli takes no lock
// on config.json (it too writes a temp file and renames it), so no
// cooperative lock could close it. In-place writers lose nothing: (3) and
// (9b) catch them; one that is still writing when the waits are over (or
// through every attempt) fails the pass instead, and the merge happens in
// the pass its last write brings.
func (in *Injector) Apply(ctx context.Context, desired []secrets.Secret) injectors.Result {
	res := injectors.Result{Paths: []string{in.ConfigPath()}}
	outs := make([]injectors.Outcome, len(desired))

	// (1)
	var wants []want
	keep := map[string]bool{} // keys whose secret failed: their entries stay
	seen := map[string]bool{}
	for i, s := range desired {
		key := Key(s.Mount.Target)
		outs[i] = injectors.Outcome{Secret: s.Ref(), Target: key}
		switch {
		case s.Mount.Kind != secrets.MountRegistry:
			outs[i] = injectors.Fail(s, key, fmt.Errorf("dockercfg: mount %s is not a registry mount", s.Mount))
			continue
		case key == "":
			outs[i] = injectors.Fail(s, key, fmt.Errorf("dockercfg: registry host %q names no host", s.Mount.Target))
			continue
		case seen[key]:
			outs[i] = injectors.Fail(s, key, fmt.Errorf("dockercfg: another registry secret already targets %s", key))
			continue
		}
		seen[key] = true
		user, password, err := secrets.RegistryAuth(s.Value)
		if err != nil {
			outs[i] = injectors.Fail(s, key, fmt.Errorf("dockercfg: value of %s: %w", secrets.Label(s.Name), err))
			keep[key] = true
			continue
		}
		wants = append(wants, want{s: s, key: key, auth: base64.StdEncoding.EncodeToString([]byte(user + ":" + password)), out: &outs[i]})
	}
	failAll := func(err error) injectors.Result {
		for _, w := range wants {
			*w.out = injectors.Fail(w.s, w.key, err)
		}
		res.Outcomes = append(outs, res.Outcomes...)
		res.Err = err
		return res
	}
	if err := ctx.Err(); err != nil {
		return failAll(fmt.Errorf("dockercfg: %w", err))
	}

	// (2)
	stateRoot, err := dirs.Open(in.o.StateDir, 0o700, -1, -1)
	if err != nil {
		return failAll(fmt.Errorf("dockercfg: state dir: %w", err))
	}
	defer stateRoot.Close()
	man, err := loadManifest(in.o.StateDir)
	if err != nil {
		return failAll(fmt.Errorf("dockercfg: %w", err))
	}
	if man.Config != "" && man.Config != in.ConfigPath() {
		// The config dir changed: take the entries out of the old file first
		// (a pass with nothing desired on it), then start from its manifest.
		res.Outcomes, res.Writes = in.moveFrom(ctx, man.Config)
		if man, err = loadManifest(in.o.StateDir); err != nil {
			return failAll(fmt.Errorf("dockercfg: %w", err))
		}
		man.Entries = nil
	}
	man.Config = in.ConfigPath()
	cfgRoot, err := in.openConfigDir()
	if err != nil {
		return failAll(fmt.Errorf("dockercfg: config dir: %w", err))
	}
	defer cfgRoot.Close()
	if len(wants) > 0 {
		if err := in.takeOverDir(cfgRoot); err != nil {
			return failAll(fmt.Errorf("dockercfg: config dir: %w", err))
		}
	}
	if !in.cleaned {
		// A failure is not reported: a temp file that stays does not hinder
		// a write.
		_, _ = atomicfile.CleanTemps(cfgRoot, configName)
		_, _ = atomicfile.CleanTemps(stateRoot, manifestName)
		in.cleaned = true
	}

	var p *pass
	// late is a write that landed in the config.json the last rename
	// replaced (9b); written is what that rename put in its place.
	var late *configRead
	var written []byte
	until := time.Now().Add(settleBudget) // all waiting for config.json to settle
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return failAll(fmt.Errorf("dockercfg: %w", err))
		}
		// (3)-(6)
		if late != nil {
			p, err = in.mergeRead(*late, man, wants, keep)
		} else {
			p, err = in.merge(ctx, cfgRoot, until, man, wants, keep)
		}
		if err != nil {
			return failAll(fmt.Errorf("dockercfg: %s: %w", in.ConfigPath(), err))
		}
		// (7)
		if !p.doc.changed && !p.fixMode && late == nil {
			break
		}
		data := p.before
		if p.doc.changed {
			if data, err = p.doc.encode(); err != nil {
				return failAll(fmt.Errorf("dockercfg: %s: %w", in.ConfigPath(), err))
			}
		}
		if in.beforeCommit != nil {
			in.beforeCommit()
		}
		now, err := readConfig(cfgRoot)
		if err != nil {
			return failAll(fmt.Errorf("dockercfg: %s: %w", in.ConfigPath(), err))
		}
		expect := p.before
		if late != nil {
			expect = written
		}
		writing, _ := writersAt(cfgRoot)
		if !sameRead(now, expect) || writing {
			if attempt == maxAttempts {
				return failAll(fmt.Errorf("dockercfg: %s: changed by another program during each of %d attempts; try again later", in.ConfigPath(), maxAttempts))
			}
			late = nil
			continue
		}
		held := holdConfig(cfgRoot, now)
		if held == nil && now.info != nil {
			late = nil
			continue // replaced since the re-read
		}
		// (8)
		wrote, err := man.union(p.recs).save(in.o.StateDir)
		if err != nil {
			return failAll(fmt.Errorf("dockercfg: %w", err))
		}
		if wrote {
			res.Writes++
		}
		// (9)
		out, err := atomicfile.Write(cfgRoot, configName, data, atomicfile.Options{Mode: p.perm, UID: p.uid, GID: p.gid})
		if err != nil {
			if held != nil {
				held.Close()
			}
			return failAll(fmt.Errorf("dockercfg: %w", err))
		}
		if out != atomicfile.Unchanged {
			res.Writes++
		}
		// (9b)
		if held == nil {
			break
		}
		late, err = lateWrite(ctx, held, now.data, until)
		held.Close()
		if err != nil {
			return failAll(fmt.Errorf("dockercfg: %s: %w", in.ConfigPath(), err))
		}
		if late == nil {
			break
		}
		if attempt == maxAttempts {
			return failAll(fmt.Errorf("dockercfg: %s: written by another program during each of %d attempts; try again later", in.ConfigPath(), maxAttempts))
		}
		written = data
	}

	// (10)
	wrote, err := man.with(p.recs).save(in.o.StateDir)
	if wrote {
		res.Writes++
	}
	res.Err = err

	res.Outcomes = append(append(outs, p.removed...), res.Outcomes...)
	return res
}

// openConfigDir opens the config dir, creating it 0700 and owned by Owner
// when missing. A config dir in Owner's home is reached through an os.Root at
// the home, so that a symlink the user plants (~/.docker -> /root/.docker)
// cannot make an agent running as root write another user's config; one
// outside the home ($DOCKER_CONFIG or config_dir set by the admin) is opened
// as configured.
func (in *Injector) openConfigDir() (*os.Root, error) {
	return dirs.OpenUnder(in.o.Owner.Home, in.configDir, 0o700, in.o.Owner.UID, in.o.Owner.GID)
}

// moveFrom removes the entries the injector wrote into the config.json at
// old, which it managed before its config dir changed, and returns what it
// did. A missing old file has nothing to remove (and its dir is not made
// again); a failure there is reported in the outcomes and the entries are
// forgotten, since the new file is what counts now. It also returns how many
// files it wrote.
func (in *Injector) moveFrom(ctx context.Context, old string) ([]injectors.Outcome, int) {
	if _, err := os.Lstat(old); err != nil {
		return nil, 0
	}
	prev := *in
	prev.configDir = filepath.Dir(old)
	res := prev.Apply(ctx, nil)
	if res.Err != nil {
		return []injectors.Outcome{{Target: old, Action: injectors.Failed, Err: fmt.Errorf("dockercfg: remove entries from the previous config %s: %w", old, res.Err)}}, res.Writes
	}
	return res.Outcomes, res.Writes
}

// merge is steps (3) to (6) of Apply on one settled reading of config.json.
func (in *Injector) merge(ctx context.Context, root *os.Root, until time.Time, man *manifest, wants []want, keep map[string]bool) (*pass, error) {
	// (3)
	r, err := readSettled(ctx, root, until)
	if err != nil {
		return nil, err
	}
	return in.mergeRead(r, man, wants, keep)
}

// mergeRead is merge on config.json as read: steps (3) to (6) without the
// disk.
func (in *Injector) mergeRead(r configRead, man *manifest, wants []want, keep map[string]bool) (*pass, error) {
	var err error
	p := &pass{perm: 0o600, uid: in.o.Owner.UID, gid: in.o.Owner.GID}
	p.before = r.data
	if r.info != nil {
		p.perm = r.info.Mode().Perm()
		if st, ok := r.info.Sys().(*syscall.Stat_t); ok {
			p.uid, p.gid = int(st.Uid), int(st.Gid)
		}
	}
	if p.doc, err = parseDocument(r.data); err != nil {
		return nil, err
	}

	// (4)
	credsStore := p.doc.str("credsStore")
	p.mode = in.o.Mode
	if p.mode == Auto {
		p.mode = Inline
		if credsStore != "" {
			p.mode = Helper
		}
	}
	section := sectionAuths
	if p.mode == Helper {
		section = sectionCredHelpers
	}
	// (4b)
	var ownerNote string
	if len(wants) > 0 {
		if ownerNote, err = in.takeOver(p, r, man); err != nil {
			return nil, err
		}
	}

	// (5)
	wanted := map[string]bool{}
	outOf := map[string]*injectors.Outcome{} // key -> its outcome, for (6)'s mode switches
	for _, w := range wants {
		wanted[section+"\x00"+w.key] = true
		outOf[w.key] = w.out
		cur, err := p.doc.get(section, w.key)
		if err != nil {
			return nil, err
		}
		var entry json.RawMessage
		if p.mode == Helper {
			entry, err = marshal(in.o.HelperName)
		} else {
			entry, err = authEntry(cur, w.auth)
		}
		if err != nil {
			return nil, fmt.Errorf("encode entry %s: %w", w.key, err)
		}
		rec, had := man.find(section, w.key)
		var notes []string
		switch {
		case cur != nil && sameJSON(cur, entry):
			w.out.Action = injectors.Unchanged
		case cur == nil:
			w.out.Action = injectors.Created
		case had && man.owns(rec, cur):
			w.out.Action = injectors.Updated
		case had:
			w.out.Action = injectors.Repaired
			notes = append(notes, "put back: the entry had been changed since the agent wrote it")
		default:
			w.out.Action = injectors.Updated
			notes = append(notes, "replaced an entry the agent had not written")
		}
		if err := p.doc.set(section, w.key, entry); err != nil {
			return nil, err
		}
		p.recs = append(p.recs, record{Section: section, Key: w.key, Secret: w.s.Ref(), MACs: []string{man.mac(entry)}})
		if p.mode == Inline {
			if credsStore != "" {
				notes = append(notes, fmt.Sprintf("credsStore %q is set: docker asks it first and uses auths only when it has no credentials for this host; use mode helper or auto", credsStore))
			}
			if h, err := p.doc.get(sectionCredHelpers, w.key); err == nil && h != nil {
				notes = append(notes, fmt.Sprintf("credHelpers[%s] is set: docker asks that helper first and uses auths only when it has nothing for this host", w.key))
			}
		}
		if ownerNote != "" {
			notes = append(notes, ownerNote)
		}
		w.out.Note = strings.Join(notes, "; ")
	}
	if p.mode == Inline && len(wants) > 0 {
		// An inline credential is a secret: never in a file wider than 0600.
		p.perm &^= 0o077
		p.fixMode = p.fixMode || r.info != nil && p.perm != r.info.Mode().Perm()
	}

	// (6)
	for _, rec := range man.Entries {
		if wanted[rec.id()] {
			continue
		}
		if keep[rec.Key] {
			p.recs = append(p.recs, rec)
			continue
		}
		cur, err := p.doc.get(rec.Section, rec.Key)
		if err != nil {
			return nil, err
		}
		if o, ok := outOf[rec.Key]; ok && rec.Section != section && (cur == nil || man.owns(rec, cur)) {
			// The mode changed: the same host's entry moves to the other
			// section. One outcome says so, not "created" and "removed".
			if cur != nil {
				if err := p.doc.del(rec.Section, rec.Key); err != nil {
					return nil, err
				}
			}
			if o.Action == injectors.Created {
				o.Action = injectors.Updated
			}
			moved := fmt.Sprintf("moved from %s to %s (mode %s)", rec.Section, section, p.mode)
			o.Note = strings.TrimPrefix(o.Note+"; "+moved, "; ")
			continue
		}
		o := injectors.Outcome{Secret: rec.Secret, Target: rec.Key, Action: injectors.Removed}
		switch {
		case cur == nil:
			o.Note = "the entry was already gone"
		case man.owns(rec, cur):
			if err := p.doc.del(rec.Section, rec.Key); err != nil {
				return nil, err
			}
		default:
			o.Action = injectors.Unchanged
			o.Note = fmt.Sprintf("kept %s[%s]: it was replaced since the agent wrote it (e.g. by docker login)", rec.Section, rec.Key)
		}
		p.removed = append(p.removed, o)
	}
	return p, nil
}

// configRead is one reading of config.json: info is nil when it does not
// exist.
type configRead struct {
	data []byte
	info fs.FileInfo
}

func sameRead(r configRead, before []byte) bool {
	if r.info == nil || before == nil {
		return r.info == nil && before == nil
	}
	return bytes.Equal(r.data, before)
}

// readConfig reads config.json below root without following a symlink.
func readConfig(root *os.Root) (configRead, error) {
	if fi, err := root.Lstat(configName); err == nil && fi.Mode().Type() == fs.ModeSymlink {
		return configRead{}, fmt.Errorf("is a symlink; refusing to follow it")
	}
	f, err := root.OpenFile(configName, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return configRead{}, nil
	}
	if errors.Is(err, syscall.ELOOP) {
		return configRead{}, fmt.Errorf("is a symlink; refusing to follow it")
	}
	if err != nil {
		return configRead{}, fmt.Errorf("open: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return configRead{}, fmt.Errorf("stat: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return configRead{}, fmt.Errorf("is not a regular file (it is %s)", safeopen.Describe(fi.Mode()))
	}
	data, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	if err != nil {
		return configRead{}, fmt.Errorf("read: %w", err)
	}
	if len(data) > maxConfigSize {
		return configRead{}, fmt.Errorf("is larger than %d bytes", maxConfigSize)
	}
	if data == nil {
		data = []byte{}
	}
	return configRead{data: data, info: fi}, nil
}
