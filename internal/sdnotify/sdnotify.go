// Package sdnotify tells systemd about a daemon's state over the sd_notify
// protocol: READY, STATUS, RELOADING, STOPPING and watchdog pings.
package sdnotify

import (
	"os"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"go.uber.org/zap"
)

// Notifier tells systemd about the daemon's state over the sd_notify
// protocol (NOTIFY_SOCKET). Without systemd (NOTIFY_SOCKET unset) every
// method is a no-op and WatchdogInterval is 0. A failure to send is logged
// (once at warn level, then at debug) and otherwise ignored: systemd's
// bookkeeping never stops the daemon.
//
// Its methods may be called from any goroutine.
type Notifier struct {
	log      *zap.Logger
	enabled  bool
	watchdog time.Duration

	mu     sync.Mutex
	warned bool
}

// New reads NOTIFY_SOCKET and WATCHDOG_USEC/WATCHDOG_PID once. The
// variables stay in the environment: go-systemd reads NOTIFY_SOCKET on every
// send, and the agent starts no child that could inherit them by mistake.
func New(log *zap.Logger) *Notifier {
	n := &Notifier{log: log, enabled: os.Getenv("NOTIFY_SOCKET") != ""}
	if !n.enabled {
		return n
	}
	iv, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		log.Warn("systemd watchdog disabled: bad WATCHDOG_USEC or WATCHDOG_PID", zap.Error(err))
	}
	n.watchdog = iv
	return n
}

// Ready sends READY=1 with status as the STATUS= line: startup (or a reload)
// has finished.
func (n *Notifier) Ready(status string) {
	n.send(daemon.SdNotifyReady + "\nSTATUS=" + oneLine(status))
}

// Status sends status as the STATUS= line systemctl status shows.
func (n *Notifier) Status(status string) { n.send("STATUS=" + oneLine(status)) }

// Reloading sends RELOADING=1 with MONOTONIC_USEC= set to now on
// CLOCK_MONOTONIC, as Type=notify-reload requires; Ready must follow once the
// reload is done.
func (n *Notifier) Reloading() {
	n.send(daemon.SdNotifyReloading + "\n" + daemon.SdNotifyMonotonicUsec())
}

// Stopping sends STOPPING=1: the daemon is shutting down.
func (n *Notifier) Stopping() { n.send(daemon.SdNotifyStopping) }

// WatchdogInterval is the watchdog timeout systemd set (WatchdogSec=), or 0
// when the watchdog is disabled or systemd is absent. The caller pings with
// Watchdog every half of it.
func (n *Notifier) WatchdogInterval() time.Duration { return n.watchdog }

// Watchdog sends WATCHDOG=1: the daemon's loop is alive. It is a no-op when
// the watchdog is disabled.
func (n *Notifier) Watchdog() {
	if n.watchdog > 0 {
		n.send(daemon.SdNotifyWatchdog)
	}
}

// send writes one notification datagram.
func (n *Notifier) send(state string) {
	if !n.enabled {
		return
	}
	if _, err := daemon.SdNotify(false, state); err != nil {
		n.mu.Lock()
		first := !n.warned
		n.warned = true
		n.mu.Unlock()
		field := strings.SplitN(state, "=", 2)[0]
		if first {
			n.log.Warn("sd_notify failed", zap.String("field", field), zap.Error(err))
		} else {
			n.log.Debug("sd_notify failed", zap.String("field", field), zap.Error(err))
		}
	}
}

// oneLine makes s safe as the value of one sd_notify field: a newline would
// start another field (a status could otherwise say READY=1).
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == 0 {
			return ' '
		}
		return r
	}, s)
}
