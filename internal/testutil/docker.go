package testutil

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Dockerd is a docker daemon a test started for itself: its own socket,
// exec root and pid file under a temp dir, its images under the cache
// (CacheDir()/docker, so imported images survive between runs), no iptables,
// no bridge: containers use the host's network.
type Dockerd struct {
	// Host is the daemon's address for DOCKER_HOST (unix://...).
	Host string
	*process
}

// CacheDir is where the live tests keep what is slow to make: the Debian
// rootfs, docker's images, the devcontainer CLI. $LIVE_TEST_CACHE (not
// SECRETS_AGENT_*: the agent the tests start would refuse an unknown key),
// default /var/cache/secrets-agent-test, as scripts/live-rootfs.sh uses.
func CacheDir() string {
	if d := os.Getenv("LIVE_TEST_CACHE"); d != "" {
		return d
	}
	return "/var/cache/secrets-agent-test"
}

// StartDockerd starts dockerd and returns once it answers; the test's
// cleanup stops it (SIGTERM, then SIGKILL after 20 s). It needs root.
func StartDockerd(t testing.TB) *Dockerd {
	t.Helper()
	NeedRoot(t, "run dockerd")
	bin := NeedTool(t, "dockerd")
	docker := NeedTool(t, "docker")
	// A short path: the daemon's sockets must fit in sun_path.
	run, err := os.MkdirTemp("", "sa-dockerd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // after the daemon stopped (cleanups run last first)
		unmountUnder(t, run) // dockerd leaves exec/netns/default mounted
		os.RemoveAll(run)
	})
	data := filepath.Join(CacheDir(), "docker")
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	d := &Dockerd{Host: "unix://" + filepath.Join(run, "docker.sock")}
	// Registered before the daemon's own cleanup, so it runs after the stop.
	t.Cleanup(func() {
		if t.Failed() {
			lines := strings.Split(strings.TrimSpace(d.log.String()), "\n")
			t.Logf("dockerd output (the last 30 lines):\n%s", strings.Join(lines[max(0, len(lines)-30):], "\n"))
		}
	})
	d.process = startProcess(t, 20*time.Second, bin, "--iptables=false", "--ip6tables=false", "--bridge=none",
		"--storage-driver=overlay2", "--data-root="+data, "--exec-root="+filepath.Join(run, "exec"), "--host="+d.Host,
		"--pidfile="+filepath.Join(run, "docker.pid"))
	deadline := time.Now().Add(60 * time.Second)
	for {
		cmd := exec.Command(docker, "version")
		cmd.Env = append(os.Environ(), "DOCKER_HOST="+d.Host)
		if cmd.Run() == nil {
			return d
		}
		if d.exited() {
			t.Fatalf("dockerd exited while starting:\n%s", d.log.String())
		}
		if time.Now().After(deadline) {
			t.Fatalf("dockerd did not answer within 60s:\n%s", d.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Docker runs the docker CLI bin (a path, or "docker" for the one on PATH)
// against d with env added, and returns its combined output and error.
func (d *Dockerd) Docker(bin string, env []string, args ...string) (string, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(append(os.Environ(), "DOCKER_HOST="+d.Host), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// Must is Docker with the CLI on PATH that fails the test on an error.
func (d *Dockerd) Must(t testing.TB, args ...string) string {
	t.Helper()
	out, err := d.Docker("docker", nil, args...)
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// HasImage reports whether the daemon has image ref.
func (d *Dockerd) HasImage(ref string) bool {
	_, err := d.Docker("docker", nil, "image", "inspect", ref)
	return err == nil
}

// ImportDir makes image ref from the directory dir (docker import of its
// tarball) unless the daemon has it already; images live in the cache.
func (d *Dockerd) ImportDir(t testing.TB, dir, ref string) {
	t.Helper()
	if d.HasImage(ref) {
		return
	}
	cmd := exec.Command("sh", "-c", `tar -C "$1" --exclude=./.secrets-agent-stamp -c . | docker import - "$2"`, "_", dir, ref)
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+d.Host)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("docker import %s as %s: %v\n%s", dir, ref, err, out)
	}
}

// DockerRegistry is the Distribution registry (`docker-registry serve`) on
// 127.0.0.1, plain HTTP (docker trusts 127.0.0.0/8 without TLS), with
// htpasswd auth for one user, storage in a temp dir.
type DockerRegistry struct {
	// Host is "127.0.0.1:port": the registry's name in image references and
	// docker's config.json key.
	Host     string
	htpasswd string
	user     string
}

// StartDockerRegistry starts the registry accepting user with password; the
// test's cleanup stops it.
func StartDockerRegistry(t testing.TB, user, password string) *DockerRegistry {
	t.Helper()
	bin := NeedTool(t, "docker-registry")
	NeedTool(t, "htpasswd")
	dir := t.TempDir()
	port := freePort(t)
	r := &DockerRegistry{Host: fmt.Sprintf("127.0.0.1:%d", port), htpasswd: filepath.Join(dir, "htpasswd"), user: user}
	r.SetPassword(t, password)
	conf := fmt.Sprintf(`version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
http:
  addr: %s
  secret: %s
auth:
  htpasswd:
    realm: secrets-agent-test
    path: %s
`, filepath.Join(dir, "store"), r.Host, "test-http-secret", r.htpasswd)
	confPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	startProcess(t, 10*time.Second, bin, "serve", confPath)
	Eventually(t, 10*time.Second, "docker-registry listening on "+r.Host, func() bool {
		c, err := net.Dial("tcp", r.Host)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return r
}

// SetPassword replaces the user's password in the htpasswd file (bcrypt);
// the registry reads the file again when it changes.
func (r *DockerRegistry) SetPassword(t testing.TB, password string) {
	t.Helper()
	cmd := exec.Command("htpasswd", "-niB", r.user)
	cmd.Stdin = strings.NewReader(password)
	line, err := cmd.Output()
	if err != nil {
		t.Fatalf("htpasswd: %v", err)
	}
	tmp := r.htpasswd + ".tmp"
	if err := os.WriteFile(tmp, line, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, r.htpasswd); err != nil {
		t.Fatal(err)
	}
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// unmountUnder detaches every mount at or below dir, deepest first.
func unmountUnder(t testing.TB, dir string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Logf("read mountinfo: %v", err)
		return
	}
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			points = append(points, f[4])
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(points)))
	for _, p := range points {
		if err := syscall.Unmount(p, syscall.MNT_DETACH); err != nil {
			t.Logf("unmount %s: %v", p, err)
		}
	}
}
