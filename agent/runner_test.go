package agent

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/secrets-agent/secrets-agent/control"
	"github.com/secrets-agent/secrets-agent/controlplane"
)

func (r *testRig) specCalls() int { return r.cp.count(func(f *fakePlane) int { return f.specCalls }) }

// TestConcurrentSyncsShareOnePass: 300 syncs that arrive while a pass is in
// flight cost one more pass, not 300, and each gets the report of a pass
// that started after it asked.
func TestConcurrentSyncsShareOnePass(t *testing.T) {
	r := newRig(t, nil)
	r.cp.put("s1", "KEY_FILE", controlplane.ScopeUser, "file", "/x/key", "v1")
	r.pass(t)
	gate := make(chan struct{})
	r.cp.set(func(f *fakePlane) { f.gate, f.blocked = gate, 0 })
	first := make(chan control.PassReport, 1)
	go func() { first <- r.a.Sync(context.Background()) }()
	eventually(t, "a pass held in GetEnvironment", func() bool { return r.cp.count(func(f *fakePlane) int { return f.blocked }) == 1 })
	before := r.specCalls()

	const n = 300
	asked := time.Now()
	reps := make([]control.PassReport, n)
	var wg sync.WaitGroup
	var asking atomic.Int64
	for i := range n {
		wg.Go(func() {
			asking.Add(1)
			reps[i] = r.a.Sync(context.Background())
		})
	}
	eventually(t, "every sync asking", func() bool { return asking.Load() == n })
	time.Sleep(100 * time.Millisecond) // from asking to waiting is a lock and a channel
	r.cp.set(func(f *fakePlane) { f.gate = nil })
	close(gate)
	wg.Wait()
	<-first
	if got := r.specCalls() - before; got != 2 {
		t.Errorf("300 concurrent syncs during a pass: %d GetEnvironment calls after the held one's start, want 2 (the held pass and one shared)", got)
	}
	for i, rep := range reps {
		if rep.Error != "" || rep.Started.Before(asked) {
			t.Fatalf("sync %d: report %+v, want an OK pass that started after %v", i, rep, asked)
		}
	}
}

// TestSyncGivesUpWhenItsContextEnds: a sync whose caller hangs up returns at
// once, saying so, while the pass goes on.
func TestSyncGivesUpWhenItsContextEnds(t *testing.T) {
	r := newRig(t, nil)
	gate := make(chan struct{})
	r.cp.set(func(f *fakePlane) { f.gate = gate })
	defer close(gate)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if rep := r.a.Sync(ctx); rep.Error == "" {
		t.Fatalf("Sync with an ended context = %+v, want an error", rep)
	}
}

// TestStopIsHonouredWhileAPassIsStuck: a pass that never returns (here a
// control plane call held forever) does not keep Run from stopping, and
// status answers all along.
func TestStopIsHonouredWhileAPassIsStuck(t *testing.T) {
	cfg := testConfig()
	cfg.Socket = filepath.Join(t.TempDir(), "agent.sock")
	r := newRig(t, cfg, withTiming(fastTiming))
	r.cp.put("s1", "KEY_FILE", controlplane.ScopeUser, "file", "/x/key", "v1")
	gate := make(chan struct{})
	defer close(gate)
	r.cp.set(func(f *fakePlane) { f.gate = gate })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.a.Run(ctx) }()
	eventually(t, "a pass held in GetEnvironment", func() bool { return r.cp.count(func(f *fakePlane) int { return f.blocked }) >= 1 })
	c := control.NewClient(cfg.Socket)
	if _, err := c.Status(context.Background()); err != nil {
		t.Fatalf("status while a pass is stuck: %v", err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return while a pass was stuck")
	}
}

// TestSpammedStreamIsSpacedOut: a stream that keeps sending events for a
// spec that does not change costs a few passes, not one per event; an
// event that brings a change is still applied.
func TestSpammedStreamIsSpacedOut(t *testing.T) {
	cfg := testConfig()
	cfg.ControlPlane.Watch = true
	r := newRig(t, cfg, withTiming(fastTiming))
	r.cp.put("s1", "KEY_FILE", controlplane.ScopeUser, "file", "/x/key", "v1")
	r.run(t)
	s := r.waitStream(t)
	eventually(t, "first pass", func() bool { return r.passes() >= 1 })
	before := r.specCalls()
	end := time.Now().Add(time.Second)
	sent := 0
	for time.Now().Before(end) {
		s.send(t, envEvent)
		sent++
		time.Sleep(time.Millisecond)
	}
	got := r.specCalls() - before
	t.Logf("%d events in 1 s: %d passes", sent, got)
	// Two passes for nothing run at once, then the gap grows from 50 ms:
	// 50+100+200+400 ms fill the second, so about 6 passes.
	if got > 10 {
		t.Errorf("%d events for an unchanged spec caused %d passes in 1 s, want at most 10", sent, got)
	}
	r.cp.put("s1", "KEY_FILE", controlplane.ScopeUser, "file", "/x/key", "v2")
	s.send(t, envEvent)
	eventually(t, "a real change applied", func() bool { got, _ := r.file.read(t, "/x/key"); return got == "v2" })
}

// TestUnreadableTokenFileDegradesUntilFixed: a token file that cannot be
// re-read (a FIFO in its place, say) is named in status for as long as it
// cannot, while the token read before keeps the passes going.
func TestUnreadableTokenFileDegradesUntilFixed(t *testing.T) {
	r := newRig(t, nil)
	r.cp.put("s1", "KEY_FILE", controlplane.ScopeUser, "file", "/x/key", "v1")
	r.pass(t)
	r.cp.set(func(f *fakePlane) { f.tokenErr = errors.New("read token: not a regular file (it is a FIFO)") })
	_ = r.a.reloadToken(r.a.controlPlane())
	st := r.pass(t).Status
	if st.State != control.Degraded || !strings.Contains(st.LastError, "FIFO") {
		t.Fatalf("status %s %q, want degraded naming the token file's problem", st.State, st.LastError)
	}
	if got, _ := r.file.read(t, "/x/key"); got != "v1" {
		t.Errorf("secret %q, want it still applied", got)
	}
	r.cp.set(func(f *fakePlane) { f.tokenErr = nil })
	_ = r.a.reloadToken(r.a.controlPlane())
	if st := r.pass(t).Status; st.State != control.Ready {
		t.Fatalf("status %s %q after the token file is fixed, want ready", st.State, st.LastError)
	}
}

// TestStatusNamesAPassStuckPastItsTimeout: a pass that outlives the pass
// timeout (a call that ignores its context) turns status degraded, saying
// so, instead of showing the last pass's verdict for ever.
func TestStatusNamesAPassStuckPastItsTimeout(t *testing.T) {
	r := newRig(t, nil, withTiming(timing{passTimeout: 50 * time.Millisecond}))
	r.cp.put("s1", "KEY_FILE", controlplane.ScopeUser, "file", "/x/key", "v1")
	r.pass(t)
	gate := make(chan struct{})
	r.cp.set(func(f *fakePlane) { f.gate = gate })
	r.a.schedulePass()
	eventually(t, "status names the stuck pass", func() bool {
		st := r.a.Status()
		return st.State == control.Degraded && strings.Contains(st.LastError, "past the pass timeout")
	})
	r.cp.set(func(f *fakePlane) { f.gate = nil })
	close(gate)
	eventually(t, "ready once the pass ends", func() bool { return r.a.Status().State == control.Ready })
}
