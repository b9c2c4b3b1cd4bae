package agent

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/secrets-agent/secrets-agent/config"
	"github.com/secrets-agent/secrets-agent/controlplane"
)

// timing holds the loop's intervals; zero fields take the defaults.
type timing struct {
	retryBase   time.Duration // first retry of a failed pass, before jitter
	retryCap    time.Duration // longest wait between retries and reconnects
	streamBase  time.Duration // first reconnect of the stream, before jitter
	healthy     time.Duration // a stream up this long resets the reconnect backoff
	silence     time.Duration // a stream quiet this long is dead (3x the server keepalive)
	passTimeout time.Duration // bounds one pass
}

func (t timing) withDefaults() timing {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&t.retryBase, time.Second)
	def(&t.retryCap, 60*time.Second)
	def(&t.streamBase, time.Second)
	def(&t.healthy, 60*time.Second)
	def(&t.silence, 45*time.Second)
	def(&t.passTimeout, 2*time.Minute)
	return t
}

// backoff returns the wait before attempt n (1, 2, ...): exponential from
// base, capped, with full jitter (uniform in [0, min(cap, base·2^(n-1))]).
func backoff(base, limit time.Duration, n int) time.Duration {
	d := limit
	if n < 31 {
		if e := base << (n - 1); e > 0 && e < limit {
			d = e
		}
	}
	return time.Duration(rand.Int64N(int64(d) + 1))
}

// jittered returns d ±20%.
func jittered(d time.Duration) time.Duration {
	return d + time.Duration((rand.Float64()*0.4-0.2)*float64(d))
}

// errSilent ends a stream that sent nothing, not even a keepalive, for too long.
var errSilent = errors.New("watch stream silent past its deadline")

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
// nil; it returns an error only when it cannot start (the status socket
// cannot be served). The steps:
//
//	(1) Serve the status socket (unless WithoutStatusSocket).
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
//	(5) When ctx ends: the pass in flight finishes (passes run on a context
//	    that ctx's end does not cancel), the stream closes, every output
//	    stays in place, STOPPING is sent and Run returns nil.
func (a *Agent) Run(ctx context.Context) error {
	cfg := a.config()
	if !a.opts.noSocket {
		stopSocket, err := serveStatusSocket(ctx, a, cfg, a.log) // (1)
		if err != nil {
			return err
		}
		defer stopSocket()
	}

	if !a.opts.noFileWatch {
		files, err := newPathWatcher(a.log, a.onFileEvent) // (2)
		if err != nil {
			a.log.Warn("file watching unavailable: no drift repair, no reload on file change", zap.Error(err))
		} else {
			defer files.close()
			a.mu.Lock()
			a.watching = files.set
			a.mu.Unlock()
			a.watchFiles()
		}
	}

	stream := a.startStream(ctx) // (3)
	defer func() { stream() }()

	passCtx := context.WithoutCancel(ctx) // (4)
	t := a.opts.timing
	poll := newStoppedTimer()
	retry := newStoppedTimer()
	ready := time.NewTimer(time.Duration(cfg.ReadyTimeout))
	if cfg.ReadyTimeout <= 0 {
		ready.Stop()
	}
	var watchdog <-chan time.Time
	if iv := a.notify.WatchdogInterval(); iv > 0 {
		tick := time.NewTicker(iv / 2)
		defer tick.Stop()
		watchdog = tick.C
	}
	failures := 0
	readySent := false
	lastLine := ""
	report := func() {
		st := a.Status()
		line := a.statusLine(st)
		if !readySent && st.State != Starting && !st.FirstApplied.IsZero() {
			readySent = true
			a.notify.Ready(line)
		} else if line != lastLine {
			a.notify.Status(line)
		}
		lastLine = line
	}
	a.kick()
	for {
		select {
		case <-ctx.Done(): // (5)
			a.notify.Stopping()
			a.log.Info("stopping; outputs stay in place")
			return nil
		case <-a.trigger:
		case <-poll.C:
		case <-retry.C:
		case <-a.repair:
			if ctx.Err() == nil {
				pctx, cancel := context.WithTimeout(passCtx, t.passTimeout)
				if !a.repairPass(pctx) {
					a.kick()
				}
				cancel()
				a.watchFiles()
				report()
			}
			continue
		case <-a.reload:
			if ctx.Err() == nil {
				if readySent { // before READY, a reload is part of starting
					a.notify.Reloading()
				}
				if a.reloadNow() {
					stream()
					stream = a.startStream(ctx)
				}
				if readySent {
					a.notify.Ready(a.statusLine(a.Status()))
				}
				a.kick()
			}
			continue
		case <-watchdog:
			a.notify.Watchdog()
			continue
		case <-a.watchMoved:
			report()
			continue
		case <-ready.C:
			if !readySent {
				readySent = true
				line := a.statusLine(a.Status())
				if !strings.HasPrefix(line, string(Degraded)+":") {
					line = string(Degraded) + ": " + line // still starting: the first pass hangs
				}
				a.log.Warn("not applied within ready_timeout; reporting ready, degraded", zap.String("status", line))
				a.notify.Ready(line)
			}
			continue
		}
		if ctx.Err() != nil {
			continue // stopping: the next iteration returns
		}
		pctx, cancel := context.WithTimeout(passCtx, t.passTimeout)
		_, again := a.fullPass(pctx)
		cancel()
		a.watchFiles()
		report()
		if again {
			failures++
			wait := backoff(t.retryBase, t.retryCap, failures)
			a.log.Info("retrying", zap.Int("attempt", failures), zap.Duration("in", wait))
			retry.Reset(wait)
		} else {
			failures = 0
			retry.Stop()
		}
		if iv := time.Duration(a.config().ControlPlane.PollInterval); iv > 0 {
			poll.Reset(jittered(iv))
		} else {
			poll.Stop()
		}
	}
}

