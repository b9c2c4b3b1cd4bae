package test

import (
	"bytes"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/secrets-agent/secrets-agent/internal/faultproxy"
	"github.com/secrets-agent/secrets-agent/internal/testutil"
)

// deadline for a change to reach disk in these tests. The target is well
// under a second; the deadline is generous because CI machines are shared.
const deadline = 10 * time.Second

// live is a stack with a running agent.
type live struct {
	*stack
	agent *testutil.Agent
	file  string
}

// startLive creates an env var, a file and a registry secret, starts the agent
// and waits until all three are applied.
func startLive(t testing.TB, mutate func(*testutil.AgentConfig)) (*live, map[string]string) {
	t.Helper()
	s := newStack(t)
	if mutate != nil {
		mutate(&s.cfg)
	}
	l := &live{stack: s, file: filepath.Join(s.home(), ".config/app/token")}
	ids := map[string]string{
		"env":  s.dev.CreateSecret(t, "user", "alice", "APP_TOKEN", env(), []byte("v1")),
		"file": s.dev.CreateSecret(t, "user", "alice", "APP_FILE", file(l.file), []byte("v1")),
		"reg":  s.dev.CreateSecret(t, "user", "alice", "APP_REG", registry("reg.live.test"), regValue("v1")),
	}
	l.agent = testutil.StartAgent(t, s.writeConfig(t))
	l.waitAll(t, "v1")
	return l, ids
}

func regValue(pw string) []byte {
	return []byte(base64.StdEncoding.EncodeToString([]byte("bot:" + pw)))
}

func (l *live) envValue(t testing.TB) string {
	out, err := exec.Command("bash", "-c", `. "$1" 2>/dev/null; printf '%s' "${APP_TOKEN-<unset>}"`, "_",
		filepath.Join(l.envDir(), "env.sh")).Output()
	if err != nil {
		return "<error>"
	}
	return string(out)
}

func (l *live) fileValue() string {
	b, err := os.ReadFile(l.file)
	if err != nil {
		return "<missing>"
	}
	return string(b)
}

func (l *live) dockerHas(pw string) bool {
	b, _ := os.ReadFile(filepath.Join(l.home(), ".docker/config.json"))
	return bytes.Contains(b, regValue(pw))
}

// waitAll waits until the env var, the file and the docker login hold v.
func (l *live) waitAll(t testing.TB, v string) {
	t.Helper()
	testutil.Eventually(t, deadline, "all outputs hold "+v, func() bool {
		return l.fileValue() == v && l.envValue(t) == v && l.dockerHas(v)
	})
}

func (l *live) statusJSON(t testing.TB) (string, int) {
	t.Helper()
	out, _, code := testutil.RunAgent(t, nil, "status", "--json", "--socket", l.cfg.Socket)
	return out, code
}

func TestUpdatedValueReachesEveryOutput(t *testing.T) {
	l, ids := startLive(t, nil)
	for _, k := range []string{"env", "file"} {
		l.dev.UpdateSecret(t, ids[k], []byte("v2"))
	}
	l.dev.UpdateSecret(t, ids["reg"], regValue("v2"))
	l.waitAll(t, "v2")
}

func TestSecretCreatedAfterStartAppearsAndDeletedGoesAway(t *testing.T) {
	l, ids := startLive(t, nil)
	late := filepath.Join(l.home(), "late")
	id := l.dev.CreateSecret(t, "project", "web", "LATE_FILE", file(late), []byte("late"))
	testutil.Eventually(t, deadline, "a secret created after start lands", func() bool {
		b, err := os.ReadFile(late)
		return err == nil && string(b) == "late"
	})
	l.dev.DeleteSecret(t, id)
	for _, k := range []string{"env", "file", "reg"} {
		l.dev.DeleteSecret(t, ids[k])
	}
	testutil.Eventually(t, deadline, "deleted secrets' outputs go away", func() bool {
		_, errLate := os.Lstat(late)
		_, errFile := os.Lstat(l.file)
		return os.IsNotExist(errLate) && os.IsNotExist(errFile) && l.envValue(t) == "<unset>" && !l.dockerHas("v1")
	})
}

