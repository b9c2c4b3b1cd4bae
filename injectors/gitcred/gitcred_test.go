package gitcred

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/secrets-agent/secrets-agent/injectors"
	"github.com/secrets-agent/secrets-agent/internal/safeopen"
	"github.com/secrets-agent/secrets-agent/internal/testutil"
	"github.com/secrets-agent/secrets-agent/secrets"
)

const token = "ghp_s3cr3t-git-token-4c1e"

func newInjector(t *testing.T) (*Injector, string) {
	t.Helper()
	home := t.TempDir()
	in, err := New(Options{Helper: []string{"/opt/secrets agent/bin/secrets-agent", "git-credential", "--socket", "/run/it's.sock"},
		Owner: injectors.Owner{UID: -1, GID: -1, Home: home}})
	if err != nil {
		t.Fatal(err)
	}
	return in, home
}

func gitSecret(id, host, value string) secrets.Secret {
	return secrets.Secret{ID: id, Name: "GIT_" + strings.ToUpper(id), Scope: secrets.ScopeUser,
		Mount: secrets.Mount{Kind: secrets.MountGitCredential, Target: host}, Value: secrets.Value(value)}
}

func actions(r injectors.Result) map[string]injectors.Action {
	out := map[string]injectors.Action{}
	for _, o := range r.Outcomes {
		out[o.Target] = o.Action
	}
	return out
}

// gitConfig asks real git what the file says for key.
func gitConfig(t *testing.T, file, key string) (string, bool) {
	t.Helper()
	git := testutil.NeedTool(t, "git")
	out, err := exec.Command(git, "config", "--file", file, "--get-all", key).Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 1 {
		return "", false
	}
	if err != nil {
		t.Fatalf("git config --file %s --get-all %s: %v", file, key, err)
	}
	return strings.TrimSuffix(string(out), "\n"), true
}

func TestApplyWritesOneHelperPerHostThatGitReads(t *testing.T) {
	in, home := newInjector(t)
	r := in.Apply(context.Background(), []secrets.Secret{gitSecret("a", "GitHub.com", token), gitSecret("b", "git.example.com:8443", "t2")})
	if r.Err != nil || len(r.Failed()) != 0 || r.Writes != 1 {
		t.Fatalf("apply: %+v", r)
	}
	if got := actions(r); got["github.com"] != injectors.Created || got["git.example.com:8443"] != injectors.Created {
		t.Errorf("outcomes %v", got)
	}
	file := filepath.Join(home, File)
	if len(r.Paths) != 1 || r.Paths[0] != file {
		t.Errorf("paths %v, want [%s]", r.Paths, file)
	}
	fi, err := os.Stat(file)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("file: %v %v", fi, err)
	}
	data, _ := os.ReadFile(file)
	if strings.Contains(string(data), token) {
		t.Fatal("the token is in the git config file")
	}
	// git reads back the helper as a shell command that sh splits into
	// exactly the words given, quotes and spaces included.
	want := `!'/opt/secrets agent/bin/secrets-agent' 'git-credential' '--socket' '/run/it'\''s.sock'`
	for _, host := range []string{"github.com", "git.example.com:8443"} {
		got, ok := gitConfig(t, file, "credential.https://"+host+".helper")
		if !ok || got != want {
			t.Errorf("helper for %s = %q, want %q", host, got, want)
		}
	}
	out, _ := exec.Command("sh", "-c", "set -- "+strings.TrimPrefix(want, "!")+`; printf '%s|' "$@"`).Output()
	if string(out) != "/opt/secrets agent/bin/secrets-agent|git-credential|--socket|/run/it's.sock|" {
		t.Errorf("sh splits the helper into %q", out)
	}
}

func TestUnchangedSetWritesNothing(t *testing.T) {
	in, _ := newInjector(t)
	in.Apply(context.Background(), []secrets.Secret{gitSecret("a", "github.com", token)})
	r := in.Apply(context.Background(), []secrets.Secret{gitSecret("a", "github.com", "rotated-token")})
	if r.Writes != 0 || actions(r)["github.com"] != injectors.Unchanged {
		t.Errorf("a rotated token rewrote the file: %+v", r)
	}
}

func TestChangedOrDeletedFileIsRepaired(t *testing.T) {
	in, home := newInjector(t)
	file := filepath.Join(home, File)
	want := []secrets.Secret{gitSecret("a", "github.com", token)}
	in.Apply(context.Background(), want)
	good, _ := os.ReadFile(file)
	for _, spoil := range []func(){
		func() { _ = os.Remove(file) },
		func() { _ = os.WriteFile(file, []byte("[credential]\n\thelper = store\n"), 0o600) },
	} {
		spoil()
		r := in.Apply(context.Background(), want)
		if actions(r)["github.com"] != injectors.Repaired || r.Writes != 1 {
			t.Errorf("after a change by someone else: %+v", r)
		}
		if got, _ := os.ReadFile(file); !bytes.Equal(got, good) {
			t.Errorf("file %q, want %q", got, good)
		}
	}
}

