package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/secrets-agent/secrets-agent/config"
	"github.com/secrets-agent/secrets-agent/internal/testutil"
	"github.com/secrets-agent/secrets-agent/secrets"
)

// Values the fake backend holds; no route but env and credentials may show them.
const (
	envValue      = "s3cr3t-env-value-7f1c"
	registryValue = "s3cr3t-registry-pass-2b9d"
	gitValue      = "s3cr3t-git-token-8e0a"
)

// fakeBackend stands in for *Agent: the socket's job is to serve whatever a
// Backend says, and a real agent needs a control plane and injectors.
type fakeBackend struct {
	mu      sync.Mutex
	status  Status
	syncs   int
	applied chan struct{}
	// asked is closed when Applied is first called (a wait is being served).
	asked     chan struct{}
	askedOnce sync.Once
}

func newFakeBackend(state State) *fakeBackend {
	return &fakeBackend{status: fullStatus(state), applied: make(chan struct{}), asked: make(chan struct{})}
}

func (f *fakeBackend) Status() Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status
}

func (f *fakeBackend) Sync(ctx context.Context) PassReport {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.syncs++
	f.status.Passes++
	rep := PassReport{Started: time.Now(), Duration: time.Millisecond, Status: f.status}
	if f.status.State != Ready {
		rep.Error = "fetch environment: unavailable"
	}
	return rep
}

func (f *fakeBackend) Applied() <-chan struct{} {
	f.askedOnce.Do(func() { close(f.asked) })
	return f.applied
}

func (f *fakeBackend) EnvFragment(format string) ([]byte, error) {
	switch format {
	case "fish":
		return []byte("set -gx API_TOKEN '" + envValue + "'\n"), nil
	case "dotenv":
		return []byte("API_TOKEN='" + envValue + "'\n"), nil
	}
	return []byte("export API_TOKEN='" + envValue + "'\n"), nil
}

func (f *fakeBackend) EnvFormats() []string { return []string{"sh", "fish", "dotenv"} }

func (f *fakeBackend) RegistryCredential(host string) (string, string, bool) {
	switch host {
	case "registry.example.com":
		return "robot", registryValue, true
	case secrets.DockerHubKey:
		return "hubuser", registryValue, true
	}
	return "", "", false
}

func (f *fakeBackend) Credential(k secrets.MountKind, host string) (string, string, bool) {
	if k == secrets.MountGitCredential && host == "git.example.com:8443" {
		return "oauth2", gitValue, true
	}
	return "", "", false
}

func (f *fakeBackend) RegistryHosts() []string {
	return []string{secrets.DockerHubKey, "registry.example.com"}
}

// fullStatus has every field set, so that its JSON shows every field.
func fullStatus(state State) Status {
	t := time.Date(2025, 5, 2, 9, 14, 3, 0, time.UTC)
	return Status{
		SchemaVersion: 1, State: state, Version: "test", ControlPlane: "http://127.0.0.1:1",
		EnvironmentID: "env-1", FirstApplied: t, LastSuccess: t, LastError: "fetch environment: unavailable",
		LastErrorTime: t, DegradedSince: t, WatchConnected: true, Passes: 3,
		LastChange: t, LastChangeWrites: 2, ConfigError: "config c.yaml: no_such_key: line 9: unknown key", ConfigErrorTime: t,
		Injectors: []InjectorStatus{{Name: "envprofile", Enabled: true, Applied: 1, Failed: 1, Writes: 2, Error: "dir gone", Mode: "helper"}},
		Secrets: []SecretStatus{{
			ID: "s-2", Name: "API_TOKEN", Scope: "user", Source: "control-plane", SourceRef: "s-2", Mount: "env", Target: "API_TOKEN",
			Outcome: "created", Note: "n", Error: "e", LastChanged: t, LastAction: "created",
			Shadows: []ShadowedSecret{{ID: "s-1", Name: "API_TOKEN", Scope: "project"}},
		}},
	}
}

