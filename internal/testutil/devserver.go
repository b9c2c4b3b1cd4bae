package testutil

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Devserver is a running `secrets-devserver serve` on a data dir of its own,
// for end-to-end tests. Its methods fail the test on any error.
type Devserver struct {
	Dir  string // the data directory
	URL  string // http://127.0.0.1:port, the control plane's base URL
	Addr string // 127.0.0.1:port

	bin  string
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
	log  *lockedBuffer
}

// Mount is where a secret created by Devserver.CreateSecret goes: set
// exactly one field.
type Mount struct {
	Env      bool   // the environment variable named like the secret
	File     string // an absolute file path
	Registry string // a registry host; the value is base64(user:password)
	GitHost  string // a git host; the value is the token
	APIOnly  bool
	// ProxyHeader and ProxyHosts, both set, make it a credential-proxy
	// secret (--proxy-header, --proxy-host).
	ProxyHeader string
	ProxyHosts  []string
}

// lockedBuffer collects the server's output while it runs.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// StartDevserver builds the binaries (once per test process) and starts
// `secrets-devserver serve --data <t.TempDir()> --listen 127.0.0.1:0`. It
// returns once DIR/address exists. t.Cleanup stops the server (SIGTERM) and,
// when the test failed, logs its output.
func StartDevserver(t testing.TB) *Devserver {
	t.Helper()
	d := &Devserver{Dir: filepath.Join(t.TempDir(), "devserver"), bin: filepath.Join(Binaries(t), "secrets-devserver"), log: &lockedBuffer{}}
	d.start(t, "127.0.0.1:0")
	t.Cleanup(func() {
		if d.running() {
			d.Stop(t)
		}
		if t.Failed() {
			t.Logf("secrets-devserver output:\n%s", d.log.String())
		}
	})
	return d
}

// running reports whether the server process is still alive.
func (d *Devserver) running() bool {
	if d.cmd == nil {
		return false
	}
	select {
	case <-d.done:
		return false
	default:
		return true
	}
}

// tryStart runs serve on listen and waits for the address file. It returns
// false when the process exits before writing it (the address is taken).
func (d *Devserver) tryStart(t testing.TB, listen string) bool {
	t.Helper()
	// A killed server leaves its address file behind: remove it, so the wait
	// below sees the new server's.
	if err := os.Remove(filepath.Join(d.Dir, "address")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("remove stale address file: %v", err)
	}
	cmd := exec.Command(d.bin, "serve", "--data", d.Dir, "--listen", listen)
	cmd.Stdout, cmd.Stderr = d.log, d.log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start secrets-devserver: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	d.cmd, d.done = cmd, done

	deadline := time.After(10 * time.Second)
	for {
		b, err := os.ReadFile(filepath.Join(d.Dir, "address"))
		if err == nil && len(b) > 0 {
			d.Addr = strings.TrimSpace(string(b))
			d.URL = "http://" + d.Addr
			return true
		}
		select {
		case <-done:
			return false
		case <-deadline:
			_ = cmd.Process.Kill()
			<-done
			t.Fatalf("secrets-devserver wrote no address file within 10s; output:\n%s", d.log.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (d *Devserver) start(t testing.TB, listen string) {
	t.Helper()
	if !d.tryStart(t, listen) {
		t.Fatalf("secrets-devserver exited at start (%v); output:\n%s", d.cmd.ProcessState, d.log.String())
	}
}

// Start starts the server again on the same data dir, on the same port when
// it is still free and on a new one otherwise (URL and Addr are updated).
func (d *Devserver) Start(t testing.TB) {
	t.Helper()
	if d.running() {
		t.Fatal("Devserver.Start: the server is running")
	}
	if d.Addr != "" && d.tryStart(t, d.Addr) {
		return
	}
	d.start(t, "127.0.0.1:0")
}

// Stop sends SIGTERM and waits (10 s at most) for a clean exit.
func (d *Devserver) Stop(t testing.TB) {
	t.Helper()
	d.signal(t, syscall.SIGTERM)
	if !d.cmd.ProcessState.Success() {
		t.Errorf("secrets-devserver did not exit cleanly on SIGTERM: %v", d.cmd.ProcessState)
	}
}

// Kill sends SIGKILL and waits: a crash, leaving the address file behind.
func (d *Devserver) Kill(t testing.TB) {
	t.Helper()
	d.signal(t, syscall.SIGKILL)
}

func (d *Devserver) signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if !d.running() {
		t.Fatal("Devserver: the server is not running")
	}
	if err := d.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal secrets-devserver: %v", err)
	}
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
		t.Fatalf("secrets-devserver did not exit within 10s of %v", sig)
	}
}

// run runs a client subcommand against the server with stdin and returns
// its standard output. On failure it fails the test with the subcommand's
// stderr (which never holds a value).
func (d *Devserver) run(t testing.TB, stdin []byte, args ...string) []byte {
	t.Helper()
	args = append(args, "--data", d.Dir)
	cmd := exec.Command(d.bin, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("secrets-devserver %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// CreateEnv creates an environment of org, project and user and returns its
// id and token.
func (d *Devserver) CreateEnv(t testing.TB, org, project, user string) (envID, token string) {
	t.Helper()
	out := d.run(t, nil, "env", "create", "--org", org, "--project", project, "--user", user)
	var resp struct {
		EnvironmentID string `json:"environmentId"`
		Token         string `json:"token"`
	}
	if err := json.Unmarshal(out, &resp); err != nil || resp.EnvironmentID == "" || resp.Token == "" {
		t.Fatalf("env create printed %q: %v", out, err)
	}
	return resp.EnvironmentID, resp.Token
}

// CreateSecret creates a secret of scope ("organization", "project" or
// "user") owned by owner, with the value passed on stdin, and returns its id.
func (d *Devserver) CreateSecret(t testing.TB, scope, owner, name string, mount Mount, value []byte) (id string) {
	t.Helper()
	args := []string{"secret", "create", "--scope", scope, "--owner", owner, "--name", name, "--value-stdin"}
	switch {
	case mount.Env:
		args = append(args, "--env")
	case mount.File != "":
		args = append(args, "--file", mount.File)
	case mount.Registry != "":
		args = append(args, "--registry", mount.Registry)
	case mount.GitHost != "":
		args = append(args, "--git-host", mount.GitHost)
	case mount.APIOnly:
		args = append(args, "--api-only")
	}
	if mount.ProxyHeader != "" {
		args = append(args, "--proxy-header", mount.ProxyHeader)
	}
	for _, h := range mount.ProxyHosts {
		args = append(args, "--proxy-host", h)
	}
	id = strings.TrimSpace(string(d.run(t, value, args...)))
	if id == "" {
		t.Fatal("secret create printed no id")
	}
	return id
}

// UpdateSecret sets the value of secret id (passed on stdin, byte-exact).
func (d *Devserver) UpdateSecret(t testing.TB, id string, value []byte) {
	t.Helper()
	d.run(t, value, "secret", "update", "--id", id, "--value-stdin")
}

// DeleteSecret deletes secret id.
func (d *Devserver) DeleteSecret(t testing.TB, id string) {
	t.Helper()
	d.run(t, nil, "secret", "delete", "--id", id)
}
