package test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/secrets-agent/secrets-agent/internal/testutil"
)

// The tests in this file follow an operator's first five minutes and their
// 3 a.m. page: every message they meet names what went wrong and what to do.

// devserverCLI runs the built secrets-devserver with args and returns its
// stdout, stderr and exit code.
func devserverCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(filepath.Join(testutil.Binaries(t), "secrets-devserver"), args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run secrets-devserver %v: %v", args, err)
	}
	return o.String(), e.String(), code
}

// TestWriteConfigIsAllTheAgentNeeds: `env create --write-config DIR` writes a
// config and a 0600 token with which `run --config DIR/config.yaml` applies
// the environment's secrets, and the control commands find that agent with
// the same --config.
func TestWriteConfigIsAllTheAgentNeeds(t *testing.T) {
	dev := testutil.StartDevserver(t)
	dev.CreateSecret(t, "user", "alice", "FIRST_FIVE", env(), []byte("minutes"))
	dir := filepath.Join(t.TempDir(), "agent")
	_, stderr, code := devserverCLI(t, "env", "create", "--data", dev.Dir, "--org", "acme", "--user", "alice", "--write-config", dir)
	if code != 0 {
		t.Fatalf("env create --write-config exited %d: %s", code, stderr)
	}
	cfg := filepath.Join(dir, "config.yaml")
	for _, f := range []string{cfg, filepath.Join(dir, "token")} {
		if m := stat(t, f).Mode & 0o777; m != 0o600 {
			t.Errorf("%s: mode %04o, want 0600", f, m)
		}
	}
	if !strings.Contains(stderr, "secrets-agent run --config "+cfg) {
		t.Errorf("env create does not say how to start the agent: %q", stderr)
	}
	// Only the home is set from outside, so that the test writes no docker
	// config into the real one.
	testutil.StartAgent(t, cfg, "SECRETS_AGENT_HOME="+t.TempDir())
	if _, stderr, code := testutil.RunAgent(t, nil, "wait", "--config", cfg, "--timeout", "20s"); code != 0 {
		t.Fatalf("wait --config exited %d: %s", code, stderr)
	}
	out, err := exec.Command("bash", "-c", `. "$1"; printf '%s' "$FIRST_FIVE"`, "_", filepath.Join(dir, "env", "env.sh")).Output()
	if err != nil || string(out) != "minutes" {
		t.Fatalf("env.sh under DIR gives %q (%v), want the secret", out, err)
	}
	for _, args := range [][]string{{"status"}, {"sync"}, {"env"}} {
		if _, stderr, code := testutil.RunAgent(t, nil, append(args, "--config", cfg)...); code != 0 {
			t.Errorf("%s --config exited %d: %s", args[0], code, stderr)
		}
	}
}

// TestSecondServeSaysWhoHoldsTheDataDir: a second serve on a data dir in use
// says another server holds it, and at which address.
func TestSecondServeSaysWhoHoldsTheDataDir(t *testing.T) {
	dev := testutil.StartDevserver(t)
	_, stderr, code := devserverCLI(t, "serve", "--data", dev.Dir, "--listen", "127.0.0.1:0")
	if code == 0 {
		t.Fatal("a second serve on the same data dir exited 0")
	}
	if !strings.Contains(stderr, "another secrets-devserver holds the data dir") || !strings.Contains(stderr, dev.Addr) {
		t.Errorf("second serve says %q; want it to name the holder and its address %s", stderr, dev.Addr)
	}
}

// TestLeftoverAddressSaysTheServerIsNotRunning: after a SIGKILL the address
// file stays; a client then says the server at that address is not running.
func TestLeftoverAddressSaysTheServerIsNotRunning(t *testing.T) {
	dev := testutil.StartDevserver(t)
	dev.Kill(t)
	_, stderr, code := devserverCLI(t, "secret", "list", "--data", dev.Dir)
	if code == 0 {
		t.Fatal("secret list against a killed server exited 0")
	}
	if want := "the server at " + dev.Addr + " is not running"; !strings.Contains(stderr, want) {
		t.Errorf("secret list says %q; want %q", stderr, want)
	}
	if !strings.Contains(stderr, "serve --data "+dev.Dir) {
		t.Errorf("secret list does not say how to start the server: %q", stderr)
	}
}

