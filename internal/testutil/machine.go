package testutil

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// LiveRootfs returns a minimal Debian root file system that boots systemd,
// built by scripts/live-rootfs.sh into a cache outside the repository (about
// a minute the first time, then reused). It needs root and debootstrap.
func LiveRootfs(t testing.TB) string {
	t.Helper()
	NeedRoot(t, "build and boot a root file system")
	NeedTool(t, "debootstrap")
	out, err := exec.Command(filepath.Join(ModuleRoot(t), "scripts", "live-rootfs.sh")).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("scripts/live-rootfs.sh: %v\n%s", err, stderr)
	}
	return strings.TrimSpace(string(out))
}

// Machine is a Debian system booted with systemd as PID 1 by systemd-nspawn
// on a throw-away overlay of a root file system (the rootfs is never
// written). It shares the host's network, so a devserver on the host's
// 127.0.0.1 is reachable from it.
type Machine struct {
	Name   string
	leader int // the container's PID 1, as the host sees it
	*process
}

var machines atomic.Int64

// BootMachine boots rootfs and returns once systemd has finished starting
// up. binds are "HOST:GUEST" directories made visible read-only. The test's
// cleanup powers the machine off.
func BootMachine(t testing.TB, rootfs string, binds ...string) *Machine {
	t.Helper()
	nspawn := NeedTool(t, "systemd-nspawn")
	NeedTool(t, "nsenter")
	m := &Machine{Name: fmt.Sprintf("secrets-agent-test-%d-%d", os.Getpid(), machines.Add(1))}
	// --register=no --keep-unit: the host may have no system bus to register
	// with; --volatile=overlay: writes go to a tmpfs over the rootfs.
	args := []string{"-D", rootfs, "--volatile=overlay", "--boot", "--register=no", "--keep-unit",
		"--link-journal=no", "--console=pipe", "--machine=" + m.Name}
	for _, b := range binds {
		args = append(args, "--bind-ro="+b)
	}
	// nspawn takes SIGTERM as "power off".
	m.process = startProcess(t, 30*time.Second, nspawn, args...)

	deadline := time.Now().Add(60 * time.Second)
	for m.leader == 0 {
		if m.exited() {
			t.Fatalf("systemd-nspawn exited while booting:\n%s", m.log.String())
		}
		if time.Now().After(deadline) {
			t.Fatalf("no systemd in the container within 60s:\n%s", m.log.String())
		}
		m.leader = findInit(m.cmd.Process.Pid)
		time.Sleep(50 * time.Millisecond)
	}
	// "degraded" (a unit failed) is no reason to give up: the tests look at
	// their own units.
	for {
		out, _ := m.Run(t, "", "systemctl", "is-system-running", "--wait")
		if strings.Contains(out, "running") || strings.Contains(out, "degraded") {
			return m
		}
		if time.Now().After(deadline) { // before systemd's bus is up, systemctl cannot connect
			t.Fatalf("container did not boot within 60s: %s\n%s", out, m.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// findInit returns the pid of the systemd that nspawn (pid) started, or 0.
func findInit(pid int) int {
	todo := []int{pid}
	for len(todo) > 0 {
		p := todo[0]
		todo = todo[1:]
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p))
		if p != pid && strings.TrimSpace(string(comm)) == "systemd" {
			return p
		}
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", p))
		for _, f := range tasks {
			b, _ := os.ReadFile(f)
			for _, c := range strings.Fields(string(b)) {
				if n, err := strconv.Atoi(c); err == nil {
					todo = append(todo, n)
				}
			}
		}
	}
	return 0
}

// guestPath is PATH inside the machine.
const guestPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Run runs args inside the machine (all its namespaces, as root, with a clean
// environment) with stdin, and returns its combined output and exit code. It
// fails the test only when the command cannot be run at all or outlives 2
// minutes.
func (m *Machine) Run(t testing.TB, stdin string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	full := append([]string{"-t", strconv.Itoa(m.leader), "-a", "--", "env", "-i", guestPath,
		"HOME=/root", "LANG=C.UTF-8", "TERM=dumb"}, args...)
	cmd := exec.CommandContext(ctx, "nsenter", full...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("in the machine, %q did not finish within 2 minutes:\n%s", strings.Join(args, " "), out.String())
	}
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("nsenter %q: %v", strings.Join(args, " "), err)
	}
	return out.String(), cmd.ProcessState.ExitCode()
}

// Must is Run with no stdin that fails the test unless the command exits 0.
func (m *Machine) Must(t testing.TB, args ...string) string {
	t.Helper()
	out, code := m.Run(t, "", args...)
	if code != 0 {
		t.Fatalf("in the machine, %q exited %d:\n%s", strings.Join(args, " "), code, out)
	}
	return out
}

// Sh runs script with sh -c inside the machine and fails the test unless it
// exits 0.
func (m *Machine) Sh(t testing.TB, script string) string {
	t.Helper()
	return m.Must(t, "sh", "-c", script)
}

// WriteFile writes data to path inside the machine with mode, creating its
// directory.
func (m *Machine) WriteFile(t testing.TB, path string, data []byte, mode os.FileMode) {
	t.Helper()
	script := fmt.Sprintf(`set -e; mkdir -p "$(dirname "$1")"; umask 077; cat >"$1.tmp"; chmod %o "$1.tmp"; mv -f "$1.tmp" "$1"`, mode.Perm())
	if out, code := m.Run(t, string(data), "sh", "-c", script, "_", path); code != 0 {
		t.Fatalf("write %s in the machine: exit %d\n%s", path, code, out)
	}
}
