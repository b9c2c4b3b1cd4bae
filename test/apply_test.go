package test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/secrets-agent/secrets-agent/internal/testutil"
)

// TestShellsReadBackEveryAdversarialValue stores every adversarial value in
// the devserver, lets the agent write the fragments, and has bash, dash, zsh
// and fish print each variable back into a file: every byte must survive.
func TestShellsReadBackEveryAdversarialValue(t *testing.T) {
	s := newStack(t)
	vals := testutil.AdversarialValues()
	for _, v := range vals {
		s.dev.CreateSecret(t, "user", "alice", v.Name, env(), v.Value)
	}
	s.mustOnce(t)

	shells := []struct {
		name, fragment string
		script         func(names []string) string
		args           func(prog, script, fragment, out string) []string
	}{
		{"bash", "env.sh", posixScript, posixArgs},
		{"dash", "env.sh", posixScript, posixArgs},
		{"zsh", "env.sh", posixScript, func(p, sc, f, o string) []string { return []string{"-f", "-c", sc, "zsh", f, o} }},
		{"fish", "env.fish", fishScript, func(p, sc, f, o string) []string { return []string{"--no-config", "-c", sc, f, o} }},
	}
	names := make([]string, len(vals))
	for i, v := range vals {
		names[i] = v.Name
	}
	for _, sh := range shells {
		t.Run(sh.name, func(t *testing.T) {
			prog := testutil.NeedTool(t, sh.name)
			out := t.TempDir()
			frag := filepath.Join(s.envDir(), sh.fragment)
			cmd := exec.Command(prog, sh.args(prog, sh.script(names), frag, out)...)
			cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s: %v\n%s", sh.name, err, b)
			}
			for _, v := range vals {
				got := readFile(t, filepath.Join(out, v.Name))
				if !bytes.Equal(got, v.Value) {
					t.Errorf("%s: %s read back %q, want %q", sh.name, v.Name, clip(got), clip(v.Value))
				}
			}
		})
	}
}

func posixArgs(prog, script, fragment, out string) []string {
	return []string{"-c", script, "sh", fragment, out}
}

func posixScript(names []string) string {
	var b strings.Builder
	b.WriteString(`. "$1" || exit 1` + "\n")
	for _, n := range names {
		fmt.Fprintf(&b, "printf '%%s' \"$%s\" > \"$2/%s\"\n", n, n)
	}
	return b.String()
}

func fishScript(names []string) string {
	var b strings.Builder
	b.WriteString("source $argv[1]; or exit 1\n")
	for _, n := range names {
		fmt.Fprintf(&b, "printf '%%s' \"$%s\" > $argv[2]/%s\n", n, n)
	}
	return b.String()
}

func clip(b []byte) string {
	if len(b) > 60 {
		return string(b[:60]) + "..."
	}
	return string(b)
}

