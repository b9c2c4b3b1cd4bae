package agent

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/secrets-agent/secrets-agent/config"
	"github.com/secrets-agent/secrets-agent/control"
	"github.com/secrets-agent/secrets-agent/controlplane"
	"github.com/secrets-agent/secrets-agent/injectors/builtin"
	"github.com/secrets-agent/secrets-agent/secrets"
)

// readyNotifier records what the loop tells systemd.
type readyNotifier struct {
	nopNotifier
	mu      sync.Mutex
	readies []string
}

func (n *readyNotifier) Ready(status string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.readies = append(n.readies, status)
}

func (n *readyNotifier) ready() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.readies...)
}

// oneSecretServer is the control plane's API for one environment, env-1,
// with one file secret: the real client talks to it over HTTP. It answers
// only the bearer token "t0k" and counts the requests it is sent.
func oneSecretServer(t *testing.T) (url string, requests *atomic.Int64) {
	requests = &atomic.Int64{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.Header().Set("Content-Type", "application/json")
		if r.Header.Get("Authorization") != "Bearer t0k" {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"code":"unauthenticated","message":"bad token"}`))
			return
		}
		switch r.URL.Path {
		case controlplane.ProcGetEnvironment:
			_, _ = w.Write([]byte(`{"environment":{"id":"env-1","spec":{"secrets":[{"id":"s1","name":"KEY",` +
				`"scope":"SCOPE_USER","session":"1","filePath":"/x/key"}]}}}`))
		case controlplane.ProcGetSecretValue:
			_, _ = w.Write([]byte(`{"value":"v1"}`))
		default:
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"code":"not_found","message":"no such procedure"}`))
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL, requests
}

