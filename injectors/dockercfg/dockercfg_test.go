package dockercfg

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/secrets-agent/secrets-agent/injectors"
	"github.com/secrets-agent/secrets-agent/internal/testutil"
	"github.com/secrets-agent/secrets-agent/secrets"
)

// fixture is an injector on a temp config dir and state dir.
type fixture struct {
	in       *Injector
	cfgDir   string
	stateDir string
}

func newFixture(t testing.TB, mode Mode) *fixture {
	t.Helper()
	base := t.TempDir()
	f := &fixture{cfgDir: filepath.Join(base, "home", ".docker"), stateDir: filepath.Join(base, "state")}
	if err := os.MkdirAll(filepath.Join(base, "home"), 0o755); err != nil {
		t.Fatal(err)
	}
	in, err := New(Options{
		ConfigDir: "~/.docker",
		Mode:      mode,
		Owner:     injectors.Owner{UID: -1, GID: -1, Home: filepath.Join(base, "home")},
		StateDir:  f.stateDir,
	})
	if err != nil {
		t.Fatal(err)
	}
	f.in = in
	return f
}

func (f *fixture) path() string { return filepath.Join(f.cfgDir, "config.json") }

func (f *fixture) write(t *testing.T, content string) {
	t.Helper()
	if err := os.MkdirAll(f.cfgDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.path(), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) read(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(f.path())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// doc returns config.json as a generic value.
func (f *fixture) doc(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(f.read(t), &m); err != nil {
		t.Fatalf("config.json is not JSON: %v", err)
	}
	return m
}

// apply runs one pass and fails the test on an injector-wide error.
func (f *fixture) apply(t *testing.T, desired ...secrets.Secret) injectors.Result {
	t.Helper()
	res := f.in.Apply(context.Background(), desired)
	if res.Err != nil {
		t.Fatalf("Apply: %v", res.Err)
	}
	return res
}

func registrySecret(name, host, user, password string) secrets.Secret {
	return secrets.Secret{
		ID: "id-" + name, Name: name, Scope: secrets.ScopeUser, Session: "1",
		Mount: secrets.Mount{Kind: secrets.MountRegistry, Target: host},
		Value: secrets.Value(b64(user + ":" + password)),
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func outcomeFor(t *testing.T, res injectors.Result, target string) injectors.Outcome {
	t.Helper()
	for _, o := range res.Outcomes {
		if o.Target == target {
			return o
		}
	}
	t.Fatalf("no outcome for %s in %+v", target, res.Outcomes)
	return injectors.Outcome{}
}

func authOf(t *testing.T, doc map[string]any, key string) string {
	t.Helper()
	auths, _ := doc["auths"].(map[string]any)
	e, ok := auths[key].(map[string]any)
	if !ok {
		return ""
	}
	s, _ := e["auth"].(string)
	return s
}

// foreignConfig has every kind of content the injector does not own.
const foreignConfig = `{
	"auths": {
		"other.example.com": {"auth": "b3RoZXI6cHc=", "email": "me@example.com"},
		"token.example.com": {"identitytoken": "tok", "x-future": [1, 2.50, {"deep": null}]}
	},
	"credHelpers": {"gcr.io": "gcloud"},
	"credsStore": "",
	"proxies": {"default": {"httpProxy": "http://proxy:3128", "noProxy": "*.local,<a&b>"}},
	"HttpHeaders": {"X-Meta": "v"},
	"currentContext": "remote",
	"someFutureKey": {"n": 123456789012345678901234567890, "list": ["a", true, null]},
	"plugins": {"buildx": {"x": "y"}}
}`

// assertForeignSurvives checks that every key and entry of foreignConfig is
// in config.json with its meaning; in auths and credHelpers only the entries
// of other keys than ours are compared.
func assertForeignSurvives(t *testing.T, f *fixture, ours ...string) {
	t.Helper()
	var want, got map[string]json.RawMessage
	if err := json.Unmarshal([]byte(foreignConfig), &want); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(f.read(t), &got); err != nil {
		t.Fatal(err)
	}
	for k, v := range want {
		if k == "auths" || k == "credHelpers" {
			continue
		}
		if !sameJSON(v, got[k]) {
			t.Errorf("top-level %q: got %s, want %s", k, got[k], v)
		}
	}
	for _, sec := range []string{"auths", "credHelpers"} {
		var ws, gs map[string]json.RawMessage
		_ = json.Unmarshal(want[sec], &ws)
		_ = json.Unmarshal(got[sec], &gs)
		for k, v := range ws {
			if !slices.Contains(ours, k) && !sameJSON(v, gs[k]) {
				t.Errorf("%s[%q]: got %s, want %s", sec, k, gs[k], v)
			}
		}
	}
}

func TestMergeKeepsEverythingItDoesNotOwn(t *testing.T) {
	f := newFixture(t, Inline)
	f.write(t, foreignConfig)

	steps := []struct {
		name    string
		desired []secrets.Secret
		want    map[string]string // key -> auth ("" = absent)
	}{
		{"add", []secrets.Secret{registrySecret("a", "registry.example.com", "u1", "p1"), registrySecret("hub", "docker.io", "hu", "hp")},
			map[string]string{"registry.example.com": b64("u1:p1"), DockerHubKey: b64("hu:hp")}},
		{"update", []secrets.Secret{registrySecret("a", "registry.example.com", "u1", "p2"), registrySecret("hub", "docker.io", "hu", "hp")},
			map[string]string{"registry.example.com": b64("u1:p2"), DockerHubKey: b64("hu:hp")}},
		{"remove one", []secrets.Secret{registrySecret("hub", "docker.io", "hu", "hp")},
			map[string]string{"registry.example.com": "", DockerHubKey: b64("hu:hp")}},
		{"remove all", nil, map[string]string{"registry.example.com": "", DockerHubKey: ""}},
	}
	for _, st := range steps {
		f.apply(t, st.desired...)
		doc := f.doc(t)
		for key, want := range st.want {
			if got := authOf(t, doc, key); got != want {
				t.Errorf("%s: auths[%s] = %q, want %q", st.name, key, got, want)
			}
		}
		assertForeignSurvives(t, f)
	}
}

// DockerHubKey is the key docker uses for Docker Hub.
const DockerHubKey = secrets.DockerHubKey

func TestDockerHubAndBareHostKeys(t *testing.T) {
	tests := []struct{ host, key string }{
		{"docker.io", "https://index.docker.io/v1/"},
		{"index.docker.io", "https://index.docker.io/v1/"},
		{"https://index.docker.io/v1/", "https://index.docker.io/v1/"},
		{"Registry.Example.com:5000", "registry.example.com:5000"},
		{"ghcr.io", "ghcr.io"},
		{"127.0.0.1:5000", "127.0.0.1:5000"},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			if got := Key(tt.host); got != tt.key {
				t.Fatalf("Key(%q) = %q, want %q", tt.host, got, tt.key)
			}
			f := newFixture(t, Inline)
			res := f.apply(t, registrySecret("s", tt.host, "user", "pw"))
			if o := outcomeFor(t, res, tt.key); o.Action != injectors.Created {
				t.Fatalf("outcome %+v", o)
			}
			if got := authOf(t, f.doc(t), tt.key); got != b64("user:pw") {
				t.Fatalf("auths[%s] = %q", tt.key, got)
			}
		})
	}
}

func TestWritesAuthTheWayDockerDoes(t *testing.T) {
	f := newFixture(t, Inline)
	f.apply(t, registrySecret("s", "r.example.com", "user", "p:w"))
	var m struct {
		Auths map[string]map[string]any `json:"auths"`
	}
	if err := json.Unmarshal(f.read(t), &m); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"auth": b64("user:p:w")}
	if !reflect.DeepEqual(m.Auths["r.example.com"], want) {
		t.Fatalf("entry = %v, want %v", m.Auths["r.example.com"], want)
	}
	if !bytes.Contains(f.read(t), []byte("\n\t\"auths\"")) {
		t.Errorf("config.json is not tab-indented as docker writes it:\n%s", f.read(t))
	}
}

func TestRemovalSkipsEntryReplacedByDockerLogin(t *testing.T) {
	f := newFixture(t, Inline)
	f.apply(t, registrySecret("s", "r.example.com", "agent", "pw"))

	// What `docker login r.example.com` does: rewrite that entry.
	doc := f.doc(t)
	doc["auths"].(map[string]any)["r.example.com"] = map[string]any{"auth": b64("me:mine")}
	b, _ := json.MarshalIndent(doc, "", "\t")
	f.write(t, string(b))

	res := f.apply(t)
	o := outcomeFor(t, res, "r.example.com")
	if o.Action != injectors.Unchanged || !strings.Contains(o.Note, "replaced") {
		t.Fatalf("outcome %+v, want unchanged with a note", o)
	}
	if got := authOf(t, f.doc(t), "r.example.com"); got != b64("me:mine") {
		t.Fatalf("docker login's entry was not kept: %q", got)
	}
	// The injector forgot the entry: later passes leave it alone too.
	if res := f.apply(t); len(res.Outcomes) != 0 || res.Writes != 0 {
		t.Fatalf("second pass: %+v", res)
	}
}

func TestDesiredSecretRepairsChangedEntry(t *testing.T) {
	f := newFixture(t, Inline)
	s := registrySecret("s", "r.example.com", "agent", "pw")
	f.apply(t, s)
	doc := f.doc(t)
	doc["auths"].(map[string]any)["r.example.com"] = map[string]any{"auth": b64("me:mine")}
	b, _ := json.Marshal(doc)
	f.write(t, string(b))

	res := f.apply(t, s)
	if o := outcomeFor(t, res, "r.example.com"); o.Action != injectors.Repaired {
		t.Fatalf("outcome %+v, want repaired", o)
	}
	if got := authOf(t, f.doc(t), "r.example.com"); got != b64("agent:pw") {
		t.Fatalf("auth = %q", got)
	}
}

func TestConcurrentWriterEntryIsKept(t *testing.T) {
	f := newFixture(t, Inline)
	f.write(t, `{"auths": {}}`)
	calls := 0
	// Play another program (docker login) writing between our read and our
	// rename: the seam runs after the merge, before the guarding re-read.
	f.in.beforeCommit = func() {
		calls++
		if calls == 1 {
			f.write(t, `{"auths": {"late.example.com": {"auth": "`+b64("late:pw")+`"}}, "lateKey": 1}`)
		}
	}
	res := f.apply(t, registrySecret("s", "r.example.com", "agent", "pw"))
	if calls < 2 {
		t.Fatalf("merge ran %d times, want a retry", calls)
	}
	doc := f.doc(t)
	if authOf(t, doc, "late.example.com") != b64("late:pw") || doc["lateKey"] != float64(1) {
		t.Fatalf("the concurrent writer's entry was lost: %s", f.read(t))
	}
	if authOf(t, doc, "r.example.com") != b64("agent:pw") {
		t.Fatalf("our entry is missing: %s", f.read(t))
	}
	if o := outcomeFor(t, res, "r.example.com"); o.Action != injectors.Created {
		t.Fatalf("outcome %+v", o)
	}
}

func TestConcurrentWriterThatNeverStopsFailsThePass(t *testing.T) {
	f := newFixture(t, Inline)
	f.write(t, `{}`)
	n := 0
	f.in.beforeCommit = func() {
		n++
		f.write(t, `{"n": `+strings.Repeat("1", n)+`}`)
	}
	res := f.in.Apply(context.Background(), []secrets.Secret{registrySecret("s", "r.example.com", "u", "p")})
	if res.Err == nil || !strings.Contains(res.Err.Error(), "changed by another program") {
		t.Fatalf("err = %v", res.Err)
	}
	if n != maxAttempts {
		t.Fatalf("attempts = %d, want %d", n, maxAttempts)
	}
}

func TestCreatesConfig0600InDir0700(t *testing.T) {
	f := newFixture(t, Inline)
	f.apply(t, registrySecret("s", "r.example.com", "u", "p"))
	fi, err := os.Stat(f.path())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("config.json mode %v, want 0600", fi.Mode().Perm())
	}
	di, err := os.Stat(f.cfgDir)
	if err != nil {
		t.Fatal(err)
	}
	if di.Mode().Perm() != 0o700 {
		t.Errorf("config dir mode %v, want 0700", di.Mode().Perm())
	}
}