// TestDevserverLogsISOTime: the devserver's log lines carry ts as ISO 8601
// time, as the agent's do.
func TestDevserverLogsISOTime(t *testing.T) {
	bin := filepath.Join(testutil.Binaries(t), "secrets-devserver")
	cmd := exec.Command(bin, "serve", "--data", filepath.Join(t.TempDir(), "cp"), "--listen", "127.0.0.1:0")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(stderr).ReadString('\n')
	if err != nil {
		t.Fatalf("no log line: %v", err)
	}
	var rec struct {
		TS any `json:"ts"`
	}
	if err := json.Unmarshal([]byte(line), &rec); err != nil {
		t.Fatalf("log line %q: %v", line, err)
	}
	ts, ok := rec.TS.(string)
	if !ok {
		t.Fatalf("ts is %T (%v), want an ISO 8601 string", rec.TS, rec.TS)
	}
	if _, err := time.Parse("2006-01-02T15:04:05.000Z0700", ts); err != nil {
		t.Errorf("ts %q is not ISO 8601: %v", ts, err)
	}
}

// TestUnreachableAgentSaysWhichSocketAndHowToPointElsewhere: every control
// command, finding no agent, names the socket it tried, where that came from,
// and the three ways to name another; the program name is printed once.
func TestUnreachableAgentSaysWhichSocketAndHowToPointElsewhere(t *testing.T) {
	s := newStack(t)
	cfg := s.writeConfig(t) // its socket: nobody listens there
	for _, args := range [][]string{{"status"}, {"sync"}, {"wait", "--timeout", "0s"}, {"env"}} {
		_, stderr, code := testutil.RunAgent(t, nil, append(args, "--config", cfg)...)
		if code != 2 {
			t.Errorf("%s: exit %d, want 2", args[0], code)
		}
		for _, want := range []string{"not reachable at " + s.cfg.Socket, "(--config " + cfg + ")", "--socket", "SECRETS_AGENT_SOCKET"} {
			if !strings.Contains(stderr, want) {
				t.Errorf("%s says %q; want %q in it", args[0], stderr, want)
			}
		}
		if strings.Count(stderr, "secrets-agent") != 1 || strings.Contains(stderr, "secrets-agent: secrets-agent") {
			t.Errorf("%s names the program more than once: %q", args[0], stderr)
		}
	}
	out, _, code := testutil.RunAgent(t, []string{"SECRETS_AGENT_SOCKET=" + s.cfg.Socket}, "docker-credential", "list")
	if code != 1 || !strings.Contains(out, "not reachable at "+s.cfg.Socket) || !strings.Contains(out, "$SECRETS_AGENT_SOCKET") {
		t.Errorf("docker-credential list: exit %d, stdout %q", code, out)
	}
}

// TestNoConfigSaysWhichFileWasNotFound: run without --config and without the
// default file names the file it looked for.
func TestNoConfigSaysWhichFileWasNotFound(t *testing.T) {
	testutil.NeedRoot(t, "look for the system config file")
	const system = "/etc/secrets-agent/config.yaml"
	if _, err := os.Stat(system); err == nil {
		t.Skipf("skipping: %s exists on this machine", system)
	}
	_, stderr, code := testutil.RunAgent(t, nil, "run", "--once")
	if code != 1 || !strings.Contains(stderr, "config file "+system+" not found") {
		t.Errorf("run without a config: exit %d, %q; want it to name %s as not found", code, stderr, system)
	}
}

// publicAgent copies the agent binary into a directory every user may enter,
// for tests that run it as another user (the build dir is 0700).
func publicAgent(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "secrets-agent-public-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	must(t, os.Chmod(dir, 0o755))
	b, err := os.ReadFile(testutil.AgentBin(t))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "secrets-agent")
	must(t, os.WriteFile(p, b, 0o755))
	return p
}

// TestUserWithoutRuntimeDirIsToldWhatToSet: a non-root user with neither
// XDG_RUNTIME_DIR nor /run/user/<uid> (as under docker exec) is told which
// keys have no default and what to set, not "mkdir: permission denied".
func TestUserWithoutRuntimeDirIsToldWhatToSet(t *testing.T) {
	testutil.NeedRoot(t, "run the agent as the user nobody")
	uid, gid := testutil.Nobody(t)
	if _, err := os.Stat(filepath.Join("/run/user", strconv.Itoa(uid))); err == nil {
		t.Skipf("skipping: /run/user/%d exists", uid)
	}
	cmd := exec.Command(publicAgent(t), "run", "--once")
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=/nonexistent", "SECRETS_AGENT_CONTROLPLANE_ENVIRONMENT_ID=env-1"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	out, _ := cmd.CombinedOutput()
	for _, want := range []string{"XDG_RUNTIME_DIR is unset", "/run/user/" + strconv.Itoa(uid) + " does not exist", "socket", "controlplane.token_file", "injectors.envprofile.dir"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("run as nobody says %q; want %q in it", out, want)
		}
	}
}

