package test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/secrets-agent/secrets-agent/internal/testutil"
)

// TestRunWaitsForTheTokenFile starts the real agent before its token file
// exists, as after a reboot: it keeps running, says why in its status, and
// applies as soon as the token is written; `wait` returns then.
func TestRunWaitsForTheTokenFile(t *testing.T) {
	s := newStack(t)
	s.dev.CreateSecret(t, "user", "alice", "APP_TOKEN", env(), []byte("v1"))
	token := readFile(t, s.tokenFile)
	if err := os.Remove(s.tokenFile); err != nil {
		t.Fatal(err)
	}
	cfg := s.writeConfig(t)
	a := testutil.StartAgent(t, cfg)
	sock := "SECRETS_AGENT_SOCKET=" + s.cfg.Socket
	testutil.Eventually(t, 10*time.Second, "status says it waits for the token", func() bool {
		out, _, code := testutil.RunAgent(t, []string{sock}, "status")
		return code == 1 && strings.Contains(out, "waiting for token")
	})
	if exited, err := a.Exited(); exited {
		t.Fatalf("the agent exited without its token file: %v\n%s", err, a.Log())
	}
	if err := os.WriteFile(s.tokenFile, token, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, stderr, code := testutil.RunAgent(t, []string{sock}, "wait", "--timeout", "10s"); code != 0 {
		t.Fatalf("wait after the token appeared: exit %d\n%s%s\n%s", code, out, stderr, a.Log())
	}
	if out, _, code := testutil.RunAgent(t, []string{sock}, "status"); code != 0 {
		t.Errorf("status after the token appeared: exit %d\n%s", code, out)
	}
}
