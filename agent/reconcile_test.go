package agent

import (
	"bytes"
	"context"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/secrets-agent/secrets-agent/config"
	"github.com/secrets-agent/secrets-agent/control"
	"github.com/secrets-agent/secrets-agent/controlplane"
	"github.com/secrets-agent/secrets-agent/injectors"
	"github.com/secrets-agent/secrets-agent/injectors/builtin"
	"github.com/secrets-agent/secrets-agent/injectors/gitcred"
	"github.com/secrets-agent/secrets-agent/secrets"
)

// testRig is an agent over a fake control plane with one file-writing
// injector per kind.
type testRig struct {
	a    *Agent
	cp   *fakePlane
	env  *fileInjector
	file *fileInjector
	reg  *fileInjector
	logs *lockedBuffer
}

func testConfig() *config.Config {
	return &config.Config{ControlPlane: config.ControlPlane{URL: "http://127.0.0.1:1", EnvironmentID: "env-1"}}
}

func newRig(t *testing.T, cfg *config.Config, opts ...Option) *testRig {
	t.Helper()
	if cfg == nil {
		cfg = testConfig()
	}
	r := &testRig{cp: newFakePlane(), logs: &lockedBuffer{b: &bytes.Buffer{}},
		env:  newFileInjector(t, "envprofile", secrets.MountEnv),
		file: newFileInjector(t, "secretfile", secrets.MountFile),
		reg:  newFileInjector(t, "dockercfg", secrets.MountRegistry)}
	core := zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(r.logs), zap.DebugLevel)
	opts = append([]Option{WithControlPlane(r.cp), WithInjectors(r.env, r.file, r.reg), WithEnvRenderer(builtin.EnvRenderer()), withNotifier(nopNotifier{})}, opts...)
	a, err := New(cfg, zap.New(core), opts...)
	if err != nil {
		t.Fatal(err)
	}
	r.a = a
	return r
}

func (r *testRig) pass(t *testing.T) control.PassReport {
	t.Helper()
	return r.a.Sync(context.Background())
}

func (r *testRig) row(t *testing.T, id string) control.SecretStatus {
	t.Helper()
	for _, s := range r.a.Status().Secrets {
		if s.ID == id {
			return s
		}
	}
	t.Fatalf("no status row for %s", id)
	return control.SecretStatus{}
}

func TestSecondPassWithNothingChangedWritesAndFetchesNothing(t *testing.T) {
	r := newRig(t, nil)
	r.cp.put("s1", "API_TOKEN", controlplane.ScopeUser, "env", "API_TOKEN", "tok")
	r.cp.put("s2", "KEY_FILE", controlplane.ScopeProject, "file", "/home/u/key", "k")
	r.cp.put("s3", "REGISTRY", controlplane.ScopeOrganization, "registry", "ghcr.io", base64.StdEncoding.EncodeToString([]byte("u:p")))

	first := r.pass(t)
	if !first.OK() || writes(first.Results) != 3 {
		t.Fatalf("first pass: ok=%v writes=%d status=%+v", first.OK(), writes(first.Results), first.Status)
	}
	fetched := r.cp.totalValueCalls()
	second := r.pass(t)
	if !second.OK() {
		t.Fatalf("second pass not OK: %+v", second.Status)
	}
	if n := writes(second.Results); n != 0 {
		t.Errorf("second pass wrote %d times, want 0", n)
	}
	if n := r.cp.totalValueCalls() - fetched; n != 0 {
		t.Errorf("second pass fetched %d values, want 0", n)
	}
	if r.row(t, "s1").Outcome != "unchanged" {
		t.Errorf("row: %+v", r.row(t, "s1"))
	}
}

func TestOnlyChangedSessionsAreFetched(t *testing.T) {
	r := newRig(t, nil)
	r.cp.put("s1", "ONE_VAR", controlplane.ScopeUser, "env", "ONE", "1")
	r.cp.put("s2", "TWO_VAR", controlplane.ScopeUser, "env", "TWO", "2")
	r.pass(t)
	r.cp.put("s2", "TWO_VAR", controlplane.ScopeUser, "env", "TWO", "2b")
	rep := r.pass(t)
	calls := r.cp.count(func(f *fakePlane) int { return f.valueCalls["s1"]*10 + f.valueCalls["s2"] })
	if calls != 12 {
		t.Errorf("value fetches: s1=%d s2=%d, want 1 and 2", calls/10, calls%10)
	}
	if got, _ := r.env.read(t, "TWO"); got != "2b" || writes(rep.Results) != 1 {
		t.Errorf("TWO = %q, writes %d; want 2b and 1 write", got, writes(rep.Results))
	}
}