// startSocket serves b at dir/a.sock and stops it when the test ends.
func startSocket(t *testing.T, b Backend, cfg *config.Config, log *zap.Logger) string {
	t.Helper()
	if cfg == nil {
		cfg = &config.Config{}
	}
	if cfg.Socket == "" {
		cfg.Socket = filepath.Join(t.TempDir(), "a.sock")
	}
	if log == nil {
		log = zap.NewNop()
	}
	stop, err := Serve(t.Context(), b, cfg, log)
	if err != nil {
		t.Fatalf("Serve: %v", err)
	}
	t.Cleanup(stop)
	return cfg.Socket
}

func ctx10s(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestClientRoundTripsThroughSocket(t *testing.T) {
	b := newFakeBackend(Ready)
	c := NewClient(startSocket(t, b, nil, nil))
	ctx := ctx10s(t)

	st, err := c.Status(ctx)
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	if st.State != Ready || st.EnvironmentID != "env-1" || len(st.Secrets) != 1 || st.Secrets[0].Shadows[0].Scope != "project" {
		t.Errorf("Status = %+v, want the backend's", st)
	}

	rep, err := c.Sync(ctx)
	if err != nil {
		t.Fatalf("Sync: %v", err)
	}
	if !rep.OK() || rep.Status.Passes != 4 || rep.Duration != time.Millisecond {
		t.Errorf("Sync = %+v, want an OK report after pass 4", rep)
	}

	for format, want := range map[string]string{
		"sh": "export API_TOKEN=", "fish": "set -gx API_TOKEN", "dotenv": "API_TOKEN=",
	} {
		frag, err := c.Env(ctx, format)
		if err != nil || !strings.HasPrefix(string(frag), want) {
			t.Errorf("Env(%s) = %q, %v; want it to start with %q", format, frag, err, want)
		}
	}
	if _, err := c.Env(ctx, "csh"); err == nil || !strings.Contains(err.Error(), "want sh, fish or dotenv") {
		t.Errorf("Env(csh) error = %v, want one naming the formats", err)
	}

	for _, host := range []string{"registry.example.com", "https://registry.example.com/v2/", "docker.io", secrets.DockerHubKey} {
		u, p, err := c.Credential(ctx, host)
		if err != nil || p != registryValue || u == "" {
			t.Errorf("Credential(%s) = %q, %v; want the registry user and password", host, u, err)
		}
	}
	var nf *NotFoundError
	if _, _, err := c.Credential(ctx, "ghcr.io"); !errors.As(err, &nf) || nf.Host != "ghcr.io" {
		t.Errorf("Credential(ghcr.io) error = %v, want a *NotFoundError", err)
	}

	hosts, err := c.Hosts(ctx)
	if err != nil || !slices.Equal(hosts, b.RegistryHosts()) {
		t.Errorf("Hosts = %v, %v; want %v", hosts, err, b.RegistryHosts())
	}

	// git's route: the host as git names it (host:port), in any case.
	if u, p, err := c.GitCredential(ctx, "Git.Example.com:8443"); err != nil || u != "oauth2" || p != gitValue {
		t.Errorf("GitCredential = %q, %v; want the git user and token", u, err)
	}
	if _, _, err := c.GitCredential(ctx, "registry.example.com"); !errors.As(err, &nf) {
		t.Errorf("GitCredential of a registry host: %v, want a *NotFoundError", err)
	}
}

func TestWaitReturnsOnceTheFirstPassIsApplied(t *testing.T) {
	b := newFakeBackend(Starting)
	c := NewClient(startSocket(t, b, nil, nil))
	ctx := ctx10s(t)

	if err := c.Wait(ctx, 0); !errors.Is(err, ErrWaitTimeout) {
		t.Fatalf("Wait before the first pass = %v, want ErrWaitTimeout", err)
	}
	got := make(chan error, 1)
	go func() { got <- c.Wait(ctx, 10*time.Second) }()
	close(b.applied)
	if err := <-got; err != nil {
		t.Fatalf("Wait once applied = %v, want nil", err)
	}
	if err := c.Wait(ctx, 0); err != nil {
		t.Fatalf("Wait after the first pass = %v, want nil at once", err)
	}
}

func TestOnlyDocumentedRoutesAnswer(t *testing.T) {
	c := NewClient(startSocket(t, newFakeBackend(Ready), nil, nil))
	ctx := ctx10s(t)
	for _, tc := range []struct{ method, route string }{
		{"GET", "/v1/secrets"}, {"GET", "/"}, {"POST", routeStatus}, {"GET", routeSync},
	} {
		resp, err := c.do(ctx, tc.method, tc.route, nil)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.method, tc.route, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode < 400 || strings.Contains(string(body), envValue) || strings.Contains(string(body), registryValue) {
			t.Errorf("%s %s = %d %q, want a 4xx without values", tc.method, tc.route, resp.StatusCode, body)
		}
	}
}

func TestUnreachableAgentIsErrUnreachable(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, "stale.sock")
	makeStaleSocket(t, stale)
	for _, path := range []string{filepath.Join(dir, "missing.sock"), stale} {
		_, err := NewClient(path).Status(ctx10s(t))
		if !errors.Is(err, ErrUnreachable) {
			t.Errorf("Status on %s = %v, want ErrUnreachable", filepath.Base(path), err)
		}
	}
}

