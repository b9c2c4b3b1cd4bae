package test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/secrets-agent/secrets-agent/control"
	"github.com/secrets-agent/secrets-agent/internal/testutil"
)

// fsizeLimit is the RLIMIT_FSIZE the agent runs under when a write must
// exceed it; bigValue is larger.
const (
	fsizeLimit = 64 << 10
	bigValue   = 256 << 10
)

// faultValue is a value of n bytes that differs for each tag.
func faultValue(tag string, n int) []byte {
	v := []byte(tag + ":")
	return append(v, bytes.Repeat([]byte{'a' + byte(len(tag)%26)}, n-len(v))...)
}

// diskFaults is a stack whose file secrets sit on three failing disks, beside
// three secrets on a healthy one.
type diskFaults struct {
	*stack
	roDir, fullDir                    string // a tmpfs remounted read-only; a 16 KiB tmpfs
	roFile, fullFile, bigFile, okFile string
	ids                               map[string]string // by secret name
}

// newDiskFaults mounts the two tmpfs, creates the secrets at v1 and applies
// them with `run --once` while every disk is healthy.
func newDiskFaults(t *testing.T) *diskFaults {
	t.Helper()
	testutil.NeedRoot(t, "mount the tmpfs file systems that fail")
	testutil.NeedTool(t, "mount")
	testutil.NeedTool(t, "umount")
	s := newStack(t)
	d := &diskFaults{stack: s, roDir: filepath.Join(s.dir, "ro"), fullDir: filepath.Join(s.dir, "full")}
	mountTmpfs(t, d.roDir, "size=1m,mode=0700")
	mountTmpfs(t, d.fullDir, "size=16k,mode=0700")
	d.roFile = filepath.Join(d.roDir, "secret")
	d.fullFile = filepath.Join(d.fullDir, "secret")
	d.bigFile = filepath.Join(s.home(), "big", "secret")
	d.okFile = filepath.Join(s.home(), "ok", "secret")
	s.cfg.AllowedRoots = []string{"~", d.roDir, d.fullDir}

	d.ids = map[string]string{
		"RO_FILE":   s.dev.CreateSecret(t, "user", "alice", "RO_FILE", file(d.roFile), faultValue("ro-v1", 100)),
		"FULL_FILE": s.dev.CreateSecret(t, "user", "alice", "FULL_FILE", file(d.fullFile), faultValue("full-v1", 100)),
		"BIG_FILE":  s.dev.CreateSecret(t, "user", "alice", "BIG_FILE", file(d.bigFile), faultValue("big-v1", 1024)),
		"OK_FILE":   s.dev.CreateSecret(t, "project", "web", "OK_FILE", file(d.okFile), faultValue("ok-v1", 100)),
		"OK_ENV":    s.dev.CreateSecret(t, "project", "web", "OK_ENV", env(), []byte("ok-v1")),
		"OK_REG":    s.dev.CreateSecret(t, "organization", "acme", "OK_REG", registry("reg.fault.test"), regValue("ok-v1")),
	}
	s.mustOnce(t)
	d.wantFile(t, d.roFile, faultValue("ro-v1", 100))
	d.wantFile(t, d.fullFile, faultValue("full-v1", 100))
	d.wantFile(t, d.bigFile, faultValue("big-v1", 1024))
	return d
}

// breakDisks makes roDir read-only and fills fullDir up.
func (d *diskFaults) breakDisks(t *testing.T) {
	t.Helper()
	if out, err := exec.Command("mount", "-o", "remount,ro", d.roDir).CombinedOutput(); err != nil {
		t.Fatalf("remount %s read-only: %v\n%s", d.roDir, err, out)
	}
	f, err := os.Create(filepath.Join(d.fullDir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 1024)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill %s: %v", d.fullDir, err)
			}
			return
		}
	}
}

// wantFile fails unless p holds exactly want, 0600.
// updateAll stores a v2 of every secret: the three on broken disks (the big
// one over the lowered file-size limit) and the three healthy ones.
func (d *diskFaults) updateAll(t *testing.T) {
	t.Helper()
	d.dev.UpdateSecret(t, d.ids["RO_FILE"], faultValue("ro-v2", 100))
	d.dev.UpdateSecret(t, d.ids["FULL_FILE"], faultValue("full-v2", 8192))
	d.dev.UpdateSecret(t, d.ids["BIG_FILE"], faultValue("big-v2", bigValue))
	d.dev.UpdateSecret(t, d.ids["OK_FILE"], faultValue("ok-v2", 100))
	d.dev.UpdateSecret(t, d.ids["OK_ENV"], []byte("ok-v2"))
	d.dev.UpdateSecret(t, d.ids["OK_REG"], regValue("ok-v2"))
}