func TestFailedSpecFetchRemovesNothingAndDegrades(t *testing.T) {
	r := newRig(t, nil)
	r.cp.put("s1", "KEY_FILE", controlplane.ScopeUser, "file", "/x/key", "k")
	r.pass(t)
	r.cp.set(func(f *fakePlane) { f.specErr = errUnavailable })
	rep := r.pass(t)
	if rep.OK() || rep.Error == "" || writes(rep.Results) != 0 {
		t.Fatalf("failed fetch: ok=%v error=%q writes=%d", rep.OK(), rep.Error, writes(rep.Results))
	}
	if got, ok := r.file.read(t, "/x/key"); !ok || got != "k" {
		t.Errorf("file after failed fetch: %q %v, want it kept", got, ok)
	}
	st := r.a.Status()
	if st.State != control.Degraded || !strings.Contains(st.LastError, "unavailable") || st.DegradedSince.IsZero() {
		t.Errorf("status: state %s, error %q, since %v", st.State, st.LastError, st.DegradedSince)
	}
	since := st.DegradedSince
	r.pass(t)
	if st := r.a.Status(); !st.DegradedSince.Equal(since) {
		t.Errorf("degraded since moved from %v to %v during one spell", since, st.DegradedSince)
	}
	r.cp.set(func(f *fakePlane) { f.specErr = nil })
	if rep := r.pass(t); !rep.OK() {
		t.Fatalf("pass after recovery not OK: %+v", rep.Status)
	}
	if st := r.a.Status(); st.State != control.Ready || !st.DegradedSince.IsZero() {
		t.Errorf("after recovery: state %s since %v", st.State, st.DegradedSince)
	}
}

func TestFailedValueFetchKeepsOldOutput(t *testing.T) {
	r := newRig(t, nil)
	r.cp.put("s1", "KEY_FILE", controlplane.ScopeUser, "file", "/x/key", "old")
	r.cp.put("s2", "OTHER_FILE", controlplane.ScopeUser, "file", "/x/other", "o")
	r.pass(t)
	r.cp.put("s1", "KEY_FILE", controlplane.ScopeUser, "file", "/x/key", "new")
	r.cp.set(func(f *fakePlane) { f.valueErr["s1"] = errUnavailable })
	r.cp.put("s2", "OTHER_FILE", controlplane.ScopeUser, "file", "/x/other", "o2")
	rep := r.pass(t)
	if got, _ := r.file.read(t, "/x/key"); got != "old" {
		t.Errorf("key = %q, want the old value kept", got)
	}
	if got, _ := r.file.read(t, "/x/other"); got != "o2" {
		t.Errorf("other = %q, want o2: one failing fetch must not stop the others", got)
	}
	row := r.row(t, "s1")
	if rep.OK() || row.Outcome != "failed" || row.Note != "last applied value kept" {
		t.Errorf("report ok=%v, row %+v", rep.OK(), row)
	}
	r.cp.set(func(f *fakePlane) { delete(f.valueErr, "s1") })
	if rep := r.pass(t); !rep.OK() {
		t.Fatalf("after recovery: %+v", rep.Status)
	}
	if got, _ := r.file.read(t, "/x/key"); got != "new" {
		t.Errorf("key = %q, want new", got)
	}
}

func TestFailedFirstFetchHoldsItsInjectorInsteadOfRemoving(t *testing.T) {
	// After a restart nothing is in memory; leaving the secret out would
	// make the injector delete what an earlier run wrote.
	r := newRig(t, nil)
	r.cp.put("s1", "KEY_FILE", controlplane.ScopeUser, "file", "/x/key", "k")
	r.cp.set(func(f *fakePlane) { f.valueErr["s1"] = errUnavailable })
	rep := r.pass(t)
	if r.file.calls != 0 {
		t.Errorf("secretfile applied %d times, want held back", r.file.calls)
	}
	if rep.OK() || r.row(t, "s1").Outcome != "failed" {
		t.Errorf("ok=%v row=%+v", rep.OK(), r.row(t, "s1"))
	}
}

