package agent

import (
	"cmp"
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync"

	"time"

	"go.uber.org/zap"

	"github.com/secrets-agent/secrets-agent/config"
	"github.com/secrets-agent/secrets-agent/control"
	"github.com/secrets-agent/secrets-agent/controlplane"
	"github.com/secrets-agent/secrets-agent/internal/backoff"
	"github.com/secrets-agent/secrets-agent/internal/dirlock"
	"github.com/secrets-agent/secrets-agent/internal/pathwatch"
)

// timing holds the loop's intervals; zero fields take the defaults.
type timing struct {
	retryBase   time.Duration // first retry of a failed pass, before jitter
	retryCap    time.Duration // longest wait between retries and reconnects
	streamBase  time.Duration // first reconnect of the stream, before jitter
	fastCap     time.Duration // longest wait of the first fastTries attempts
	fastTries   int           // attempts whose wait stays under fastCap
	flap        time.Duration // at most one stream is opened per flap period
	silence     time.Duration // overrides watch_silence_timeout when set (tests)
	passTimeout time.Duration // bounds one pass
}

func (t timing) withDefaults() timing {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&t.retryBase, 250*time.Millisecond)
	def(&t.retryCap, 60*time.Second)
	def(&t.streamBase, 250*time.Millisecond)
	def(&t.fastCap, 2*time.Second)
	def(&t.flap, 500*time.Millisecond)
	def(&t.passTimeout, 2*time.Minute)
	if t.fastTries <= 0 {
		t.fastTries = 10
	}
	return t
}

// backoff returns the wait before attempt n (1, 2, ...) with full jitter:
// uniform in [0, ceiling]. The ceiling doubles from base, but stays at most
// fastCap for the first fastTries attempts, so that an outage of a few
// seconds (a control plane restarting) is noticed within about fastCap of its
// end; from then on it doubles on from fastCap up to limit, so a long outage
// costs the control plane little. Full jitter spreads a fleet's attempts over
// the whole ceiling, so agents cut off together do not come back together.
func (t timing) backoff(base time.Duration, n int) time.Duration {
	fast := min(t.fastCap, t.retryCap)
	if n <= t.fastTries {
		return backoff.Jitter(backoff.Ceiling(base, n-1, fast))
	}
	return backoff.Jitter(backoff.Ceiling(fast, n-t.fastTries, t.retryCap))
}

// kick asks for a full pass; it never blocks, and kicks that arrive while one
// is pending coalesce into it.
func (a *Agent) kick() {
	select {
	case a.trigger <- struct{}{}:
	default:
	}
}

func (a *Agent) kickRepair() {
	select {
	case a.repair <- struct{}{}:
	default:
	}
}

// RequestReload asks Run to re-read the config file and the token file, as
// SIGHUP does. It never blocks.
func (a *Agent) RequestReload() {
	select {
	case a.reload <- struct{}{}:
	default:
	}
}

