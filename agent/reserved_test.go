package agent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secrets-agent/secrets-agent/control"
	"github.com/secrets-agent/secrets-agent/injectors/builtin"
)

const reservedConfigYAML = `controlplane:
  url: http://127.0.0.1:1
  environment_id: env-1
  token_file: %TOKEN%
  watch: false
home: %DIR%/home
state_dir: %DIR%/state
socket: %DIR%/agent.sock
injectors:
  envprofile:
    dir: %DIR%/env
  secretfile:
    allowed_roots: ["%DIR%"]
  dockercfg:
    mode: inline
`

// reservedRig is an agent with the built-in injectors on a config file
// whose allowed root holds every file of the agent's own.
func reservedRig(t *testing.T, dir, token string) (*Agent, *fakePlane, string) {
	t.Helper()
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(strings.NewReplacer("%TOKEN%", token, "%DIR%", dir).Replace(reservedConfigYAML)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(token, []byte("t0k"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "home"), 0o700); err != nil {
		t.Fatal(err)
	}
	cfg, err := builtin.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	cp := newFakePlane()
	a, err := New(cfg, nil, WithControlPlane(cp), WithBuilders(builtin.Builders), WithConfigFile(path, builtin.Load), withNotifier(nopNotifier{}))
	if err != nil {
		t.Fatal(err)
	}
	return a, cp, path
}

func rowOf(a *Agent, id string) control.SecretStatus {
	for _, s := range a.Status().Secrets {
		if s.ID == id {
			return s
		}
	}
	return control.SecretStatus{}
}

// TestOwnFilesAndInjectorOutputsAreRefusedAsFileTargets: with the real
// injectors, a file secret at the agent's config, token, state dir, socket,
// env fragments, the docker config or gitcred's file fails naming whose path it is, and the
// other secrets are applied.
func TestOwnFilesAndInjectorOutputsAreRefusedAsFileTargets(t *testing.T) {
	t.Setenv("DOCKER_CONFIG", "")
	dir := t.TempDir()
	a, cp, path := reservedRig(t, dir, filepath.Join(dir, "token"))
	cases := map[string]struct{ target, what string }{
		"config":  {path, "the agent's config file"},
		"token":   {filepath.Join(dir, "token"), "the agent's token file"},
		"state":   {filepath.Join(dir, "state", "secretfile.json"), "the agent's state dir"},
		"socket":  {filepath.Join(dir, "agent.sock"), "the agent's status socket"},
		"env":     {filepath.Join(dir, "env", "env.sh"), "the env fragment dir"},
		"docker":  {filepath.Join(dir, "home", ".docker", "config.json"), "the docker config dockercfg manages"},
		"holding": {filepath.Join(dir, "home", ".docker"), "the docker config dockercfg manages"},
		"git":     {filepath.Join(dir, "home", ".config", "secrets-agent", "gitconfig"), "the git credential helpers file gitcred manages"},
	}
	for id, c := range cases {
		cp.put(id, strings.ToUpper(id), "SCOPE_USER", "file", c.target, "sekret")
	}
	cp.put("good", "GOOD", "SCOPE_USER", "file", filepath.Join(dir, "home", "good"), "good")
	cp.put("reg", "REG", "SCOPE_USER", "registry", "reg.example.test", "dTpw")
	a.Sync(context.Background())
	for id, c := range cases {
		if r := rowOf(a, id); r.Outcome != "failed" || !strings.Contains(r.Error, c.what) {
			t.Errorf("%s at %s: outcome %q error %q; want failed naming %q", id, c.target, r.Outcome, r.Error, c.what)
		}
	}
	for _, id := range []string{"good", "reg"} {
		if r := rowOf(a, id); r.Outcome != "created" {
			t.Errorf("%s: %+v; want created", id, r)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "token")); string(b) != "t0k" {
		t.Errorf("token rewritten: %q", b)
	}
}

// TestReloadMovesTheReservedTokenFile: after a reload names another token
// file, that one is refused as a target and the old path is a target like
// any other.
func TestReloadMovesTheReservedTokenFile(t *testing.T) {
	t.Setenv("DOCKER_CONFIG", "")
	dir := t.TempDir()
	oldToken, newToken := filepath.Join(dir, "token"), filepath.Join(dir, "token2")
	a, cp, path := reservedRig(t, dir, oldToken)
	if err := os.WriteFile(newToken, []byte("t0k"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if err := os.WriteFile(path, []byte(strings.Replace(string(b), oldToken, newToken, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	a.reloadNow()
	cp.put("new", "NEW", "SCOPE_USER", "file", newToken, "sekret")
	cp.put("old", "OLD", "SCOPE_USER", "file", oldToken, "v")
	a.Sync(context.Background())
	if r := rowOf(a, "new"); r.Outcome != "failed" || !strings.Contains(r.Error, "the agent's token file") {
		t.Errorf("the new token file as a target: %+v; want refused", r)
	}
	if r := rowOf(a, "old"); r.Outcome != "created" {
		t.Errorf("the old token path: %+v; want created", r)
	}
}

// TestInstallHooksFilesAndStartupFilesAreRefusedAsFileTargets: with the
// real injectors, a file secret at the hook install-hooks writes, an rc file
// it adds its block to, the git config it adds gitcred's include to, or a
// shell, ssh or git start-up file fails naming what the file is; nothing
// is written there and a good secret beside them is applied.
func TestInstallHooksFilesAndStartupFilesAreRefusedAsFileTargets(t *testing.T) {
	t.Setenv("DOCKER_CONFIG", "")
	dir := t.TempDir()
	a, cp, _ := reservedRig(t, dir, filepath.Join(dir, "token"))
	home := filepath.Join(dir, "home")
	cases := map[string]struct{ target, what string }{
		"hook":    {filepath.Join(home, ".config", "secrets-agent", "hook.sh"), "a file install-hooks writes"},
		"fish":    {filepath.Join(home, ".config", "fish", "conf.d", "secrets-agent.fish"), "a file install-hooks writes"},
		"bashrc":  {filepath.Join(home, ".bashrc"), "a file install-hooks writes"},
		"gitinc":  {filepath.Join(home, ".config", "git", "config"), "a file install-hooks writes"},
		"zshenv":  {filepath.Join(home, ".zshenv"), "a shell start-up file"},
		"keys":    {filepath.Join(home, ".ssh", "authorized_keys"), "keys that may log in"},
		"gitconf": {filepath.Join(home, ".gitconfig"), "git's config"},
	}
	for id, c := range cases {
		cp.put(id, strings.ToUpper(id), "SCOPE_USER", "file", c.target, "touch /tmp/pwned")
	}
	cp.put("good", "GOOD", "SCOPE_USER", "file", filepath.Join(home, ".ssh", "id_ed25519"), "key")
	a.Sync(context.Background())
	for id, c := range cases {
		if r := rowOf(a, id); r.Outcome != "failed" || !strings.Contains(r.Error, c.what) {
			t.Errorf("%s at %s: outcome %q error %q; want failed naming %q", id, c.target, r.Outcome, r.Error, c.what)
		}
		if _, err := os.Lstat(c.target); err == nil {
			t.Errorf("%s was written", c.target)
		}
	}
	if r := rowOf(a, "good"); r.Outcome != "created" {
		t.Errorf("good: %+v; want created", r)
	}
}
