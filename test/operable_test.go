package test

import (
	"encoding/base64"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/secrets-agent/secrets-agent/internal/testutil"
)

// notifySocket is a real unixgram socket standing where systemd's would be.
type notifySocket struct {
	path string
	mu   sync.Mutex
	msgs []notifyMsg
}

type notifyMsg struct {
	at   time.Time
	text string
}

func listenNotify(t *testing.T) *notifySocket {
	t.Helper()
	n := &notifySocket{path: filepath.Join(t.TempDir(), "notify.sock")}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: n.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := conn.Read(buf)
			if err != nil {
				return
			}
			n.mu.Lock()
			n.msgs = append(n.msgs, notifyMsg{time.Now(), string(buf[:k])})
			n.mu.Unlock()
		}
	}()
	return n
}

// seen returns the messages so far that contain s.
func (n *notifySocket) seen(s string) []notifyMsg {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []notifyMsg
	for _, m := range n.msgs {
		if strings.Contains(m.text, s) {
			out = append(out, m)
		}
	}
	return out
}

func (n *notifySocket) all() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var b strings.Builder
	for _, m := range n.msgs {
		b.WriteString(strings.ReplaceAll(m.text, "\n", " | ") + "\n")
	}
	return b.String()
}

// TestSdNotifySequence watches the real agent talk to a real NOTIFY_SOCKET:
// READY after the first pass, STATUS kept current (it says so when the
// control plane dies and the watch stream drops), WATCHDOG at the interval WATCHDOG_USEC implies,
// RELOADING on SIGHUP, STOPPING on SIGTERM.
func TestSdNotifySequence(t *testing.T) {
	s := newStack(t)
	s.dev.CreateSecret(t, "user", "alice", "NOTIFIED", env(), []byte("v"))
	n := listenNotify(t)
	a := testutil.StartAgent(t, s.writeConfig(t), "NOTIFY_SOCKET="+n.path, "WATCHDOG_USEC=400000")
	testutil.Eventually(t, deadline, "READY=1", func() bool { return len(n.seen("READY=1")) > 0 })
	if !strings.Contains(n.all(), "STATUS=") {
		t.Errorf("no STATUS= line:\n%s", n.all())
	}
	if _, err := os.Stat(filepath.Join(s.envDir(), "env.sh")); err != nil {
		t.Errorf("READY came before the first pass was applied: %v", err)
	}
	testutil.Eventually(t, deadline, "three WATCHDOG=1 pings", func() bool { return len(n.seen("WATCHDOG=1")) >= 3 })
	pings := n.seen("WATCHDOG=1")
	for i := 1; i < len(pings); i++ {
		// Pings come at about half of WATCHDOG_USEC (200 ms); anything below
		// the full interval keeps systemd content. Only a gross miss fails.
		if gap := pings[i].at.Sub(pings[i-1].at); gap > 2*time.Second {
			t.Errorf("watchdog gap %v, far over the 400ms WATCHDOG_USEC", gap)
		}
	}
	// STATUS is kept current: the control plane going away shows in it at
	// once (the stream drops), not at the next poll 30 s later.
	s.dev.Kill(t)
	testutil.Eventually(t, deadline, "a new STATUS= line once the control plane is gone", func() bool {
		for _, m := range n.seen("STATUS=") {
			if !strings.Contains(m.text, "READY=1") && strings.Contains(m.text, "watch stream down") {
				return true
			}
		}
		return false
	})
	a.Signal(t, syscall.SIGHUP)
	testutil.Eventually(t, deadline, "RELOADING=1 on SIGHUP", func() bool { return len(n.seen("RELOADING=1")) > 0 })
	if err := a.Stop(t); err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
	if len(n.seen("STOPPING=1")) == 0 {
		t.Errorf("no STOPPING=1 on SIGTERM:\n%s", n.all())
	}
}

// TestReadyWithDegradedStatusWhenControlPlaneIsDown: a dead control plane
// never blocks boot; READY comes after ready_timeout with a degraded STATUS.
func TestReadyWithDegradedStatusWhenControlPlaneIsDown(t *testing.T) {
	s := newStack(t)
	s.dev.Kill(t)
	n := listenNotify(t)
	cfg := s.writeConfig(t)
	b := readFile(t, cfg)
	must(t, os.WriteFile(cfg, []byte(strings.Replace(string(b), "ready_timeout: 10s", "ready_timeout: 1s", 1)), 0o600))
	testutil.StartAgent(t, cfg, "NOTIFY_SOCKET="+n.path)
	testutil.Eventually(t, deadline, "READY=1 despite the dead control plane", func() bool { return len(n.seen("READY=1")) > 0 })
	ready := n.seen("READY=1")[0].text
	statuses := n.seen("STATUS=")
	if !strings.Contains(strings.ToLower(ready+n.all()), "degraded") || len(statuses) == 0 {
		t.Fatalf("READY without a degraded STATUS:\n%s", n.all())
	}
}