func TestSocketIsCreatedWithItsFinalMode(t *testing.T) {
	group := strconv.Itoa(os.Getgid()) // a group we are in, so that chgrp works without root
	for _, tc := range []struct {
		name, group string
		mode        os.FileMode
	}{
		{"no group", "", 0o600},
		{"group", group, 0o660},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "run", "a.sock")
			startSocket(t, newFakeBackend(Ready), &config.Config{Socket: path, SocketGroup: tc.group}, nil)
			fi, err := os.Lstat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != tc.mode {
				t.Errorf("socket mode = %v, want socket %v", fi.Mode(), tc.mode)
			}
			if tc.group != "" && fi.Sys().(*syscall.Stat_t).Gid != uint32(os.Getgid()) {
				t.Errorf("socket gid = %d, want %d", fi.Sys().(*syscall.Stat_t).Gid, os.Getgid())
			}
			dfi, err := os.Stat(filepath.Dir(path))
			if err != nil {
				t.Fatal(err)
			}
			wantDir := os.FileMode(0o700)
			if tc.group != "" {
				wantDir = 0o755
			}
			if dfi.Mode().Perm() != wantDir {
				t.Errorf("created parent mode = %v, want %v", dfi.Mode().Perm(), wantDir)
			}
			entries, _ := os.ReadDir(filepath.Dir(path))
			if len(entries) != 1 {
				t.Errorf("socket dir holds %d entries, want only the socket (no temp dir left)", len(entries))
			}
		})
	}
}

// makeStaleSocket leaves a socket file nobody listens on, as a crash does.
func makeStaleSocket(t *testing.T, path string) {
	t.Helper()
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
}

func TestStaleSocketIsReplaced(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.sock")
	makeStaleSocket(t, path)
	startSocket(t, newFakeBackend(Ready), &config.Config{Socket: path}, nil)
	if _, err := NewClient(path).Status(ctx10s(t)); err != nil {
		t.Fatalf("Status after replacing a stale socket: %v", err)
	}
}

func TestSecondAgentOnLiveSocketFails(t *testing.T) {
	path := startSocket(t, newFakeBackend(Ready), nil, nil)
	stop, err := Serve(t.Context(), newFakeBackend(Ready), &config.Config{Socket: path}, zap.NewNop())
	if err == nil {
		stop()
		t.Fatal("a second server on a live socket started")
	}
	if want := "another secrets-agent is serving " + path; !strings.Contains(err.Error(), want) {
		t.Errorf("error = %q, want it to say %q", err, want)
	}
	if _, err := NewClient(path).Status(ctx10s(t)); err != nil {
		t.Errorf("the first agent stopped answering: %v", err)
	}
}

