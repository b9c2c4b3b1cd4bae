package test

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/secrets-agent/secrets-agent/internal/testutil"
)

// childScript prints its variables when it starts and what it is sent, and
// loops until a signal ends it. It sets its traps before it says "start", so
// a test that signals it on seeing "start" never meets the default action.
const childScript = `trap 'echo "got HUP TOKEN=${TOKEN-unset}"' HUP
trap 'echo "got INT"; exit 130' INT
trap 'echo "got TERM"; exit 143' TERM
echo "start TOKEN=${TOKEN-unset} OTHER=${OTHER-unset} NEW_VAR=${NEW_VAR-unset}"
while :; do sleep 0.05; done`

// execStack is a running agent with the environment-variable secrets TOKEN
// and OTHER.
type execStack struct {
	*stack
	tokenID, otherID string
}

func newExecStack(t *testing.T) *execStack {
	t.Helper()
	testutil.NeedTool(t, "sh")
	s := &execStack{stack: newStack(t)}
	s.tokenID = s.dev.CreateSecret(t, "user", "alice", "TOKEN", env(), []byte("v1"))
	s.otherID = s.dev.CreateSecret(t, "user", "alice", "OTHER", env(), []byte("o1"))
	cfg := s.writeConfig(t)
	testutil.StartAgent(t, cfg)
	if _, stderr, code := testutil.RunAgent(t, nil, "wait", "--config", cfg, "--timeout", "30s"); code != 0 {
		t.Fatalf("wait exited %d: %s", code, stderr)
	}
	return s
}

// exec starts `secrets-agent exec` with args before "--" and the child
// script after it.
func (s *execStack) exec(t *testing.T, args ...string) *testutil.Process {
	t.Helper()
	args = append(append([]string{"exec", "--socket", s.cfg.Socket, "--interval", "200ms", "--grace", "5s"}, args...),
		"--", "sh", "-c", childScript)
	p := testutil.StartProcess(t, []string{"OTHER=from-caller", "CALLER_ONLY=kept"}, testutil.AgentBin(t), args...)
	testutil.Eventually(t, 10*time.Second, "the child started", func() bool { return strings.Contains(p.Output(), "start ") })
	return p
}

// agentServes waits until `secrets-agent env` shows want.
func (s *execStack) agentServes(t *testing.T, want string) {
	t.Helper()
	testutil.Eventually(t, 20*time.Second, "the agent serves "+want, func() bool {
		out, _, _ := testutil.RunAgent(t, nil, "env", "--socket", s.cfg.Socket, "--format", "dotenv")
		return strings.Contains(out, want)
	})
}

