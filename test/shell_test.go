package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secrets-agent/secrets-agent/internal/testutil"
)

// tmuxShell is an interactive shell running in a tmux pane of its own server.
type tmuxShell struct {
	tmux, sock string
}

func startTmuxShell(t *testing.T, home, envDir, shell string) *tmuxShell {
	t.Helper()
	ts := &tmuxShell{tmux: testutil.NeedTool(t, "tmux"), sock: filepath.Join(t.TempDir(), "tmux.sock")}
	prog := testutil.NeedTool(t, shell)
	cmdline := fmt.Sprintf("env -i HOME=%s PATH=%s TERM=xterm SECRETS_AGENT_ENV_DIR=%s %s -i",
		home, os.Getenv("PATH"), envDir, prog)
	if out, err := exec.Command(ts.tmux, "-S", ts.sock, "-f", "/dev/null", "new-session", "-d", "-x", "200", "-y", "50", cmdline).CombinedOutput(); err != nil {
		t.Fatalf("tmux new-session: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command(ts.tmux, "-S", ts.sock, "kill-server").Run() })
	return ts
}

func (ts *tmuxShell) send(t *testing.T, keys ...string) {
	t.Helper()
	if out, err := exec.Command(ts.tmux, append([]string{"-S", ts.sock, "send-keys"}, keys...)...).CombinedOutput(); err != nil {
		t.Fatalf("tmux send-keys: %v\n%s", err, out)
	}
}

func (ts *tmuxShell) screen(t *testing.T) string {
	t.Helper()
	out, err := exec.Command(ts.tmux, "-S", ts.sock, "capture-pane", "-p", "-J", "-S", "-200").CombinedOutput()
	if err != nil {
		t.Fatalf("tmux capture-pane: %v\n%s", err, out)
	}
	return string(out)
}

// show prints APP_TOKEN between unique markers (the typed command line itself
// shows only the format, never a value) and waits for the answer.
func (ts *tmuxShell) show(t *testing.T, n int) string {
	t.Helper()
	open, shut := fmt.Sprintf("[%d<", n), fmt.Sprintf(">%d]", n)
	ts.send(t, fmt.Sprintf(`printf '[%%s<%%s>%%s]\n' %d "$APP_TOKEN" %d`, n, n), "Enter")
	var got string
	testutil.Eventually(t, deadline, "the shell answers", func() bool {
		s := ts.screen(t)
		i := strings.LastIndex(s, open)
		if i < 0 {
			return false
		}
		j := strings.Index(s[i:], shut)
		if j < 0 {
			return false
		}
		got = s[i+len(open) : i+j]
		return true
	})
	return got
}

// TestInteractiveShellsFollowTheControlPlane: install-hooks (the built
// binary) into a home, start interactive bash, zsh and fish in tmux, and
// change the secret in the control plane: the running shell sees the rotated
// value at its next prompt, and loses the variable when the secret is deleted.
func TestInteractiveShellsFollowTheControlPlane(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		t.Run(shell, func(t *testing.T) {
			l, ids := startLive(t, nil)
			home := t.TempDir()
			if _, stderr, code := testutil.RunAgent(t, []string{"HOME=" + home}, "install-hooks", "--user"); code != 0 {
				t.Fatalf("install-hooks --user exited %d: %s", code, stderr)
			}
			ts := startTmuxShell(t, home, l.envDir(), shell)
			if got := ts.show(t, 1); got != "v1" {
				t.Fatalf("at start the shell sees %q, want v1\n%s", got, ts.screen(t))
			}
			// Wait for the fragment this shell sources, not just env.sh: the
			// agent writes env.sh, env.fish and env one after the other, so a
			// prompt that comes as env.sh changes can still find the old
			// env.fish (fish then catches up one prompt later, which this test
			// would read as a failure).
			l.dev.UpdateSecret(t, ids["env"], []byte("v2 rotated"))
			testutil.Eventually(t, deadline, "the shell's fragment holds the rotated value", func() bool { return fragmentValue(t, l, shell) == "v2 rotated" })
			ts.send(t, "Enter") // the next prompt
			if got := ts.show(t, 2); got != "v2 rotated" {
				t.Fatalf("after rotation the shell sees %q, want \"v2 rotated\"\n%s", got, ts.screen(t))
			}
			l.dev.DeleteSecret(t, ids["env"])
			testutil.Eventually(t, deadline, "the shell's fragment drops the variable", func() bool { return fragmentValue(t, l, shell) == "<unset>" })
			ts.send(t, "Enter")
			if got := ts.show(t, 3); got != "" {
				t.Fatalf("after deletion the shell still sees %q\n%s", got, ts.screen(t))
			}
		})
	}
}

// fragmentValue is APP_TOKEN as shell reads it from the fragment it sources
// (fish: env.fish; bash and zsh: env.sh), "<unset>" when the fragment does not
// set it.
func fragmentValue(t *testing.T, l *live, shell string) string {
	t.Helper()
	if shell != "fish" {
		return l.envValue(t)
	}
	out, err := exec.Command("fish", "--no-config", "-c", `source $argv[1] 2>/dev/null; set -q APP_TOKEN; and printf '%s' "$APP_TOKEN"; or printf '<unset>'`,
		filepath.Join(l.envDir(), "env.fish")).Output()
	if err != nil {
		return "<error>"
	}
	return string(out)
}