// TestTokenReadableByOthersIsWarnedOnce: a 0644 token file works, with one
// warning naming the file and its mode.
func TestTokenReadableByOthersIsWarnedOnce(t *testing.T) {
	for _, late := range []bool{false, true} {
		t.Run(map[bool]string{false: "there at start", true: "appears while the agent waits"}[late], func(t *testing.T) {
			tokenReadableByOthersIsWarnedOnce(t, late)
		})
	}
}

func tokenReadableByOthersIsWarnedOnce(t *testing.T, late bool) {
	s := newStack(t)
	must(t, os.Chmod(s.tokenFile, 0o644))
	s.dev.CreateSecret(t, "user", "alice", "WIDE", env(), []byte("v"))
	token := readFile(t, s.tokenFile)
	if late {
		must(t, os.Remove(s.tokenFile))
	}
	a := testutil.StartAgent(t, s.writeConfig(t))
	if late {
		testutil.Eventually(t, deadline, "the agent waits for its token", func() bool {
			return strings.Contains(a.Log(), "waiting for token")
		})
		must(t, os.WriteFile(s.tokenFile, token, 0o644))
		must(t, os.Chmod(s.tokenFile, 0o644))
	}
	if _, stderr, code := testutil.RunAgent(t, nil, "wait", "--socket", s.cfg.Socket, "--timeout", "20s"); code != 0 {
		t.Fatalf("wait: exit %d: %s", code, stderr)
	}
	testutil.RunAgent(t, nil, "sync", "--socket", s.cfg.Socket)
	var warnings int
	for _, line := range lines(a.Log()) {
		if strings.Contains(line, "token file is open to other users") {
			warnings++
			if !strings.Contains(line, s.tokenFile) || !strings.Contains(line, `"mode":"0644"`) {
				t.Errorf("the warning does not name the file and mode: %s", line)
			}
		}
	}
	if warnings != 1 {
		t.Errorf("%d warnings about the token file's mode, want 1:\n%s", warnings, a.Log())
	}
}

// TestInstallHooksCreatesAMissingRoot: install-hooks --root DIR works when
// DIR does not exist yet.
func TestInstallHooksCreatesAMissingRoot(t *testing.T) {
	root := filepath.Join(t.TempDir(), "not", "yet")
	if _, stderr, code := testutil.RunAgent(t, nil, "install-hooks", "--system", "--root", root); code != 0 {
		t.Fatalf("install-hooks --root %s: exit %d: %s", root, code, stderr)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/profile.d/secrets-agent.sh")); err != nil {
		t.Errorf("no hook under the new root: %v", err)
	}
}

// statusOf runs status --json against l's agent and decodes it.
func statusOf(t *testing.T, l *live) (st struct {
	State            string `json:"state"`
	Passes           int    `json:"passes"`
	LastChange       string `json:"lastChange"`
	LastChangeWrites int    `json:"lastChangeWrites"`
	ConfigError      string `json:"configError"`
	Secrets          []struct {
		Name       string `json:"name"`
		Outcome    string `json:"outcome"`
		LastAction string `json:"lastAction"`
	} `json:"secrets"`
}, code int) {
	t.Helper()
	out, code := l.statusJSON(t)
	if code != 2 {
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("status --json printed %q: %v", out, err)
		}
	}
	return st, code
}

// TestRefusedReloadShowsInStatusUntilAGoodConfig: a config reload that is
// refused makes status degraded (exit 1) with the key and line, until a good
// config is loaded.
func TestRefusedReloadShowsInStatusUntilAGoodConfig(t *testing.T) {
	l, _ := startLive(t, nil)
	good := readFile(t, l.agent.Config)
	must(t, os.WriteFile(l.agent.Config, append(append([]byte{}, good...), []byte("no_such_key: 1\n")...), 0o600))
	l.agent.Signal(t, syscall.SIGHUP)
	testutil.Eventually(t, deadline, "status shows the refused reload", func() bool {
		st, code := statusOf(t, l)
		return code == 1 && st.State == "degraded" && strings.Contains(st.ConfigError, "no_such_key") && strings.Contains(st.ConfigError, "line")
	})
	out, _, _ := testutil.RunAgent(t, nil, "status", "--socket", l.cfg.Socket)
	if !strings.Contains(out, "reload refused") || !strings.Contains(out, "no_such_key") {
		t.Errorf("status does not show the refused reload:\n%s", out)
	}
	must(t, os.WriteFile(l.agent.Config, good, 0o600))
	l.agent.Signal(t, syscall.SIGHUP)
	testutil.Eventually(t, deadline, "status is ready again once a good config is loaded", func() bool {
		st, code := statusOf(t, l)
		return code == 0 && st.State == "ready" && st.ConfigError == ""
	})
}