// Run keeps the environment's secrets applied until ctx ends, then returns
// nil; it returns an error only when it cannot start (the state dir is held
// by another agent, or the status socket cannot be served). The steps:
//
//	(0) Lock the state dir (dirlock) for as long as Run runs: a second agent
//	    on the same state dir, or a purge, fails at once naming this one.
//	(1) Make the passes' context (cancelled when ctx ends) the parent of
//	    every pass, then serve the status socket (unless
//	    WithoutStatusSocket): a `sync` that arrives first (socket
//	    activation) starts a pass a stop can end.
//	(2) Watch files: every managed output (drift), the config file and the
//	    token file (unless WithoutFileWatch).
//	(3) Hold the watch stream in its own goroutine (controlplane.watch):
//	    every event kicks a full pass, and so does every (re)connect, to
//	    catch up on what happened while it was down.
//	(4) Loop: a full pass at once and on every kick; another on the poll
//	    timer (poll_interval ±20 %) and on the retry timer after a pass that
//	    a retry may fix (backoff with full jitter up to the cap); a repair
//	    pass on drift; a reload on request; the watchdog at half its
//	    interval; READY after the first applied pass or after ready_timeout
//	    with a degraded STATUS; STATUS on every change of state.
//	    Passes, repairs and reloads run off the loop, one at a time (the
//	    loop's job), so the loop itself never blocks: a stop, the watchdog
//	    and STATUS are served whatever a pass is stuck on. Kicks that come
//	    while a job runs coalesce into one pass after it; kicks whose
//	    passes keep finding the spec unchanged are spaced out
//	    (eventSpacing). Full passes go through schedulePass, so they are
//	    shared with `sync` requests. A job stuck past the pass timeout
//	    stops the watchdog pings, so systemd restarts a wedged agent.
//	(5) When ctx ends: the passes' context is cancelled (a control-plane
//	    call in flight ends; injectors stop before their next secret and
//	    remove nothing), the job in flight gets stopGrace to return and is
//	    otherwise abandoned (a syscall cannot be interrupted); the stream
//	    closes, every output stays in place, STOPPING is sent and Run
//	    returns nil.
func (a *Agent) Run(ctx context.Context) error {
	cfg := a.config()
	if a.proxy != nil {
		defer a.proxy.Close()
	}
	if cfg.StateDir != "" {
		lock, err := dirlock.Acquire(cfg.StateDir) // (0)
		if err != nil {
			return fmt.Errorf("state dir: %w", err)
		}
		defer lock.Release()
	}
	passCtx, cancelPasses := context.WithCancel(context.WithoutCancel(ctx)) // (1)
	defer cancelPasses()
	a.setPassParent(passCtx)
	defer a.setPassParent(context.Background())
	if !a.opts.noSocket {
		stopSocket, err := serveStatusSocket(ctx, a, cfg, a.log)
		if err != nil {
			return err
		}
		defer stopSocket()
	}

	if !a.opts.noFileWatch {
		files, err := pathwatch.New(a.log, a.onFileEvent) // (2)
		if err != nil {
			a.log.Warn("file watching unavailable: no drift repair, no reload on file change", zap.Error(err))
		} else {
			defer files.Close()
			a.mu.Lock()
			a.watching = files.Set
			a.mu.Unlock()
			a.watchFiles()
			if a.waitingFor() != nil {
				// The token or config may have appeared between New's
				// attempt to connect and this watch: look once more.
				a.RequestReload()
			}
		}
	}

	l := &loop{a: a, ctx: ctx, passCtx: passCtx, cancelPasses: cancelPasses, t: a.opts.timing,
		poll: newStoppedTimer(), retry: newStoppedTimer(), space: newStoppedTimer()}
	l.stream = a.startStream(ctx) // (3)
	defer func() { l.stream() }()

	l.ready = time.NewTimer(time.Duration(cfg.ReadyTimeout)) // (4)
	if cfg.ReadyTimeout <= 0 {
		l.ready.Stop()
	}
	if iv := a.notify.WatchdogInterval(); iv > 0 {
		tick := time.NewTicker(iv / 2)
		defer tick.Stop()
		l.watchdog = tick.C
	}
	l.run() // (4) until (5)
	return nil
}

// loop is Run's loop: its timers, its job and what it remembers from one
// pass to the next. Only Run's goroutine touches it.
type loop struct {
	a                  *Agent
	ctx, passCtx       context.Context
	cancelPasses       context.CancelFunc
	stream             func() // stops the watch stream and waits
	t                  timing
	poll, retry, space *time.Timer
	ready              *time.Timer
	watchdog           <-chan time.Time
	spaced             bool // a kicked pass waits for space
	failures           int  // passes in a row a retry may fix
	quiet              int  // kicked passes in a row that found the spec unchanged
	lastKicked         time.Time
	readySent          bool
	lastLine           string

	// The loop's job: busy is closed when it ends, then then runs in the
	// loop.
	busy      <-chan struct{}
	busySince time.Time
	then      func()
	wedged    bool
}

// run is Run's loop: it serves kicks, timers, repairs, reloads and the
// watchdog until ctx ends, and then stops.
func (l *loop) run() {
	a := l.a
	a.kick()
	for {
		var trigger, repair, reload <-chan struct{}
		var pollC, retryC, spaceC <-chan time.Time
		if l.busy == nil {
			repair, reload, pollC, retryC = a.repair, a.reload, l.poll.C, l.retry.C
			if l.spaced {
				spaceC = l.space.C
			} else {
				trigger = a.trigger
			}
		}
		kicked := false
		select {
		case <-l.ctx.Done():
			l.stop()
			return
		case <-l.busy:
			l.busy, l.wedged = nil, false
			after := l.then
			l.then = nil
			after()
			continue
		case <-trigger:
			if !l.kickDue() {
				continue
			}
			kicked = true
		case <-spaceC:
			l.spaced, kicked = false, true
			select { // the kicks that waited are this pass
			case <-a.trigger:
			default:
			}
		case <-pollC:
		case <-retryC:
		case <-repair:
			l.startRepair()
			continue
		case <-reload:
			l.startReload()
			continue
		case <-l.watchdog:
			l.pingWatchdog()
			continue
		case <-a.watchMoved:
			l.report()
			continue
		case <-l.ready.C:
			l.readyTimedOut()
			continue
		}
		l.startPass(kicked)
	}
}

