// Package gitcred makes git over HTTPS authenticate with the git-credential
// secrets (mount gitCredentialHost) without a token on disk. It keeps one git
// config file of its own, File below the user's home, holding for each
// managed host
//
//	[credential "https://HOST"]
//		helper = "!'/usr/local/bin/secrets-agent' 'git-credential' '--socket' '/run/secrets-agent/agent.sock'"
//
// git reads that file through one include line that `secrets-agent
// install-hooks` adds once to a config level read before ~/.gitconfig (the
// system file /etc/gitconfig, or the user's $XDG_CONFIG_HOME/git/config); the
// user's own ~/.gitconfig is never touched. When git needs a password for
// HOST it runs the helper, which asks the agent over the status socket, and
// the agent answers from memory (Credential). git collects the helpers of
// every config level in order, so a user's own helper for the same host is
// asked when ours has nothing, and helpers for other hosts are untouched.
//
// The file holds no token, only host names and the helper's command line. It
// is 0600 and the user's all the same (only the user's git reads it). It
// needs no manifest: the whole file is the injector's, known by its first
// line, and it is removed with the last git-credential secret.
package gitcred

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/secrets-agent/secrets-agent/injectors"
	"github.com/secrets-agent/secrets-agent/internal/atomicfile"
	"github.com/secrets-agent/secrets-agent/internal/dirs"
	"github.com/secrets-agent/secrets-agent/internal/safeopen"
	"github.com/secrets-agent/secrets-agent/secrets"
)

// File is the git config file the injector owns, relative to the user's
// home. The include line install-hooks adds names it as "~/" + File, which
// git expands to the home of whoever runs git.
const File = ".config/secrets-agent/gitconfig"

// DefaultUsername is the user name answered with every token when Options
// leaves it empty: GitHub and Gitea accept any user name with a token, and
// GitLab accepts "oauth2" with personal, project, group and OAuth tokens.
const DefaultUsername = "oauth2"

// header starts the file; Apply removes a file at File only when it starts
// with it, so that it never deletes a file someone else put there.
const header = "# Written by secrets-agent (injector gitcred): a git credential helper for each\n" +
	"# git host with a secret. Rewritten on every change; do not edit.\n"

// Options configure the injector.
type Options struct {
	// Username is the user name answered with every token; empty means
	// DefaultUsername.
	Username string
	// Helper is the command line git runs as the credential helper, without
	// the action git appends: the agent's binary and its arguments, e.g.
	// {"/usr/local/bin/secrets-agent", "git-credential", "--socket", "/run/secrets-agent/agent.sock"}.
	Helper []string
	// Owner owns the file and the directories created for it; "~" is
	// Owner.Home.
	Owner injectors.Owner
}

// Injector keeps File's helper entries equal to the git-credential secrets.
// It is not safe for concurrent Apply calls (the agent serializes); Credential
// may be called at any time.
type Injector struct {
	o      Options
	helper string // the helper value as written, git-config quoted
	// last is the file the last Apply made (nil before the first, or after
	// it removed the file), so that a rewrite of the same content is known
	// as a repair of someone else's change.
	last []byte
}

var (
	_ injectors.CredentialServer = (*Injector)(nil)
	_ injectors.Reserver         = (*Injector)(nil)
)

// New returns an injector for o. It touches nothing on disk.
func New(o Options) (*Injector, error) {
	if o.Username == "" {
		o.Username = DefaultUsername
	}
	if err := checkField("user name", o.Username); err != nil {
		return nil, fmt.Errorf("gitcred: %w", err)
	}
	if !path.IsAbs(o.Owner.Home) {
		return nil, fmt.Errorf("gitcred: home %q: must be an absolute path", o.Owner.Home)
	}
	if len(o.Helper) == 0 || !path.IsAbs(o.Helper[0]) {
		return nil, fmt.Errorf("gitcred: helper %q: must start with an absolute program path", o.Helper)
	}
	h, err := helperValue(o.Helper)
	if err != nil {
		return nil, fmt.Errorf("gitcred: %w", err)
	}
	return &Injector{o: o, helper: h}, nil
}

// Name is "gitcred".
func (in *Injector) Name() string { return "gitcred" }

// Kind is secrets.MountGitCredential.
func (in *Injector) Kind() secrets.MountKind { return secrets.MountGitCredential }

// Path is the file the injector manages.
func (in *Injector) Path() string { return path.Join(in.o.Owner.Home, File) }