func TestDevserverKilledAndRestartedCostsNothing(t *testing.T) {
	l, ids := startLive(t, func(c *testutil.AgentConfig) { c.PollInterval = "1s" })
	l.dev.Kill(t)
	testutil.Eventually(t, deadline, "status turns degraded while the control plane is down", func() bool {
		out, code := l.statusJSON(t)
		return code == 1 && strings.Contains(out, `"degraded"`)
	})
	// Nothing applied was lost while the control plane was away.
	if l.fileValue() != "v1" || l.envValue(t) != "v1" || !l.dockerHas("v1") {
		t.Fatalf("outputs changed while the control plane was down")
	}
	l.dev.Start(t)
	l.dev.UpdateSecret(t, ids["file"], []byte("v2"))
	testutil.Eventually(t, 30*time.Second, "the agent recovers by itself", func() bool { return l.fileValue() == "v2" })
	testutil.Eventually(t, deadline, "status is ready again", func() bool {
		_, code := l.statusJSON(t)
		return code == 0
	})
}

func TestStalledStreamIsSurvivedViaThePollFloor(t *testing.T) {
	s := newStack(t)
	proxy, err := faultproxy.Start(s.dev.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	s.cfg.URL = proxy.URL()
	s.cfg.PollInterval = "1s"
	target := filepath.Join(s.home(), "polled")
	id := s.dev.CreateSecret(t, "user", "alice", "POLLED", file(target), []byte("v1"))
	testutil.StartAgent(t, s.writeConfig(t))
	testutil.Eventually(t, deadline, "first apply", func() bool { b, _ := os.ReadFile(target); return string(b) == "v1" })

	proxy.Set(faultproxy.Fault{Path: "WatchEvents", Stall: true})
	proxy.CutStreams() // the stream in flight dies; new ones stall
	s.dev.UpdateSecret(t, id, []byte("v2"))
	testutil.Eventually(t, deadline, "the poll floor applies the change", func() bool { b, _ := os.ReadFile(target); return string(b) == "v2" })
}

func TestManagedFilesAreRepaired(t *testing.T) {
	l, _ := startLive(t, nil)
	must(t, os.Remove(l.file))
	testutil.Eventually(t, deadline, "a deleted secret file is put back", func() bool { return l.fileValue() == "v1" })
	must(t, os.Chmod(l.file, 0o644))
	testutil.Eventually(t, deadline, "a chmod 0644 is undone", func() bool { return stat(t, l.file).Mode&0o777 == 0o600 })
	envsh := filepath.Join(l.envDir(), "env.sh")
	must(t, os.WriteFile(envsh, []byte("export APP_TOKEN=tampered\n"), 0o600))
	testutil.Eventually(t, deadline, "a rewritten env.sh is put back", func() bool { return l.envValue(t) == "v1" })
	// Rename, then delete: a plain RemoveAll races with the agent putting
	// the file back while the directory is being emptied.
	gone := filepath.Dir(l.file) + ".gone"
	must(t, os.Rename(filepath.Dir(l.file), gone))
	must(t, os.RemoveAll(gone))
	testutil.Eventually(t, deadline, "a removed directory is re-created with its file", func() bool { return l.fileValue() == "v1" })
	// Drift repair keeps working after the directory came back.
	must(t, os.Remove(l.file))
	testutil.Eventually(t, deadline, "repair after the directory was re-created", func() bool { return l.fileValue() == "v1" })
}

func TestInvalidNewConfigIsRefusedAndTheOldKeepsWorking(t *testing.T) {
	l, ids := startLive(t, nil)
	good := readFile(t, l.agent.Config)
	must(t, os.WriteFile(l.agent.Config, append(append([]byte{}, good...), []byte("no_such_key: 1\n")...), 0o600))
	l.agent.Signal(t, syscall.SIGHUP)
	testutil.Eventually(t, deadline, "the agent logs that it refused the config, naming the key", func() bool {
		return strings.Contains(l.agent.Log(), "no_such_key")
	})
	if exited, err := l.agent.Exited(); exited {
		t.Fatalf("the agent exited on an invalid config: %v", err)
	}
	l.dev.UpdateSecret(t, ids["file"], []byte("v2"))
	testutil.Eventually(t, deadline, "the old config keeps working", func() bool { return l.fileValue() == "v2" })
}

func TestSIGTERMLeavesOutputsInPlaceAndExitsZero(t *testing.T) {
	l, _ := startLive(t, nil)
	if err := l.agent.Stop(t); err != nil {
		t.Fatalf("agent exited with %v on SIGTERM, want 0", err)
	}
	if l.fileValue() != "v1" || l.envValue(t) != "v1" || !l.dockerHas("v1") {
		t.Fatalf("outputs did not survive a clean stop")
	}
}