// TestStatusSyncWaitEnvThroughTheSocket drives the client commands against
// the real agent, checks exit codes in each state and that no value leaks.
func TestStatusSyncWaitEnvThroughTheSocket(t *testing.T) {
	s := newStack(t)
	values := []string{"status-secret-value-1", "status-secret-value-2", "status-secret-value-3"}
	s.dev.CreateSecret(t, "organization", "acme", "SHOWN", env(), []byte(values[0]))
	s.dev.CreateSecret(t, "user", "alice", "SHOWN", env(), []byte(values[1]))
	s.dev.CreateSecret(t, "user", "alice", "SHOWN_FILE", file(filepath.Join(s.home(), "f")), []byte(values[2]))
	sock := []string{"--socket", s.cfg.Socket}
	if _, _, code := testutil.RunAgent(t, nil, append([]string{"status"}, sock...)...); code != 2 {
		t.Fatalf("status with no daemon exited %d, want 2", code)
	}
	testutil.StartAgent(t, s.writeConfig(t))
	if out, errOut, code := testutil.RunAgent(t, nil, append([]string{"wait", "--timeout", "20s"}, sock...)...); code != 0 {
		t.Fatalf("wait exited %d: %s %s", code, out, errOut)
	}
	human, _, code := testutil.RunAgent(t, nil, append([]string{"status"}, sock...)...)
	if code != 0 {
		t.Fatalf("status exited %d when ready:\n%s", code, human)
	}
	js, _, code := testutil.RunAgent(t, nil, append([]string{"status", "--json"}, sock...)...)
	if code != 0 {
		t.Fatalf("status --json exited %d", code)
	}
	var st map[string]any
	if err := json.Unmarshal([]byte(js), &st); err != nil {
		t.Fatalf("status --json is not JSON: %v\n%s", err, js)
	}
	if st["state"] != "ready" {
		t.Fatalf("state = %v, want ready", st["state"])
	}
	if !strings.Contains(js, `"organization"`) {
		t.Errorf("status does not show the shadowed organization secret:\n%s", js)
	}
	syncOut, _, code := testutil.RunAgent(t, nil, append([]string{"sync"}, sock...)...)
	if code != 0 {
		t.Fatalf("sync exited %d:\n%s", code, syncOut)
	}
	for _, v := range values {
		for what, out := range map[string]string{"status": human, "status --json": js, "sync": syncOut} {
			if strings.Contains(out, v) {
				t.Errorf("%s printed a secret value", what)
			}
		}
	}
	envOut, _, code := testutil.RunAgent(t, nil, append([]string{"env", "--format", "sh"}, sock...)...)
	if code != 0 || !strings.Contains(envOut, values[1]) || strings.Contains(envOut, values[0]) {
		t.Fatalf("env --format sh (exit %d) does not carry the winning value alone", code)
	}

	s.dev.Kill(t)
	testutil.Eventually(t, deadline, "status exits 1 once degraded", func() bool {
		testutil.RunAgent(t, nil, append([]string{"sync"}, sock...)...)
		_, _, code := testutil.RunAgent(t, nil, append([]string{"status"}, sock...)...)
		return code == 1
	})
}

// TestDockerUsesTheCredentialHelper: with only credHelpers in its config, the
// real docker CLI gets the credentials from the agent through
// docker-credential-secrets-agent, and fails once the secret is deleted.
func TestDockerUsesTheCredentialHelper(t *testing.T) {
	docker := testutil.NeedTool(t, "docker")
	reg := testutil.StartRegistry(t)
	reg.SetCredentials("helper-bot", "helper-pass")
	s := newStack(t)
	s.cfg.DockerMode = "helper"
	id := s.dev.CreateSecret(t, "user", "alice", "HELPED", registry(reg.Host),
		[]byte(base64.StdEncoding.EncodeToString([]byte("helper-bot:helper-pass"))))
	testutil.StartAgent(t, s.writeConfig(t))
	cfgDir := filepath.Join(s.home(), ".docker")
	testutil.Eventually(t, deadline, "credHelpers entry written", func() bool {
		b, _ := os.ReadFile(filepath.Join(cfgDir, "config.json"))
		return strings.Contains(string(b), "credHelpers")
	})
	b := readFile(t, filepath.Join(cfgDir, "config.json"))
	if strings.Contains(string(b), "helper-pass") || strings.Contains(string(b), base64.StdEncoding.EncodeToString([]byte("helper-bot:helper-pass"))) {
		t.Fatalf("helper mode wrote the password to disk:\n%s", b)
	}
	reg.TrustFor(t, cfgDir)
	binDir := t.TempDir()
	must(t, os.Symlink(testutil.AgentBin(t), filepath.Join(binDir, "docker-credential-secrets-agent")))
	inspect := func() ([]byte, error) {
		cmd := exec.Command(docker, "manifest", "inspect", reg.Host+"/team/app:1")
		cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+cfgDir, "DOCKER_CLI_EXPERIMENTAL=enabled",
			"PATH="+binDir+":"+os.Getenv("PATH"), "SECRETS_AGENT_SOCKET="+s.cfg.Socket)
		return cmd.CombinedOutput()
	}
	if out, err := inspect(); err != nil {
		t.Fatalf("docker manifest inspect via the helper: %v\n%s", err, out)
	}
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte("helper-bot:helper-pass"))
	found := false
	for _, a := range reg.Authorizations() {
		found = found || a == want
	}
	if !found {
		t.Fatalf("the registry never saw the helper's credentials")
	}
	s.dev.DeleteSecret(t, id)
	testutil.Eventually(t, deadline, "docker fails once the secret is deleted", func() bool {
		_, err := inspect()
		return err != nil
	})
}
