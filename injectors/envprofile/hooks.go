package envprofile

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/secrets-agent/secrets-agent/internal/atomicfile"
	"github.com/secrets-agent/secrets-agent/internal/dirs"
	"github.com/secrets-agent/secrets-agent/internal/safeopen"
)

//go:embed hook.sh
var hookSh string

//go:embed hook.fish
var hookFish string

// HookMode says whose shells the hooks serve.
type HookMode string

// The modes.
const (
	// HookSystem installs for every user: /etc/profile.d, the system bash and
	// zsh rc files, fish's /etc/fish/conf.d. The fragment is read from
	// /run/secrets-agent/$USER, the system agent's default dir.
	HookSystem HookMode = "system"
	// HookUser installs for the user whose home is given: ~/.profile,
	// ~/.bashrc, ~/.zshrc, ~/.config/fish/conf.d. The fragment is read from
	// $XDG_RUNTIME_DIR/secrets-agent, the user agent's default dir.
	HookUser HookMode = "user"
)

// The markers around the block install-hooks adds to an rc file.
const (
	BlockStart = "# >>> secrets-agent >>>"
	BlockEnd   = "# <<< secrets-agent <<<"
	// createdLine, inside a block, says install-hooks created the file, so
	// that uninstalling removes the file rather than leaving it empty.
	createdLine = "# install-hooks created this file; --uninstall removes it."
)

// HookScript returns the hook for shell "sh" (sh, bash, zsh) or "fish" in
// mode m, with the fragment's default dir filled in.
func HookScript(shell string, m HookMode) ([]byte, error) {
	dir, doc := "/run/secrets-agent/${USER:-${LOGNAME:-$(id -un)}}", "/run/secrets-agent/$USER"
	if m == HookUser {
		dir, doc = `${XDG_RUNTIME_DIR:-/run/user/$(id -u)}/secrets-agent`, "$XDG_RUNTIME_DIR/secrets-agent"
	}
	text := hookSh
	switch shell {
	case "sh":
		dir = `"` + dir + `"`
	case "fish":
		text = hookFish
		dir = `"/run/secrets-agent/$USER"`
		if m == HookUser {
			dir = `"$XDG_RUNTIME_DIR/secrets-agent"`
		}
	default:
		return nil, fmt.Errorf("no hook for shell %q: want sh or fish", shell)
	}
	if m != HookSystem && m != HookUser {
		return nil, fmt.Errorf("unknown hook mode %q", m)
	}
	text = strings.ReplaceAll(text, "@DEFAULT_DIR_DOC@", doc)
	return []byte(strings.ReplaceAll(text, "@DEFAULT_DIR@", dir)), nil
}

// HookOptions says where the hooks go.
type HookOptions struct {
	Mode HookMode
	// Root prefixes every path (for tests and packaging); "" means "/". Paths
	// written inside the hooks are the ones without Root.
	Root string
	// Home is the user's home directory (without Root); HookUser only.
	Home string
	// Blocks are more marked blocks to keep in other files, installed and
	// uninstalled like the rc files' (another injector's wiring, such as
	// gitcred's include line). Paths are absolute, without Root; for
	// HookUser they must lie in Home.
	Blocks []Block
}

// Block is the text to keep between the markers in the file at Path. The
// markers are "#" comments, which git's config format shares with the shells.
type Block struct {
	Path string
	Text string // whole lines, each ending in a newline
}

// HookChange is what InstallHooks or UninstallHooks did to one file.
type HookChange struct {
	Path   string // without Root
	Action string // "created", "added", "updated", "unchanged", "removed", "absent"
}

// hookTarget is one file the hooks touch: either a whole file of ours
// (whole != nil) or a block in someone else's rc file.
type hookTarget struct {
	path  string // absolute, without Root
	base  string // the directory the os.Root is opened at: "/", or the home
	whole []byte
	block string // the lines between the markers
}

// targets lists the files for o's mode, choosing among the rc file names a
// distribution may use the first that exists under root.
func targets(root *os.Root, o HookOptions) ([]hookTarget, error) {
	sh, err := HookScript("sh", o.Mode)
	if err != nil {
		return nil, err
	}
	fish, err := HookScript("fish", o.Mode)
	if err != nil {
		return nil, err
	}
	source := func(hook string) string {
		return "# Added by `secrets-agent install-hooks` (remove with `secrets-agent install-hooks --uninstall`):\n" +
			"# loads secrets as environment variables and refreshes them at each prompt. It reads\n" +
			"# $SECRETS_AGENT_ENV_DIR/env.sh if SECRETS_AGENT_ENV_DIR is set, else the agent's default dir.\n" +
			"if [ -r " + hook + " ]; then . " + hook + "; fi\n"
	}
	if o.Mode == HookSystem {
		return append([]hookTarget{
			{path: systemHook, base: "/", whole: sh},
			{path: systemFishHook, base: "/", whole: fish},
			{path: firstExisting(root, systemBashrcs...), base: "/", block: source(systemHook)},
			{path: firstExisting(root, systemZshrcs...), base: "/", block: source(systemHook)},
		}, blockTargets(o, "/")...), nil
	}
	if o.Mode != HookUser {
		return nil, fmt.Errorf("unknown hook mode %q", o.Mode)
	}
	if !path.IsAbs(o.Home) {
		return nil, fmt.Errorf("home %q must be an absolute path", o.Home)
	}
	block := source(`"$HOME/.config/secrets-agent/hook.sh"`)
	home := path.Clean(o.Home)
	for _, b := range o.Blocks {
		if !dirs.Below(home, b.Path) {
			return nil, fmt.Errorf("%s is not in the home %s", b.Path, home)
		}
	}
	return append([]hookTarget{
		{path: path.Join(home, ".config/secrets-agent/hook.sh"), base: home, whole: sh},
		{path: path.Join(home, ".config/fish/conf.d/secrets-agent.fish"), base: home, whole: fish},
		{path: path.Join(home, ".profile"), base: home, block: block},
		{path: path.Join(home, ".bashrc"), base: home, block: block},
		{path: path.Join(home, ".zshrc"), base: home, block: block},
	}, blockTargets(o, home)...), nil
}