// TestOutputsAre0600AndOwnedByTheEnvironmentUser runs the agent as root
// serving an unprivileged user: every file it writes is 0600 and that user's.
func TestOutputsAre0600AndOwnedByTheEnvironmentUser(t *testing.T) {
	testutil.NeedRoot(t, "chown outputs to another user")
	uid, gid := testutil.Nobody(t)
	s := newStack(t)
	s.cfg.User = "nobody"
	s.cfg.Home = filepath.Join(s.dir, "nobody-home")
	if err := os.MkdirAll(s.cfg.Home, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(s.cfg.Home, uid, gid); err != nil {
		t.Fatal(err)
	}
	s.dev.CreateSecret(t, "user", "alice", "TOKEN", env(), []byte("t0ken"))
	s.dev.CreateSecret(t, "user", "alice", "KEY_FILE", file(filepath.Join(s.cfg.Home, ".config/app/key")), []byte("k3y"))
	s.dev.CreateSecret(t, "user", "alice", "REG", registry("registry.example.test"), []byte(base64.StdEncoding.EncodeToString([]byte("u:p"))))
	s.mustOnce(t)

	files := []string{
		filepath.Join(s.envDir(), "env.sh"),
		filepath.Join(s.envDir(), "env.fish"),
		filepath.Join(s.envDir(), "env"),
		filepath.Join(s.cfg.Home, ".config/app/key"),
		filepath.Join(s.cfg.Home, ".docker/config.json"),
	}
	for _, f := range files {
		st := stat(t, f)
		if st.Mode&0o777 != 0o600 || int(st.Uid) != uid || int(st.Gid) != gid {
			t.Errorf("%s: mode %o owner %d:%d, want 0600 %d:%d", f, st.Mode&0o777, st.Uid, st.Gid, uid, gid)
		}
	}
	for _, d := range []string{filepath.Join(s.cfg.Home, ".config"), filepath.Join(s.cfg.Home, ".config/app"), s.envDir()} {
		st := stat(t, d)
		if st.Mode&0o777 != 0o700 || int(st.Uid) != uid {
			t.Errorf("dir %s: mode %o owner %d, want 0700 owned by %d", d, st.Mode&0o777, st.Uid, uid)
		}
	}
	// The real stat(1) agrees.
	out, err := exec.Command("stat", "-c", "%a %U", files[3]).Output()
	if err != nil || strings.TrimSpace(string(out)) != "600 nobody" {
		t.Errorf("stat says %q (%v), want \"600 nobody\"", out, err)
	}
}

func stat(t *testing.T, p string) *syscall.Stat_t {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		t.Fatalf("stat %s: %v", p, err)
	}
	return &st
}

// TestSSHKeygenAcceptsPrivateKeyFileSecret: ssh refuses private keys with
// loose permissions, so a key delivered by the agent must pass ssh-keygen -y.
func TestSSHKeygenAcceptsPrivateKeyFileSecret(t *testing.T) {
	keygen := testutil.NeedTool(t, "ssh-keygen")
	tmp := t.TempDir()
	if b, err := exec.Command(keygen, "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(tmp, "k")).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, b)
	}
	s := newStack(t)
	target := filepath.Join(s.home(), ".ssh", "id_ed25519")
	s.dev.CreateSecret(t, "user", "alice", "SSH_KEY", file(target), readFile(t, filepath.Join(tmp, "k")))
	s.mustOnce(t)
	pub, err := exec.Command(keygen, "-y", "-f", target).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen -y rejected the delivered key: %v\n%s", err, pub)
	}
	want := strings.Fields(string(readFile(t, filepath.Join(tmp, "k.pub"))))[1]
	if !strings.Contains(string(pub), want) {
		t.Fatalf("public key %q does not match %q", pub, want)
	}
}

// TestDockerCLISendsStoredCredentials: the real docker CLI, reading the
// config.json the agent wrote, authenticates to a TLS registry stand-in.
func TestDockerCLISendsStoredCredentials(t *testing.T) {
	docker := testutil.NeedTool(t, "docker")
	reg := testutil.StartRegistry(t)
	reg.SetCredentials("robot", "s3cret:with:colons")
	s := newStack(t)
	id := s.dev.CreateSecret(t, "user", "alice", "REGISTRY", registry(reg.Host),
		[]byte(base64.StdEncoding.EncodeToString([]byte("robot:s3cret:with:colons"))))
	s.mustOnce(t)
	cfgDir := filepath.Join(s.home(), ".docker")
	reg.TrustFor(t, cfgDir)

	inspect := func() ([]byte, error) {
		cmd := exec.Command(docker, "manifest", "inspect", reg.Host+"/team/app:1")
		cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+cfgDir, "DOCKER_CLI_EXPERIMENTAL=enabled")
		return cmd.CombinedOutput()
	}
	if out, err := inspect(); err != nil {
		t.Fatalf("docker manifest inspect: %v\n%s", err, out)
	}
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte("robot:s3cret:with:colons"))
	found := false
	for _, a := range reg.Authorizations() {
		found = found || a == want
	}
	if !found {
		t.Fatalf("registry never saw the stored credentials; saw %d Authorization headers", len(reg.Authorizations()))
	}

	s.dev.DeleteSecret(t, id)
	s.mustOnce(t)
	if out, err := inspect(); err == nil {
		t.Fatalf("docker still authenticated after the secret was deleted:\n%s", out)
	}
}