func TestOneBadSecretDoesNotStopOthers(t *testing.T) {
	r := newRig(t, nil)
	r.cp.put("bad1", "NUL_VALUE", controlplane.ScopeUser, "env", "NULLY", "a\x00b")
	r.cp.put("bad2", "x", controlplane.ScopeUser, "env", "1BAD", "v")
	r.cp.put("bad3", "BAD_REG", controlplane.ScopeUser, "registry", "ghcr.io", "not base64!")
	r.cp.put("api", "API_ONLY", controlplane.ScopeUser, "api", "", "never")
	r.cp.put("good", "GOOD_VAR", controlplane.ScopeUser, "env", "GOOD", "fine")
	rep := r.pass(t)
	if got, _ := r.env.read(t, "GOOD"); got != "fine" {
		t.Errorf("GOOD = %q", got)
	}
	if _, ok := r.env.read(t, "NULLY"); ok {
		t.Error("a value with NUL was written")
	}
	want := map[string]control.Outcome{"bad1": "failed", "bad2": "rejected", "bad3": "failed", "api": "skipped", "good": "created"}
	for id, outcome := range want {
		if got := r.row(t, id).Outcome; got != outcome {
			t.Errorf("%s: outcome %q, want %q", id, got, outcome)
		}
	}
	if rep.OK() || rep.Status.State != control.Degraded {
		t.Errorf("report ok=%v state=%s", rep.OK(), rep.Status.State)
	}
}

func TestUserSecretShadowsProjectSecretInStatus(t *testing.T) {
	r := newRig(t, nil)
	r.cp.put("p", "TOKEN_P", controlplane.ScopeProject, "env", "TOKEN", "project")
	r.cp.put("u", "TOKEN_U", controlplane.ScopeUser, "env", "TOKEN", "user")
	r.pass(t)
	if got, _ := r.env.read(t, "TOKEN"); got != "user" {
		t.Errorf("TOKEN = %q", got)
	}
	if sh := r.row(t, "u").Shadows; len(sh) != 1 || sh[0].ID != "p" {
		t.Errorf("shadows %+v", sh)
	}
	if n := r.cp.count(func(f *fakePlane) int { return f.valueCalls["p"] }); n != 0 {
		t.Errorf("shadowed value fetched %d times", n)
	}
}

func TestPassAtDebugLogsNoValue(t *testing.T) {
	r := newRig(t, nil)
	values := map[string]string{
		"s1": "env-value-Qx7", "s2": "file-value-Zk9", "s3": base64.StdEncoding.EncodeToString([]byte("reguser:regpass-Wm3")),
		"s4": "bad\x00value-Pp1", "s5": "api-value-Hh2",
	}
	r.cp.put("s1", "ENV_ONE", controlplane.ScopeUser, "env", "ENV_ONE", values["s1"])
	r.cp.put("s2", "FILE_ONE", controlplane.ScopeUser, "file", "/x/f", values["s2"])
	r.cp.put("s3", "REG_ONE", controlplane.ScopeUser, "registry", "ghcr.io", values["s3"])
	r.cp.put("s4", "ENV_BAD", controlplane.ScopeUser, "env", "ENV_BAD", values["s4"])
	r.cp.put("s5", "API_ONE", controlplane.ScopeUser, "api", "", values["s5"])
	r.pass(t)
	r.cp.put("s2", "FILE_ONE", controlplane.ScopeUser, "file", "/x/f", "rotated-value-Jj4")
	values["rot"] = "rotated-value-Jj4"
	r.pass(t)
	logs := r.logs.String()
	if !strings.Contains(logs, "fetching value") {
		t.Fatalf("no debug logs captured:\n%s", logs)
	}
	for id, v := range values {
		for _, needle := range []string{v, "regpass-Wm3", "Qx7", "Zk9", "Pp1", "Hh2", "Jj4"} {
			if strings.Contains(logs, needle) {
				t.Errorf("log holds (part of) the value of %s: %q", id, needle)
			}
		}
	}
}

func TestRegistryCredentialAnswersInHelperModeOnly(t *testing.T) {
	r := newRig(t, nil)
	r.cp.put("s3", "REG_ONE", controlplane.ScopeUser, "registry", "docker.io", base64.StdEncoding.EncodeToString([]byte("me:pw")))
	r.pass(t)
	if u, p, ok := r.a.RegistryCredential("https://index.docker.io/v1/"); !ok || u != "me" || p != "pw" {
		t.Errorf("credential: %q %q %v", u, p, ok)
	}
	if hosts := r.a.RegistryHosts(); len(hosts) != 1 || hosts[0] != "docker.io" {
		t.Errorf("hosts %v", hosts)
	}
	if _, _, ok := r.a.RegistryCredential("ghcr.io"); ok {
		t.Error("answered for a host with no secret")
	}
	r2 := newRig(t, nil)
	r2.reg.inline = true
	r2.cp.put("s3", "REG_ONE", controlplane.ScopeUser, "registry", "docker.io", base64.StdEncoding.EncodeToString([]byte("me:pw")))
	r2.pass(t)
	if _, _, ok := r2.a.RegistryCredential("docker.io"); ok {
		t.Error("answered in inline mode")
	}
}

