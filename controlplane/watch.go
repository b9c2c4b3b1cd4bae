package controlplane

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Events is an open watch stream as Watch reads it; *Stream is one. Next
// blocks until an event arrives or the stream ends; Close ends it and makes
// a blocked Next return.
type Events interface {
	Next() (Event, error)
	Close() error
}

// ErrSilent ends a stream that sent nothing, not even a blank line, for
// longer than Watch.Silence.
var ErrSilent = errors.New("watch stream silent past watch_silence_timeout")

// Watch holds one environment's watch stream open and says what happens on
// it through its callbacks; its fields are set before Hold and not changed
// while it runs. Every callback runs on Hold's goroutine.
type Watch struct {
	EnvID string
	// Open opens a stream of EnvID's events.
	Open func(ctx context.Context) (Events, error)
	// Silence returns, when a stream opens, how long it may send nothing,
	// not even a blank line, before it is closed with ErrSilent; 0 for no
	// such deadline.
	Silence func() time.Duration
	// Flap: a stream that ended within Flap of opening makes the next
	// attempt wait at least the rest of that period.
	Flap time.Duration
	// Backoff returns the wait before reconnect attempt n (1, 2, ...).
	Backoff func(n int) time.Duration
	// Wake cuts a reconnect wait short (the control plane is up, so try
	// now); a wake sent while a stream was opening is dropped.
	Wake chan struct{}
	// Connected is called with true once a stream is open (the server
	// answered 200: time to catch up on what happened while it was down)
	// and with false once it has ended.
	Connected func(up bool)
	// Event is called for each event that can change EnvID's secrets
	// (Event.Relevant).
	Event func(Event)
	// Unauthenticated is called before the next attempt when a stream
	// failed with CodeUnauthenticated (the token file may have changed).
	Unauthenticated func()
	Log             *zap.Logger
}

// Hold keeps the stream open until ctx ends. In order:
//
//  1. Open the stream. Once the server has answered 200 the reconnect
//     backoff starts again from its first step, and Connected(true) is
//     called.
//  2. Read it until it ends (read).
//  3. Wait before the next attempt: Backoff, cut short by Wake. A stream
//     that ended within Flap of opening makes the wait (woken or not) last
//     at least the rest of that period, so a server that accepts and drops
//     at once sees each agent, and its kicked passes, at most once per flap
//     period, while two restarts close together still cost only a short
//     wait each. A stream that failed unauthenticated calls Unauthenticated
//     first.
func (w *Watch) Hold(ctx context.Context) {
	failures := 0
	for ctx.Err() == nil {
		// floor is the rest of the flap period after a short-lived stream.
		var floor time.Duration
		s, err := w.Open(ctx) // (1)
		if err == nil {
			failures = 0
			select { // a wake from while this stream was opening is stale now
			case <-w.Wake:
			default:
			}
			w.Log.Info("watch stream connected", zap.String("environment", w.EnvID))
			w.Connected(true)
			began := time.Now()
			stopClose := context.AfterFunc(ctx, func() { _ = s.Close() })
			err = w.read(s, w.Silence()) // (2)
			stopClose()
			_ = s.Close()
			w.Connected(false)
			floor = w.Flap - time.Since(began)
		}
		if ctx.Err() != nil {
			return
		}
		if CodeOf(err) == CodeUnauthenticated {
			w.Unauthenticated()
		}
		failures++
		wait := max(w.Backoff(failures), floor) // (3)
		w.Log.Warn("watch stream down; reconnecting", zap.Error(err), zap.Duration("in", wait))
		if !w.pause(ctx, wait, floor) {
			return
		}
	}
}

// pause waits d, or until Wake and then what is left of floor; it reports
// false when ctx ended first.
func (w *Watch) pause(ctx context.Context, d, floor time.Duration) bool {
	start := time.Now()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	case <-w.Wake:
		w.Log.Info("control plane reachable again; reconnecting the watch stream now")
		rest := floor - time.Since(start)
		return rest <= 0 || sleep(ctx, rest)
	}
}

// sleep waits d or until ctx ends, and reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// read reads events until the stream ends. An event that can change EnvID's
// secrets (Event.Relevant) goes to Event; any other (keepalives, blank
// lines, other resource types and environments, unknown operations) is
// dropped, logged at debug. With silence > 0, a stream that sends nothing,
// not even a blank line, for silence is closed and ErrSilent returned; with
// silence 0 there is no such deadline.
func (w *Watch) read(s Events, silence time.Duration) error {
	var silent atomic.Bool
	seen := func() {}
	if silence > 0 {
		timer := time.AfterFunc(silence, func() {
			silent.Store(true)
			_ = s.Close()
		})
		defer timer.Stop()
		seen = func() { timer.Reset(silence) }
	}
	for {
		ev, err := s.Next()
		if silent.Load() {
			return ErrSilent
		}
		if err != nil {
			return err
		}
		seen()
		if ev == (Event{}) || ev.Operation == OpUnspecified {
			continue // a keepalive or blank line
		}
		if !ev.Relevant(w.EnvID) {
			w.Log.Debug("event ignored: it cannot change this environment's secrets", zap.String("operation", ev.Operation),
				zap.String("type", ev.ResourceType), zap.String("id", ev.ResourceID))
			continue
		}
		w.Log.Debug("event", zap.String("operation", ev.Operation), zap.String("type", ev.ResourceType),
			zap.String("id", ev.ResourceID))
		w.Event(ev)
	}
}
