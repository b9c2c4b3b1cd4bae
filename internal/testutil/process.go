package testutil

import (
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// process is a long-running program a test started (a daemon), its output
// collected.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when it has exited
	log  *lockedBuffer
}

// startProcess starts name with args; the test's cleanup stops it: SIGTERM
// (which dockerd, the registry and systemd-nspawn take as an orderly stop),
// then SIGKILL after grace.
func startProcess(t testing.TB, grace time.Duration, name string, args ...string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(name, args...), done: make(chan struct{}), log: &lockedBuffer{}}
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
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