// stop ends Run: the passes' context is cancelled, the job in flight gets
// stopGrace, and systemd is told STOPPING.
func (l *loop) stop() {
	l.cancelPasses() // a control-plane call in flight ends at once
	graceEnds := time.Now().Add(stopGrace)
	if l.busy != nil {
		select {
		case <-l.busy:
		case <-time.After(stopGrace):
			l.a.log.Warn("stopping with a pass still running; it is abandoned and every output stays as it is",
				zap.Duration("running", time.Since(l.busySince)))
		}
	}
	// A pass a `sync` started runs in the runner, not as the loop's job: it
	// gets what is left of the grace too, so that Run's deferred release of
	// the state dir's lock does not come while it still writes.
	if !l.a.idle(time.Until(graceEnds)) {
		l.a.log.Warn("stopping with a pass a sync asked for still running; it is abandoned and every output stays as it is")
	}
	l.a.notify.Stopping()
	l.a.log.Info("stopping; outputs stay in place")
}

// start makes done the loop's job; after runs in the loop once it is closed.
func (l *loop) start(done <-chan struct{}, after func()) {
	l.busy, l.busySince, l.then = done, time.Now(), after
}

// async runs f in its own goroutine and returns a channel closed when it
// returns.
func async(f func()) <-chan struct{} {
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	return done
}

// report sends READY after the first applied pass, else STATUS when the
// status line changed.
func (l *loop) report() {
	st := l.a.Status()
	line := l.a.statusLine(st)
	if !l.readySent && st.State != control.Starting && !st.FirstApplied.IsZero() {
		l.readySent = true
		l.a.notify.Ready(line)
	} else if line != l.lastLine {
		l.a.notify.Status(line)
	}
	l.lastLine = line
}

// kickDue reports whether a kick may run a pass now; when it must wait for
// space (eventSpacing), the space timer is set and it reports false.
func (l *loop) kickDue() bool {
	if time.Since(l.lastKicked) > 2*spacingCap {
		l.quiet = 0 // the stream went quiet: the next event is news
	}
	if wait := eventSpacing(l.quiet) - time.Since(l.lastKicked); wait > 0 {
		l.spaced = true
		l.space.Reset(wait)
		return false
	}
	return true
}

// startRepair makes a repair pass the loop's job; before the first applied
// pass there is nothing to repair, and a full pass is kicked instead.
func (l *loop) startRepair() {
	if l.ctx.Err() != nil {
		return
	}
	var repaired bool
	l.start(async(func() {
		pctx, cancel := context.WithTimeout(l.passCtx, l.t.passTimeout)
		defer cancel()
		repaired = l.a.repairPass(pctx)
	}), func() {
		if !repaired {
			l.a.kick()
		}
		l.report()
	})
}

// startReload makes a reload the loop's job, telling systemd (once READY
// was sent: before, a reload is part of starting); the stream restarts when
// the reload says so, and a full pass follows.
func (l *loop) startReload() {
	if l.ctx.Err() != nil {
		return
	}
	if l.readySent {
		l.a.notify.Reloading()
	}
	var restart bool
	l.start(async(func() { restart = l.a.reloadNow() }), func() {
		if restart {
			l.stream()
			l.stream = l.a.startStream(l.ctx)
		}
		if l.readySent {
			l.a.notify.Ready(l.a.statusLine(l.a.Status()))
		}
		l.a.kick()
	})
}

// pingWatchdog pings systemd's watchdog, unless the job is stuck past the
// pass timeout: then it stops, so that systemd restarts a wedged agent.
func (l *loop) pingWatchdog() {
	if l.busy != nil && time.Since(l.busySince) > l.t.passTimeout {
		if !l.wedged {
			l.wedged = true
			l.a.log.Error("a pass is stuck past the pass timeout; no more watchdog pings",
				zap.Duration("running", time.Since(l.busySince)))
		}
		return
	}
	l.a.notify.Watchdog()
}