// Reserved is File in the home: no file secret may target it.
func (in *Injector) Reserved() []injectors.Reserved {
	return []injectors.Reserved{{Path: in.Path(), What: "the git credential helpers file gitcred manages"}}
}

// Credential answers git's question for s's host: the configured user name
// and s's value as the password. ok is false when the value cannot be a git
// password (see CheckToken).
func (in *Injector) Credential(s secrets.Secret) (user, password string, ok bool) {
	if CheckToken(s.Value) != nil {
		return "", "", false
	}
	return in.o.Username, string(s.Value), true
}

// CheckToken returns why value cannot be sent as a git password, or nil:
// it must be non-empty and hold no NUL, newline or carriage return, which
// git's credential protocol cannot carry. The error never holds the value.
func CheckToken(value []byte) error {
	if len(value) == 0 {
		return errors.New("is empty")
	}
	if i := bytes.IndexAny(value, "\x00\n\r"); i >= 0 {
		return errors.New("holds a NUL, newline or carriage return, which git's credential protocol cannot carry")
	}
	return nil
}

// HostKey is how hosts are compared: secrets.GitHostKey.
func HostKey(host string) string { return secrets.GitHostKey(host) }

// Apply makes File hold a helper entry for exactly the hosts of desired and
// removes the entries of hosts no longer desired. With nothing to change it
// writes nothing.
//
// Steps:
//
//	(1) Check each secret: a git-credential mount whose host can be a git
//	    config subsection and whose value can be a git password. A bad one
//	    fails alone and gets no entry.
//	(2) Open the home as an *os.Root, so that no symlink leads a write out
//	    of it, and read the entries File holds now (the hosts of our own
//	    earlier writes).
//	(3) No valid secret: remove File when it is ours (it starts with our
//	    header), and report each host it held as removed.
//	(4) Else render the file (hosts sorted, one section each) and write it
//	    with internal/atomicfile, 0600 and owned by Owner, creating its
//	    directory 0700. Atomic: git reads the old file or the new one.
//	(5) Report each host created or unchanged, and each host the old file
//	    held that is gone as removed. When the file had to be written
//	    although what it should hold is what the last Apply wrote, someone
//	    else changed or removed it: every host is reported repaired.
func (in *Injector) Apply(ctx context.Context, desired []secrets.Secret) injectors.Result {
	var r injectors.Result
	// (1)
	var hosts []string
	seen := map[string]bool{}
	var ok []secrets.Secret
	for _, s := range desired {
		host := HostKey(s.Mount.Target)
		if err := checkSecret(s); err != nil {
			r.Outcomes = append(r.Outcomes, injectors.Fail(s, s.Mount.Target, err))
			continue
		}
		if seen[host] {
			r.Outcomes = append(r.Outcomes, injectors.Fail(s, s.Mount.Target,
				fmt.Errorf("secret %s: gitCredentialHost: %s is already served by another secret", s, host)))
			continue
		}
		seen[host] = true
		hosts = append(hosts, host)
		ok = append(ok, s)
	}
	sort.Strings(hosts)

	// (2)
	root, err := safeopen.OpenRoot(in.o.Owner.Home)
	if err != nil {
		r.Err = fmt.Errorf("gitcred: open home %s: %w", in.o.Owner.Home, err)
		for _, s := range ok {
			r.Outcomes = append(r.Outcomes, injectors.Fail(s, s.Mount.Target, r.Err))
		}
		return r
	}
	defer root.Close()
	old, oldOurs, err := readOwn(root)
	if err != nil {
		r.Err = fmt.Errorf("gitcred: %s: %w", in.Path(), err)
		for _, s := range ok {
			r.Outcomes = append(r.Outcomes, injectors.Fail(s, s.Mount.Target, r.Err))
		}
		return r
	}

	repaired := false
	if len(hosts) == 0 {
		// (3)
		in.last = nil
		if oldOurs {
			if err := root.Remove(File); err != nil && !errors.Is(err, fs.ErrNotExist) {
				r.Err = fmt.Errorf("gitcred: remove %s: %w", in.Path(), err)
				return r
			}
			r.Writes++
		}
	} else {
		// (4)
		if _, err := dirs.MkdirAll(root, path.Dir(File), 0o700, in.o.Owner.UID, in.o.Owner.GID); err != nil {
			r.Err = fmt.Errorf("gitcred: %w", err)
		} else {
			data := in.render(hosts)
			out, werr := atomicfile.Write(root, File, data, atomicfile.Options{Mode: 0o600, UID: in.o.Owner.UID, GID: in.o.Owner.GID})
			switch {
			case werr != nil:
				r.Err = fmt.Errorf("gitcred: %w", werr)
			case out != atomicfile.Unchanged:
				r.Writes++
				repaired = bytes.Equal(data, in.last)
				fallthrough
			default:
				in.last = data
			}
		}
		if r.Err == nil {
			r.Paths = []string{in.Path()}
		}
	}

	// (5)
	for _, s := range ok {
		host := HostKey(s.Mount.Target)
		o := injectors.Outcome{Secret: s.Ref(), Target: host, Action: injectors.Unchanged}
		switch {
		case r.Err != nil:
			o = injectors.Fail(s, host, r.Err)
		case repaired:
			o.Action = injectors.Repaired
		case !old[host]:
			o.Action = injectors.Created
		}
		r.Outcomes = append(r.Outcomes, o)
	}
	if r.Err == nil {
		var gone []string
		for h := range old {
			if !seen[h] {
				gone = append(gone, h)
			}
		}
		sort.Strings(gone)
		for _, h := range gone {
			r.Outcomes = append(r.Outcomes, injectors.Outcome{Target: h, Action: injectors.Removed})
		}
	}
	return r
}

