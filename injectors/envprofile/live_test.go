package envprofile

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/secrets-agent/secrets-agent/injectors"
	"github.com/secrets-agent/secrets-agent/internal/testutil"
	"github.com/secrets-agent/secrets-agent/secrets"
)

const (
	livePrompt = "SAPROMPT7Q> "
	deadline   = 10 * time.Second
)

// term is an interactive shell on a pty with everything it printed.
type term struct {
	t   *testing.T
	f   *os.File
	mu  sync.Mutex
	out bytes.Buffer
	off int // where the next wait starts looking
}

func startTerm(t *testing.T, cmd *exec.Cmd) *term {
	t.Helper()
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 50, Cols: 400})
	if err != nil {
		t.Fatal(err)
	}
	tm := &term{t: t, f: f}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			n, err := f.Read(buf)
			tm.mu.Lock()
			tm.out.Write(buf[:n])
			tm.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		f.Close()
		<-done
	})
	return tm
}

// wait returns once s appears after the last matched output; it fails the
// test after a generous deadline, showing what the shell printed.
func (tm *term) wait(s string) {
	tm.t.Helper()
	end := time.Now().Add(deadline)
	for {
		tm.mu.Lock()
		i := bytes.Index(tm.out.Bytes()[tm.off:], []byte(s))
		if i >= 0 {
			tm.off += i + len(s)
		}
		all := tm.out.String()
		tm.mu.Unlock()
		if i >= 0 {
			return
		}
		if time.Now().After(end) {
			tm.t.Fatalf("no %q within %v; the shell printed:\n%q", s, deadline, all)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (tm *term) send(line string) {
	tm.t.Helper()
	if _, err := tm.f.Write([]byte(line + "\r")); err != nil {
		tm.t.Fatal(err)
	}
}

// query runs a command printing KEY:value: and returns once that exact
// output line (not the echo of the typed command) has appeared.
func (tm *term) expect(cmd, out string) {
	tm.t.Helper()
	tm.send(cmd)
	tm.wait(out + "\r\n")
	tm.wait(livePrompt)
}

// shellDialect is how a test talks to one shell.
type shellDialect struct {
	name    string
	start   func(t *testing.T, hook string) *exec.Cmd
	show    func(v string) string // prints V:<value>: or V:unset:
	setUser func(v, val string) string
	unset   func(v string) string
	status  string
}

var posixShow = func(v string) string { return fmt.Sprintf(`printf '%s:%%s:\n' "${%s-unset}"`, v, v) }

var liveShells = []shellDialect{
	{
		name: "bash",
		start: func(t *testing.T, hook string) *exec.Cmd {
			rc := filepath.Join(t.TempDir(), "bashrc")
			os.WriteFile(rc, []byte("PROMPT_COMMAND='true'\nPS1='"+livePrompt+"'\n. "+hook+"\n"), 0o600)
			return exec.Command(testutil.NeedTool(t, "bash"), "--noprofile", "--rcfile", rc, "-i")
		},
		show:    posixShow,
		setUser: func(v, val string) string { return v + "=" + val },
		unset:   func(v string) string { return "unset " + v },
		status:  `printf 'ST:%s:\n' "$?"`,
	},
	{
		name: "zsh",
		start: func(t *testing.T, hook string) *exec.Cmd {
			zdot := t.TempDir()
			os.WriteFile(filepath.Join(zdot, ".zshrc"), []byte("PS1='"+livePrompt+"'\n. "+hook+"\n"), 0o600)
			cmd := exec.Command(testutil.NeedTool(t, "zsh"), "-d", "-i")
			cmd.Env = append(cmd.Env, "ZDOTDIR="+zdot)
			return cmd
		},
		show:    posixShow,
		setUser: func(v, val string) string { return v + "=" + val },
		unset:   func(v string) string { return "unset " + v },
		status:  `printf 'ST:%s:\n' "$?"`,
	},
	{
		name: "fish",
		start: func(t *testing.T, hook string) *exec.Cmd {
			return exec.Command(testutil.NeedTool(t, "fish"), "--no-config", "-i", "-C",
				"function fish_prompt; printf '"+livePrompt+"'; end; source "+hook)
		},
		show: func(v string) string {
			return fmt.Sprintf(`if set -q %s; printf '%s:%%s:\n' "$%s"; else; printf '%s:unset:\n'; end`, v, v, v, v)
		},
		setUser: func(v, val string) string { return "set -g " + v + " " + val },
		unset:   func(v string) string { return "set -e " + v },
		status:  `printf 'ST:%s:\n' "$status"`,
	},
}

// TestLiveShellsFollowRotationAndRemovalAtTheNextPrompt drives interactive
// bash, zsh and fish through a pty with the installed hook: a rotated value
// is there at the next prompt, a removed secret's variable is gone, a
// variable the user set (of another name, or one of ours they reassigned)
// is untouched, and $? survives the hook.
func TestLiveShellsFollowRotationAndRemovalAtTheNextPrompt(t *testing.T) {
	for _, sh := range liveShells {
		t.Run(sh.name, func(t *testing.T) {
			t.Parallel()
			one, two := envSecret("a", "SA_A", []byte("one")), envSecret("b", "SA_B", []byte("two"))
			dee := envSecret("d", "SA_D", []byte("dee"))
			apply, tm := startLive(t, sh, one, two, dee)
			tm.expect(sh.show("SA_A"), "SA_A:one:")
			tm.expect(sh.show("SA_B"), "SA_B:two:")

			// The user sets a variable of their own and reassigns one of ours.
			tm.send(sh.setUser("SA_MINE", "mine"))
			tm.wait(livePrompt)
			tm.send(sh.setUser("SA_D", "myown"))
			tm.wait(livePrompt)

			// Rotate A, remove B and D; the next prompt follows.
			one.Value = []byte("rotated")
			apply(one)
			tm.send("false")
			tm.wait(livePrompt)
			tm.expect(sh.status, "ST:1:")
			tm.expect(sh.show("SA_A"), "SA_A:rotated:")
			tm.expect(sh.show("SA_B"), "SA_B:unset:")
			tm.expect(sh.show("SA_D"), "SA_D:myown:")
			tm.expect(sh.show("SA_MINE"), "SA_MINE:mine:")

			// A secret comes back: set again; the user's SA_D stays theirs.
			two.Value = []byte("back")
			dee.Value = []byte("new-dee")
			apply(one, two, dee)
			tm.send("")
			tm.wait(livePrompt)
			tm.expect(sh.show("SA_B"), "SA_B:back:")
			tm.expect(sh.show("SA_D"), "SA_D:myown:")
		})
	}
}

// TestUserEditSurvivesARotationOfTheSameNames: when only values rotate (the
// hooks' fast path, which compares every value at once), a variable the
// user reassigned or unset is still left as the user made it, and the
// others follow.
func TestUserEditSurvivesARotationOfTheSameNames(t *testing.T) {
	for _, sh := range liveShells {
		t.Run(sh.name, func(t *testing.T) {
			t.Parallel()
			a, b := envSecret("a", "SA_A", []byte("a1")), envSecret("b", "SA_B", []byte("b1"))
			c := envSecret("c", "SA_C", []byte("c1"))
			apply, tm := startLive(t, sh, a, b, c)
			tm.expect(sh.show("SA_A"), "SA_A:a1:")
			a.Value = []byte("a2")
			apply(a, b, c)
			tm.send("")
			tm.wait(livePrompt)
			tm.expect(sh.show("SA_A"), "SA_A:a2:")

			tm.send(sh.setUser("SA_B", "mine"))
			tm.wait(livePrompt)
			tm.send(sh.unset("SA_C"))
			tm.wait(livePrompt)
			a.Value, b.Value, c.Value = []byte("a3"), []byte("b3"), []byte("c3")
			apply(a, b, c)
			tm.send("")
			tm.wait(livePrompt)
			tm.expect(sh.show("SA_A"), "SA_A:a3:")
			tm.expect(sh.show("SA_B"), "SA_B:mine:")
			tm.expect(sh.show("SA_C"), "SA_C:unset:")

			// Kept variables stay the user's at the next rotation too.
			a.Value, b.Value = []byte("a4"), []byte("b4")
			apply(a, b, c)
			tm.send("")
			tm.wait(livePrompt)
			tm.expect(sh.show("SA_A"), "SA_A:a4:")
			tm.expect(sh.show("SA_B"), "SA_B:mine:")
		})
	}
}

// startLive applies env to a fresh injector, starts sh interactively on a
// pty with the user hook, and returns a function that applies a new set and
// the terminal at its first prompt.
func startLive(t *testing.T, sh shellDialect, env ...secrets.Secret) (func(...secrets.Secret), *term) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "env")
	in, _ := New(Options{Dir: dir, Owner: injectors.Owner{UID: -1, GID: -1}})
	apply := func(env ...secrets.Secret) {
		t.Helper()
		if res := in.Apply(context.Background(), env); res.Err != nil || len(res.Failed()) > 0 {
			t.Fatalf("apply: %v %v", res.Err, res.Failed())
		}
	}
	apply(env...)
	hookShell := "sh"
	if sh.name == "fish" {
		hookShell = "fish"
	}
	text, err := HookScript(hookShell, HookUser)
	if err != nil {
		t.Fatal(err)
	}
	hook := filepath.Join(t.TempDir(), "hook."+hookShell)
	if err := os.WriteFile(hook, text, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := sh.start(t, hook)
	home := t.TempDir()
	cmd.Env = append(cmd.Env, "TERM=dumb", "HOME="+home, "PATH=/usr/bin:/bin",
		"XDG_CONFIG_HOME="+home, "XDG_DATA_HOME="+home, "SECRETS_AGENT_ENV_DIR="+dir, "LC_ALL=C.UTF-8")
	tm := startTerm(t, cmd)
	tm.wait(livePrompt)
	return apply, tm
}

// TestUnchangedPromptForksNothing traces the hook with strace: a prompt
// where the fragment did not change runs no fork, clone (other than a
// thread) or exec. The markers are opens of files strace shows.
func TestUnchangedPromptForksNothing(t *testing.T) {
	strace := testutil.NeedTool(t, "strace")
	dir := filepath.Join(t.TempDir(), "env")
	in, _ := New(Options{Dir: dir, Owner: injectors.Owner{UID: -1, GID: -1}})
	if res := in.Apply(context.Background(), corpusSecrets()[:4]); res.Err != nil {
		t.Fatal(res.Err)
	}
	spawn := regexp.MustCompile(`\b(fork|vfork|execve|execveat)\(|\bclone3?\(`)
	for _, sh := range []string{"bash", "zsh", "dash", "fish"} {
		t.Run(sh, func(t *testing.T) {
			bin := testutil.NeedTool(t, sh)
			kind := "sh"
			if sh == "fish" {
				kind = "fish"
			}
			text, _ := HookScript(kind, HookUser)
			hook := filepath.Join(t.TempDir(), "hook")
			os.WriteFile(hook, text, 0o600)
			marks := t.TempDir()
			os.WriteFile(filepath.Join(marks, "sa-begin"), nil, 0o600)
			os.WriteFile(filepath.Join(marks, "sa-end"), nil, 0o600)
			script := ". " + hook + "\n: <" + marks + "/sa-begin\n" +
				"__secrets_agent_prompt; __secrets_agent_prompt; __secrets_agent_prompt\n" +
				": <" + marks + "/sa-end\n"
			if sh == "fish" {
				script = "source " + hook + "\nbegin; end <" + marks + "/sa-begin\n" +
					"__secrets_agent_prompt; __secrets_agent_prompt; __secrets_agent_prompt\n" +
					"begin; end <" + marks + "/sa-end\nexit 0\n"
			}
			trace := filepath.Join(t.TempDir(), "trace")
			cmd := exec.Command(strace, "-f", "-o", trace, "-e", "trace=process,openat,open", bin, "-c", script)
			cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir(), "SECRETS_AGENT_ENV_DIR=" + dir}
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			data, _ := os.ReadFile(trace)
			s := string(data)
			b, e := strings.Index(s, `sa-begin", O_`), strings.Index(s, `sa-end", O_`)
			if b < 0 || e < b {
				t.Fatalf("markers not in trace:\n%s", s)
			}
			between := s[b:e]
			if !strings.Contains(between, "env.") {
				t.Fatalf("the hook did not read the fragment between the markers:\n%s", between)
			}
			for _, line := range strings.Split(between, "\n") {
				if spawn.MatchString(line) && !strings.Contains(line, "CLONE_THREAD") {
					t.Errorf("%s forked or exec'ed at an unchanged prompt: %s", sh, line)
				}
			}
		})
	}
}

// loadHook runs shell sh non-interactively (as /etc/profile.d or a conf.d
// file would load it) with the hook of mode, then script, in env; it returns
// what the shell printed.
func loadHook(t *testing.T, sh string, mode HookMode, script string, env ...string) ([]byte, error) {
	t.Helper()
	bin := testutil.NeedTool(t, sh)
	kind, load := "sh", ". "
	if sh == "fish" {
		kind, load = "fish", "source "
	}
	text, err := HookScript(kind, mode)
	if err != nil {
		t.Fatal(err)
	}
	hook := filepath.Join(t.TempDir(), "hook")
	if err := os.WriteFile(hook, text, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", load+hook+"; "+script)
	cmd.Env = append([]string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir()}, env...)
	return cmd.CombinedOutput()
}

// applyEnv applies one variable into a fresh fragment dir below dir.
func applyEnv(t *testing.T, dir string, owner injectors.Owner, name, value string) {
	t.Helper()
	in, _ := New(Options{Dir: dir, Owner: owner})
	if res := in.Apply(context.Background(), []secrets.Secret{envSecret("a", name, []byte(value))}); res.Err != nil {
		t.Fatal(res.Err)
	}
}

// TestHookSourcesFragmentAtShellStart: a non-interactive shell that loads
// the hook (as /etc/profile.d or a conf.d file would) has the variables,
// exported, and no prompt hook is registered in it.
func TestHookSourcesFragmentAtShellStart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "env")
	want := "it's $(x) \\ \n"
	applyEnv(t, dir, injectors.Owner{UID: -1, GID: -1}, "SA_START", want)
	for _, sh := range []string{"bash", "dash", "zsh", "fish"} {
		t.Run(sh, func(t *testing.T) {
			out, err := loadHook(t, sh, HookSystem, "printenv SA_START", "USER=nobody", "SECRETS_AGENT_ENV_DIR="+dir)
			if err != nil || string(out) != want+"\n" {
				t.Errorf("%s: %q, %v; want %q", sh, out, err, want+"\n")
			}
		})
	}
}