func (d *diskFaults) wantFile(t *testing.T, p string, want []byte) {
	t.Helper()
	got, mode, err := readOpen(p)
	switch {
	case err != nil:
		t.Errorf("%s: %v", p, err)
	case !bytes.Equal(got, want):
		t.Errorf("%s holds %d bytes %q…, want %d bytes %q…", p, len(got), clip(got), len(want), clip(want))
	case mode.Perm() != 0o600:
		t.Errorf("%s has mode %v, want 0600", p, mode)
	}
}

// healthyHold fails unless the three healthy secrets hold tag's values.
func (d *diskFaults) healthyHold(t *testing.T, tag string) {
	t.Helper()
	for _, msg := range d.healthyWrong(t, tag) {
		t.Error(msg)
	}
}

// healthyWrong says what keeps the three healthy secrets from holding tag's
// values; nothing when they do.
func (d *diskFaults) healthyWrong(t *testing.T, tag string) []string {
	t.Helper()
	var wrong []string
	if got, _, err := readOpen(d.okFile); err != nil || !bytes.Equal(got, faultValue("ok-"+tag, 100)) {
		wrong = append(wrong, fmt.Sprintf("%s holds %q… (%v), want ok-%s", d.okFile, clip(got), err, tag))
	}
	if got := crashEnv(t, d.stack, "OK_ENV"); got != "ok-"+tag {
		wrong = append(wrong, fmt.Sprintf("env.sh sets OK_ENV to %q, want %q", got, "ok-"+tag))
	}
	b := readFile(t, filepath.Join(d.home(), ".docker/config.json"))
	if got, err := dockerAuth(b, "reg.fault.test"); err != nil || got != string(regValue("ok-"+tag)) {
		wrong = append(wrong, fmt.Sprintf("config.json auths[reg.fault.test] = %q (%v), want ok-%s", got, err, tag))
	}
	return wrong
}

// crashEnv returns the value env.sh gives name ("" when it does not).
func crashEnv(t *testing.T, s *stack, name string) string {
	t.Helper()
	b := readFile(t, filepath.Join(s.envDir(), "env.sh"))
	return envVars(b, "export ", "=", "__SECRETS_AGENT_GEN=")[name]
}

// mountTmpfs mounts a tmpfs with opts on dir (created) and unmounts it in
// t.Cleanup.
func mountTmpfs(t *testing.T, dir, opts string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", opts, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v: %s); the disk-fault tests need one", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v\n%s", dir, err, out)
			_ = exec.Command("umount", "-l", dir).Run()
		}
	})
}

// TestDiskFaultsFailOnlyTheirSecretsAndLoseNothing: with one secret's file
// system read-only, another's full and a third's value larger than the
// agent's RLIMIT_FSIZE, `run --once` exits 1 naming exactly those three
// secrets with the reason, applies the update of every other secret, and
// the three keep the value applied before the fault, whole and 0600. The
// agent survives the SIGXFSZ the kernel sends with EFBIG.
func TestDiskFaultsFailOnlyTheirSecretsAndLoseNothing(t *testing.T) {
	bash := testutil.NeedTool(t, "bash")
	d := newDiskFaults(t)
	d.breakDisks(t)
	d.updateAll(t)

	// bash's ulimit -f counts KiB.
	cmd := exec.Command(bash, "-c", `ulimit -f "$1" && shift && exec "$@"`, "_",
		fmt.Sprint(fsizeLimit>>10), testutil.AgentBin(t), "run", "--once", "--config", d.writeConfig(t))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("run --once under the faults: %v (want exit status 1; a signal means SIGXFSZ killed it)\n%s", err, stderr.String())
	}
	out := stderr.String()
	for name, reason := range map[string]string{
		"RO_FILE":   "read-only file system",
		"FULL_FILE": "no space left on device",
		"BIG_FILE":  "file too large",
		"OK_FILE":   "",
		"OK_ENV":    "",
		"OK_REG":    "",
	} {
		line := onceLine(out, name)
		failed := strings.HasPrefix(strings.TrimSpace(line), "failed")
		switch {
		case line == "":
			t.Errorf("run --once printed no line for %s:\n%s", name, out)
		case reason != "" && (!failed || !strings.Contains(line, reason)):
			t.Errorf("run --once line for %s does not report it failed with %q: %s", name, reason, line)
		case reason == "" && failed:
			t.Errorf("run --once reports the healthy %s failed: %s", name, line)
		}
	}
	if t.Failed() {
		t.Logf("run --once stderr:\n%s", out)
	}

	d.wantFile(t, d.roFile, faultValue("ro-v1", 100))
	d.wantFile(t, d.fullFile, faultValue("full-v1", 100))
	d.wantFile(t, d.bigFile, faultValue("big-v1", 1024))
	d.healthyHold(t, "v2")
	if leftovers := crashLeftovers(t, d.stack); len(leftovers) > 0 {
		t.Errorf("temp files left after failed writes: %v", leftovers)
	}
	for _, dir := range []string{d.roDir, d.fullDir} {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if e.Name() != "secret" && e.Name() != "filler" {
				t.Errorf("%s: unexpected %s after a failed write", dir, e.Name())
			}
		}
	}
}