// startWaiting runs an agent built by New from cfg with the real client and a
// file injector, and returns it, its injector and its notifier.
func startWaiting(t *testing.T, cfg *config.Config, opts ...Option) (*Agent, *fileInjector, *readyNotifier, *lockedBuffer) {
	t.Helper()
	inj := newFileInjector(t, "secretfile", secrets.MountFile)
	n := &readyNotifier{}
	logs := &lockedBuffer{b: &bytes.Buffer{}}
	core := zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(logs), zap.DebugLevel)
	opts = append([]Option{WithInjectors(inj), withNotifier(n), withTiming(fastTiming)}, opts...)
	a, err := New(cfg, zap.New(core), opts...)
	if err != nil {
		t.Fatalf("New with nothing to connect with yet: %v (it must wait, not fail)", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return a, inj, n, logs
}

// checkWaiting checks the agent reports why it waits, degraded, and that
// systemd got READY after ready_timeout with one "degraded:" prefix.
func checkWaiting(t *testing.T, a *Agent, n *readyNotifier, why string) {
	t.Helper()
	eventually(t, "READY after ready_timeout", func() bool { return len(n.ready()) > 0 })
	line := n.ready()[0]
	if !strings.HasPrefix(line, "degraded: ") || strings.Contains(line, "degraded: degraded") || !strings.Contains(line, why) {
		t.Errorf("READY status %q: want one \"degraded: \" prefix and %q", line, why)
	}
	st := a.Status()
	if st.State != control.Degraded || !strings.Contains(st.LastError, why) {
		t.Errorf("status %s %q, want degraded with %q", st.State, st.LastError, why)
	}
	select {
	case <-a.Applied():
		t.Error("Applied closed while waiting")
	default:
	}
}

func TestMissingTokenFileIsWaitedFor(t *testing.T) {
	url, requests := oneSecretServer(t)
	dir := t.TempDir()
	cfg := testConfig()
	cfg.ControlPlane.URL = url
	cfg.ControlPlane.TokenFile = filepath.Join(dir, "run", "token") // not even its directory yet
	cfg.ReadyTimeout = config.Duration(100 * time.Millisecond)
	cfg.Socket = filepath.Join(dir, "agent.sock")
	a, inj, n, logs := startWaiting(t, cfg)

	checkWaiting(t, a, n, "waiting for token: "+cfg.ControlPlane.TokenFile+": no such file or directory")
	if rep := a.Sync(context.Background()); !strings.Contains(rep.Error, "waiting for token") {
		t.Errorf("sync while waiting: error %q", rep.Error)
	}
	if got := requests.Load(); got != 0 {
		t.Errorf("%d requests sent without a token", got)
	}

	// An empty token file is still no token.
	if err := os.MkdirAll(filepath.Dir(cfg.ControlPlane.TokenFile), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg.ControlPlane.TokenFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	eventually(t, "empty token reported", func() bool { return strings.Contains(a.Status().LastError, "is empty") })

	if err := os.WriteFile(cfg.ControlPlane.TokenFile, []byte("t0k\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	eventually(t, "applied once the token is there", func() bool { got, _ := inj.read(t, "/x/key"); return got == "v1" })
	eventually(t, "ready", func() bool { return a.Status().State == control.Ready })
	if strings.Contains(logs.String(), "t0k") {
		t.Error("the token is in the log")
	}
}

func TestUnconfiguredAgentWaitsForTheConfig(t *testing.T) {
	url, _ := oneSecretServer(t)
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("t0k"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "config.yaml")
	good := strings.NewReplacer("%TOKEN%", token, "%DIR%", dir, "http://127.0.0.1:1", url).Replace(testConfigYAML) +
		"ready_timeout: 100ms\n"
	unconfigured := strings.Replace(good, "environment_id: env-1", `environment_id: ""`, 1)
	if err := os.WriteFile(path, []byte(unconfigured), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := builtin.Load(path); err == nil {
		t.Fatal("config.Load accepts an empty environment_id")
	}
	cfg, err := builtin.LoadUnconfigured(path)
	if err != nil {
		t.Fatal(err)
	}
	a, inj, n, _ := startWaiting(t, cfg, WithConfigFile(path, builtin.LoadUnconfigured))
	checkWaiting(t, a, n, "not configured: controlplane.environment_id is empty")

	if err := os.WriteFile(path, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	eventually(t, "applied once configured", func() bool { got, _ := inj.read(t, "/x/key"); return got == "v1" })
	eventually(t, "ready", func() bool { return a.Status().State == control.Ready })

	// Emptying environment_id again waits, keeping what was applied.
	if err := os.WriteFile(path, []byte(unconfigured), 0o600); err != nil {
		t.Fatal(err)
	}
	eventually(t, "config reloaded", func() bool { return a.Status().EnvironmentID == "" })
	if rep := a.Sync(context.Background()); !strings.Contains(rep.Error, "not configured") {
		t.Errorf("sync after the environment_id was emptied: error %q", rep.Error)
	}
	if got, _ := inj.read(t, "/x/key"); got != "v1" {
		t.Errorf("output after the environment_id was emptied: %q, want it kept", got)
	}
}

// TestNewTokenFileNamedWhileWaitingIsWatched: a reload while the agent
// waits for its token that names another token file: that file appearing
// connects the agent (it is watched from the reload on).
func TestNewTokenFileNamedWhileWaitingIsWatched(t *testing.T) {
	url, _ := oneSecretServer(t)
	dir := t.TempDir()
	tokA := filepath.Join(dir, "a", "token")
	tokB := filepath.Join(dir, "b", "token")
	path := filepath.Join(dir, "config.yaml")
	mk := func(tok string) string {
		return strings.NewReplacer("%TOKEN%", tok, "%DIR%", dir, "http://127.0.0.1:1", url).Replace(testConfigYAML) + "ready_timeout: 100ms\n"
	}
	if err := os.WriteFile(path, []byte(mk(tokA)), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := builtin.LoadUnconfigured(path)
	if err != nil {
		t.Fatal(err)
	}
	a, inj, n, _ := startWaiting(t, cfg, WithConfigFile(path, builtin.LoadUnconfigured))
	checkWaiting(t, a, n, "waiting for token")
	if err := os.WriteFile(path, []byte(mk(tokB)), 0o600); err != nil {
		t.Fatal(err)
	}
	eventually(t, "reloaded to token B", func() bool { return strings.Contains(a.Status().LastError, tokB) })
	if err := os.MkdirAll(filepath.Dir(tokB), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tokB, []byte("t0k\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	eventually(t, "applied once token B is there", func() bool { got, _ := inj.read(t, "/x/key"); return got == "v1" })
	eventually(t, "ready", func() bool { return a.Status().State == control.Ready })
}
