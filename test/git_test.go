package test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/secrets-agent/secrets-agent/injectors/gitcred"
	"github.com/secrets-agent/secrets-agent/internal/testutil"
)

func gitHost(h string) testutil.Mount { return testutil.Mount{GitHost: h} }

// gitRun runs git with env in dir and returns its combined output and error;
// a git that has not finished within 30 s (a prompt it should not show) fails
// the test.
func gitRun(t *testing.T, env []string, dir string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Env, cmd.Dir = env, dir
	cmd.Stdin = strings.NewReader("")
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("git %v hung (a prompt?):\n%s", args, out)
	}
	return string(out), err
}

func mustGit(t *testing.T, env []string, dir string, args ...string) string {
	t.Helper()
	out, err := gitRun(t, env, dir, args...)
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return out
}

// credentialFill asks git (all its helpers, in order) for host's password.
func credentialFill(t *testing.T, env []string, host string) string {
	t.Helper()
	cmd := exec.Command("git", "credential", "fill")
	cmd.Env = env
	cmd.Stdin = strings.NewReader("protocol=https\nhost=" + host + "\n\n")
	out, _ := cmd.Output() // with no helper answering, fill fails (no prompt)
	for _, l := range strings.Split(string(out), "\n") {
		if p, ok := strings.CutPrefix(l, "password="); ok {
			return p
		}
	}
	return ""
}

// helperAnswer asks `secrets-agent git-credential get` directly, as git does.
func helperAnswer(t *testing.T, socket, host string) string {
	t.Helper()
	cmd := exec.Command(testutil.AgentBin(t), "git-credential", "--socket", socket, "get")
	cmd.Stdin = strings.NewReader("protocol=https\nhost=" + host + "\nwwwauth[]=Basic realm=\"x\"\n\n")
	out, _ := cmd.Output()
	return string(out)
}