// TestUserHookFindsTheDefaultDir: without SECRETS_AGENT_ENV_DIR the user
// hook reads $XDG_RUNTIME_DIR/secrets-agent, the user agent's default.
func TestUserHookFindsTheDefaultDir(t *testing.T) {
	runtime := t.TempDir()
	applyEnv(t, filepath.Join(runtime, "secrets-agent"), injectors.Owner{UID: -1, GID: -1}, "SA_DEFAULT", "found")
	for _, sh := range []string{"bash", "fish"} {
		t.Run(sh, func(t *testing.T) {
			if out, err := loadHook(t, sh, HookUser, "printenv SA_DEFAULT", "XDG_RUNTIME_DIR="+runtime); err != nil || string(out) != "found\n" {
				t.Errorf("%s: %q, %v", sh, out, err)
			}
		})
	}
}

// TestHookSourcesOnlyAFragmentThisUserOwns: a root shell that kept another
// user's $USER (su without -) finds that user's fragment, which that user can
// rewrite: it must not source it.
func TestHookSourcesOnlyAFragmentThisUserOwns(t *testing.T) {
	testutil.NeedRoot(t, "own the fragment by another user than the shell's")
	uid, gid := testutil.Nobody(t)
	dir := filepath.Join(t.TempDir(), "env")
	applyEnv(t, dir, injectors.Owner{UID: uid, GID: gid}, "SA_FOREIGN", "theirs")
	for _, sh := range []string{"bash", "dash", "zsh", "fish"} {
		t.Run(sh, func(t *testing.T) {
			if out, err := loadHook(t, sh, HookSystem, "printenv SA_FOREIGN; true", "USER=nobody", "SECRETS_AGENT_ENV_DIR="+dir); err != nil || len(out) != 0 {
				t.Errorf("%s as root sourced nobody's fragment: %q, %v", sh, out, err)
			}
		})
	}
}
