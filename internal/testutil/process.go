package testutil

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// process is a long-running program a test started (a daemon, or a program
// under test), its output collected.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when it has exited
	log  *lockedBuffer
	err  error // Wait's, once done is closed
}

// startProcess starts name with args; the test's cleanup stops it: SIGTERM
// (which dockerd, the registry and systemd-nspawn take as an orderly stop),
// then SIGKILL after grace.
func startProcess(t testing.TB, grace time.Duration, name string, args ...string) *process {
	t.Helper()
	return startProcessEnv(t, grace, nil, name, args...)
}

// startProcessEnv is startProcess with the test's environment plus env.
func startProcessEnv(t testing.TB, grace time.Duration, env []string, name string, args ...string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(name, args...), done: make(chan struct{}), log: &lockedBuffer{}}
	if env != nil {
		p.cmd.Env = append(os.Environ(), env...)
	}
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	// A child the process leaves behind may hold the output pipe open: do
	// not wait for it beyond this once the process itself has exited.
	p.cmd.WaitDelay = 2 * time.Second
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		if p.exited() {
			return
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(grace):
			t.Logf("%s did not stop within %v of SIGTERM; killing it", name, grace)
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// exited reports whether the process has exited.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Process is a program under test that a test started with StartProcess,
// its stdout and stderr collected together.
type Process struct{ p *process }

// StartProcess starts name with args and the test's environment plus env;
// its stdin is empty (not a terminal). The test's cleanup stops it if it
// still runs (SIGTERM, and SIGKILL 10 s later), and logs its output when the
// test failed.
func StartProcess(t testing.TB, env []string, name string, args ...string) *Process {
	t.Helper()
	p := &Process{startProcessEnv(t, 10*time.Second, append([]string{}, env...), name, args...)}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s output:\n%s", name, p.Output())
		}
	})
	return p
}

// Output is what the process printed so far.
func (p *Process) Output() string { return p.p.log.String() }

// Signal sends sig to the process.
func (p *Process) Signal(sig syscall.Signal) { _ = p.p.cmd.Process.Signal(sig) }

// Running reports whether the process has not exited yet.
func (p *Process) Running() bool { return !p.p.exited() }

// Wait waits up to timeout for the process to exit and returns its exit
// code (-1 when a signal ended it); it fails the test on timeout.
func (p *Process) Wait(t testing.TB, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.p.done:
	case <-time.After(timeout):
		t.Fatalf("process did not exit within %s", timeout)
	}
	var ee *exec.ExitError
	if errors.As(p.p.err, &ee) {
		return ee.ExitCode()
	}
	return 0
}