// TestGitOverHTTPSUsesTheAgentsToken: real git against `git http-backend`
// behind basic auth. install-hooks wires the agent's git config into the
// user's XDG git config; clone and push authenticate with the user-scope
// token (an organization token for the same host is shadowed); a token
// rotated in the control plane is the one the next fetch uses while the
// server refuses the old one; a deleted secret makes the next fetch fail
// with git's authentication error instead of prompting; the user's own
// helpers (another host, and the same host after ours) keep working, their
// ~/.gitconfig is never changed, and uninstalling leaves no trace.
func TestGitOverHTTPSUsesTheAgentsToken(t *testing.T) {
	gs := testutil.StartGitServer(t)
	repoURL := gs.CreateRepo(t, "acme/app.git")
	s := newStack(t)
	home := s.home()
	if err := os.MkdirAll(home, 0o755); err != nil {
		t.Fatal(err)
	}
	userConfig := "[user]\n\tname = Alice\n[credential \"https://other.example\"]\n\thelper = \"!f() { echo username=alice; echo password=other-pass; }; f\"\n"
	if err := os.WriteFile(filepath.Join(home, ".gitconfig"), []byte(userConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	gitEnv := gs.Env(home)
	if _, stderr, code := testutil.RunAgent(t, []string{"HOME=" + home}, "install-hooks", "--user"); code != 0 {
		t.Fatalf("install-hooks --user exited %d: %s", code, stderr)
	}

	gs.SetCredentials(gitcred.DefaultUsername, "tok-1")
	id := s.dev.CreateSecret(t, "user", "alice", "GIT_TOKEN", gitHost(gs.Host), []byte("tok-1"))
	orgID := s.dev.CreateSecret(t, "organization", "acme", "ORG_GIT_TOKEN", gitHost(gs.Host), []byte("org-token"))
	cfg := s.writeConfig(t)
	testutil.StartAgent(t, cfg)
	if _, stderr, code := testutil.RunAgent(t, nil, "wait", "--config", cfg, "--timeout", "30s"); code != 0 {
		t.Fatalf("wait exited %d: %s", code, stderr)
	}
	agentFile := filepath.Join(home, gitcred.File)
	if data := string(readFile(t, agentFile)); strings.Contains(data, "tok-1") || !strings.Contains(data, gs.Host) {
		t.Fatalf("the agent's git config:\n%s", data)
	}

	// Drift: the file removed is put back.
	if err := os.Remove(agentFile); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "the agent's git config is put back", func() bool {
		_, err := os.Stat(agentFile)
		return err == nil
	})

	// Clone, commit, push: no prompt, the user-scope token.
	work := t.TempDir()
	mustGit(t, gitEnv, work, "clone", "--quiet", repoURL, "app")
	clone := filepath.Join(work, "app")
	if err := os.WriteFile(filepath.Join(clone, "README"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustGit(t, gitEnv, clone, "add", "README")
	mustGit(t, gitEnv, clone, "commit", "--quiet", "-m", "first")
	mustGit(t, gitEnv, clone, "push", "--quiet", "origin", "HEAD:main")
	if refused, accepted := gs.Counts(); refused != 0 || accepted == 0 {
		t.Errorf("server refused %d and accepted %d requests with credentials", refused, accepted)
	}

	// status --json lists the git secret, what it shadows, and the repair.
	out, _, _ := testutil.RunAgent(t, nil, "status", "--json", "--config", cfg)
	var st struct {
		Secrets []struct {
			ID, Mount, Target, LastAction string
			Shadows                       []struct{ ID string }
		}
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	found := false
	for _, r := range st.Secrets {
		if r.ID == id {
			found = r.Mount == "git_credential" && r.Target == gs.Host && r.LastAction == "repaired" &&
				len(r.Shadows) == 1 && r.Shadows[0].ID == orgID
		}
	}
	if !found {
		t.Errorf("status does not list the git secret with its shadow:\n%s", out)
	}

	// The system-level wiring (install-hooks --system, for an agent running
	// as root) reaches the same file through the system git config alone.
	sysRoot := t.TempDir()
	if _, stderr, code := testutil.RunAgent(t, nil, "install-hooks", "--system", "--root", sysRoot); code != 0 {
		t.Fatalf("install-hooks --system exited %d: %s", code, stderr)
	}
	sysEnv := []string{}
	for _, kv := range gitEnv {
		if kv != "GIT_CONFIG_NOSYSTEM=1" {
			sysEnv = append(sysEnv, kv)
		}
	}
	sysEnv = append(sysEnv, "GIT_CONFIG_SYSTEM="+filepath.Join(sysRoot, gitcred.SystemGitConfig),
		"XDG_CONFIG_HOME="+t.TempDir()) // not the user's XDG file, which has the include too
	if p := credentialFill(t, sysEnv, gs.Host); p != "tok-1" {
		t.Errorf("through /etc/gitconfig's include git got %q, want the agent's token", p)
	}

	// The user's helpers: another host's untouched; one of theirs for the
	// same host is asked after ours.
	if p := credentialFill(t, gitEnv, "other.example"); p != "other-pass" {
		t.Errorf("the user's helper for another host answered %q", p)
	}
	sameHost := userConfig + "[credential \"https://" + gs.Host + "\"]\n\thelper = \"!f() { echo username=alice; echo password=users-own; }; f\"\n"
	if err := os.WriteFile(filepath.Join(home, ".gitconfig"), []byte(sameHost), 0o644); err != nil {
		t.Fatal(err)
	}
	if p := credentialFill(t, gitEnv, gs.Host); p != "tok-1" {
		t.Errorf("with the user's own helper for the host too, git got %q, want the agent's token first", p)
	}

	// Rotation: the server takes only tok-2; the agent still has tok-1, so a
	// fetch fails, and git's erase changes nothing of ours.
	gs.SetCredentials(gitcred.DefaultUsername, "tok-2")
	if err := os.WriteFile(filepath.Join(home, ".gitconfig"), []byte(userConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := gitRun(t, gitEnv, clone, "fetch", "origin")
	if err == nil || !strings.Contains(out, "Authentication failed") {
		t.Fatalf("fetch with the old token: %v\n%s", err, out)
	}
	if !strings.Contains(out, "not erasing the token") {
		t.Errorf("git's erase did not say the token is managed:\n%s", out)
	}
	s.dev.UpdateSecret(t, id, []byte("tok-2"))
	testutil.Eventually(t, 20*time.Second, "the agent serves the rotated token", func() bool {
		return strings.Contains(helperAnswer(t, s.cfg.Socket, gs.Host), "password=tok-2\n")
	})
	mustGit(t, gitEnv, clone, "fetch", "--quiet", "origin")

	// Deleted: the next fetch fails as git fails with no credential, at once.
	s.dev.DeleteSecret(t, id)
	testutil.Eventually(t, 20*time.Second, "the agent stops serving the deleted secret's host", func() bool {
		a := helperAnswer(t, s.cfg.Socket, gs.Host)
		return !strings.Contains(a, "tok-2") && strings.Contains(a, "password=org-token")
	})
	out, err = gitRun(t, gitEnv, clone, "fetch", "origin")
	if err == nil || !strings.Contains(out, "Authentication failed") {
		t.Fatalf("fetch with the org token the server refuses: %v\n%s", err, out)
	}
	s.dev.DeleteSecret(t, orgID)
	testutil.Eventually(t, 20*time.Second, "the agent serves no token for the host", func() bool {
		return helperAnswer(t, s.cfg.Socket, gs.Host) == ""
	})
	out, err = gitRun(t, gitEnv, clone, "fetch", "origin")
	if err == nil || !strings.Contains(out, "could not read Username") {
		t.Fatalf("fetch with no credential: %v\n%s", err, out)
	}
	testutil.Eventually(t, 10*time.Second, "the agent's git config file is removed with the last git secret", func() bool {
		_, err := os.Lstat(agentFile)
		return errors.Is(err, os.ErrNotExist)
	})
	if p := credentialFill(t, gitEnv, "other.example"); p != "other-pass" {
		t.Errorf("the user's helper for another host answered %q", p)
	}

	// Uninstall: the include block and the file it created are gone, and
	// ~/.gitconfig is byte for byte the user's.
	if _, stderr, code := testutil.RunAgent(t, []string{"HOME=" + home}, "install-hooks", "--user", "--uninstall"); code != 0 {
		t.Fatalf("install-hooks --uninstall exited %d: %s", code, stderr)
	}
	if _, err := os.Lstat(filepath.Join(home, ".config/git/config")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the XDG git config install-hooks created is still there: %v", err)
	}
	if got := readFile(t, filepath.Join(home, ".gitconfig")); !bytes.Equal(got, []byte(userConfig)) {
		t.Errorf("~/.gitconfig changed:\n%s", got)
	}
}

// TestGitCredentialHelperSpeaksTheProtocol runs `secrets-agent
// git-credential` as git does, against a running agent: an answer only for
// an https request for a served host (whatever else the request holds), and
// for everything else no answer, exit 0, so that git asks its next helper.
func TestGitCredentialHelperSpeaksTheProtocol(t *testing.T) {
	s := newStack(t)
	s.dev.CreateSecret(t, "user", "alice", "GIT_TOKEN", gitHost("git.example.com:8443"), []byte("tok-1"))
	cfg := s.writeConfig(t)
	testutil.StartAgent(t, cfg)
	if _, stderr, code := testutil.RunAgent(t, nil, "wait", "--config", cfg, "--timeout", "30s"); code != 0 {
		t.Fatalf("wait exited %d: %s", code, stderr)
	}
	helper := func(socket, action, in string) (stdout, stderr string, code int) {
		cmd := exec.Command(testutil.AgentBin(t), "git-credential", "--socket", socket, action)
		cmd.Stdin = strings.NewReader(in)
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return o.String(), e.String(), code
	}
	const answer = "username=oauth2\npassword=tok-1\n\n"
	for _, c := range []struct{ what, action, in, out string }{
		{"get", "get", "protocol=https\nhost=git.example.com:8443\n\n", answer},
		{"extra keys and case", "get", "capability[]=authtype\nprotocol=https\nhost=Git.Example.com:8443\npath=a/b.git\nwwwauth[]=Basic realm=\"x\"\nfuture=1\n\n", answer},
		{"ended by EOF", "get", "protocol=https\nhost=git.example.com:8443", answer},
		{"the configured user", "get", "protocol=https\nhost=git.example.com:8443\nusername=oauth2\n\n", answer},
		{"plain http", "get", "protocol=http\nhost=git.example.com:8443\n\n", ""},
		{"another user", "get", "protocol=https\nhost=git.example.com:8443\nusername=alice\n\n", ""},
		{"quit", "get", "protocol=https\nhost=git.example.com:8443\nquit=1\n\n", ""},
		{"another host", "get", "protocol=https\nhost=github.com\n\n", ""},
		{"no port", "get", "protocol=https\nhost=git.example.com\n\n", ""},
		{"store", "store", "protocol=https\nhost=git.example.com:8443\nusername=oauth2\npassword=other\n\n", ""},
		{"unknown action", "frobnicate", "protocol=https\nhost=git.example.com:8443\n\n", ""},
		{"malformed", "get", "protocol=https\nnot a key value line\n\n", ""},
	} {
		out, stderr, code := helper(s.cfg.Socket, c.action, c.in)
		if out != c.out || code != 0 {
			t.Errorf("%s: printed %q, exit %d (stderr %q); want %q, exit 0", c.what, out, code, stderr, c.out)
		}
	}
	out, stderr, code := helper(s.cfg.Socket, "erase", "protocol=https\nhost=git.example.com:8443\nusername=oauth2\npassword=tok-1\n\n")
	if out != "" || code != 0 || !strings.Contains(stderr, "not erasing the token for git.example.com:8443") || strings.Contains(stderr, "tok-1") {
		t.Errorf("erase: %q %q %d", out, stderr, code)
	}
	if st, _, _ := testutil.RunAgent(t, nil, "status", "--json", "--config", cfg); !strings.Contains(st, `"outcome": "unchanged"`) && !strings.Contains(st, `"outcome": "created"`) {
		t.Errorf("the secret is not applied after erase:\n%s", st)
	}
	gone := filepath.Join(t.TempDir(), "none.sock")
	out, stderr, code = helper(gone, "get", "protocol=https\nhost=git.example.com:8443\n\n")
	if out != "" || code != 0 || !strings.Contains(stderr, gone) {
		t.Errorf("no agent: %q %q %d; want nothing on stdout, exit 0, the socket named on stderr", out, stderr, code)
	}
}