// TestRunningAgentReportsDiskFaultsInStatus: a running agent whose writes
// fail on a read-only and a full file system, and then (after its
// RLIMIT_FSIZE was lowered) on a value too large, says so per secret in
// `status --json` (degraded, exit 1), keeps applying every other secret's
// updates, keeps each failed secret's last applied value, and stays up.
func TestRunningAgentReportsDiskFaultsInStatus(t *testing.T) {
	d := newDiskFaults(t)
	d.breakDisks(t)
	d.updateAll(t)

	a := testutil.StartAgent(t, d.writeConfig(t))
	waitStatus(t, d.cfg.Socket, "the read-only and the full file system are reported", map[string]string{
		"RO_FILE": "read-only file system", "FULL_FILE": "no space left on device",
	})
	d.wantFile(t, d.bigFile, faultValue("big-v2", bigValue)) // no limit yet: applied
	testutil.Eventually(t, deadline, "the healthy secrets' updates are applied", func() bool {
		return len(d.healthyWrong(t, "v2")) == 0
	})

	// Now the file size limit: the next large value cannot be written.
	lim := unix.Rlimit{Cur: fsizeLimit, Max: fsizeLimit}
	if err := unix.Prlimit(a.Pid(), unix.RLIMIT_FSIZE, &lim, nil); err != nil {
		t.Fatalf("prlimit the agent's RLIMIT_FSIZE: %v", err)
	}
	d.dev.UpdateSecret(t, d.ids["BIG_FILE"], faultValue("big-v3", bigValue))
	d.dev.UpdateSecret(t, d.ids["OK_FILE"], faultValue("ok-v3", 100))
	d.dev.UpdateSecret(t, d.ids["OK_ENV"], []byte("ok-v3"))
	d.dev.UpdateSecret(t, d.ids["OK_REG"], regValue("ok-v3"))
	st := waitStatus(t, d.cfg.Socket, "the value over RLIMIT_FSIZE is reported", map[string]string{
		"RO_FILE": "read-only file system", "FULL_FILE": "no space left on device", "BIG_FILE": "file too large",
	})
	testutil.Eventually(t, deadline, "the healthy secrets' updates are applied", func() bool {
		return len(d.healthyWrong(t, "v3")) == 0
	})
	for _, s := range st.Secrets {
		if strings.HasPrefix(s.Name, "OK_") && s.Error != "" {
			t.Errorf("status reports an error for the healthy %s: %s", s.Name, s.Error)
		}
	}
	if exited, err := a.Exited(); exited {
		t.Fatalf("the agent exited (SIGXFSZ not ignored?): %v", err)
	}
	d.wantFile(t, d.roFile, faultValue("ro-v1", 100))
	d.wantFile(t, d.fullFile, faultValue("full-v1", 100))
	d.wantFile(t, d.bigFile, faultValue("big-v2", bigValue))
}

// onceLine returns the line of `run --once`'s summary for secret name.
func onceLine(out, name string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, " "+name+" (") {
			return l
		}
	}
	return ""
}

// waitStatus waits until `status --json` exits 1 (degraded) and reports
// each secret of want failed with an error containing its reason, and
// returns that status.
func waitStatus(t *testing.T, socket, msg string, want map[string]string) control.Status {
	t.Helper()
	var st control.Status
	var last string
	for end := time.Now().Add(deadline); ; time.Sleep(50 * time.Millisecond) {
		out, _, code := testutil.RunAgent(t, nil, "status", "--json", "--socket", socket)
		last = out
		st = control.Status{}
		if code == 1 && json.Unmarshal([]byte(out), &st) == nil && st.State == control.Degraded {
			found := 0
			for _, s := range st.Secrets {
				if reason, ok := want[s.Name]; ok && s.Outcome == "failed" && strings.Contains(s.Error, reason) {
					found++
				}
			}
			if found == len(want) {
				return st
			}
		}
		if time.Now().After(end) {
			t.Fatalf("timed out after %v: %s; last status:\n%s", deadline, msg, last)
		}
	}
}
