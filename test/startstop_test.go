package test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/secrets-agent/secrets-agent/agent"
	"github.com/secrets-agent/secrets-agent/internal/testutil"
)

// silentServer accepts connections and never answers them: a control plane
// that is up but stuck. Accepted counts the connections it took.
type silentServer struct {
	ln       net.Listener
	accepted atomic.Int64
	mu       sync.Mutex
	conns    []net.Conn
}

func startSilentServer(t *testing.T) *silentServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	s := &silentServer{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.accepted.Add(1)
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, c := range s.conns {
			_ = c.Close()
		}
	})
	return s
}

// TestSIGTERMRightAfterASocketActivatedSyncExitsWithinASecond: under socket
// activation a `sync` can be waiting on the socket before the agent starts,
// so its pass is the first thing the agent does. With a control plane that
// accepts and never answers, that pass is stuck; SIGTERM must still stop the
// agent within a second (the pass's context is the agent's, and nothing in
// the start waits for the pass). Several rounds, since the sync and the
// start race each other.
func TestSIGTERMRightAfterASocketActivatedSyncExitsWithinASecond(t *testing.T) {
	activate := testutil.NeedTool(t, "systemd-socket-activate")
	bin := testutil.AgentBin(t)
	cp := startSilentServer(t)
	for round := range 3 {
		dir := t.TempDir()
		tokenFile := filepath.Join(dir, "token")
		must(t, os.WriteFile(tokenFile, []byte("token"), 0o600))
		sock := filepath.Join(dir, "agent.sock")
		cfg := testutil.WriteAgentConfig(t, dir, testutil.AgentConfig{
			URL: "http://" + cp.ln.Addr().String(), EnvironmentID: "env-stuck", TokenFile: tokenFile, Socket: sock,
		})
		before := cp.accepted.Load()
		p := testutil.StartProcess(t, nil, activate, "-l", sock, "--", bin, "run", "--config", cfg)
		testutil.Eventually(t, 5*time.Second, "the activation socket bound", func() bool {
			_, err := os.Stat(sock)
			return err == nil
		})
		ctx, cancel := context.WithCancel(context.Background())
		go func() { _, _ = agent.NewClient(sock).Sync(ctx) }() // queued before the agent serves
		testutil.Eventually(t, 10*time.Second, "a pass stuck on the control plane", func() bool {
			return cp.accepted.Load() > before
		})
		time.Sleep(300 * time.Millisecond) // let the start reach wherever it would wait
		sent := time.Now()
		p.Signal(syscall.SIGTERM)
		if code := p.Wait(t, time.Second); code != 0 {
			t.Errorf("round %d: exit %d after SIGTERM, want 0", round, code)
		}
		t.Logf("round %d: exited %v after SIGTERM", round, time.Since(sent).Round(time.Millisecond))
		cancel()
	}
}