// readyTimedOut sends READY with a degraded status when ready_timeout
// passed before the first applied pass.
func (l *loop) readyTimedOut() {
	if l.readySent {
		return
	}
	l.readySent = true
	line := l.a.statusLine(l.a.Status())
	if !strings.HasPrefix(line, string(control.Degraded)+":") {
		line = string(control.Degraded) + ": " + line // still starting: the first pass hangs
	}
	l.a.log.Warn("not applied within ready_timeout; reporting ready, degraded", zap.String("status", line))
	l.a.notify.Ready(line)
}

// startPass makes a full pass the loop's job (kicked: it serves a kick, not
// a timer); when it ends, the retry and poll timers are set from its result.
func (l *loop) startPass(kicked bool) {
	if l.ctx.Err() != nil {
		return // stopping: the next iteration returns
	}
	if l.spaced { // a poll or retry pass also serves the kicks waiting for space
		l.space.Stop()
		l.spaced, kicked = false, true
	}
	if kicked {
		l.lastKicked = time.Now()
	}
	r := l.a.schedulePass()
	l.start(r.done, func() {
		l.report()
		if kicked {
			if r.changed {
				l.quiet = 0
			} else {
				l.quiet++
			}
		}
		if r.retry {
			l.failures++
			wait := l.t.backoff(l.t.retryBase, l.failures)
			l.a.log.Info("retrying", zap.Int("attempt", l.failures), zap.Duration("in", wait))
			l.retry.Reset(wait)
		} else {
			l.failures = 0
			l.retry.Stop()
		}
		if iv := time.Duration(l.a.config().ControlPlane.PollInterval); iv > 0 {
			l.poll.Reset(backoff.Spread(iv))
		} else {
			l.poll.Stop()
		}
	})
}

func newStoppedTimer() *time.Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}

// statusLine is the one-line STATUS= text for st: the state, how many
// secrets are applied, the last error when degraded, and whether the watch
// stream is down.
func (a *Agent) statusLine(st control.Status) string {
	applied := 0
	for _, s := range st.Secrets {
		if s.Outcome.Applied() {
			applied++
		}
	}
	line := fmt.Sprintf("%s: %d secrets applied", st.State, applied)
	if st.ConfigError != "" {
		line += "; config reload refused: " + st.ConfigError
	} else if st.State == control.Degraded && st.LastError != "" {
		line += "; " + st.LastError
	}
	if a.config().ControlPlane.Watch && !st.WatchConnected && st.State != control.Starting && a.waitingFor() == nil {
		line += "; watch stream down"
	}
	return line
}

// startStream starts holding the watch stream when the config asks for it
// and returns a function that stops it and waits.
func (a *Agent) startStream(ctx context.Context) (stop func()) {
	if !a.config().ControlPlane.Watch || a.waitingFor() != nil {
		return func() {}
	}
	t, cfg := a.opts.timing, a.config()
	w := &controlplane.Watch{
		EnvID: cfg.ControlPlane.EnvironmentID,
		Open: func(ctx context.Context) (controlplane.Events, error) {
			return a.controlPlane().WatchEvents(ctx, a.config().ControlPlane.EnvironmentID)
		},
		Silence: func() time.Duration {
			return cmp.Or(t.silence, time.Duration(a.config().ControlPlane.WatchSilenceTimeout))
		},
		Flap:    t.flap,
		Backoff: func(n int) time.Duration { return t.backoff(t.streamBase, n) },
		Wake:    a.streamWake,
		Connected: func(up bool) {
			a.setWatchConnected(up)
			if up {
				a.kick() // catch up on what happened while the stream was down
			}
		},
		Event: func(controlplane.Event) { a.kick() },
		Unauthenticated: func() {
			if err := a.reloadToken(a.controlPlane()); err != nil {
				a.log.Warn("re-read token file", zap.Error(err))
			}
		},
		Log: a.log,
	}
	sctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		w.Hold(sctx)
	}()
	return func() {
		cancel()
		wg.Wait()
	}
}

// wakeStream cuts short the watch stream's reconnect wait, if it is in one.
// It never blocks; a wake while the stream is up is dropped.
func (a *Agent) wakeStream() {
	a.mu.Lock()
	up := a.status.WatchConnected
	a.mu.Unlock()
	if up {
		return
	}
	select {
	case a.streamWake <- struct{}{}:
	default:
	}
}