// checkSecret returns why s cannot get a helper entry, or nil.
func checkSecret(s secrets.Secret) error {
	if s.Mount.Kind != secrets.MountGitCredential {
		return fmt.Errorf("secret %s: not a git credential (mount %s)", s, s.Mount)
	}
	if err := checkField("host", s.Mount.Target); err != nil || strings.ContainsAny(s.Mount.Target, "/\"\\ ") || s.Mount.Target == "" {
		return fmt.Errorf("secret %s: gitCredentialHost %q: not a host[:port]", s, s.Mount.Target)
	}
	if err := CheckToken(s.Value); err != nil {
		return fmt.Errorf("secret %s: value %w", s, err)
	}
	return nil
}

// render returns the file for hosts (sorted, lower case).
func (in *Injector) render(hosts []string) []byte {
	var b strings.Builder
	b.WriteString(header)
	for _, h := range hosts {
		fmt.Fprintf(&b, "[credential \"https://%s\"]\n\thelper = %s\n", h, in.helper)
	}
	return []byte(b.String())
}

// sectionPrefix and sectionSuffix frame a host in a section line we wrote.
const (
	sectionPrefix = `[credential "https://`
	sectionSuffix = `"]`
)

// maxFile bounds what readOwn reads: ours is a few lines per host.
const maxFile = 1 << 20

// readOwn returns the hosts File holds, and whether File is ours (starts
// with header). A missing File is no hosts and not ours; a File that is not
// ours holds no hosts of ours. A File that is not a regular file (a symlink
// or a FIFO planted there) is an error, found without blocking: it is never
// followed, read or replaced.
func readOwn(root *os.Root) (hosts map[string]bool, ours bool, err error) {
	hosts = map[string]bool{}
	data, err := safeopen.ReadFile(root, File, maxFile)
	if errors.Is(err, fs.ErrNotExist) {
		return hosts, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	if !bytes.HasPrefix(data, []byte(header)) {
		return hosts, false, nil
	}
	for _, line := range strings.Split(string(data), "\n") {
		if h, ok := strings.CutPrefix(line, sectionPrefix); ok {
			if h, ok := strings.CutSuffix(h, sectionSuffix); ok {
				hosts[h] = true
			}
		}
	}
	return hosts, true, nil
}

// checkField returns an error when s cannot go into a git config value or
// git's credential protocol: empty, or holding a control character.
func checkField(what, s string) error {
	if s == "" {
		return fmt.Errorf("%s is empty", what)
	}
	if strings.ContainsFunc(s, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return fmt.Errorf("%s %q holds a control character", what, s)
	}
	return nil
}

// helperValue returns argv as a git config value for credential.helper: a
// "!" shell command (git appends the action and runs it with sh) with every
// word single-quoted for the shell, the whole double-quoted for git's config
// parser with \ and " escaped.
func helperValue(argv []string) (string, error) {
	words := make([]string, len(argv))
	for i, a := range argv {
		if err := checkField("helper word", a); err != nil {
			return "", err
		}
		words[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	v := "!" + strings.Join(words, " ")
	v = strings.ReplaceAll(v, `\`, `\\`)
	v = strings.ReplaceAll(v, `"`, `\"`)
	return `"` + v + `"`, nil
}