func TestRemovedSecretRemovesItsEntryAndTheLastRemovesTheFile(t *testing.T) {
	in, home := newInjector(t)
	file := filepath.Join(home, File)
	in.Apply(context.Background(), []secrets.Secret{gitSecret("a", "github.com", token), gitSecret("b", "gitlab.com", token)})
	r := in.Apply(context.Background(), []secrets.Secret{gitSecret("b", "gitlab.com", token)})
	if got := actions(r); got["github.com"] != injectors.Removed || got["gitlab.com"] != injectors.Unchanged || r.Writes != 1 {
		t.Errorf("outcomes %v writes %d", got, r.Writes)
	}
	if _, ok := gitConfig(t, file, "credential.https://github.com.helper"); ok {
		t.Error("github.com's helper is still there")
	}
	if _, ok := gitConfig(t, file, "credential.https://gitlab.com.helper"); !ok {
		t.Error("gitlab.com's helper is gone")
	}
	r = in.Apply(context.Background(), nil)
	if actions(r)["gitlab.com"] != injectors.Removed || r.Err != nil {
		t.Errorf("outcomes %+v", r)
	}
	if _, err := os.Lstat(file); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("file still there: %v", err)
	}
	if r := in.Apply(context.Background(), nil); r.Writes != 0 || len(r.Outcomes) != 0 {
		t.Errorf("nothing to do did something: %+v", r)
	}
}

func TestFileNotOursIsNeverRemoved(t *testing.T) {
	in, home := newInjector(t)
	file := filepath.Join(home, File)
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte("[user]\n\tname = me\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := in.Apply(context.Background(), nil); r.Err != nil || r.Writes != 0 {
		t.Errorf("apply: %+v", r)
	}
	if data, _ := os.ReadFile(file); string(data) != "[user]\n\tname = me\n" {
		t.Errorf("file changed: %q", data)
	}
}

func TestBadSecretFailsAloneWithoutItsValue(t *testing.T) {
	in, home := newInjector(t)
	bad := []secrets.Secret{
		gitSecret("nl", "a.example", "line1\nline2-s3cr3t"),
		gitSecret("empty", "b.example", ""),
		gitSecret("slash", "c.example/org", token),
		gitSecret("dup", "GOOD.example", token),
	}
	r := in.Apply(context.Background(), append([]secrets.Secret{gitSecret("good", "good.example", token)}, bad...))
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	if got := actions(r)["good.example"]; got != injectors.Created {
		t.Errorf("good secret: %v", got)
	}
	if n := len(r.Failed()); n != 4 {
		t.Fatalf("%d failed, want 4: %+v", n, r.Outcomes)
	}
	for _, o := range r.Failed() {
		if o.Err == nil || strings.Contains(o.Err.Error(), "s3cr3t") || strings.Contains(o.Err.Error(), token) {
			t.Errorf("failure %v: missing or holds the value", o.Err)
		}
	}
	hosts, _, _ := readOwn(mustRoot(t, home))
	if len(hosts) != 1 || !hosts["good.example"] {
		t.Errorf("file holds %v", hosts)
	}
}

func TestSymlinkAtFileIsRefused(t *testing.T) {
	in, home := newInjector(t)
	outside := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(outside, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(home, File)
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, file); err != nil {
		t.Fatal(err)
	}
	r := in.Apply(context.Background(), []secrets.Secret{gitSecret("a", "github.com", token)})
	if r.Err == nil || !errors.Is(r.Err, safeopen.ErrNotRegular) || len(r.Failed()) != 1 {
		t.Errorf("apply through a symlink: %+v", r)
	}
	if data, _ := os.ReadFile(outside); string(data) != "keep" {
		t.Errorf("the symlink's target changed: %q", data)
	}
}

func TestFIFOAtFileFailsWithoutBlocking(t *testing.T) {
	in, home := newInjector(t)
	file := filepath.Join(home, File)
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(file, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan injectors.Result, 1)
	go func() { done <- in.Apply(context.Background(), []secrets.Secret{gitSecret("a", "github.com", token)}) }()
	select {
	case r := <-done:
		if r.Err == nil || !errors.Is(r.Err, safeopen.ErrNotRegular) || len(r.Failed()) != 1 {
			t.Errorf("apply over a FIFO: %+v", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Apply blocked on a FIFO at its file")
	}
	if removed, err := RemoveFile(home); removed || err == nil {
		t.Errorf("RemoveFile over a FIFO: %v %v", removed, err)
	}
}

func TestCredentialAnswersUsernameAndToken(t *testing.T) {
	in, _ := newInjector(t)
	if u, p, ok := in.Credential(gitSecret("a", "github.com", token)); !ok || u != DefaultUsername || p != token {
		t.Errorf("Credential = %q %q %v", u, p, ok)
	}
	if _, _, ok := in.Credential(gitSecret("a", "github.com", "two\nlines")); ok {
		t.Error("answered a value git cannot carry")
	}
	in2, err := New(Options{Username: "x-access-token", Helper: []string{"/bin/sa"}, Owner: injectors.Owner{Home: "/home/u"}})
	if err != nil {
		t.Fatal(err)
	}
	if u, _, _ := in2.Credential(gitSecret("a", "github.com", token)); u != "x-access-token" {
		t.Errorf("user %q", u)
	}
}

func TestNewRefusesWhatGitCannotRead(t *testing.T) {
	for _, o := range []Options{
		{Helper: []string{"secrets-agent"}, Owner: injectors.Owner{Home: "/h"}},
		{Helper: []string{"/bin/sa", "a\nb"}, Owner: injectors.Owner{Home: "/h"}},
		{Helper: []string{"/bin/sa"}, Owner: injectors.Owner{Home: "h"}},
		{Helper: []string{"/bin/sa"}, Username: "a\tb", Owner: injectors.Owner{Home: "/h"}},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
}

func mustRoot(t *testing.T, dir string) *os.Root {
	t.Helper()
	r, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}