// TestSymlinkOutOfTheRootsFailsThatSecretOnly plants symlinks in the home
// that point outside the allowed roots: those secrets fail, nothing is written
// outside, and the other secrets still land.
func TestSymlinkOutOfTheRootsFailsThatSecretOnly(t *testing.T) {
	s := newStack(t)
	home := s.home()
	outside := t.TempDir() // stands for /etc: anything outside the roots
	if err := os.MkdirAll(home, 0o755); err != nil {
		t.Fatal(err)
	}
	must(t, os.Symlink(outside, filepath.Join(home, ".ssh")))
	must(t, os.Symlink("/etc", filepath.Join(home, "etc")))
	must(t, os.Symlink(filepath.Join(outside, "target"), filepath.Join(home, ".netrc")))
	s.dev.CreateSecret(t, "user", "alice", "VIA_DIR_LINK", file(filepath.Join(home, ".ssh/id_rsa")), []byte("x"))
	s.dev.CreateSecret(t, "user", "alice", "VIA_ETC_LINK", file(filepath.Join(home, "etc/secrets-agent-pwned")), []byte("x"))
	s.dev.CreateSecret(t, "user", "alice", "FILE_IS_LINK", file(filepath.Join(home, ".netrc")), []byte("x"))
	s.dev.CreateSecret(t, "user", "alice", "GOOD_FILE", file(filepath.Join(home, "good")), []byte("fine"))
	s.dev.CreateSecret(t, "user", "alice", "GOOD_ENV", env(), []byte("fine"))

	code, stderr := s.once(t)
	if code == 0 {
		t.Fatalf("run --once succeeded although three secrets must fail")
	}
	for _, name := range []string{"VIA_DIR_LINK", "VIA_ETC_LINK", "FILE_IS_LINK"} {
		if !strings.Contains(stderr, name) {
			t.Errorf("the summary does not name the failed secret %s:\n%s", name, stderr)
		}
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("the agent wrote outside the roots: %v", entries)
	}
	if _, err := os.Lstat("/etc/secrets-agent-pwned"); err == nil {
		t.Errorf("the agent wrote /etc/secrets-agent-pwned")
	}
	if got := readFile(t, filepath.Join(home, "good")); string(got) != "fine" {
		t.Errorf("the good file holds %q", got)
	}
	if !bytes.Contains(readFile(t, filepath.Join(s.envDir(), "env.sh")), []byte("GOOD_ENV")) {
		t.Errorf("the good variable is missing from env.sh")
	}
}

// TestPreexistingFileIsKeptAsideAndRestored: a file that was there before the
// agent is moved aside and put back when the secret goes away.
func TestPreexistingFileIsKeptAsideAndRestored(t *testing.T) {
	s := newStack(t)
	home := s.home()
	must(t, os.MkdirAll(home, 0o755))
	npmrc := filepath.Join(home, ".npmrc")
	must(t, os.WriteFile(npmrc, []byte("registry=https://mine\n"), 0o640))
	id := s.dev.CreateSecret(t, "project", "web", "NPMRC", file(npmrc), []byte("//registry/:_authToken=abc\n"))
	s.mustOnce(t)
	if got := string(readFile(t, npmrc)); got != "//registry/:_authToken=abc\n" {
		t.Fatalf(".npmrc holds %q", got)
	}
	if got := string(readFile(t, npmrc+".secrets-agent-orig")); got != "registry=https://mine\n" {
		t.Fatalf("the original was not kept aside: %q", got)
	}
	s.dev.DeleteSecret(t, id)
	s.mustOnce(t)
	if got := string(readFile(t, npmrc)); got != "registry=https://mine\n" {
		t.Fatalf("the original was not restored: %q", got)
	}
	if st := stat(t, npmrc); st.Mode&0o777 != 0o640 {
		t.Errorf("restored mode %o, want 0640", st.Mode&0o777)
	}
	if _, err := os.Lstat(npmrc + ".secrets-agent-orig"); err == nil {
		t.Errorf("the kept-aside copy is still there")
	}
}

