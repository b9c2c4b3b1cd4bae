package testutil

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// AgentConfig is what an end-to-end test varies in the agent's config file.
type AgentConfig struct {
	URL, EnvironmentID, TokenFile  string
	Home, StateDir, Socket, EnvDir string
	DockerConfigDir                string // default ~/.docker
	PollInterval                   string // default "30s"; "0" disables
	Watch                          *bool  // default true
	User                           string // default: the running user
	AllowedRoots                   []string
	DockerMode                     string // default inline
	LogLevel                       string // default debug
	ProxyListen                    string // default 127.0.0.1:0
	ProxySystemTrust               bool   // add the proxy CA to the system store (only in a private mount namespace)
}

// WriteAgentConfig writes c as YAML into dir/config.yaml and returns its path.
// Empty paths default to folders below dir (Home dir/home, and so on).
func WriteAgentConfig(t testing.TB, dir string, c AgentConfig) string {
	t.Helper()
	def := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	def(&c.Home, filepath.Join(dir, "home"))
	def(&c.StateDir, filepath.Join(dir, "state"))
	def(&c.Socket, filepath.Join(dir, "agent.sock"))
	def(&c.EnvDir, filepath.Join(dir, "envdir"))
	def(&c.DockerConfigDir, "~/.docker")
	def(&c.PollInterval, "30s")
	def(&c.DockerMode, "inline")
	def(&c.LogLevel, "debug")
	def(&c.ProxyListen, "127.0.0.1:0")
	if len(c.AllowedRoots) == 0 {
		c.AllowedRoots = []string{"~"}
	}
	watch := true
	if c.Watch != nil {
		watch = *c.Watch
	}
	if err := os.MkdirAll(c.Home, 0o755); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "controlplane:\n  url: %q\n  environment_id: %q\n  token_file: %q\n  poll_interval: %s\n  watch: %v\n",
		c.URL, c.EnvironmentID, c.TokenFile, c.PollInterval, watch)
	if c.User != "" {
		fmt.Fprintf(&b, "user: %q\n", c.User)
	}
	fmt.Fprintf(&b, "home: %q\nstate_dir: %q\nsocket: %q\nready_timeout: 10s\n", c.Home, c.StateDir, c.Socket)
	fmt.Fprintf(&b, "injectors:\n  envprofile:\n    dir: %q\n  secretfile:\n    allowed_roots: [", c.EnvDir)
	for i, r := range c.AllowedRoots {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q", r)
	}
	fmt.Fprintf(&b, "]\n  dockercfg:\n    config_dir: %q\n    mode: %s\n", c.DockerConfigDir, c.DockerMode)
	fmt.Fprintf(&b, "proxy:\n  listen: %q\n  system_trust: %v\n", c.ProxyListen, c.ProxySystemTrust)
	fmt.Fprintf(&b, "log:\n  level: %s\n  format: json\n", c.LogLevel)
	p := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Agent is a secrets-agent process started by a test.
type Agent struct {
	Config string
	cmd    *exec.Cmd
	done   chan struct{}
	err    error
	mu     sync.Mutex
	log    bytes.Buffer
}

// AgentBin is the path of the built secrets-agent binary.
func AgentBin(t testing.TB) string { return filepath.Join(Binaries(t), "secrets-agent") }

// StartAgent runs `secrets-agent run --config cfg` with extra environment
// entries. The test's cleanup stops it with SIGTERM.
func StartAgent(t testing.TB, cfg string, env ...string) *Agent {
	t.Helper()
	return StartAgentVia(t, nil, cfg, env...)
}

// StartAgentVia is StartAgent with the agent run through wrapper, a command
// that execs its arguments in place (nsenter -t PID -m, for one): signals
// sent to the Agent reach the agent itself.
func StartAgentVia(t testing.TB, wrapper []string, cfg string, env ...string) *Agent {
	t.Helper()
	a := &Agent{Config: cfg, done: make(chan struct{})}
	args := append(append(slices.Clone(wrapper), AgentBin(t)), "run", "--config", cfg)
	a.cmd = exec.Command(args[0], args[1:]...)
	a.cmd.Env = append(os.Environ(), env...)
	a.cmd.Stdout = &lockedWriter{a: a}
	a.cmd.Stderr = &lockedWriter{a: a}
	if err := a.cmd.Start(); err != nil {
		t.Fatalf("start agent: %v", err)
	}
	go func() { a.err = a.cmd.Wait(); close(a.done) }()
	t.Cleanup(func() {
		a.Stop(t)
		if t.Failed() {
			t.Logf("agent log:\n%s", a.Log())
		}
	})
	return a
}

type lockedWriter struct{ a *Agent }

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.a.mu.Lock()
	defer w.a.mu.Unlock()
	return w.a.log.Write(p)
}

// Log returns everything the agent printed so far.
func (a *Agent) Log() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.log.String()
}

// Pid is the agent's process id.
func (a *Agent) Pid() int { return a.cmd.Process.Pid }

// Signal sends sig to the agent.
func (a *Agent) Signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	_ = a.cmd.Process.Signal(sig)
}

// Stop sends SIGTERM and waits up to 20 s; it returns the exit error.
func (a *Agent) Stop(t testing.TB) error {
	t.Helper()
	select {
	case <-a.done:
		return a.err
	default:
	}
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.done:
	case <-time.After(20 * time.Second):
		_ = a.cmd.Process.Kill()
		<-a.done
		t.Errorf("agent did not stop within 20s of SIGTERM")
	}
	return a.err
}

// Kill sends SIGKILL and waits.
func (a *Agent) Kill() {
	_ = a.cmd.Process.Kill()
	<-a.done
}

// Exited reports whether the process has ended, and its error.
func (a *Agent) Exited() (bool, error) {
	select {
	case <-a.done:
		return true, a.err
	default:
		return false, nil
	}
}

// RunAgent runs the secrets-agent binary with args to completion and returns
// its stdout, stderr and exit code.
func RunAgent(t testing.TB, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, AgentBin(t), args...)
	cmd.Env = append(os.Environ(), env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("run secrets-agent %v: %v", args, err)
	}
	return o.String(), e.String(), code
}

// Eventually polls cond every 10 ms until it is true or timeout passes, then
// fails the test with msg.
func Eventually(t testing.TB, timeout time.Duration, msg string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v: %s", timeout, msg)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
