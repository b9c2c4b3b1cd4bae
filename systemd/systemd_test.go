package systemd_test

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secrets-agent/secrets-agent/internal/testutil"
)

// units are the unit files we ship, relative to systemd/, and whether each is
// a user unit.
var units = []struct {
	path string
	user bool
}{
	{"secrets-agent.service", false},
	{"secrets-agent.socket", false},
	{"user/secrets-agent.service", true},
}

// TestUnitsPassSystemdAnalyzeVerify runs `systemd-analyze verify` on each
// unit. verify insists that ExecStart's binary exists, so each unit is
// verified from a temp copy pointing at the freshly built binary. verify
// exits 0 on unknown keys and unparsable values (it only warns), so any line
// it prints about our unit fails the test too.
func TestUnitsPassSystemdAnalyzeVerify(t *testing.T) {
	analyze := testutil.NeedTool(t, "systemd-analyze")
	agent := filepath.Join(testutil.Binaries(t), "secrets-agent")
	for _, u := range units {
		t.Run(u.path, func(t *testing.T) {
			dir := t.TempDir()
			// The socket needs its service beside it.
			names := []string{"secrets-agent.service", "secrets-agent.socket"}
			if u.user {
				names = []string{u.path}
			}
			for _, name := range names {
				data, err := os.ReadFile(name)
				if err != nil {
					t.Fatal(err)
				}
				data = bytes.ReplaceAll(data, []byte("/usr/local/bin/secrets-agent"), []byte(agent))
				if err := os.WriteFile(filepath.Join(dir, filepath.Base(name)), data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			args := []string{"verify", filepath.Join(dir, filepath.Base(u.path))}
			cmd := exec.Command(analyze, args...)
			if u.user {
				cmd = exec.Command(analyze, append([]string{"--user"}, args...)...)
				// A user manager needs a runtime dir; the test provides one.
				cmd.Env = append(os.Environ(), "XDG_RUNTIME_DIR="+t.TempDir())
			}
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("systemd-analyze %s: %v\n%s", strings.Join(cmd.Args[1:], " "), err, out)
			}
			for _, line := range strings.Split(string(out), "\n") {
				if strings.Contains(line, dir) || strings.Contains(line, "secrets-agent") {
					t.Errorf("systemd-analyze warns about our unit: %s", line)
				}
			}
		})
	}
}

// TestSystemUnitIsHardened guards the hardening the issue asks for against
// an edit that drops a line.
func TestSystemUnitIsHardened(t *testing.T) {
	data, err := os.ReadFile("secrets-agent.service")
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			have[line] = true
		}
	}
	for _, want := range []string{
		"Type=notify", "Requires=secrets-agent.socket", "ExecStart=/usr/local/bin/secrets-agent run --config /etc/secrets-agent/config.yaml",
		"ExecReload=/bin/sh -c 'kill -HUP ${MAINPID}'", "WatchdogSec=30s", "Restart=on-failure",
		"NoNewPrivileges=yes", "ProtectSystem=strict", "ReadWritePaths=-/home -/root -/run/secrets -/usr/local/share/ca-certificates -/etc/ssl/certs",
		"PrivateTmp=yes", "ProtectKernelTunables=yes", "ProtectKernelModules=yes", "ProtectKernelLogs=yes",
		"ProtectControlGroups=yes", "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6", "UMask=0077",
		"RuntimeDirectory=secrets-agent secrets", "RuntimeDirectoryPreserve=yes", "StateDirectory=secrets-agent",
		"LimitCORE=0", "CapabilityBoundingSet=CAP_CHOWN CAP_DAC_OVERRIDE CAP_FOWNER CAP_LEASE",
		"SystemCallArchitectures=native", "LockPersonality=yes", "MemoryDenyWriteExecute=yes",
		"RestrictRealtime=yes", "RestrictSUIDSGID=yes",
	} {
		if !have[want] {
			t.Errorf("secrets-agent.service lacks %q", want)
		}
	}
	sock, err := os.ReadFile("secrets-agent.socket")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ListenStream=/run/secrets-agent/agent.sock", "SocketMode=0600"} {
		if !bytes.Contains(sock, []byte(want)) {
			t.Errorf("secrets-agent.socket lacks %q", want)
		}
	}
}

