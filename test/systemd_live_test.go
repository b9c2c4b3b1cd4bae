//go:build live

package test

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/secrets-agent/secrets-agent/internal/testutil"
)

// The live tests (make test-live, build tag "live") run the agent under real
// systemd, a real docker daemon and registry, and a real dev container.

// unique returns prefix and 8 random hex digits: a value no other file on a
// machine holds, so a grep for it finds only what the agent wrote.
func unique(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// systemdConfig is the agent's config in the booted machine.
func systemdConfig(url, envID, extra string) string {
	return fmt.Sprintf(`controlplane:
  url: %q
  environment_id: %q
  poll_interval: 30s
user: alice
ready_timeout: 2s
injectors:
  dockercfg:
    mode: helper
log:
  level: debug
%s`, url, envID, extra)
}

// TestLiveSystemd boots a minimal Debian with systemd 252 as PID 1, installs
// the agent with systemd/install.sh and drives it the way an environment
// does: start unconfigured and without a token (no restart loop), pick both
// up, apply under ProtectSystem=strict, reload, survive kill -9 and a hang
// (watchdog), be started by its socket, run as a user unit, and leave no
// value anywhere on disk after uninstall --purge.
func TestLiveSystemd(t *testing.T) {
	rootfs := testutil.LiveRootfs(t)
	dev := testutil.StartDevserver(t)
	envID, token := dev.CreateEnv(t, "acme", "web", "alice")
	vals := map[string]string{"env": unique("sysd-env-"), "file": unique("sysd-file-"), "reg": unique("sysd-reg-")}
	ids := map[string]string{
		"env":  dev.CreateSecret(t, "user", "alice", "APP_TOKEN", env(), []byte(vals["env"])),
		"file": dev.CreateSecret(t, "user", "alice", "APP_FILE", file("/home/alice/.config/app/token"), []byte(vals["file"])),
		"reg": dev.CreateSecret(t, "user", "alice", "APP_REG", registry("reg.live.test"),
			[]byte(base64.StdEncoding.EncodeToString([]byte("bot:"+vals["reg"])))),
	}
	m := testutil.BootMachine(t, rootfs, testutil.Binaries(t)+":/opt/secrets-agent-bin", testutil.ModuleRoot(t)+":/src")
	show := func(prop string) string {
		return strings.TrimSpace(m.Must(t, "systemctl", "show", "-P", prop, "secrets-agent.service"))
	}
	waitStatus := func(what, want string) {
		t.Helper()
		testutil.Eventually(t, 20*time.Second, what+": STATUS "+want, func() bool { return strings.Contains(show("StatusText"), want) })
	}
	journal := func() string {
		out, _ := m.Run(t, "", "journalctl", "-b", "--no-pager", "-o", "cat", "-u", "secrets-agent")
		return out
	}

	// A config as the platform leaves it before the environment exists: no
	// environment_id, and no token in /run.
	const conf = "/etc/secrets-agent/config.yaml"
	m.WriteFile(t, conf, []byte(systemdConfig(dev.URL, "", "")), 0o600)
	t.Run("install starts the socket and the service, which waits unconfigured", func(t *testing.T) {
		out := m.Must(t, "env", "BIN=/opt/secrets-agent-bin/secrets-agent", "sh", "/src/systemd/install.sh")
		t.Logf("install.sh:\n%s", out)
		if got := m.Must(t, "systemctl", "is-active", "secrets-agent.socket", "secrets-agent.service"); got != "active\nactive\n" {
			t.Fatalf("is-active socket, service: %q", got)
		}
		waitStatus("unconfigured", "not configured")
		time.Sleep(3 * time.Second) // RestartSec is 2s: a loop would show
		if n := show("NRestarts"); n != "0" {
			t.Errorf("NRestarts=%s while unconfigured; want 0 (no restart loop)\n%s", n, journal())
		}
		if out, code := m.Run(t, "", "secrets-agent", "status"); code != 1 || !strings.Contains(out, "not configured") {
			t.Errorf("secrets-agent status while unconfigured: exit %d\n%s", code, out)
		}
	})

	t.Run("configured but no token yet, then the token: applied", func(t *testing.T) {
		m.WriteFile(t, conf, []byte(systemdConfig(dev.URL, envID, "")), 0o600)
		waitStatus("configured", "waiting for token")
		m.WriteFile(t, "/run/secrets-agent/token", []byte(token), 0o600)
		waitStatus("token written", "ready: 3 secrets applied")
		if n := show("NRestarts"); n != "0" {
			t.Errorf("NRestarts=%s; want 0", n)
		}
	})

	outputs := "stat -c '%n %U %a %Y %i' /run/secrets-agent/alice/env.sh /home/alice/.config/app/token /home/alice/.docker/config.json"
	t.Run("outputs under ProtectSystem=strict", func(t *testing.T) {
		if got := show("ProtectSystem"); got != "strict" {
			t.Errorf("ProtectSystem=%s", got)
		}
		t.Logf("outputs:\n%s", m.Sh(t, outputs))
		if got := m.Must(t, "cat", "/home/alice/.config/app/token"); got != vals["file"] {
			t.Errorf("secret file holds %q", got)
		}
		if got := m.Must(t, "runuser", "-u", "alice", "--", "bash", "-lc", "printf %s \"$APP_TOKEN\""); got != vals["env"] {
			t.Errorf("a login shell of alice sees APP_TOKEN=%q", got)
		}
		if cfg := m.Must(t, "cat", "/home/alice/.docker/config.json"); !strings.Contains(cfg, `"reg.live.test": "secrets-agent"`) ||
			strings.Contains(cfg, vals["reg"]) {
			t.Errorf("docker config in helper mode:\n%s", cfg)
		}
		got, code := m.Run(t, "reg.live.test", "runuser", "-u", "alice", "--", "docker-credential-secrets-agent", "get")
		if code != 0 || !strings.Contains(got, vals["reg"]) {
			t.Errorf("credential helper as alice: exit %d: %s", code, strings.ReplaceAll(got, vals["reg"], "<value>"))
		}
	})

	t.Run("systemctl reload applies a new config", func(t *testing.T) {
		// Polling only, every second: a change arrives by the poll, not the stream.
		m.WriteFile(t, conf, []byte(strings.Replace(systemdConfig(dev.URL, envID, ""), "poll_interval: 30s",
			"poll_interval: 1s\n  watch: false", 1)), 0o600)
		m.Must(t, "systemctl", "reload", "secrets-agent")
		testutil.Eventually(t, 10*time.Second, "SIGHUP in the journal", func() bool { return strings.Contains(journal(), "SIGHUP: reloading") })
		waitStatus("after reload", "ready: 3 secrets applied")
		vals["file"] = unique("sysd-file2-")
		dev.UpdateSecret(t, ids["file"], []byte(vals["file"]))
		testutil.Eventually(t, 5*time.Second, "update applied by polling", func() bool {
			out, _ := m.Run(t, "", "cat", "/home/alice/.config/app/token")
			return out == vals["file"]
		})
		if strings.Contains(show("StatusText"), "watch stream down") {
			t.Errorf("STATUS still follows a stream that the config turned off: %s", show("StatusText"))
		}
	})

	restarted := func(what, oldPID string) {
		t.Helper()
		testutil.Eventually(t, 30*time.Second, what+": a new main process, ready", func() bool {
			pid := show("MainPID")
			return pid != "0" && pid != oldPID && strings.Contains(show("StatusText"), "ready:")
		})
	}
	t.Run("kill -9: restarted, outputs untouched", func(t *testing.T) {
		before := m.Sh(t, outputs)
		pid := show("MainPID")
		m.Must(t, "sh", "-c", "kill -KILL "+pid)
		restarted("after SIGKILL", pid)
		if after := m.Sh(t, outputs); after != before {
			t.Errorf("outputs changed across a restart:\nbefore:\n%safter:\n%s", before, after)
		}
	})

	t.Run("watchdog: a stopped agent is restarted", func(t *testing.T) {
		m.WriteFile(t, "/etc/systemd/system/secrets-agent.service.d/watchdog.conf",
			[]byte("[Service]\nWatchdogSec=3s\nTimeoutAbortSec=3s\n"), 0o644)
		m.Must(t, "systemctl", "daemon-reload")
		m.Must(t, "systemctl", "restart", "secrets-agent")
		pid := show("MainPID")
		time.Sleep(4 * time.Second) // alive past one watchdog interval
		if show("MainPID") != pid {
			t.Fatalf("restarted although it was pinging the watchdog\n%s", journal())
		}
		m.Must(t, "sh", "-c", "kill -STOP "+pid)
		restarted("after SIGSTOP", pid)
		if j := journal(); !strings.Contains(j, "Watchdog timeout") {
			t.Errorf("journal does not show the watchdog firing:\n%s", j)
		}
		m.Must(t, "rm", "-r", "/etc/systemd/system/secrets-agent.service.d")
		m.Must(t, "systemctl", "daemon-reload")
	})

	t.Run("socket activation: status starts a stopped service", func(t *testing.T) {
		m.Must(t, "systemctl", "stop", "secrets-agent.service")
		if got, _ := m.Run(t, "", "systemctl", "is-active", "secrets-agent.socket", "secrets-agent.service"); got != "active\ninactive\n" {
			t.Fatalf("after stopping the service, is-active socket, service: %q", got)
		}
		out, code := m.Run(t, "", "secrets-agent", "status")
		if code == 2 {
			t.Fatalf("status through the socket: unreachable\n%s", out)
		}
		// The socket is served before the first pass ends: READY (active) follows.
		testutil.Eventually(t, 20*time.Second, "service active after a client connected", func() bool {
			out, _ := m.Run(t, "", "systemctl", "is-active", "secrets-agent.service")
			return strings.TrimSpace(out) == "active"
		})
		waitStatus("socket-activated", "ready: 3 secrets applied")
	})

	t.Run("uninstall --purge leaves no value on the system", func(t *testing.T) {
		t.Logf("uninstall --purge:\n%s", m.Must(t, "sh", "/src/systemd/install.sh", "--uninstall", "--purge"))
		if out, _ := m.Run(t, "", "systemctl", "is-active", "secrets-agent.socket", "secrets-agent.service"); strings.Contains(out, "active\n") && !strings.Contains(out, "inactive") {
			t.Errorf("units still active after uninstall: %q", out)
		}
		for what, v := range vals {
			out, _ := m.Run(t, "", "grep", "-rlF", "--exclude-dir=proc", "--exclude-dir=sys", "--exclude-dir=dev",
				"--exclude-dir=src", "--exclude-dir=secrets-agent-bin", v, "/")
			for _, f := range strings.Fields(out) {
				t.Errorf("the %s secret's value is still in %s after uninstall --purge", what, f)
			}
		}
		if out, code := m.Run(t, "", "ls", "/home/alice/.config/app/token"); code == 0 {
			t.Errorf("the secret file is still there: %s", out)
		}
		if cfg, _ := m.Run(t, "", "cat", "/home/alice/.docker/config.json"); strings.Contains(cfg, "reg.live.test") {
			t.Errorf("the docker login is still in config.json:\n%s", cfg)
		}
		if out, code := m.Run(t, "", "ls", "-A", "/run/secrets-agent"); code == 0 && strings.TrimSpace(out) != "token" && strings.TrimSpace(out) != "" {
			t.Errorf("/run/secrets-agent after purge: %s", out)
		}
	})

	t.Run("user unit in a user session", func(t *testing.T) {
		m.Must(t, "systemctl", "start", "user@1000.service")
		// The test's binaries dir is root's alone (0700): give alice a copy.
		m.Must(t, "install", "-D", "-m", "0755", "/opt/secrets-agent-bin/secrets-agent", "/opt/alice-bin/secrets-agent")
		as := func(args ...string) []string {
			return append([]string{"runuser", "-u", "alice", "--", "env", "XDG_RUNTIME_DIR=/run/user/1000", "HOME=/home/alice",
				"BIN=/opt/alice-bin/secrets-agent"}, args...)
		}
		userConf := systemdConfig(dev.URL, envID, "") + "" // same environment, alice's own agent
		userConf = strings.Replace(userConf, "user: alice\n", "", 1)
		userConf = strings.Replace(userConf, "  poll_interval: 30s", "  poll_interval: 30s\n  token_file: /home/alice/.config/secrets-agent/token", 1)
		m.Sh(t, "install -d -o alice -g alice -m 0700 /home/alice/.config /home/alice/.config/secrets-agent")
		m.WriteFile(t, "/home/alice/.config/secrets-agent/config.yaml", []byte(userConf), 0o600)
		m.WriteFile(t, "/home/alice/.config/secrets-agent/token", []byte(token), 0o600)
		m.Must(t, "chown", "-R", "alice:alice", "/home/alice/.config/secrets-agent")
		m.Must(t, as("sh", "/src/systemd/install.sh", "--user")...)
		userShow := func(prop string) string {
			out, _ := m.Run(t, "", as("systemctl", "--user", "show", "-P", prop, "secrets-agent.service")...)
			return strings.TrimSpace(out)
		}
		testutil.Eventually(t, 20*time.Second, "user unit ready", func() bool { return strings.Contains(userShow("StatusText"), "ready: 3 secrets applied") })
		if got := m.Must(t, "cat", "/run/user/1000/secrets-agent/env.sh"); !strings.Contains(got, vals["env"]) {
			t.Errorf("user unit's env.sh lacks the value")
		}
		pid := userShow("MainPID")
		m.Must(t, as("systemctl", "--user", "reload", "secrets-agent")...)
		// The unit is "reloading" until the agent sends READY=1 again.
		testutil.Eventually(t, 10*time.Second, "user unit active again after reload", func() bool { return userShow("ActiveState") == "active" })
		if got := userShow("MainPID"); got != pid {
			t.Errorf("user unit after reload: pid %s -> %s: a reload must not restart it", pid, got)
		}
		m.Must(t, as("sh", "/src/systemd/install.sh", "--user", "--uninstall", "--purge")...)
		if out, code := m.Run(t, "", "ls", "/run/user/1000/secrets-agent"); code == 0 {
			t.Errorf("user fragments left after --purge: %s", out)
		}
		for what, v := range vals {
			if out, code := m.Run(t, "", "grep", "-rlF", v, "/home/alice", "/run/user/1000"); code == 0 {
				t.Errorf("the %s secret's value is still in %s after the user unit's uninstall --purge", what, out)
			}
		}
	})
	if t.Failed() {
		t.Logf("journal of secrets-agent:\n%s", journal())
	}
}
