package agent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secrets-agent/secrets-agent/config"
	"github.com/secrets-agent/secrets-agent/control"
	"github.com/secrets-agent/secrets-agent/controlplane"
	"github.com/secrets-agent/secrets-agent/injectors/builtin"
)

// fastTiming keeps retries and reconnects short so tests stay quick.
var fastTiming = timing{retryBase: 10 * time.Millisecond, retryCap: 50 * time.Millisecond,
	streamBase: 10 * time.Millisecond}

// run starts r's agent with a socket in a temp dir and stops it (and checks
// Run returned nil) when the test ends.
func (r *testRig) run(t *testing.T) {
	t.Helper()
	cfg := r.a.config()
	cfg.Socket = filepath.Join(t.TempDir(), "agent.sock")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v, want nil on a clean stop", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return within 10s of its context ending")
		}
	})
	eventually(t, "first pass applied", func() bool {
		select {
		case <-r.a.Applied():
			return true
		default:
			return false
		}
	})
}

func (r *testRig) passes() int64 { return r.a.Status().Passes }

func (r *testRig) waitStream(t *testing.T) *fakeStream {
	t.Helper()
	select {
	case s := <-r.cp.streamReady:
		eventually(t, "watch connected", func() bool { return r.a.Status().WatchConnected })
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("no watch stream opened within 10s")
		return nil
	}
}

func TestEventTriggersPassAndBurstsCoalesce(t *testing.T) {
	cfg := testConfig()
	cfg.ControlPlane.Watch = true
	r := newRig(t, cfg, withTiming(fastTiming))
	r.cp.put("s1", "KEY_FILE", controlplane.ScopeUser, "file", "/x/key", "v1")
	r.run(t)
	s := r.waitStream(t)
	// The first pass and the connect's kick may run as two passes or, when
	// the kick arrives before the first pass starts, coalesce into one.
	eventually(t, "pass after connect", func() bool { return r.cp.count(func(f *fakePlane) int { return f.specCalls }) >= 1 })
	eventually(t, "passes recorded", func() bool { return r.passes() >= 1 })

	r.cp.put("s1", "KEY_FILE", controlplane.ScopeUser, "file", "/x/key", "v2")
	s.send(t, envEvent)
	eventually(t, "event applied", func() bool { got, _ := r.file.read(t, "/x/key"); return got == "v2" })

	// Hold the next pass inside GetEnvironment, send a burst, release.
	gate := make(chan struct{})
	r.cp.set(func(f *fakePlane) { f.gate, f.blocked = gate, 0 })
	s.send(t, envEvent)
	eventually(t, "pass held", func() bool { return r.cp.count(func(f *fakePlane) int { return f.blocked }) == 1 })
	before := r.cp.count(func(f *fakePlane) int { return f.specCalls })
	for range 20 {
		s.send(t, envEvent)
	}
	s.send(t, keepalive) // taken only after the last event's kick
	r.cp.set(func(f *fakePlane) { f.gate = nil })
	close(gate)
	eventually(t, "coalesced pass", func() bool { return r.cp.count(func(f *fakePlane) int { return f.specCalls }) >= before+2 })
	time.Sleep(100 * time.Millisecond) // room for a wrong extra pass to show
	if n := r.cp.count(func(f *fakePlane) int { return f.specCalls }) - before; n != 2 {
		t.Errorf("burst of 20 events during a pass caused %d more passes, want 1 (plus the held one)", n-1)
	}
}

func TestStreamReconnectsAfterBreak(t *testing.T) {
	cfg := testConfig()
	cfg.ControlPlane.Watch = true
	r := newRig(t, cfg, withTiming(fastTiming))
	r.cp.put("s1", "KEY_FILE", controlplane.ScopeUser, "file", "/x/key", "v1")
	r.run(t)
	s := r.waitStream(t)
	s.fail(&controlplane.Error{Procedure: controlplane.ProcWatchEvents, Code: controlplane.CodeUnavailable, Message: "cut"})
	s2 := r.waitStream(t)
	r.cp.put("s1", "KEY_FILE", controlplane.ScopeUser, "file", "/x/key", "v2")
	s2.send(t, envEvent)
	eventually(t, "change via the new stream", func() bool { got, _ := r.file.read(t, "/x/key"); return got == "v2" })
}

