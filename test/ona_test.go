package test

import (
	"strings"
	"testing"

	"github.com/secrets-agent/secrets-agent/internal/testutil"
)

// TestAgentWorksWithAnAPIBaseURL: Ona's base URLs end in /api (and so does
// the agent's default); the devserver serves the API there too, so the real
// agent applies its secrets and follows a change through a stream at
// http://HOST/api.
func TestAgentWorksWithAnAPIBaseURL(t *testing.T) {
	l, ids := startLive(t, func(cfg *testutil.AgentConfig) {
		cfg.URL = strings.TrimRight(cfg.URL, "/") + "/api"
	})
	l.dev.UpdateSecret(t, ids["file"], []byte("v2"))
	testutil.Eventually(t, deadline, "the change applied through the stream at /api", func() bool {
		return l.fileValue() == "v2"
	})
	st, _, code := testutil.RunAgent(t, nil, "status", "--json", "--socket", l.cfg.Socket)
	if code != 0 || !strings.Contains(st, `/api"`) || !strings.Contains(st, `"source": "control-plane"`) {
		t.Errorf("status (exit %d) does not show the /api base URL and each secret's source:\n%s", code, st)
	}
}