// The files the system hooks are in, and the names a distribution may give
// the system bash and zsh rc files (the first that exists gets the block).
const (
	systemHook     = "/etc/profile.d/secrets-agent.sh"
	systemFishHook = "/etc/fish/conf.d/secrets-agent.fish"
)

var (
	systemBashrcs = []string{"/etc/bash.bashrc", "/etc/bashrc"}
	systemZshrcs  = []string{"/etc/zsh/zshrc", "/etc/zshrc"}
)

// HookFiles lists every file InstallHooks may write or add its block to,
// in either mode, for the user whose home is home (absolute; "" leaves out
// the user's): the hook scripts and every rc file name, whether it exists
// or not. The blocks of other injectors (HookOptions.Blocks) are not in it.
func HookFiles(home string) []string {
	files := append([]string{systemHook, systemFishHook}, systemBashrcs...)
	files = append(files, systemZshrcs...)
	if ts, err := targets(nil, HookOptions{Mode: HookUser, Home: home}); err == nil {
		for _, t := range ts {
			files = append(files, t.path)
		}
	}
	return files
}

// blockTargets are o.Blocks as targets opened at base.
func blockTargets(o HookOptions, base string) []hookTarget {
	var ts []hookTarget
	for _, b := range o.Blocks {
		ts = append(ts, hookTarget{path: path.Clean(b.Path), base: base, block: b.Text})
	}
	return ts
}

func firstExisting(root *os.Root, paths ...string) string {
	for _, p := range paths {
		if _, err := root.Stat(rel("/", p)); err == nil {
			return p
		}
	}
	return paths[0]
}

// rel is p relative to base, both absolute; "." for base itself.
func rel(base, p string) string {
	r := strings.TrimPrefix(strings.TrimPrefix(path.Clean(p), path.Clean(base)), "/")
	if r == "" {
		return "."
	}
	return r
}

// openHookRoot opens the directory every target lies in: "/" for the system
// hooks, the home for the user's, so that no symlink in a home (to /etc, say)
// makes install-hooks --user, even run as root, write outside it. Both below
// o.Root.
func openHookRoot(o HookOptions) (*os.Root, error) {
	r := o.Root
	if r == "" {
		r = "/"
	}
	if o.Mode == HookUser {
		r = filepath.Join(r, o.Home)
	}
	root, err := safeopen.OpenRoot(r)
	if err != nil {
		return nil, fmt.Errorf("open root %s: %w", r, err)
	}
	return root, nil
}

// InstallHooks installs the hooks for o.Mode. It is idempotent: a second run
// writes nothing and reports "unchanged". Whole files of ours are written
// 0644; a block is appended to an rc file (after a newline that uninstalling
// removes again), or replaced in place if an older one is there; an rc file
// that does not exist is created with just the block. An rc file that is a
// symlink is followed (within Root). It does as much as it can and returns
// every file's change and the errors joined.
func InstallHooks(o HookOptions) ([]HookChange, error) {
	return eachTarget(o, "install hook in", installOne)
}

// UninstallHooks removes what InstallHooks added: our whole files, and our
// block from each rc file (with the newline installing put before it),
// leaving every other byte as it was. A file install-hooks created holds
// nothing else and is removed. Nothing to remove is "absent", not an error.
func UninstallHooks(o HookOptions) ([]HookChange, error) {
	return eachTarget(o, "uninstall hook from", uninstallOne)
}

// eachTarget runs do on every hook target of o, going on past a failure, and
// returns each target's change and the failures joined, each prefixed with
// what and the path.
func eachTarget(o HookOptions, what string, do func(*os.Root, hookTarget) (string, error)) ([]HookChange, error) {
	root, err := openHookRoot(o)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	ts, err := targets(root, o)
	if err != nil {
		return nil, err
	}
	var changes []HookChange
	var errs []error
	for _, t := range ts {
		act, err := do(root, t)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s %s: %w", what, t.path, err))
			continue
		}
		changes = append(changes, HookChange{Path: t.path, Action: act})
	}
	return changes, errors.Join(errs...)
}

