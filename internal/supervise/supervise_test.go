package supervise

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/secrets-agent/secrets-agent/internal/testutil"
)

// source is the variables Fetch returns, changed by the test.
type source struct {
	mu   sync.Mutex
	vars map[string]string
	err  error
}

func (s *source) set(name, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.vars = maps.Clone(s.vars)
	s.vars[name] = value
}

func (s *source) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err = err
}

func (s *source) fetch(context.Context) (map[string]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.vars), s.err
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

const script = `echo "start A=${A-unset} B=${B-unset}"; trap 'echo hup' HUP; trap 'exit 143' TERM; while :; do sleep 0.02; done`

// run starts Run in the background and returns its output and a channel
// with its exit code.
func run(t *testing.T, src *source, oc OnChange, only []string) (*syncBuf, chan int) {
	t.Helper()
	testutil.NeedTool(t, "sh")
	out := &syncBuf{}
	done := make(chan int, 1)
	go func() {
		code, err := Run(context.Background(), Options{Argv: []string{"sh", "-c", script}, Base: []string{"B=base"},
			Only: only, Fetch: src.fetch, OnChange: oc, Interval: 20 * time.Millisecond, Grace: 2 * time.Second,
			Stdin: strings.NewReader(""), Stdout: out, Stderr: out, Notes: out})
		if err != nil {
			t.Errorf("Run: %v", err)
		}
		done <- code
	}()
	testutil.Eventually(t, 5*time.Second, "started", func() bool { return strings.Contains(out.String(), "start") })
	return out, done
}

func TestRestartsOnceForAWatchedChangeAndNeverForOthers(t *testing.T) {
	src := &source{vars: map[string]string{"A": "1"}}
	out, done := run(t, src, OnChange{Mode: Restart}, nil)
	if !strings.Contains(out.String(), "start A=1 B=base") {
		t.Fatalf("first start: %q", out)
	}
	src.set("C", "new") // not given to the program: no restart
	time.Sleep(200 * time.Millisecond)
	src.set("A", "2")
	src.set("A", "3") // a burst
	testutil.Eventually(t, 5*time.Second, "restart", func() bool { return strings.Contains(out.String(), "start A=3") })
	time.Sleep(200 * time.Millisecond)
	if n := strings.Count(out.String(), "start "); n != 2 {
		t.Fatalf("%d starts, want 2:\n%s", n, out)
	}
	stopRun(t, out, done)
}

// stopRun ends Run by sending this process SIGTERM, which Run (catching it
// while it runs) forwards to the program.
func stopRun(t *testing.T, out *syncBuf, done chan int) {
	t.Helper()
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != 143 {
			t.Errorf("exit code %d, want 143:\n%s", code, out)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after SIGTERM")
	}
}

func TestSignalModeSignalsOncePerChangeAndKeepsRunningWithoutTheAgent(t *testing.T) {
	src := &source{vars: map[string]string{"A": "1"}}
	out, done := run(t, src, OnChange{Mode: Signal, Signal: syscall.SIGHUP}, []string{"A"})
	src.set("A", "2")
	testutil.Eventually(t, 5*time.Second, "hup", func() bool { return strings.Count(out.String(), "hup") == 1 })
	src.fail(errors.New("agent gone"))
	testutil.Eventually(t, 5*time.Second, "note", func() bool { return strings.Contains(out.String(), "keeps running") })
	src.fail(nil)
	src.set("A", "3")
	testutil.Eventually(t, 5*time.Second, "second hup", func() bool { return strings.Count(out.String(), "hup") == 2 })
	if n := strings.Count(out.String(), "start "); n != 1 {
		t.Fatalf("%d starts, want 1:\n%s", n, out)
	}
	stopRun(t, out, done)
}

func TestExitCodesAndStartFailures(t *testing.T) {
	testutil.NeedTool(t, "sh")
	src := &source{vars: map[string]string{}}
	for argv, want := range map[string]int{"exit 3": 3, "kill -HUP $$": 129} {
		code, err := Run(context.Background(), Options{Argv: []string{"sh", "-c", argv}, Fetch: src.fetch,
			Stdin: strings.NewReader(""), Stdout: &syncBuf{}, Stderr: &syncBuf{}, Notes: &syncBuf{}})
		if err != nil || code != want {
			t.Errorf("%s: %d %v, want %d", argv, code, err, want)
		}
	}
	code, err := Run(context.Background(), Options{Argv: []string{"/no/such"}, Fetch: src.fetch, Notes: &syncBuf{}})
	var se *StartError
	if code != ExitNotFound || !errors.As(err, &se) {
		t.Errorf("missing program: %d %v", code, err)
	}
	src.fail(errors.New("no agent"))
	if code, err := Run(context.Background(), Options{Argv: []string{"true"}, Fetch: src.fetch}); code != ExitFailed || err == nil {
		t.Errorf("fetch failure at start: %d %v", code, err)
	}
}

func TestParseOnChange(t *testing.T) {
	for in, want := range map[string]OnChange{
		"restart": {Mode: Restart}, "none": {Mode: None},
		"signal:HUP": {Mode: Signal, Signal: syscall.SIGHUP}, "signal:sigusr1": {Mode: Signal, Signal: syscall.SIGUSR1},
		"signal:15": {Mode: Signal, Signal: syscall.SIGTERM},
	} {
		if got, err := ParseOnChange(in); err != nil || got != want {
			t.Errorf("ParseOnChange(%q) = %+v, %v", in, got, err)
		}
	}
	for _, in := range []string{"reload", "signal:NOPE", "signal:", "signal:999"} {
		if _, err := ParseOnChange(in); err == nil {
			t.Errorf("ParseOnChange(%q) accepted", in)
		}
	}
}
