package sdnotify

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
	"golang.org/x/sys/unix"
)

// listenNotify listens on a real unixgram NOTIFY_SOCKET in a temp dir, as
// systemd does, and points the environment at it.
func listenNotify(t *testing.T) *net.UnixConn {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	return conn
}

// receive returns the next datagram, waiting up to 10 s.
func receive(t *testing.T, conn *net.UnixConn) string {
	t.Helper()
	buf := make([]byte, 4096)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("no notification arrived: %v", err)
	}
	return string(buf[:n])
}

func monotonicUsec(t *testing.T) int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatal(err)
	}
	return ts.Nano() / 1000
}

func TestNotifierSendsEachMessageAsSystemdReadsIt(t *testing.T) {
	conn := listenNotify(t)
	t.Setenv("WATCHDOG_USEC", "4000000")
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	n := New(zaptest.NewLogger(t))

	if got := n.WatchdogInterval(); got != 4*time.Second {
		t.Errorf("WatchdogInterval() = %v, want 4s", got)
	}
	n.Ready("ready: 3 secrets applied")
	if got, want := receive(t, conn), "READY=1\nSTATUS=ready: 3 secrets applied"; got != want {
		t.Errorf("Ready sent %q, want %q", got, want)
	}
	n.Status("degraded: control plane unreachable")
	if got, want := receive(t, conn), "STATUS=degraded: control plane unreachable"; got != want {
		t.Errorf("Status sent %q, want %q", got, want)
	}
	n.Watchdog()
	if got := receive(t, conn); got != "WATCHDOG=1" {
		t.Errorf("Watchdog sent %q, want WATCHDOG=1", got)
	}

	before := monotonicUsec(t)
	n.Reloading()
	msg := receive(t, conn)
	after := monotonicUsec(t)
	rest, ok := strings.CutPrefix(msg, "RELOADING=1\nMONOTONIC_USEC=")
	usec, err := strconv.ParseInt(strings.TrimSuffix(rest, "\n"), 10, 64)
	if !ok || err != nil || usec < before || usec > after {
		t.Errorf("Reloading sent %q; want RELOADING=1 and MONOTONIC_USEC= between %d and %d", msg, before, after)
	}

	n.Stopping()
	if got := receive(t, conn); got != "STOPPING=1" {
		t.Errorf("Stopping sent %q, want STOPPING=1", got)
	}
}

func TestNotifierStatusCannotAddFields(t *testing.T) {
	conn := listenNotify(t)
	n := New(zaptest.NewLogger(t))
	n.Status("bad\nREADY=1\r\nx")
	if got, want := receive(t, conn), "STATUS=bad READY=1  x"; got != want {
		t.Errorf("Status sent %q, want one line %q", got, want)
	}
}

func TestNotifierWithoutSystemdDoesNothing(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	t.Setenv("WATCHDOG_USEC", "1000000")
	n := New(zaptest.NewLogger(t))
	if iv := n.WatchdogInterval(); iv != 0 {
		t.Errorf("WatchdogInterval() without NOTIFY_SOCKET = %v, want 0", iv)
	}
	// Nothing to observe but that none of these fails or blocks.
	n.Ready("x")
	n.Status("x")
	n.Reloading()
	n.Watchdog()
	n.Stopping()
}

func TestNotifierWatchdogDisabled(t *testing.T) {
	for name, env := range map[string][2]string{
		"no WATCHDOG_USEC":         {"", ""},
		"another process's":        {"1000000", "1"},
		"unparsable WATCHDOG_USEC": {"soon", ""},
	} {
		t.Run(name, func(t *testing.T) {
			conn := listenNotify(t)
			t.Setenv("WATCHDOG_USEC", env[0])
			t.Setenv("WATCHDOG_PID", env[1])
			n := New(zaptest.NewLogger(t))
			if iv := n.WatchdogInterval(); iv != 0 {
				t.Errorf("WatchdogInterval() = %v, want 0", iv)
			}
			n.Watchdog() // must send nothing: the next datagram is the status
			n.Status("after")
			if got := receive(t, conn); got != "STATUS=after" {
				t.Errorf("got %q, want only STATUS=after", got)
			}
		})
	}
}

func TestNotifierSurvivesAGoneSocket(t *testing.T) {
	conn := listenNotify(t)
	n := New(zaptest.NewLogger(t))
	conn.Close()
	n.Ready("x") // logged, not fatal
	n.Status("y")
}