// snapshot describes every entry under root: type, mode, and the content or
// the link target.
func snapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	snap := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		desc := info.Mode().String()
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			desc += " -> " + target
		case info.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			desc += fmt.Sprintf(" %q", data)
		}
		snap[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

func sameTree(t *testing.T, before, after map[string]string) {
	t.Helper()
	for p, d := range before {
		if after[p] != d {
			t.Errorf("%s: was %.120s, now %.120s", p, d, after[p])
		}
	}
	for p, d := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("%s: left behind: %.120s", p, d)
		}
	}
}

// newRoot returns a temp root with some of what a real system has: rc files
// the hooks edit, and a bin directory with someone else's program.
func newRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for name, data := range map[string]string{
		"etc/bash.bashrc":       "# system bashrc\nalias ll='ls -l'\n",
		"etc/profile.d/lang.sh": "export LANG=C.UTF-8\n",
		"usr/local/bin/other":   "#!/bin/sh\n",
		"home/dev/.bashrc":      "# dev's bashrc\n",
	} {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// install runs systemd/install.sh with args and the built binary as $BIN.
func install(t *testing.T, env []string, args ...string) string {
	t.Helper()
	sh := testutil.NeedTool(t, "sh")
	cmd := exec.Command(sh, append([]string{"install.sh"}, args...)...)
	cmd.Env = append(os.Environ(), "BIN="+filepath.Join(testutil.Binaries(t), "secrets-agent"))
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("install.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func mode(t *testing.T, p string) fs.FileMode {
	t.Helper()
	info, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return info.Mode()
}

func TestInstallThenUninstallLeavesTheTreeAsItWas(t *testing.T) {
	root := newRoot(t)
	before := snapshot(t, root)
	out := install(t, nil, "--root", root)
	if !strings.Contains(out, "secrets-agent wait") {
		t.Errorf("without systemd, install.sh does not say how to start the agent:\n%s", out)
	}

	// What landed.
	bin := filepath.Join(root, "usr/local/bin/secrets-agent")
	built, _ := os.ReadFile(filepath.Join(testutil.Binaries(t), "secrets-agent"))
	if got, _ := os.ReadFile(bin); !bytes.Equal(got, built) || mode(t, bin) != 0o755 {
		t.Errorf("%s: not the built binary with mode 0755 (mode %v)", bin, mode(t, bin))
	}
	if target, err := os.Readlink(filepath.Join(root, "usr/local/bin/docker-credential-secrets-agent")); err != nil || target != "secrets-agent" {
		t.Errorf("credential helper symlink -> %q, %v; want secrets-agent", target, err)
	}
	for _, u := range []string{"secrets-agent.service", "secrets-agent.socket"} {
		want, _ := os.ReadFile(u)
		if got, err := os.ReadFile(filepath.Join(root, "etc/systemd/system", u)); err != nil || !bytes.Equal(got, want) {
			t.Errorf("unit %s not installed as shipped: %v", u, err)
		}
	}
	conf := filepath.Join(root, "etc/secrets-agent/config.yaml")
	example, _ := os.ReadFile("../config.example.yaml")
	if got, err := os.ReadFile(conf); err != nil || !bytes.Equal(got, example) || mode(t, conf) != 0o600 {
		t.Errorf("config: %v, mode %v; want the example config, 0600", err, mode(t, conf))
	}
	if _, err := os.Stat(filepath.Join(root, "etc/profile.d/secrets-agent.sh")); err != nil {
		t.Errorf("profile hook not installed: %v", err)
	}
	if rc, _ := os.ReadFile(filepath.Join(root, "etc/bash.bashrc")); !bytes.Contains(rc, []byte("secrets-agent")) {
		t.Errorf("bash hook not added to /etc/bash.bashrc:\n%s", rc)
	}

	// A second run upgrades in place and records nothing twice.
	install(t, nil, "--root", root)
	install(t, nil, "--root", root, "--uninstall")
	sameTree(t, before, snapshot(t, root))
}

func TestUninstallKeepsAnEditedConfigUnlessPurged(t *testing.T) {
	for _, purge := range []bool{false, true} {
		t.Run(fmt.Sprintf("purge=%v", purge), func(t *testing.T) {
			root := newRoot(t)
			before := snapshot(t, root)
			install(t, nil, "--root", root)
			conf := filepath.Join(root, "etc/secrets-agent/config.yaml")
			edited := "controlplane:\n  environment_id: env-1\n"
			if err := os.WriteFile(conf, []byte(edited), 0o600); err != nil {
				t.Fatal(err)
			}
			if purge {
				install(t, nil, "--root", root, "--uninstall", "--purge")
				sameTree(t, before, snapshot(t, root))
				return
			}
			out := install(t, nil, "--root", root, "--uninstall")
			if got, err := os.ReadFile(conf); err != nil || string(got) != edited {
				t.Errorf("edited config not kept: %v\n%s", err, out)
			}
			os.RemoveAll(filepath.Join(root, "etc/secrets-agent"))
			sameTree(t, before, snapshot(t, root))
		})
	}
}

func TestInstallKeepsAnExistingConfig(t *testing.T) {
	root := newRoot(t)
	conf := filepath.Join(root, "etc/secrets-agent/config.yaml")
	os.MkdirAll(filepath.Dir(conf), 0o755)
	os.WriteFile(conf, []byte("user: dev\n"), 0o600)
	before := snapshot(t, root)
	install(t, nil, "--root", root)
	if got, _ := os.ReadFile(conf); string(got) != "user: dev\n" {
		t.Errorf("install replaced an existing config: %q", got)
	}
	install(t, nil, "--root", root, "--uninstall")
	sameTree(t, before, snapshot(t, root))
}

func TestInstallWithPrefixPointsTheUnitsAtIt(t *testing.T) {
	root := newRoot(t)
	before := snapshot(t, root)
	install(t, nil, "--root", root, "--prefix", "/opt/secrets-agent")
	unit, err := os.ReadFile(filepath.Join(root, "etc/systemd/system/secrets-agent.service"))
	if err != nil || !bytes.Contains(unit, []byte("ExecStart=/opt/secrets-agent/bin/secrets-agent run")) {
		t.Errorf("unit does not run the binary under the prefix: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "opt/secrets-agent/bin/secrets-agent")); err != nil {
		t.Error(err)
	}
	install(t, nil, "--root", root, "--prefix", "/opt/secrets-agent", "--uninstall")
	sameTree(t, before, snapshot(t, root))
}

func TestUserInstallThenUninstall(t *testing.T) {
	root := newRoot(t)
	before := snapshot(t, root)
	env := []string{"HOME=/home/dev", "XDG_CONFIG_HOME="}
	install(t, env, "--user", "--root", root)
	for _, p := range []string{
		"home/dev/.local/bin/secrets-agent",
		"home/dev/.config/systemd/user/secrets-agent.service",
		"home/dev/.config/secrets-agent/config.yaml",
	} {
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			t.Errorf("--user did not install %s: %v", p, err)
		}
	}
	install(t, env, "--user", "--root", root, "--uninstall")
	sameTree(t, before, snapshot(t, root))
}

func TestUninstallWithoutInstallFails(t *testing.T) {
	sh := testutil.NeedTool(t, "sh")
	out, err := exec.Command(sh, "install.sh", "--root", t.TempDir(), "--uninstall").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "no manifest") {
		t.Errorf("uninstall of nothing: %v\n%s", err, out)
	}
}

func TestUninstallTakesTheProxyCAOutOfTheTrustStore(t *testing.T) {
	root := newRoot(t)
	install(t, nil, "--root", root)
	dir := filepath.Join(root, "usr/local/share/ca-certificates")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(dir, "secrets-agent-proxy.crt") // as the agent's proxy.Trust writes it
	other := filepath.Join(dir, "corp.crt")
	for _, p := range []string{ca, other} {
		if err := os.WriteFile(p, []byte("-----BEGIN CERTIFICATE-----\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	install(t, nil, "--root", root, "--uninstall")
	if _, err := os.Stat(ca); err == nil {
		t.Error("the proxy CA is still in the trust store after --uninstall")
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("another local CA was removed: %v", err)
	}
}