func TestKeepsModeAndOwner(t *testing.T) {
	tests := []struct {
		name     string
		mode     Mode
		perm     os.FileMode
		wantPerm os.FileMode
	}{
		{"inline keeps 0600", Inline, 0o600, 0o600},
		{"inline keeps 0400", Inline, 0o400, 0o400},
		{"inline narrows 0644: a credential is never world-readable", Inline, 0o644, 0o600},
		{"helper keeps 0644: no credential in the file", Helper, 0o644, 0o644},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.mode)
			f.write(t, `{"auths": {}}`)
			if err := os.Chmod(f.path(), tt.perm); err != nil {
				t.Fatal(err)
			}
			f.apply(t, registrySecret("s", "r.example.com", "u", "p"))
			fi, err := os.Stat(f.path())
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != tt.wantPerm {
				t.Fatalf("mode %v, want %v", fi.Mode().Perm(), tt.wantPerm)
			}
		})
	}
}

func TestCreatesConfigOwnedByOwner(t *testing.T) {
	testutil.NeedRoot(t, "create config.json for another user")
	base := t.TempDir()
	in, err := New(Options{ConfigDir: filepath.Join(base, "home", ".docker"), Owner: injectors.Owner{UID: 4321, GID: 4322}, StateDir: filepath.Join(base, "state")})
	if err != nil {
		t.Fatal(err)
	}
	if res := in.Apply(context.Background(), []secrets.Secret{registrySecret("s", "r.example.com", "u", "p")}); res.Err != nil {
		t.Fatal(res.Err)
	}
	for _, p := range []string{filepath.Join(base, "home"), filepath.Join(base, "home", ".docker"), in.ConfigPath()} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != 4321 || st.Gid != 4322 {
			t.Errorf("%s owner %d:%d, want 4321:4322", p, st.Uid, st.Gid)
		}
	}
}

