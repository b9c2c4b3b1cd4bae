package test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/secrets-agent/secrets-agent/control"
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
		go func() { // queued before the agent serves
			// The socket file exists from bind(2), a moment before listen(2):
			// a connect in between is refused, so try again until one is taken.
			for ctx.Err() == nil {
				if _, err := control.NewClient(sock).Sync(ctx); !errors.Is(err, control.ErrUnreachable) || cp.accepted.Load() > before {
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
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

// TestStateDirIsOneAgentsAtATime: while an agent runs, a second `run` on the
// same state dir, a `run --once` and a `purge` (which the running agent would
// undo) fail at
// once naming the running agent's pid, and the purge removes nothing; once
// the agent has stopped, the purge removes everything.
func TestStateDirIsOneAgentsAtATime(t *testing.T) {
	dev := testutil.StartDevserver(t)
	r := newFSRig(t, dev, "statelock")
	r.start(t)
	testutil.Eventually(t, 20*time.Second, "applied", func() bool { return r.applied(t, nil) == nil })
	cfg := r.agent.Config
	pid := fmt.Sprintf("pid %d", r.agent.Pid())

	second := r.cfg
	second.Socket = filepath.Join(r.dir, "second.sock")
	secondDir := filepath.Join(r.dir, "second")
	must(t, os.MkdirAll(secondDir, 0o700))
	_, stderr, code := testutil.RunAgent(t, nil, "run", "--config", testutil.WriteAgentConfig(t, secondDir, second))
	if code == 0 || !strings.Contains(stderr, r.cfg.StateDir) || !strings.Contains(stderr, pid) {
		t.Errorf("a second run on the same state dir: exit %d, stderr %q; want a failure naming the dir and %s", code, stderr, pid)
	}

	_, stderr, code = testutil.RunAgent(t, nil, "run", "--once", "--config", cfg)
	if code == 0 || !strings.Contains(stderr, pid) {
		t.Errorf("run --once beside the agent: exit %d, stderr %q; want a failure naming %s", code, stderr, pid)
	}

	_, stderr, code = testutil.RunAgent(t, nil, "purge", "--config", cfg)
	if code == 0 || !strings.Contains(stderr, pid) {
		t.Errorf("purge while the agent runs: exit %d, stderr %q; want a failure naming %s", code, stderr, pid)
	}
	if err := r.applied(t, nil); err != nil {
		t.Errorf("after the refused purge: %v", err)
	}

	stopWithin(t, r.agent, time.Second)
	if _, stderr, code = testutil.RunAgent(t, nil, "purge", "--config", cfg); code != 0 {
		t.Fatalf("purge after the stop: exit %d: %s", code, stderr)
	}
	if _, err := os.Stat(r.home(fsFile)); !os.IsNotExist(err) {
		t.Errorf("after the purge, %s: %v; want it gone", fsFile, err)
	}
}