// setWatchConnected records whether the watch stream is up and, when that
// changed, tells the loop, so that systemd's STATUS follows the stream and
// not only the passes.
func (a *Agent) setWatchConnected(up bool) {
	a.mu.Lock()
	changed := a.status.WatchConnected != up
	a.status.WatchConnected = up
	a.mu.Unlock()
	if changed {
		select {
		case a.watchMoved <- struct{}{}:
		default:
		}
	}
}

// reloadNow re-reads the config file (when the agent has one) and the token
// file. An invalid config is logged and rejected; the old one stays in force
// and so does everything applied. It reports whether the stream must be
// restarted (control plane, environment or watch changed).
func (a *Agent) reloadNow() (restartStream bool) {
	path := a.opts.configPath
	cp := a.controlPlane()
	if path == "" && a.waitingFor() != nil {
		return a.reconnect(a.config(), cp)
	}
	if path == "" {
		if err := a.reloadToken(cp); err != nil {
			a.log.Error("reload: re-read token file", zap.Error(err))
		}
		a.passMu.Lock()
		for _, sl := range a.slots {
			sl.synced = false // a reload (SIGHUP) has every output looked at once more (changes.go)
		}
		a.passMu.Unlock()
		return false
	}
	if err := config.Settled(path); err != nil {
		a.log.Error("config reload rejected; the old configuration stays in force",
			zap.String("config", path), zap.Error(err))
		a.setConfigError(err)
		return false
	}
	cfg, err := a.opts.load(path)
	if err != nil {
		a.log.Error("config reload rejected; the old configuration stays in force",
			zap.String("config", path), zap.Error(err))
		a.setConfigError(err)
		return false
	}
	a.passMu.Lock()
	defer a.passMu.Unlock()
	old := a.config()
	newCP, waiting := cp, a.waitingFor()
	if waiting != nil || cfg.ControlPlane.EnvironmentID == "" ||
		old.ControlPlane.URL != cfg.ControlPlane.URL || old.ControlPlane.TokenFile != cfg.ControlPlane.TokenFile {
		if newCP, waiting, err = a.connect(cfg); err != nil {
			a.log.Error("config reload rejected; the old configuration stays in force",
				zap.String("config", path), zap.Error(err))
			a.setConfigError(err)
			return false
		}
	} else if err := a.reloadToken(cp); err != nil {
		a.log.Warn("reload: re-read token file", zap.Error(err))
	}
	slots := a.slots
	if injectorConfigChanged(old, cfg) {
		slots = a.buildSlots(cfg, a.slots)
	}
	a.mu.Lock()
	a.cfg, a.cp, a.slots = cfg, newCP, slots
	a.status.ControlPlane, a.status.EnvironmentID = cfg.ControlPlane.URL, cfg.ControlPlane.EnvironmentID
	a.status.ConfigError, a.status.ConfigErrorTime = "", time.Time{}
	a.mu.Unlock()
	a.setWaiting(waiting)
	for _, sl := range slots {
		sl.synced = false // a reload (SIGHUP) has every output looked at once more (changes.go)
	}
	a.watchFiles() // a new config may name another token file: watch it (the waiting agent waits for it)
	a.log.Info("configuration reloaded", zap.String("config", path))
	return newCP != cp || old.ControlPlane.EnvironmentID != cfg.ControlPlane.EnvironmentID ||
		old.ControlPlane.Watch != cfg.ControlPlane.Watch
}

// setConfigError records in Status why a config reload was refused; it
// stays there (and the agent degraded) until a good config is loaded.
func (a *Agent) setConfigError(err error) {
	a.mu.Lock()
	a.status.ConfigError, a.status.ConfigErrorTime = err.Error(), time.Now()
	a.mu.Unlock()
}

// injectorConfigChanged reports whether the injectors must be built again.
func injectorConfigChanged(old, cfg *config.Config) bool {
	return !reflect.DeepEqual(old.Injectors, cfg.Injectors) || old.User != cfg.User ||
		old.Home != cfg.Home || old.StateDir != cfg.StateDir || old.UID != cfg.UID || old.GID != cfg.GID ||
		old.Socket != cfg.Socket || old.ControlPlane.TokenFile != cfg.ControlPlane.TokenFile // reserved paths
}