func TestPathThatIsNotASocketIsKept(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "a.sock")
	if err := os.WriteFile(file, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.sock")
	if err := os.Symlink(filepath.Join(dir, "elsewhere"), link); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{file, link} {
		if stop, err := Serve(t.Context(), newFakeBackend(Ready), &config.Config{Socket: path}, zap.NewNop()); err == nil {
			stop()
			t.Errorf("served on %s, which is not a socket", filepath.Base(path))
		}
	}
	if b, _ := os.ReadFile(file); string(b) != "keep me" {
		t.Errorf("the file at the socket path was changed: %q", b)
	}
}

func TestStopEndsWaitsAndRemovesTheSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.sock")
	b := newFakeBackend(Starting)
	stop, err := Serve(t.Context(), b, &config.Config{Socket: path}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() { got <- NewClient(path).Wait(ctx10s(t), time.Hour) }()
	select { // stop while the wait is being served
	case <-b.asked:
	case <-time.After(10 * time.Second):
		t.Fatal("the wait request never reached the backend")
	}
	stop()
	stop() // a second call is harmless
	if err := <-got; err == nil {
		t.Error("Wait returned nil although the first pass never applied")
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket file after stop: %v, want it removed", err)
	}
}

// TestHelperPeerClient is not a test: TestPeerWithOtherUIDIsRefused runs the
// test binary as another user with this test selected, to be a real peer with
// another uid. It prints what Status returned.
func TestHelperPeerClient(t *testing.T) {
	path := os.Getenv("SECRETS_AGENT_TEST_PEER_SOCKET")
	if path == "" {
		return
	}
	_, err := NewClient(path).Status(context.Background())
	switch {
	case errors.Is(err, ErrRefused):
		fmt.Println("PEER: refused:", err)
	case err != nil:
		fmt.Println("PEER: error:", err)
	default:
		fmt.Println("PEER: served")
	}
	os.Exit(0)
}

func TestPeerWithOtherUIDIsRefused(t *testing.T) {
	testutil.NeedRoot(t, "connect to the socket as nobody")
	dir := t.TempDir()
	// t.TempDir's directories are 0700: open them so that nobody can reach
	// the socket and run the copied test binary.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	core, logs := observer.New(zapcore.WarnLevel)
	path := startSocket(t, newFakeBackend(Ready), &config.Config{Socket: filepath.Join(dir, "a.sock")}, zap.New(core))
	// Widen the file's mode so the kernel lets nobody connect: what must
	// refuse them is the SO_PEERCRED check, not the mode.
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "peer.test")
	copyFile(t, self, bin)

	cmd := exec.CommandContext(ctx10s(t), bin, "-test.run=^TestHelperPeerClient$")
	cmd.Env = append(os.Environ(), "SECRETS_AGENT_TEST_PEER_SOCKET="+path)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("peer as nobody: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "PEER: refused: ") || !strings.Contains(string(out), "uid 65534") {
		t.Errorf("peer as nobody got:\n%s\nwant a refusal naming uid 65534", out)
	}
	refusals := logs.FilterMessage("status socket: refused a peer").FilterField(zap.Uint32("uid", 65534))
	if refusals.Len() == 0 {
		t.Errorf("no refusal logged with uid 65534; logs: %v", logs.All())
	}
	// Root is still served.
	if _, err := NewClient(path).Status(ctx10s(t)); err != nil {
		t.Errorf("root refused: %v", err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// documentedFields returns the field paths docs/status-schema.md lists in the
// first column of its status tables ("schemaVersion", "secrets[].shadows[].id").
func documentedFields(t *testing.T) []string {
	t.Helper()
	f, err := os.Open(filepath.Join(testutil.ModuleRoot(t), "docs", "status-schema.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	row := regexp.MustCompile("^\\| `([A-Za-z\\[\\].]+)` \\|")
	var fields []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "## `secrets-agent sync") {
			break // the pass report's section is prose, not the status object
		}
		if m := row.FindStringSubmatch(sc.Text()); m != nil {
			fields = append(fields, m[1])
		}
	}
	sort.Strings(fields)
	return fields
}

// jsonFields returns the field paths of a decoded JSON value, arrays as "[]".
func jsonFields(prefix string, v any, out map[string]bool) {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			out[prefix+k] = true
			jsonFields(prefix+k+".", e, out)
		}
	case []any:
		p := strings.TrimSuffix(prefix, ".") + "[]."
		for _, e := range v {
			jsonFields(p, e, out)
		}
	}
}