func count(out, prefix string) int {
	n := 0
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

// TestExecRestartsOnceOnRotationAndNeverForUnrelatedChanges: the child gets
// the managed variables over the caller's own; a rotation restarts it once
// (SIGTERM first) with the new value; a new variable and a file secret's
// change do not restart it; two rotations in a burst restart it once.
func TestExecRestartsOnceOnRotationAndNeverForUnrelatedChanges(t *testing.T) {
	s := newExecStack(t)
	p := s.exec(t)
	if out := p.Output(); !strings.Contains(out, "start TOKEN=v1 OTHER=o1 NEW_VAR=unset") {
		t.Fatalf("first start: %q", out)
	}

	s.dev.UpdateSecret(t, s.tokenID, []byte("v2"))
	testutil.Eventually(t, 20*time.Second, "restart with the new value", func() bool {
		return strings.Contains(p.Output(), "start TOKEN=v2 OTHER=o1")
	})
	time.Sleep(time.Second) // five intervals: time for a second restart, which must not come
	out := p.Output()
	if count(out, "start ") != 2 || count(out, "got TERM") != 1 {
		t.Fatalf("want one SIGTERM and one restart:\n%s", out)
	}

	// Unrelated: a variable the child was not given, and a file secret.
	s.dev.CreateSecret(t, "user", "alice", "NEW_VAR", env(), []byte("n1"))
	s.dev.CreateSecret(t, "user", "alice", "A_FILE", file(filepath.Join(s.home(), "a.txt")), []byte("f1"))
	s.agentServes(t, "NEW_VAR='n1'")
	time.Sleep(time.Second)
	if n := count(p.Output(), "start "); n != 2 {
		t.Fatalf("restarted for an unrelated change (%d starts):\n%s", n, p.Output())
	}

	// A burst: two rotations back to back make one restart, with the last.
	s.dev.UpdateSecret(t, s.tokenID, []byte("v3"))
	s.dev.UpdateSecret(t, s.tokenID, []byte("v4"))
	testutil.Eventually(t, 20*time.Second, "restart with the burst's last value", func() bool {
		return strings.Contains(p.Output(), "start TOKEN=v4")
	})
	time.Sleep(time.Second)
	if out := p.Output(); count(out, "start ") != 3 || strings.Contains(out, "TOKEN=v3") {
		t.Fatalf("a burst of two rotations, want exactly one restart with v4:\n%s", out)
	}

	// A deleted variable the child was given is a change too.
	s.dev.DeleteSecret(t, s.otherID)
	testutil.Eventually(t, 20*time.Second, "restart without OTHER", func() bool {
		return strings.Contains(p.Output(), "start TOKEN=v4 OTHER=from-caller")
	})
	p.Signal(syscall.SIGTERM)
	if code := p.Wait(t, 10*time.Second); code != 143 {
		t.Errorf("exit code %d after SIGTERM, want 143", code)
	}
}

// TestExecOnlyWatchesTheNamesItPasses: with --only TOKEN the child gets
// TOKEN and the caller's own OTHER, and OTHER's rotation changes nothing.
func TestExecOnlyWatchesTheNamesItPasses(t *testing.T) {
	s := newExecStack(t)
	p := s.exec(t, "--only", "TOKEN")
	if out := p.Output(); !strings.Contains(out, "start TOKEN=v1 OTHER=from-caller") {
		t.Fatalf("first start: %q", out)
	}
	s.dev.UpdateSecret(t, s.otherID, []byte("o2"))
	s.agentServes(t, "OTHER='o2'")
	time.Sleep(time.Second)
	if n := count(p.Output(), "start "); n != 1 {
		t.Fatalf("restarted for a variable it did not pass:\n%s", p.Output())
	}
}

// TestExecSignalModeSendsOneSignalPerChange: --on-change signal:HUP sends
// exactly one HUP for a rotation and never restarts.
func TestExecSignalModeSendsOneSignalPerChange(t *testing.T) {
	s := newExecStack(t)
	p := s.exec(t, "--on-change", "signal:HUP")
	s.dev.UpdateSecret(t, s.tokenID, []byte("v2"))
	testutil.Eventually(t, 20*time.Second, "a HUP", func() bool { return strings.Contains(p.Output(), "got HUP") })
	time.Sleep(time.Second)
	out := p.Output()
	if count(out, "got HUP") != 1 || count(out, "start ") != 1 || !strings.Contains(out, "got HUP TOKEN=v1") {
		t.Fatalf("want one HUP, the child keeping its environment, no restart:\n%s", out)
	}
	s.dev.UpdateSecret(t, s.tokenID, []byte("v3"))
	testutil.Eventually(t, 20*time.Second, "a second HUP for a second change", func() bool { return count(p.Output(), "got HUP") == 2 })
}

// TestExecForwardsSignalsAndExitCodes: SIGINT sent to exec reaches the
// child, whose exit code exec exits with; plain exit codes and a death by
// signal (128+n) propagate.
func TestExecForwardsSignalsAndExitCodes(t *testing.T) {
	s := newExecStack(t)
	p := s.exec(t)
	p.Signal(syscall.SIGINT)
	if code := p.Wait(t, 10*time.Second); code != 130 {
		t.Errorf("exit code %d after SIGINT, want 130", code)
	}
	if n := count(p.Output(), "got INT"); n != 1 {
		t.Errorf("the child saw SIGINT %d times:\n%s", n, p.Output())
	}
	for script, want := range map[string]int{"exit 7": 7, "kill -TERM $$": 143, "kill -KILL $$": 137, "true": 0} {
		_, stderr, code := testutil.RunAgent(t, nil, "exec", "--socket", s.cfg.Socket, "--", "sh", "-c", script)
		if code != want {
			t.Errorf("exec -- sh -c %q exited %d, want %d: %s", script, code, want, stderr)
		}
	}
	if _, _, code := testutil.RunAgent(t, nil, "exec", "--socket", s.cfg.Socket, "--", "/no/such/program"); code != 127 {
		t.Errorf("a missing program: exit %d, want 127", code)
	}
}

// TestExecFailsWithTheSocketWhenNoAgentAndOutlivesOne: no agent at start is
// exit 125 naming the socket, the program never started; an agent that goes
// away later leaves the program running with what it has.
func TestExecFailsWithTheSocketWhenNoAgentAndOutlivesOne(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	_, stderr, code := testutil.RunAgent(t, nil, "exec", "--socket", sock, "--", "sh", "-c", "echo started")
	if code != 125 || !strings.Contains(stderr, sock) || strings.Contains(stderr, "started") {
		t.Errorf("no agent: exit %d, stderr %q; want 125 naming %s", code, stderr, sock)
	}

	testutil.NeedTool(t, "sh")
	s := &execStack{stack: newStack(t)}
	s.tokenID = s.dev.CreateSecret(t, "user", "alice", "TOKEN", env(), []byte("v1"))
	cfg := s.writeConfig(t)
	a := testutil.StartAgent(t, cfg)
	if _, stderr, code := testutil.RunAgent(t, nil, "wait", "--config", cfg, "--timeout", "30s"); code != 0 {
		t.Fatalf("wait exited %d: %s", code, stderr)
	}
	p := s.exec(t)
	if err := a.Stop(t); err != nil {
		t.Fatalf("agent stop: %v", err)
	}
	testutil.Eventually(t, 10*time.Second, "a note that the agent is gone", func() bool {
		return strings.Contains(p.Output(), "keeps running with the ones it has")
	})
	time.Sleep(500 * time.Millisecond)
	if !p.Running() || count(p.Output(), "start ") != 1 {
		t.Fatalf("the child did not keep running:\n%s", p.Output())
	}
	p.Signal(syscall.SIGTERM)
	if code := p.Wait(t, 10*time.Second); code != 143 {
		t.Errorf("exit code %d, want 143", code)
	}
}

// TestExecStartedBeforeTheFirstPassWaitsForIt: an agent still waiting for
// its token has no variables yet; exec waits for its first pass, so the
// program starts once, with them.
func TestExecStartedBeforeTheFirstPassWaitsForIt(t *testing.T) {
	testutil.NeedTool(t, "sh")
	s := &execStack{stack: newStack(t)}
	s.tokenID = s.dev.CreateSecret(t, "user", "alice", "TOKEN", env(), []byte("v1"))
	token := readFile(t, s.tokenFile)
	if err := os.Remove(s.tokenFile); err != nil {
		t.Fatal(err)
	}
	testutil.StartAgent(t, s.writeConfig(t))
	testutil.Eventually(t, 10*time.Second, "the agent's socket", func() bool {
		_, err := os.Stat(s.cfg.Socket)
		return err == nil
	})
	p := testutil.StartProcess(t, nil, testutil.AgentBin(t), "exec", "--socket", s.cfg.Socket, "--wait", "30s", "--",
		"sh", "-c", childScript)
	time.Sleep(500 * time.Millisecond)
	if strings.Contains(p.Output(), "start ") {
		t.Fatalf("the program started before the first pass:\n%s", p.Output())
	}
	if err := os.WriteFile(s.tokenFile, token, 0o600); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 20*time.Second, "the program starts with TOKEN", func() bool {
		return strings.Contains(p.Output(), "start TOKEN=v1")
	})
	if n := count(p.Output(), "start "); n != 1 {
		t.Errorf("%d starts, want 1:\n%s", n, p.Output())
	}
}