func TestSilentStreamIsTreatedAsDead(t *testing.T) {
	cfg := testConfig()
	cfg.ControlPlane.Watch = true
	tm := fastTiming
	tm.silence = 50 * time.Millisecond
	r := newRig(t, cfg, withTiming(tm))
	r.run(t)
	r.waitStream(t) // never sends anything
	r.waitStream(t)
}

func TestUnauthenticatedStreamRereadsToken(t *testing.T) {
	cfg := testConfig()
	cfg.ControlPlane.Watch = true
	r := newRig(t, cfg, withTiming(fastTiming))
	r.cp.set(func(f *fakePlane) {
		f.watchErr = &controlplane.Error{Procedure: controlplane.ProcWatchEvents, Code: controlplane.CodeUnauthenticated}
	})
	r.run(t)
	eventually(t, "token re-read", func() bool { return r.cp.count(func(f *fakePlane) int { return f.tokenReads }) >= 1 })
}

func TestPollFloorAppliesChangesWhenStreamIsDown(t *testing.T) {
	cfg := testConfig()
	cfg.ControlPlane.Watch = true
	cfg.ControlPlane.PollInterval = config.Duration(100 * time.Millisecond)
	r := newRig(t, cfg, withTiming(timing{retryCap: time.Hour, streamBase: time.Hour, fastCap: time.Hour}))
	r.cp.set(func(f *fakePlane) { f.watchErr = errUnavailable })
	r.cp.put("s1", "KEY_FILE", controlplane.ScopeUser, "file", "/x/key", "v1")
	r.run(t)
	r.cp.put("s1", "KEY_FILE", controlplane.ScopeUser, "file", "/x/key", "v2")
	eventually(t, "poll applies the change", func() bool { got, _ := r.file.read(t, "/x/key"); return got == "v2" })
}

func TestFailedPassIsRetriedAndRecovers(t *testing.T) {
	r := newRig(t, nil, withTiming(fastTiming))
	r.cp.set(func(f *fakePlane) { f.specErr = errUnavailable })
	r.cp.put("s1", "KEY_FILE", controlplane.ScopeUser, "file", "/x/key", "v1")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r.a.config().Socket = filepath.Join(t.TempDir(), "agent.sock")
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = r.a.Run(ctx) }()
	defer wg.Wait()
	eventually(t, "degraded", func() bool { return r.a.Status().State == control.Degraded })
	r.cp.set(func(f *fakePlane) { f.specErr = nil })
	eventually(t, "retry applies", func() bool { got, _ := r.file.read(t, "/x/key"); return got == "v1" })
	eventually(t, "ready", func() bool { return r.a.Status().State == control.Ready })
	cancel()
}

func TestDriftRepairRestoresDeletedAndChmodedFile(t *testing.T) {
	r := newRig(t, nil, withTiming(fastTiming))
	r.cp.put("s1", "KEY_FILE", controlplane.ScopeUser, "file", "/x/key", "secret-bytes")
	r.run(t)
	path := filepath.Join(r.file.dir, "key")
	specCalls := r.cp.count(func(f *fakePlane) int { return f.specCalls })

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	eventually(t, "deleted file restored", func() bool { got, _ := r.file.read(t, "/x/key"); return got == "secret-bytes" })
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, "mode restored", func() bool {
		fi, err := os.Stat(path)
		return err == nil && fi.Mode().Perm() == 0o600
	})
	if err := os.WriteFile(path, []byte("tampered"), 0o600); err != nil {
		t.Fatal(err)
	}
	eventually(t, "content restored", func() bool { got, _ := r.file.read(t, "/x/key"); return got == "secret-bytes" })
	if n := r.cp.count(func(f *fakePlane) int { return f.specCalls }); n != specCalls {
		t.Errorf("drift repair asked the control plane %d times; it needs nothing from it", n-specCalls)
	}
	if !strings.Contains(r.logs.String(), "drift repaired") {
		t.Error("repair not logged")
	}
}

