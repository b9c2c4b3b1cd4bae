package agent

import (
	"os"
	"testing"

	"github.com/secrets-agent/secrets-agent/control"
	"github.com/secrets-agent/secrets-agent/controlplane"
)

func TestAgentWithoutSocketOrFileWatchStillFollowsTheControlPlane(t *testing.T) {
	cfg := testConfig()
	cfg.ControlPlane.Watch = true
	r := newRig(t, cfg, withTiming(fastTiming), WithoutFileWatch(), WithoutStatusSocket())
	r.cp.put("s1", "KEY_FILE", controlplane.ScopeUser, "file", "/x/key", "v1")
	r.run(t)
	s := r.waitStream(t)

	if _, err := os.Lstat(r.a.config().Socket); !os.IsNotExist(err) {
		t.Errorf("status socket %s exists (err %v); WithoutStatusSocket should serve none", r.a.config().Socket, err)
	}
	r.a.mu.Lock()
	watching := r.a.watching
	r.a.mu.Unlock()
	if watching != nil {
		t.Error("a file watcher was started; WithoutFileWatch should start none")
	}

	r.cp.put("s1", "KEY_FILE", controlplane.ScopeUser, "file", "/x/key", "v2")
	s.send(t, envEvent)
	eventually(t, "event applied", func() bool { got, _ := r.file.read(t, "/x/key"); return got == "v2" })
	if st := r.a.Status(); st.State != control.Ready {
		t.Errorf("state %s, want ready", st.State)
	}
}