// maxRCSize bounds the rc file readTarget reads.
const maxRCSize = 8 << 20

// readTarget follows symlinks (within root, opened at t.base) from t.path and
// returns the regular file's name relative to root, content, mode and owner;
// exists is false if there is no file. A symlink that leads out of t.base is
// an error.
func readTarget(root *os.Root, t hookTarget) (name string, data []byte, opts atomicfile.Options, exists bool, err error) {
	name = rel(t.base, t.path)
	opts = atomicfile.Options{Mode: 0o644, UID: -1, GID: -1}
	for range 16 {
		fi, err := root.Lstat(name)
		if errors.Is(err, fs.ErrNotExist) {
			return name, nil, opts, false, nil
		}
		if err != nil {
			return name, nil, opts, false, err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			target, err := root.Readlink(name)
			if err != nil {
				return name, nil, opts, false, err
			}
			switch {
			case path.IsAbs(target) && !dirs.Below(t.base, target):
				return name, nil, opts, false, fmt.Errorf("%s is a symlink to %s, outside %s", t.path, target, t.base)
			case path.IsAbs(target):
				name = rel(t.base, target)
			default:
				name = path.Clean(path.Join(path.Dir(name), target))
			}
			continue
		}
		if !fi.Mode().IsRegular() {
			return name, nil, opts, false, fmt.Errorf("%w (%s)", atomicfile.ErrNotRegular, fi.Mode().Type())
		}
		data, err := safeopen.ReadFile(root, name, maxRCSize)
		if err != nil {
			return name, nil, opts, false, err
		}
		opts.Mode = fi.Mode().Perm()
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			opts.UID, opts.GID = int(st.Uid), int(st.Gid)
		}
		return name, data, opts, true, nil
	}
	return name, nil, opts, false, fmt.Errorf("too many symlinks")
}

func installOne(root *os.Root, t hookTarget) (string, error) {
	name, old, opts, exists, err := readTarget(root, t)
	if err != nil {
		return "", err
	}
	var data []byte
	act := "updated"
	switch {
	case t.whole != nil:
		data = t.whole
		opts.Mode = 0o644
	case !exists:
		data = []byte(BlockStart + "\n" + createdLine + "\n" + t.block + BlockEnd + "\n")
	default:
		start, end, created, found := findBlock(old)
		block := BlockStart + "\n" + t.block + BlockEnd + "\n"
		if created {
			block = BlockStart + "\n" + createdLine + "\n" + t.block + BlockEnd + "\n"
		}
		if found {
			data = append(append(append([]byte{}, old[:start]...), block...), old[end:]...)
		} else {
			data = append(append(append([]byte{}, old...), '\n'), block...)
			act = "added"
		}
	}
	if !exists {
		act = "created"
		if _, err := dirs.MkdirAll(root, path.Dir(name), 0o755, -1, -1); err != nil {
			return "", err
		}
	}
	out, err := atomicfile.Write(root, name, data, opts)
	if err != nil {
		return "", err
	}
	if out == atomicfile.Unchanged {
		return "unchanged", nil
	}
	return act, nil
}

func uninstallOne(root *os.Root, t hookTarget) (string, error) {
	name, old, opts, exists, err := readTarget(root, t)
	if err != nil || !exists {
		return "absent", err
	}
	if t.whole != nil {
		if err := root.Remove(name); err != nil {
			return "", err
		}
		if path.Base(path.Dir(name)) == "secrets-agent" {
			_ = root.Remove(path.Dir(name)) // ~/.config/secrets-agent, if now empty
		}
		return "removed", nil
	}
	start, end, created, found := findBlock(old)
	if !found {
		return "absent", nil
	}
	// The newline installing put before the block goes too: it is there if
	// the block follows a blank line, starts the file, or ends it.
	if start > 0 && old[start-1] == '\n' && (start == 1 || old[start-2] == '\n' || end == len(old)) {
		start--
	}
	data := append(append([]byte{}, old[:start]...), old[end:]...)
	if created && len(data) == 0 {
		return "removed", root.Remove(name)
	}
	if _, err := atomicfile.Write(root, name, data, opts); err != nil {
		return "", err
	}
	return "removed", nil
}

// findBlock finds our block in data: start is the offset of the start
// marker's line, end the offset just past the end marker's line (and its
// newline, if any). created says the block carries createdLine.
func findBlock(data []byte) (start, end int, created, found bool) {
	off := 0
	start = -1
	for off < len(data) {
		lineEnd := bytes.IndexByte(data[off:], '\n')
		next := len(data)
		if lineEnd >= 0 {
			next = off + lineEnd + 1
		}
		line := strings.TrimRight(string(data[off:next]), "\r\n")
		switch {
		case start < 0 && line == BlockStart:
			start = off
		case start >= 0 && line == createdLine:
			created = true
		case start >= 0 && line == BlockEnd:
			return start, next, created, true
		}
		off = next
	}
	return 0, 0, false, false
}
