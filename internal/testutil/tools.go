// Package testutil holds what tests across packages share: finding the real
// tools they drive, and building the binaries.
package testutil

import (
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"testing"
)

// NeedTool returns the path of a program a test drives. Where the program is
// missing the test is skipped with a message naming it, except under CI (CI
// set), which installs every such tool, so there a missing one fails the test.
func NeedTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not installed; .ci/run should have installed it", name)
	}
	t.Skipf("skipping: %s is not installed (CI installs it)", name)
	return ""
}

// NeedRoot skips the test unless it runs as root (CI does), naming why.
func NeedRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI must run as root: %s", why)
		}
		t.Skipf("skipping: needs root to %s", why)
	}
}

// Nobody returns the uid and gid of the unprivileged user "nobody", which
// tests that chown to another user serve; it skips the test where there is
// no such user.
func Nobody(t testing.TB) (uid, gid int) {
	t.Helper()
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Skipf("skipping: no user nobody: %v", err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid
}
