package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/secrets-agent/secrets-agent/control"
)

// passRun is one full pass that any number of callers wait on together.
// Its fields other than done are written once, before done is closed.
type passRun struct {
	done  chan struct{}
	rep   control.PassReport
	retry bool // the pass failed in a way a retry may fix
	// changed: the spec differed from the last one fetched (or could not be
	// fetched); false means the pass was asked for nothing.
	changed bool
	// bySync: every caller that asked for it is a `sync` request (Sync),
	// so its start is spaced out (see scheduleSync). Written under runMu
	// while the pass waits to start.
	bySync bool
}

// schedulePass returns a full pass that starts after this call: the one
// already waiting to start, if any (the caller joins it), else a new one,
// which starts at once when no pass is in flight, or as soon as the one in
// flight ends. So any number of concurrent callers cost at most the pass in
// flight (which started before they asked, so they do not join it) and one
// more. The pass runs in its own goroutine on the pass context (see
// setPassParent), bounded by the pass timeout; a caller that stops waiting
// does not stop it.
func (a *Agent) schedulePass() *passRun { return a.schedule(false) }

// scheduleSync is schedulePass for a `sync` request on the status socket,
// which any local user may send in a loop: a pass that only such requests
// asked for starts no sooner than eventSpacing after the last one did,
// counting the sync passes in a row that found the spec unchanged, as the
// watch stream's events are spaced. A sync that brings news (the pass found
// a changed spec) resets the count; a pass anything else asked for too
// starts at once.
func (a *Agent) scheduleSync() *passRun { return a.schedule(true) }

func (a *Agent) schedule(bySync bool) *passRun {
	a.runMu.Lock()
	defer a.runMu.Unlock()
	r := a.nextRun
	if r == nil {
		r = &passRun{done: make(chan struct{}), bySync: bySync}
		a.nextRun = r
	} else if !bySync {
		r.bySync = false
	}
	if !a.running {
		a.startLocked()
	}
	return r
}

// startLocked starts the waiting pass; the caller holds runMu. When the pass
// ends, the next one waiting (asked for while it ran) starts.
func (a *Agent) startLocked() {
	r := a.nextRun
	a.nextRun, a.running, a.runningSince = nil, true, time.Now()
	parent := a.passParent
	var wait time.Duration
	if r.bySync {
		if time.Since(a.lastSync) > 2*spacingCap {
			a.syncQuiet = 0 // the syncs went quiet: the next one is news
		}
		wait = eventSpacing(a.syncQuiet) - time.Since(a.lastSync)
	}
	go func() {
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-parent.Done():
			}
			t.Stop()
		}
		if r.bySync {
			a.runMu.Lock()
			a.lastSync = time.Now()
			a.runMu.Unlock()
		}
		if err := parent.Err(); err != nil { // stopped while it waited for space: no pass
			r.rep = control.PassReport{Started: time.Now(), Error: fmt.Sprintf("not run: the agent is stopping (%v)", err),
				Status: a.Status()}
		} else {
			ctx, cancel := context.WithTimeout(parent, a.opts.timing.passTimeout)
			r.rep, r.retry, r.changed = a.pass(ctx)
			cancel()
		}
		close(r.done)
		a.runMu.Lock()
		defer a.runMu.Unlock()
		if r.bySync {
			a.syncQuiet++
			if r.changed {
				a.syncQuiet = 0
			}
		}
		a.running = false
		if a.nextRun != nil {
			a.startLocked()
		}
	}()
}

// idle returns once no pass is in flight or waiting to start, or after
// limit; it reports whether the runner went idle.
func (a *Agent) idle(limit time.Duration) bool {
	for deadline := time.Now().Add(limit); ; time.Sleep(5 * time.Millisecond) {
		a.runMu.Lock()
		busy := a.running || a.nextRun != nil
		a.runMu.Unlock()
		if !busy {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// stuckFor returns how long the pass in flight has run when that is past
// the pass timeout (a call it makes ignores its context: a filesystem or
// server that never answers), else 0.
func (a *Agent) stuckFor() time.Duration {
	a.runMu.Lock()
	defer a.runMu.Unlock()
	if d := time.Since(a.runningSince); a.running && d > a.opts.timing.passTimeout {
		return d
	}
	return 0
}

// setPassParent makes ctx the parent of the passes that start from now on
// (context.Background until Run sets its own, which it cancels when it
// stops).
func (a *Agent) setPassParent(ctx context.Context) {
	a.runMu.Lock()
	defer a.runMu.Unlock()
	a.passParent = ctx
}

// await waits for r or for ctx to end. When ctx ends first the report says
// so and carries the current status; the pass goes on.
func (a *Agent) await(ctx context.Context, r *passRun) control.PassReport {
	select {
	case <-r.done:
		return r.rep
	case <-ctx.Done():
		return control.PassReport{Started: time.Now(), Error: fmt.Sprintf("gave up waiting for the pass: %v", ctx.Err()),
			Status: a.Status()}
	}
}

// eventSpacing is how long after the start of the last pass an event-driven
// pass waits, given how many event-driven passes in a row found the spec as
// it was (quiet). Events that bring changes run a pass at once; a stream
// that keeps sending events for nothing (chatty or spammed) gets a gap
// that doubles from spacingBase up to spacingCap, so it cannot turn into a
// pass per round trip.
func eventSpacing(quiet int) time.Duration {
	const quietFree = 2 // this many passes for nothing are not held back
	if quiet < quietFree {
		return 0
	}
	n := quiet - quietFree
	if n > 10 {
		return spacingCap
	}
	return min(spacingCap, spacingBase<<n)
}

const (
	spacingBase = 50 * time.Millisecond
	spacingCap  = 2 * time.Second
)

// stopGrace is how long a stop waits for the job in flight to return once
// its context is cancelled, before it abandons it: the process exits well
// within a second whatever the filesystem or the control plane does, and
// every output stays as it is (each write is atomic).
const stopGrace = 400 * time.Millisecond