func TestUnchangedPassWritesNothing(t *testing.T) {
	for _, mode := range []Mode{Inline, Helper} {
		t.Run(string(mode), func(t *testing.T) {
			f := newFixture(t, mode)
			f.write(t, foreignConfig)
			desired := []secrets.Secret{registrySecret("a", "r.example.com", "u", "p"), registrySecret("b", "docker.io", "u", "p")}
			if res := f.apply(t, desired...); res.Writes == 0 {
				t.Fatal("first pass wrote nothing")
			}
			before, _ := os.Stat(f.path())
			res := f.apply(t, desired...)
			if res.Writes != 0 {
				t.Fatalf("second pass: %d writes, want 0", res.Writes)
			}
			for _, o := range res.Outcomes {
				if o.Action != injectors.Unchanged {
					t.Errorf("outcome %+v, want unchanged", o)
				}
			}
			after, _ := os.Stat(f.path())
			if !os.SameFile(before, after) {
				t.Error("config.json was replaced")
			}
		})
	}
}

func TestCredsStoreNoteInInlineMode(t *testing.T) {
	f := newFixture(t, Inline)
	f.write(t, `{"credsStore": "desktop", "credHelpers": {"helped.example.com": "ecr-login"}}`)
	res := f.apply(t, registrySecret("a", "r.example.com", "u", "p"), registrySecret("b", "helped.example.com", "u", "p"))
	if o := outcomeFor(t, res, "r.example.com"); !strings.Contains(o.Note, `credsStore "desktop"`) {
		t.Errorf("note = %q, want it to name credsStore", o.Note)
	}
	if o := outcomeFor(t, res, "helped.example.com"); !strings.Contains(o.Note, "credHelpers[helped.example.com]") {
		t.Errorf("note = %q, want it to name credHelpers", o.Note)
	}
}