func newStoppedTimer() *time.Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}

// statusLine is the one-line STATUS= text for st: the state, how many
// secrets are applied, the last error when degraded, and whether the watch
// stream is down.
func (a *Agent) statusLine(st Status) string {
	applied := 0
	for _, s := range st.Secrets {
		if s.Outcome != "failed" && s.Outcome != "rejected" && s.Outcome != "skipped" {
			applied++
		}
	}
	line := fmt.Sprintf("%s: %d secrets applied", st.State, applied)
	if st.ConfigError != "" {
		line += "; config reload refused: " + st.ConfigError
	} else if st.State == Degraded && st.LastError != "" {
		line += "; " + st.LastError
	}
	if a.config().ControlPlane.Watch && !st.WatchConnected && st.State != Starting && a.waitingFor() == nil {
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
	sctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		a.holdStream(sctx)
	}()
	return func() {
		cancel()
		wg.Wait()
	}
}

// holdStream keeps a watch stream open until ctx ends, reconnecting with
// exponential backoff and full jitter, capped; a stream that stayed up for
// the healthy period resets the backoff. unauthenticated re-reads the token
// file before the next attempt.
func (a *Agent) holdStream(ctx context.Context) {
	t := a.opts.timing
	failures := 0
	for ctx.Err() == nil {
		cfg, cp := a.config(), a.controlPlane()
		s, err := cp.WatchEvents(ctx, cfg.ControlPlane.EnvironmentID)
		if err == nil {
			a.setWatchConnected(true)
			a.log.Info("watch stream connected", zap.String("environment", cfg.ControlPlane.EnvironmentID))
			a.kick()
			began := time.Now()
			stopClose := context.AfterFunc(ctx, func() { _ = s.Close() })
			err = a.readStream(s, t.silence)
			stopClose()
			_ = s.Close()
			a.setWatchConnected(false)
			if time.Since(began) >= t.healthy {
				failures = 0
			}
		}
		if ctx.Err() != nil {
			return
		}
		if controlplane.CodeOf(err) == controlplane.CodeUnauthenticated {
			if rerr := cp.ReloadToken(); rerr != nil {
				a.log.Warn("re-read token file", zap.Error(rerr))
			}
		}
		failures++
		wait := backoff(t.streamBase, t.retryCap, failures)
		a.log.Warn("watch stream down; reconnecting", zap.Error(err), zap.Duration("in", wait))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// readStream reads events until the stream ends; an event that is not a
// keepalive kicks a pass. A stream that sends nothing for silence is closed
// and errSilent returned.
func (a *Agent) readStream(s EventStream, silence time.Duration) error {
	var silent atomic.Bool
	timer := time.AfterFunc(silence, func() {
		silent.Store(true)
		_ = s.Close()
	})
	defer timer.Stop()
	for {
		ev, err := s.Next()
		if silent.Load() {
			return errSilent
		}
		if err != nil {
			return err
		}
		timer.Reset(silence)
		if ev.Operation == "" || ev.Operation == "RESOURCE_OPERATION_UNSPECIFIED" {
			continue // keepalive
		}
		a.log.Debug("event", zap.String("operation", ev.Operation), zap.String("type", ev.ResourceType),
			zap.String("id", ev.ResourceID))
		a.kick()
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
		if err := cp.ReloadToken(); err != nil {
			a.log.Error("reload: re-read token file", zap.Error(err))
		}
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
	} else if err := cp.ReloadToken(); err != nil {
		a.log.Warn("reload: re-read token file", zap.Error(err))
	}
	slots := a.injectorSlots()
	if injectorConfigChanged(old, cfg) {
		slots = a.buildSlots(cfg)
	}
	a.mu.Lock()
	a.cfg, a.cp, a.slots = cfg, newCP, slots
	a.status.ControlPlane, a.status.EnvironmentID = cfg.ControlPlane.URL, cfg.ControlPlane.EnvironmentID
	a.status.ConfigError, a.status.ConfigErrorTime = "", time.Time{}
	a.mu.Unlock()
	a.setWaiting(waiting)
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
