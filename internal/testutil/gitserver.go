package testutil

import (
	"crypto/subtle"
	"encoding/pem"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// GitServer is a git server over HTTPS for end-to-end tests: the real `git
// http-backend`, run through net/http/cgi, serving bare repositories in Dir
// behind HTTP basic auth that accepts one user and token at a time. git trusts
// its certificate through GIT_SSL_CAINFO=CAFile (see Env).
type GitServer struct {
	Dir    string // the bare repositories
	CAFile string // the server's certificate, PEM
	URL    string // https://127.0.0.1:port
	Host   string // 127.0.0.1:port, as git's credential protocol names it

	srv *httptest.Server
	git string

	mu       sync.Mutex
	user     string
	token    string
	refused  int
	accepted int
}

// StartGitServer starts a git server that refuses everyone until
// SetCredentials. It skips the test where git or git http-backend is
// missing. t.Cleanup stops it.
func StartGitServer(t testing.TB) *GitServer {
	t.Helper()
	git := NeedTool(t, "git")
	out, err := exec.Command(git, "--exec-path").Output()
	if err != nil {
		t.Fatalf("git --exec-path: %v", err)
	}
	backend := filepath.Join(strings.TrimSpace(string(out)), "git-http-backend")
	if _, err := os.Stat(backend); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("git http-backend is not installed at %s", backend)
		}
		t.Skipf("skipping: git http-backend is not installed (%v)", err)
	}
	g := &GitServer{Dir: t.TempDir(), git: git}
	cgiH := &cgi.Handler{Path: backend, Env: []string{"GIT_PROJECT_ROOT=" + g.Dir, "GIT_HTTP_EXPORT_ALL=1"}}
	g.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, ok := g.authorized(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Basic realm="test git"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		h := *cgiH
		// http-backend allows a push only from an authenticated user.
		h.Env = append(append([]string(nil), cgiH.Env...), "REMOTE_USER="+user)
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(g.srv.Close)
	g.URL = g.srv.URL
	u, _ := url.Parse(g.srv.URL)
	g.Host = u.Host
	g.CAFile = filepath.Join(t.TempDir(), "ca.pem")
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: g.srv.Certificate().Raw})
	if err := os.WriteFile(g.CAFile, cert, 0o644); err != nil {
		t.Fatal(err)
	}
	return g
}

// authorized checks r's basic auth against the current user and token.
func (g *GitServer) authorized(r *http.Request) (string, bool) {
	u, p, ok := r.BasicAuth()
	g.mu.Lock()
	defer g.mu.Unlock()
	if !ok || g.token == "" ||
		subtle.ConstantTimeCompare([]byte(u), []byte(g.user))&subtle.ConstantTimeCompare([]byte(p), []byte(g.token)) != 1 {
		if ok {
			g.refused++
		}
		return "", false
	}
	g.accepted++
	return u, true
}

// SetCredentials makes the server accept exactly user and token (and refuse
// every other, the previous token included).
func (g *GitServer) SetCredentials(user, token string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.user, g.token = user, token
}

// Counts returns how many requests carried credentials the server refused,
// and how many it accepted.
func (g *GitServer) Counts() (refused, accepted int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.refused, g.accepted
}

// CreateRepo makes an empty bare repository name (e.g. "org/repo.git") that
// accepts pushes, and returns its URL.
func (g *GitServer) CreateRepo(t testing.TB, name string) string {
	t.Helper()
	dir := filepath.Join(g.Dir, name)
	for _, args := range [][]string{
		{"init", "--quiet", "--bare", "--initial-branch=main", dir},
		{"-C", dir, "config", "http.receivepack", "true"},
	} {
		if out, err := exec.Command(g.git, args...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	return g.URL + "/" + name
}

// Env returns the environment for a git command of a user whose home is
// home: only this user's config (HOME; no system config, no XDG_CONFIG_HOME,
// no GIT_* or askpass variables from the test's own environment), the
// server's certificate trusted, and never a prompt (GIT_TERMINAL_PROMPT=0),
// so a missing credential fails instead of hanging.
func (g *GitServer) Env(home string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(name, "GIT_"), name == "HOME", name == "XDG_CONFIG_HOME",
			name == "SSH_ASKPASS", name == "SECRETS_AGENT_SOCKET":
			continue
		}
		env = append(env, kv)
	}
	return append(env, "HOME="+home, "GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0", "GIT_SSL_CAINFO="+g.CAFile,
		"GIT_AUTHOR_NAME=Test", "GIT_AUTHOR_EMAIL=test@example.com", "GIT_COMMITTER_NAME=Test", "GIT_COMMITTER_EMAIL=test@example.com")
}