// TestPrecedenceAndRemovalThroughTheWholeStack: the user's secret wins over
// the project's over the organization's; deleting the winner reveals the next;
// deleting all removes every output.
func TestPrecedenceAndRemovalThroughTheWholeStack(t *testing.T) {
	s := newStack(t)
	keyPath := filepath.Join(s.home(), ".config/acme/key")
	reg := func(u string) []byte { return []byte(base64.StdEncoding.EncodeToString([]byte(u + ":pw"))) }
	org := s.dev.CreateSecret(t, "organization", "acme", "GREETING", env(), []byte("from org"))
	proj := s.dev.CreateSecret(t, "project", "web", "GREETING", env(), []byte("from project"))
	usr := s.dev.CreateSecret(t, "user", "alice", "GREETING", env(), []byte("from user"))
	fOrg := s.dev.CreateSecret(t, "organization", "acme", "KEY", file(keyPath), []byte("org key"))
	fUsr := s.dev.CreateSecret(t, "user", "alice", "KEY", file(keyPath), []byte("user key"))
	rOrg := s.dev.CreateSecret(t, "organization", "acme", "REG", registry("reg.acme.test"), reg("orgbot"))
	rProj := s.dev.CreateSecret(t, "project", "web", "REG", registry("reg.acme.test"), reg("projbot"))
	s.dev.CreateSecret(t, "project", "web", "API_ONLY", apiOnly(), []byte("never injected"))
	// Another organization's and another user's secrets are invisible.
	s.dev.CreateSecret(t, "organization", "other", "GREETING", env(), []byte("from other org"))
	s.dev.CreateSecret(t, "user", "bob", "GREETING", env(), []byte("from bob"))

	greeting := func() (string, bool) {
		out, err := exec.Command("bash", "-c", `. "$1"; [ "${GREETING+set}" ] && printf '%s' "$GREETING" || printf '<unset>'`,
			"_", filepath.Join(s.envDir(), "env.sh")).Output()
		if err != nil {
			t.Fatalf("bash: %v", err)
		}
		return string(out), string(out) != "<unset>"
	}
	dockerUser := func() string {
		b, err := os.ReadFile(filepath.Join(s.home(), ".docker/config.json"))
		if err != nil {
			return "<no config>"
		}
		for _, u := range []string{"orgbot", "projbot"} {
			if bytes.Contains(b, []byte(base64.StdEncoding.EncodeToString([]byte(u+":pw")))) {
				return u
			}
		}
		return "<none>"
	}

	s.mustOnce(t)
	if g, _ := greeting(); g != "from user" {
		t.Fatalf("GREETING = %q, want the user's", g)
	}
	if k := string(readFile(t, keyPath)); k != "user key" {
		t.Fatalf("key file = %q, want the user's", k)
	}
	if u := dockerUser(); u != "projbot" {
		t.Fatalf("registry login is %s's, want the project's", u)
	}
	if bytes.Contains(readFile(t, filepath.Join(s.envDir(), "env.sh")), []byte("API_ONLY")) {
		t.Fatalf("an API-only secret was injected")
	}

	s.dev.DeleteSecret(t, usr)
	s.dev.DeleteSecret(t, fUsr)
	s.dev.DeleteSecret(t, rProj)
	s.mustOnce(t)
	if g, _ := greeting(); g != "from project" {
		t.Fatalf("after deleting the user's: GREETING = %q, want the project's", g)
	}
	if k := string(readFile(t, keyPath)); k != "org key" {
		t.Fatalf("after deleting the user's: key file = %q, want the organization's", k)
	}
	if u := dockerUser(); u != "orgbot" {
		t.Fatalf("after deleting the project's: registry login is %s's, want the organization's", u)
	}

	for _, id := range []string{proj, org, fOrg, rOrg} {
		s.dev.DeleteSecret(t, id)
	}
	s.mustOnce(t)
	if g, set := greeting(); set {
		t.Fatalf("after deleting all: GREETING is still set to %q", g)
	}
	if _, err := os.Lstat(keyPath); err == nil {
		t.Fatalf("after deleting all: %s still exists", keyPath)
	}
	if u := dockerUser(); u != "<none>" && u != "<no config>" {
		t.Fatalf("after deleting all: registry login %s remains", u)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