func TestStatusJSONMatchesDocumentedSchema(t *testing.T) {
	path := startSocket(t, newFakeBackend(Degraded), nil, nil)
	hc := NewClient(path)
	resp, err := hc.do(ctx10s(t), http.MethodGet, routeStatus, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{envValue, registryValue} {
		if strings.Contains(string(raw), v) {
			t.Errorf("status JSON holds a secret value: %s", raw)
		}
	}
	var decoded any
	if err := json.Unmarshal(raw, &decoded); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	jsonFields("", decoded, got)
	var encoded []string
	for k := range got {
		encoded = append(encoded, k)
	}
	sort.Strings(encoded)
	documented := documentedFields(t)
	if !slices.Equal(encoded, documented) {
		t.Errorf("status JSON fields and docs/status-schema.md differ\n encoded:    %v\n documented: %v", encoded, documented)
	}
	if !strings.Contains(string(raw), `"schemaVersion":1`) {
		t.Errorf("status JSON lacks schemaVersion 1: %s", raw)
	}
}

// TestHelperActivatedAgent is not a test: TestSocketActivationIsUsed runs the
// test binary with a listening socket as fd 3 and LISTEN_FDS=1, as systemd
// does, and this serves it. LISTEN_PID has to be the process's own pid, which
// only the process itself knows before systemd's exec; it is set here.
func TestHelperActivatedAgent(t *testing.T) {
	unused := os.Getenv("SECRETS_AGENT_TEST_ACTIVATED")
	if unused == "" {
		return
	}
	os.Setenv("LISTEN_PID", strconv.Itoa(os.Getpid()))
	stop, err := Serve(context.Background(), newFakeBackend(Ready), &config.Config{Socket: unused}, zap.NewNop())
	if err != nil {
		fmt.Println("ACTIVATED: error:", err)
		os.Exit(1)
	}
	fmt.Println("ACTIVATED: serving")
	_, _ = io.Copy(io.Discard, os.Stdin) // until the test closes stdin
	stop()
	os.Exit(0)
}

func TestSocketActivationIsUsed(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "activated.sock")
	unused := filepath.Join(dir, "configured.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	f, err := ln.File()
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	defer f.Close()
	if err := os.Chmod(path, 0o666); err != nil { // as a careless .socket unit might leave it
		t.Fatal(err)
	}

	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx10s(t), self, "-test.run=^TestHelperActivatedAgent$")
	cmd.Env = append(os.Environ(), "SECRETS_AGENT_TEST_ACTIVATED="+unused, "LISTEN_FDS=1")
	cmd.ExtraFiles = []*os.File{f} // fd 3, where systemd puts the first socket
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	if !strings.Contains(line, "ACTIVATED: serving") {
		stdin.Close()
		cmd.Wait()
		t.Fatalf("activated agent: %q", line)
	}
	if _, err := NewClient(path).Status(ctx10s(t)); err != nil {
		t.Errorf("Status on the activated socket: %v", err)
	}
	if fi, err := os.Lstat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("activated socket not narrowed to 0600 for the environment's user: %v %v", fi.Mode(), err)
	}
	if _, err := os.Lstat(unused); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the configured socket was bound although systemd passed one: %v", err)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Errorf("activated agent: %v", err)
	}
	if _, err := os.Lstat(path); err != nil {
		t.Errorf("stop removed systemd's socket file: %v", err)
	}
}