func TestDriftRepairSurvivesDirectoryRecreated(t *testing.T) {
	r := newRig(t, nil, withTiming(fastTiming))
	r.file.dir = filepath.Join(t.TempDir(), "sub")
	if err := os.Mkdir(r.file.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	r.cp.put("s1", "KEY_FILE", controlplane.ScopeUser, "file", "/x/key", "v1")
	r.run(t)
	// Moving it away is removing it, as far as the path is concerned, and
	// cannot race with the agent repairing the file inside it.
	if err := os.Rename(r.file.dir, r.file.dir+".gone"); err != nil {
		t.Fatal(err)
	}
	// The fake injector does not create its directory; recreating it is
	// what a user (or the real injector) does, and the watch must follow.
	if err := os.Mkdir(r.file.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	eventually(t, "file restored in the recreated directory", func() bool { got, _ := r.file.read(t, "/x/key"); return got == "v1" })
	if err := os.Remove(filepath.Join(r.file.dir, "key")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "restored again", func() bool { got, _ := r.file.read(t, "/x/key"); return got == "v1" })
}

const testConfigYAML = `controlplane:
  url: http://127.0.0.1:1
  environment_id: env-1
  token_file: %TOKEN%
  poll_interval: 0s
  watch: false
state_dir: %DIR%/state
socket: %DIR%/agent.sock
injectors:
  envprofile:
    enabled: false
  secretfile:
    enabled: false
  dockercfg:
    enabled: false
`

// runWithConfigFile runs an agent from a config file (testConfigYAML) and
// returns it, the file's path and its content.
func runWithConfigFile(t *testing.T) (r *testRig, path, good string) {
	t.Helper()
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("t0k"), 0o600); err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(dir, "config.yaml")
	good = strings.NewReplacer("%TOKEN%", token, "%DIR%", dir).Replace(testConfigYAML)
	if err := os.WriteFile(path, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := builtin.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	r = newRig(t, cfg, withTiming(fastTiming), WithConfigFile(path, builtin.Load))
	r.run(t)
	return r, path, good
}

func TestReloadWithInvalidConfigKeepsTheOldOne(t *testing.T) {
	r, path, good := runWithConfigFile(t)
	old := r.a.config()

	if err := os.WriteFile(path, []byte(good+"bogus_key: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	eventually(t, "rejection logged", func() bool { return strings.Contains(r.logs.String(), "config reload rejected") })
	if r.a.config() != old {
		t.Fatal("an invalid config replaced the old one")
	}
	if rep := r.a.Sync(context.Background()); rep.Error != "" {
		t.Errorf("pass after a rejected reload: %s", rep.Error)
	}

	reads := r.cp.count(func(f *fakePlane) int { return f.tokenReads })
	newer := strings.Replace(good, "environment_id: env-1", "environment_id: env-2", 1)
	if err := os.WriteFile(path, []byte(newer), 0o600); err != nil {
		t.Fatal(err)
	}
	eventually(t, "valid config applied", func() bool { return r.a.Status().EnvironmentID == "env-2" })
	if r.cp.count(func(f *fakePlane) int { return f.tokenReads }) <= reads {
		t.Error("reload did not re-read the token file")
	}
}

// TestTruncatedConfigFileIsNotLoaded: an editor (or os.WriteFile) that
// truncates the config before writing it must not make the agent trade its
// configuration for an empty file's defaults.
func TestTruncatedConfigFileIsNotLoaded(t *testing.T) {
	r, path, good := runWithConfigFile(t)
	old := r.a.config()

	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the empty file refused", func() bool { return strings.Contains(r.a.Status().ConfigError, "is empty") })
	if r.a.config() != old {
		t.Fatal("an empty config file replaced the old configuration")
	}
	newer := strings.Replace(good, "environment_id: env-1", "environment_id: env-2", 1)
	if err := os.WriteFile(path, []byte(newer), 0o600); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the written config applied", func() bool {
		st := r.a.Status()
		return st.EnvironmentID == "env-2" && st.ConfigError == ""
	})
}

func TestTokenFileChangeRereadsToken(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig()
	cfg.ControlPlane.TokenFile = filepath.Join(dir, "token")
	if err := os.WriteFile(cfg.ControlPlane.TokenFile, []byte("a"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := newRig(t, cfg, withTiming(fastTiming))
	r.run(t)
	if err := os.WriteFile(cfg.ControlPlane.TokenFile, []byte("b"), 0o600); err != nil {
		t.Fatal(err)
	}
	eventually(t, "token re-read", func() bool { return r.cp.count(func(f *fakePlane) int { return f.tokenReads }) >= 1 })
}