func TestHelperModeWritesCredHelpersAndNoPassword(t *testing.T) {
	f := newFixture(t, Helper)
	f.write(t, foreignConfig)
	const password = "hunter2-very-secret"
	res := f.apply(t, registrySecret("a", "r.example.com", "someone", password), registrySecret("hub", "docker.io", "someone", password))
	for _, o := range res.Outcomes {
		if o.Action != injectors.Created {
			t.Errorf("outcome %+v", o)
		}
	}
	doc := f.doc(t)
	helpers := doc["credHelpers"].(map[string]any)
	if helpers["r.example.com"] != "secrets-agent" || helpers[DockerHubKey] != "secrets-agent" || helpers["gcr.io"] != "gcloud" {
		t.Fatalf("credHelpers = %v", helpers)
	}
	assertForeignSurvives(t, f)
	assertNoValueOnDisk(t, filepath.Dir(f.cfgDir), password, b64("someone:"+password))
	assertNoValueOnDisk(t, f.stateDir, password, b64("someone:"+password))
}

// assertNoValueOnDisk greps every file below dir for each needle.
func assertNoValueOnDisk(t *testing.T, dir string, needles ...string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, n := range needles {
			if bytes.Contains(b, []byte(n)) {
				t.Errorf("%s contains a secret value", p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestManifestHoldsNoValueNorUnsaltedHash(t *testing.T) {
	f := newFixture(t, Inline)
	const password = "pa55-word"
	f.apply(t, registrySecret("a", "r.example.com", "user", password))
	auth := b64("user:" + password)
	entry := `{"auth":"` + auth + `"}`
	sum := sha256.Sum256([]byte(entry))
	sumAuth := sha256.Sum256([]byte(auth))
	assertNoValueOnDisk(t, f.stateDir, password, auth, hex.EncodeToString(sum[:]), hex.EncodeToString(sumAuth[:]))
	fi, err := os.Stat(filepath.Join(f.stateDir, "dockercfg.json"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("manifest mode %v", fi.Mode().Perm())
	}
}

func TestAutoModePicksHelperWhenCredsStoreIsSet(t *testing.T) {
	tests := []struct {
		name, config, section string
	}{
		{"credsStore set", `{"credsStore": "desktop"}`, "credHelpers"},
		{"no credsStore", `{"credHelpers": {"gcr.io": "gcloud"}}`, "auths"},
		{"no config", "", "auths"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, Auto)
			if tt.config != "" {
				f.write(t, tt.config)
			}
			res := f.apply(t, registrySecret("a", "r.example.com", "u", "p"))
			if o := outcomeFor(t, res, "r.example.com"); o.Action != injectors.Created || o.Note != "" {
				t.Fatalf("outcome %+v", o)
			}
			sec, _ := f.doc(t)[tt.section].(map[string]any)
			if _, ok := sec["r.example.com"]; !ok {
				t.Fatalf("no %s entry: %s", tt.section, f.read(t))
			}
		})
	}
}

func TestSwitchingModeMovesTheEntry(t *testing.T) {
	f := newFixture(t, Auto)
	s := registrySecret("a", "r.example.com", "u", "p")
	f.apply(t, s)
	if authOf(t, f.doc(t), "r.example.com") == "" {
		t.Fatal("auto without credsStore did not write auths")
	}
	// The user turns on a credential store; the next pass moves to helper
	// mode and takes its inline credential away.
	doc := f.doc(t)
	doc["credsStore"] = "pass"
	b, _ := json.Marshal(doc)
	f.write(t, string(b))
	res := f.apply(t, s)
	doc = f.doc(t)
	if authOf(t, doc, "r.example.com") != "" {
		t.Errorf("inline entry left behind: %s", f.read(t))
	}
	if doc["credHelpers"].(map[string]any)["r.example.com"] != "secrets-agent" {
		t.Errorf("no credHelpers entry: %s", f.read(t))
	}
	// One outcome for the one secret: its entry moved, not created and removed.
	if len(res.Outcomes) != 1 || res.Outcomes[0].Action != injectors.Updated || !strings.Contains(res.Outcomes[0].Note, "moved from auths to credHelpers") {
		t.Errorf("outcomes %+v", res.Outcomes)
	}
}

func TestMalformedValueFailsOnlyThatSecret(t *testing.T) {
	f := newFixture(t, Inline)
	good := registrySecret("good", "good.example.com", "u", "p")
	bad := registrySecret("bad", "bad.example.com", "u", "p")
	f.apply(t, good, bad)

	bad.Value = secrets.Value("not base64 at all!")
	res := f.apply(t, good, bad)
	if o := outcomeFor(t, res, "bad.example.com"); o.Action != injectors.Failed || o.Err == nil || strings.Contains(o.Err.Error(), "not base64 at all") {
		t.Fatalf("bad outcome %+v", o)
	}
	if o := outcomeFor(t, res, "good.example.com"); o.Action != injectors.Unchanged {
		t.Fatalf("good outcome %+v", o)
	}
	// A failed value keeps the last good entry rather than wiping it.
	if authOf(t, f.doc(t), "bad.example.com") != b64("u:p") {
		t.Fatalf("the failed secret's previous entry was removed: %s", f.read(t))
	}
}

func TestInvalidConfigFailsPassAndLeavesFileUntouched(t *testing.T) {
	for _, content := range []string{`{"auths": {"x": `, `[1, 2]`, `{"auths": "nope"}`, "\x00garbage"} {
		t.Run(content, func(t *testing.T) {
			f := newFixture(t, Inline)
			f.write(t, content)
			before, _ := os.Stat(f.path())
			res := f.in.Apply(context.Background(), []secrets.Secret{registrySecret("a", "r.example.com", "u", "p")})
			if res.Err == nil || !strings.Contains(res.Err.Error(), "config.json") {
				t.Fatalf("err = %v, want one naming config.json", res.Err)
			}
			if o := outcomeFor(t, res, "r.example.com"); o.Action != injectors.Failed {
				t.Fatalf("outcome %+v", o)
			}
			if got := string(f.read(t)); got != content {
				t.Fatalf("file changed to %q", got)
			}
			after, _ := os.Stat(f.path())
			if !os.SameFile(before, after) || !before.ModTime().Equal(after.ModTime()) {
				t.Fatal("file was rewritten")
			}
		})
	}
}

func TestSymlinkedConfigIsRefused(t *testing.T) {
	f := newFixture(t, Inline)
	target := filepath.Join(t.TempDir(), "elsewhere.json")
	if err := os.WriteFile(target, []byte(`{}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(f.cfgDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, f.path()); err != nil {
		t.Fatal(err)
	}
	res := f.in.Apply(context.Background(), []secrets.Secret{registrySecret("a", "r.example.com", "u", "p")})
	if res.Err == nil || !strings.Contains(res.Err.Error(), "symlink") {
		t.Fatalf("err = %v", res.Err)
	}
	if b, _ := os.ReadFile(target); string(b) != `{}` {
		t.Fatalf("symlink target written: %s", b)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	tests := []Options{
		{Mode: "sometimes", StateDir: "/s", ConfigDir: "/c"},
		{HelperName: "../evil", StateDir: "/s", ConfigDir: "/c"},
		{ConfigDir: "relative", StateDir: "/s"},
		{ConfigDir: "~/.docker", StateDir: "/s"}, // no home
		{ConfigDir: "/c"},                        // no state dir
	}
	for _, o := range tests {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) succeeded", o)
		}
	}
}

func TestChangedConfigDirTakesEntriesOutOfTheOldFile(t *testing.T) {
	f := newFixture(t, Inline)
	f.write(t, foreignConfig)
	s := registrySecret("a", "r.example.com", "u", "p")
	f.apply(t, s)

	newDir := filepath.Join(t.TempDir(), "docker-config")
	in, err := New(Options{ConfigDir: newDir, Mode: Inline, Owner: injectors.Owner{UID: -1, GID: -1}, StateDir: f.stateDir})
	if err != nil {
		t.Fatal(err)
	}
	res := in.Apply(context.Background(), []secrets.Secret{s})
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if authOf(t, f.doc(t), "r.example.com") != "" {
		t.Errorf("old config still holds the credential: %s", f.read(t))
	}
	assertForeignSurvives(t, f)
	b, err := os.ReadFile(filepath.Join(newDir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil || authOf(t, doc, "r.example.com") != b64("u:p") {
		t.Fatalf("new config: %s (%v)", b, err)
	}
	if len(res.Outcomes) != 2 || res.Outcomes[0].Action != injectors.Created || res.Outcomes[1].Action != injectors.Removed {
		t.Errorf("outcomes %+v", res.Outcomes)
	}
	// Back on a steady state: nothing to do.
	if res := in.Apply(context.Background(), []secrets.Secret{s}); res.Writes != 0 || res.Err != nil {
		t.Errorf("second pass: %+v", res)
	}
}

// TestSymlinkedConfigDirOutOfTheHomeIsRefused: a user who points ~/.docker
// at another user's docker dir (ln -s /root/.docker ~/.docker) must not make
// an agent running as root write there, by an absolute or a relative link.
func TestSymlinkedConfigDirOutOfTheHomeIsRefused(t *testing.T) {
	for _, relative := range []bool{false, true} {
		f := newFixture(t, Inline)
		victim := filepath.Join(filepath.Dir(filepath.Dir(f.cfgDir)), "root", ".docker")
		if err := os.MkdirAll(victim, 0o700); err != nil {
			t.Fatal(err)
		}
		link := victim
		if relative {
			link = "../root/.docker"
		}
		if err := os.Symlink(link, f.cfgDir); err != nil {
			t.Fatal(err)
		}
		res := f.in.Apply(context.Background(), []secrets.Secret{registrySecret("a", "r.example.com", "u", "p")})
		if res.Err == nil {
			t.Errorf("relative link %v: Apply through a symlink out of the home succeeded", relative)
		}
		if entries, _ := os.ReadDir(victim); len(entries) != 0 {
			t.Errorf("relative link %v: the agent wrote into the other user's docker dir: %v", relative, entries)
		}
	}
}