// TestStatusAfterFirstApplyShowsTheLastChange: right after the first apply
// (and the pass the watch stream asks for at once, which finds nothing to
// do), status still shows what the agent last did.
func TestStatusAfterFirstApplyShowsTheLastChange(t *testing.T) {
	l, _ := startLive(t, nil)
	testutil.Eventually(t, deadline, "a second pass", func() bool { st, _ := statusOf(t, l); return st.Passes >= 2 })
	st, _ := statusOf(t, l)
	if st.LastChange == "" || st.LastChangeWrites == 0 {
		t.Errorf("status after the first apply: lastChange %q, lastChangeWrites %d; want the first pass's", st.LastChange, st.LastChangeWrites)
	}
	for _, s := range st.Secrets {
		if s.LastAction != "created" {
			t.Errorf("%s: lastAction %q (outcome %q), want created", s.Name, s.LastAction, s.Outcome)
		}
	}
	out, _, _ := testutil.RunAgent(t, nil, "status", "--socket", l.cfg.Socket)
	if !strings.Contains(out, "Last change:") || !strings.Contains(out, "created ") {
		t.Errorf("status does not show the last change:\n%s", out)
	}
}

// TestCountsAgreeWithWhatHappened: the status header counts every row by
// outcome and agrees with the log's pass line; a sync whose fetch failed
// prints no counts of an earlier pass.
func TestCountsAgreeWithWhatHappened(t *testing.T) {
	s := newStack(t)
	s.dev.CreateSecret(t, "user", "alice", "COUNTED", env(), []byte("v"))
	s.dev.CreateSecret(t, "user", "alice", "NOT_INJECTED", apiOnly(), []byte("v"))
	a := testutil.StartAgent(t, s.writeConfig(t))
	if _, stderr, code := testutil.RunAgent(t, nil, "wait", "--socket", s.cfg.Socket, "--timeout", "20s"); code != 0 {
		t.Fatalf("wait: exit %d: %s", code, stderr)
	}
	out, _, _ := testutil.RunAgent(t, nil, "status", "--socket", s.cfg.Socket)
	if !strings.Contains(out, "Secrets (2: ") || !strings.Contains(out, "1 skipped") {
		t.Errorf("status header does not count both secrets by outcome:\n%s", out)
	}
	if !strings.Contains(a.Log(), `"msg":"pass done","state":"ready","secrets":2,"delivered":1`) {
		t.Errorf("the log's pass line does not count 2 secrets, 1 delivered:\n%s", a.Log())
	}
	s.dev.Kill(t)
	out, _, code := testutil.RunAgent(t, nil, "sync", "--socket", s.cfg.Socket, "--timeout", "30s")
	if code != 1 || !strings.Contains(out, "sync failed") || !strings.Contains(out, "nothing applied or removed") || strings.Contains(out, "applied,") {
		t.Errorf("failed sync: exit %d:\n%s", code, out)
	}
}

// TestDockerHelperSaysWhatItIs: an unknown action names the helper, and in
// inline mode get says the agent is in inline mode rather than "credentials
// not found"; switching to helper mode logs one outcome for the secret, not
// created and removed.
func TestDockerHelperSaysWhatItIs(t *testing.T) {
	l, _ := startLive(t, nil)
	out, _, code := testutil.RunAgent(t, nil, "docker-credential", "bogus")
	if code != 1 || !strings.Contains(out, "docker-credential-secrets-agent: unknown action: bogus") {
		t.Errorf("docker-credential bogus: exit %d, %q", code, out)
	}
	get := exec.Command(testutil.AgentBin(t), "docker-credential", "get", "--socket", l.cfg.Socket)
	get.Stdin = strings.NewReader("reg.live.test\n")
	b, _ := get.Output()
	if !strings.Contains(string(b), "inline mode") {
		t.Errorf("get in inline mode says %q; want it to say the agent is in inline mode", b)
	}

	l.cfg.DockerMode = "helper"
	l.writeConfig(t)
	l.agent.Signal(t, syscall.SIGHUP)
	testutil.Eventually(t, deadline, "the registry entry moves to credHelpers", func() bool {
		return strings.Contains(l.agent.Log(), "moved from auths to credHelpers")
	})
	for _, line := range lines(l.agent.Log()) {
		if strings.Contains(line, `"secret":"APP_REG"`) && strings.Contains(line, `"action":"removed"`) {
			t.Errorf("the mode switch logged a removal of the secret it moved: %s", line)
		}
	}
	get = exec.Command(testutil.AgentBin(t), "docker-credential", "get", "--socket", l.cfg.Socket)
	get.Stdin = strings.NewReader("reg.live.test\n")
	if b, err := get.Output(); err != nil || !strings.Contains(string(b), `"Username":"bot"`) {
		t.Errorf("get in helper mode: %v, %q", err, b)
	}
}