// TestGitCredentialIsServedFromTheLastAppliedPass: the git route answers the
// gitcred injector's user name and the token of the secret for that host,
// and stops answering once the secret is gone; status lists the secret.
func TestGitCredentialIsServedFromTheLastAppliedPass(t *testing.T) {
	git, err := gitcred.New(gitcred.Options{Helper: []string{"/bin/secrets-agent", "git-credential"},
		Owner: injectors.Owner{UID: -1, GID: -1, Home: t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	r := newRig(t, nil, WithInjectors(newFileInjector(t, "envprofile", secrets.MountEnv), git))
	r.cp.put("g1", "GIT_TOKEN", controlplane.ScopeUser, "git", "GitHub.com", "tok-1")
	r.cp.put("g2", "GIT_TOKEN_ORG", controlplane.ScopeOrganization, "git", "github.com", "tok-org")
	r.pass(t)
	if u, p, ok := r.a.Credential(secrets.MountGitCredential, "github.com"); !ok || u != gitcred.DefaultUsername || p != "tok-1" {
		t.Errorf("credential %q %q %v, want the user scope's token", u, p, ok)
	}
	if _, _, ok := r.a.Credential(secrets.MountGitCredential, "gitlab.com"); ok {
		t.Error("answered for a host with no secret")
	}
	if _, _, ok := r.a.Credential(secrets.MountRegistry, "github.com"); ok {
		t.Error("answered a git token as a registry login")
	}
	row := r.row(t, "g1")
	if row.Mount != "git_credential" || row.Target != "GitHub.com" || row.Outcome != control.Outcome(injectors.Created) ||
		len(row.Shadows) != 1 || row.Shadows[0].ID != "g2" {
		t.Errorf("status row %+v", row)
	}
	r.cp.put("g1", "GIT_TOKEN", controlplane.ScopeUser, "git", "GitHub.com", "tok-2")
	r.pass(t)
	if _, p, _ := r.a.Credential(secrets.MountGitCredential, "github.com"); p != "tok-2" {
		t.Error("a rotated token is not served")
	}
	r.cp.remove("g1")
	r.cp.remove("g2")
	r.pass(t)
	if _, _, ok := r.a.Credential(secrets.MountGitCredential, "github.com"); ok {
		t.Error("a deleted secret is still served")
	}
}

func TestAppliedClosesAfterFirstAppliedPass(t *testing.T) {
	r := newRig(t, nil)
	r.cp.set(func(f *fakePlane) { f.specErr = errUnavailable })
	r.pass(t)
	select {
	case <-r.a.Applied():
		t.Fatal("Applied closed after a failed fetch")
	default:
	}
	r.cp.set(func(f *fakePlane) { f.specErr = nil })
	r.pass(t)
	select {
	case <-r.a.Applied():
	case <-time.After(10 * time.Second):
		t.Fatal("Applied not closed")
	}
	if r.a.Status().FirstApplied.IsZero() {
		t.Error("FirstApplied not set")
	}
}

// TestCredentialsAnswerWhileAPassIsStuck: docker asking the credential
// helper, or a shell asking for the env fragment, is answered from what was
// last applied even while a pass waits on a slow control plane.
func TestCredentialsAnswerWhileAPassIsStuck(t *testing.T) {
	r := newRig(t, nil)
	r.cp.put("s3", "REG_ONE", controlplane.ScopeUser, "registry", "docker.io", base64.StdEncoding.EncodeToString([]byte("me:pw")))
	r.pass(t)
	gate := make(chan struct{})
	r.cp.set(func(f *fakePlane) { f.gate = gate })
	done := make(chan struct{})
	go func() { defer close(done); r.a.Sync(context.Background()) }()
	eventually(t, "pass stuck in GetEnvironment", func() bool { return r.cp.count(func(f *fakePlane) int { return f.blocked }) == 1 })
	answered := make(chan bool, 1)
	go func() {
		_, _, ok := r.a.RegistryCredential("docker.io")
		_, err := r.a.EnvFragment("sh")
		answered <- ok && err == nil
	}()
	select {
	case ok := <-answered:
		if !ok {
			t.Error("no credential or fragment while a pass was stuck")
		}
	case <-time.After(10 * time.Second):
		t.Error("RegistryCredential waited for the stuck pass")
	}
	close(gate)
	<-done
}
