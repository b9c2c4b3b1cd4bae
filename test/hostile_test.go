package test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secrets-agent/secrets-agent/agent"
	"github.com/secrets-agent/secrets-agent/control"
	"github.com/secrets-agent/secrets-agent/controlplane"
	"github.com/secrets-agent/secrets-agent/injectors/builtin"
	"github.com/secrets-agent/secrets-agent/injectors/gitcred"
	"github.com/secrets-agent/secrets-agent/internal/testutil"
)

// hostileCP is a control plane of our own on 127.0.0.1 that speaks the wire
// protocol of controlplane/wire.go but sends what the devserver refuses to
// store: invalid names, NUL bytes, raw invalid UTF-8, 100 MB values, 100,000
// secrets, unknown fields. It is the legitimate stand-in for a misbehaving
// or compromised control plane, which cannot be made from the real one.
type hostileCP struct {
	srv *httptest.Server

	mu     sync.Mutex
	specs  []string          // the raw JSON of each spec secret, sent as is
	values map[string]string // secret id -> raw GetSecretValue response body; absent: not_found
	big    map[string]int    // secret id -> size of a {"value":"AAAA…"} body streamed for it
}

func startHostileCP(t testing.TB) *hostileCP {
	t.Helper()
	h := &hostileCP{values: map[string]string{}, big: map[string]int{}}
	h.srv = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(h.srv.Close)
	return h
}

// set replaces the spec and the values the server answers with.
func (h *hostileCP) set(specs []string, values map[string]string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.specs, h.values = specs, values
}

func (h *hostileCP) serve(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	specs, values, big := h.specs, h.values, h.big
	h.mu.Unlock()
	w.Header().Set("Content-Type", controlplane.ContentTypeJSON)
	switch r.URL.Path {
	case controlplane.ProcGetEnvironment:
		// Unknown fields at every level: a newer server must keep working.
		_, _ = io.WriteString(w, `{"environment":{"id":"env-hostile","status":{"phase":"ENVIRONMENT_PHASE_RUNNING"},`+
			`"spec":{"specVersion":"7","secrets":[`+strings.Join(specs, ",")+`]}},"futureTopLevel":[1,2,3]}`)
	case controlplane.ProcGetSecretValue:
		var req controlplane.GetSecretValueRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"code":"invalid_argument"}`)
			return
		}
		if n, ok := big[req.SecretID]; ok {
			streamBigValue(w, n)
			return
		}
		body, ok := values[req.SecretID]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"code":"not_found","message":"no such secret"}`)
			return
		}
		_, _ = io.WriteString(w, body)
	default:
		w.WriteHeader(http.StatusNotImplemented)
		_, _ = io.WriteString(w, `{"code":"unimplemented"}`)
	}
}

// streamBigValue writes {"value":"AAAA…"} with n bytes of value, in chunks,
// stopping when the client hangs up.
func streamBigValue(w io.Writer, n int) {
	chunk := []byte(strings.Repeat("A", 1<<20))
	if _, err := io.WriteString(w, `{"value":"`); err != nil {
		return
	}
	for n > 0 {
		c := chunk[:min(n, len(chunk))]
		if _, err := w.Write(c); err != nil {
			return
		}
		n -= len(c)
	}
	_, _ = io.WriteString(w, `"}`)
}

// js is s as a JSON string (NUL as \u0000; invalid UTF-8 would become
// U+FFFD, so rows that send raw invalid UTF-8 write their JSON by hand).
func js(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// spec is the JSON of one spec secret at user scope with the mount given as
// raw JSON members (`"environmentVariable":"X"`).
func spec(id, name, mount string) string {
	return fmt.Sprintf(`{"id":%s,"name":%s,"scope":"SCOPE_USER","session":"s1",%s}`, js(id), js(name), mount)
}

func envMount(v string) string  { return `"environmentVariable":` + js(v) }
func fileMount(p string) string { return `"filePath":` + js(p) }
func regMount(h string) string  { return `"containerRegistryBasicAuthHost":` + js(h) }

// valueBody is a GetSecretValue answer carrying v exactly (value or valueBytes).
func valueBody(v []byte) string {
	value, valueBytes := controlplane.EncodeValue(v)
	b, err := json.Marshal(controlplane.GetSecretValueResponse{Value: value, ValueBytes: valueBytes})
	if err != nil {
		panic(err)
	}
	return string(b)
}

func b64(s string) []byte { return []byte(base64.StdEncoding.EncodeToString([]byte(s))) }

// hostileRow is one secret the hostile control plane sends and what the
// agent's status must say about it.
type hostileRow struct {
	what    string
	id      string
	name    string // with id, finds the status row (a repeated id has two)
	spec    string // raw JSON of the spec secret
	value   string // raw GetSecretValue body; "" answers not_found
	outcome string // the status row's outcome ("created" also admits "unchanged")
	errHas  string // in the row's error (failed, rejected) or note (skipped)
	check   func(t *testing.T)
}

// hostileWorld is the homes and planted traps the rows aim at.
type hostileWorld struct {
	home, outside, linkDir, victim string
}

func newHostileWorld(t *testing.T, dir string) hostileWorld {
	w := hostileWorld{home: filepath.Join(dir, "home"), outside: filepath.Join(dir, "outside")}
	w.linkDir = filepath.Join(w.outside, "linked")
	w.victim = filepath.Join(w.outside, "victim")
	must(t, os.MkdirAll(w.home, 0o755))
	must(t, os.MkdirAll(w.linkDir, 0o755))
	must(t, os.WriteFile(w.victim, []byte("victim"), 0o644))
	// Planted symlinks: a directory link out of home, and a file link to a
	// file outside it.
	must(t, os.Symlink(w.linkDir, filepath.Join(w.home, "link")))
	must(t, os.Symlink(w.victim, filepath.Join(w.home, "victimlink")))
	return w
}

// goodRows are applied alongside the hostile ones and must come out right.
func goodRows(w hostileWorld) []hostileRow {
	return []hostileRow{
		{what: "good env var", id: "good-env", name: "GOOD_ENV", spec: spec("good-env", "GOOD_ENV", envMount("GOOD_ENV")),
			value: valueBody([]byte("good env value")), outcome: "created"},
		{what: "good file", id: "good-file", name: "GOOD_FILE", spec: spec("good-file", "GOOD_FILE", fileMount(w.home+"/good/file")),
			value: valueBody([]byte("good file value")), outcome: "created"},
		{what: "good registry login", id: "good-reg", name: "GOOD_REG", spec: spec("good-reg", "GOOD_REG", regMount("reg.good.test")),
			value: valueBody(b64("bot:good-password")), outcome: "created"},
	}
}

// hostileRows are the specs of issue 6. Each value that could be shown holds
// "sekret-", which must appear in no status and no log line.
func hostileRows(w hostileWorld) []hostileRow {
	v := func(id string) string { return valueBody([]byte("sekret-" + id)) }
	return []hostileRow{
		// A name is a label (Ona: "the human readable description of the
		// secret"): any text applies, and status shows it sanitised.
		{what: "name that is no identifier", id: "h-name", name: "bad-name!", spec: spec("h-name", "bad-name!", envMount("BAD_NAME")),
			value: v("h-name"), outcome: "created"},
		{what: "empty id", id: "", name: "EMPTY_ID", spec: spec("", "EMPTY_ID", envMount("EMPTY_ID")),
			outcome: "rejected", errHas: "id: is empty"},
		{what: "repeated id", id: "good-file", name: "DUP_ID", spec: spec("good-file", "DUP_ID", fileMount(w.home+"/dup-id")),
			value: v("dup"), outcome: "rejected", errHas: "repeats the id"},
		{what: "same mount at the same scope", id: "zz-dup-mount", name: "DUP_MOUNT", spec: spec("zz-dup-mount", "DUP_MOUNT", envMount("GOOD_ENV")),
			value: v("zz-dup-mount"), outcome: "rejected", errHas: "also the target of secret good-env"},
		{what: "duplicate name, other mount", id: "h-dupname", name: "GOOD_FILE", spec: spec("h-dupname", "GOOD_FILE", fileMount(w.home+"/dupname")),
			value: valueBody([]byte("dup name")), outcome: "created",
			check: func(t *testing.T) { wantFile(t, w.home+"/dupname", "dup name") }},
		{what: "relative path", id: "h-rel", name: "REL_PATH", spec: spec("h-rel", "REL_PATH", fileMount("relative/path")),
			value: v("h-rel"), outcome: "rejected", errHas: "is not absolute"},
		{what: "path with ..", id: "h-dotdot", name: "DOT_DOT", spec: spec("h-dotdot", "DOT_DOT", fileMount(w.home+"/../outside/dotdot")),
			value: v("h-dotdot"), outcome: "rejected", errHas: "is not clean",
			check: func(t *testing.T) { wantAbsent(t, w.outside+"/dotdot") }},
		{what: "path outside the allowed roots", id: "h-outside", name: "OUTSIDE", spec: spec("h-outside", "OUTSIDE", fileMount(w.outside+"/stolen")),
			value: v("h-outside"), outcome: "failed", errHas: "not below an allowed root",
			check: func(t *testing.T) { wantAbsent(t, w.outside+"/stolen") }},
		{what: "path through a planted directory symlink", id: "h-link", name: "LINK_DIR", spec: spec("h-link", "LINK_DIR", fileMount(w.home+"/link/stolen")),
			value: v("h-link"), outcome: "failed", errHas: "cannot be reached inside allowed root",
			check: func(t *testing.T) { wantAbsent(t, w.linkDir+"/stolen") }},
		{what: "path that is a planted file symlink", id: "h-victim", name: "LINK_FILE", spec: spec("h-victim", "LINK_FILE", fileMount(w.home+"/victimlink")),
			value: v("h-victim"), outcome: "failed", errHas: "is a symlink",
			check: func(t *testing.T) { wantFile(t, w.victim, "victim") }},
		{what: "NUL in name", id: "h-nulname", name: "NUL\ufffdNAME", spec: spec("h-nulname", "NUL\x00NAME", envMount("NUL_NAME")),
			value: v("h-nulname"), outcome: "created"},
		{what: "NUL in path", id: "h-nulpath", name: "NUL_PATH", spec: spec("h-nulpath", "NUL_PATH", fileMount(w.home+"/a\x00b")),
			value: v("h-nulpath"), outcome: "rejected", errHas: "contains a NUL byte"},
		{what: "NUL in an env value", id: "h-nulenv", name: "NUL_ENV", spec: spec("h-nulenv", "NUL_ENV", envMount("NUL_ENV")),
			value: valueBody([]byte("sekret-\x00-nul")), outcome: "failed", errHas: "contains a NUL byte"},
		{what: "NUL in a file value", id: "h-nulfile", name: "NUL_FILE", spec: spec("h-nulfile", "NUL_FILE", fileMount(w.home+"/nulfile")),
			value: valueBody([]byte("a\x00b")), outcome: "created",
			check: func(t *testing.T) { wantFile(t, w.home+"/nulfile", "a\x00b") }},
		{what: "invalid UTF-8 in name (raw bytes)", id: "h-u8name", name: "BAD\ufffdNAME",
			spec:  `{"id":"h-u8name","name":"BAD` + "\xff" + `NAME","scope":"SCOPE_USER","environmentVariable":"U8_NAME"}`,
			value: v("h-u8name"), outcome: "created"},
		{what: "invalid UTF-8 in path (raw bytes, read as U+FFFD)", id: "h-u8path", name: "U8_PATH",
			spec:  `{"id":"h-u8path","name":"U8_PATH","scope":"SCOPE_USER","filePath":"` + w.home + "/bad\xffpath" + `"}`,
			value: valueBody([]byte("u8 path")), outcome: "created",
			check: func(t *testing.T) {
				wantFile(t, w.home+"/bad\ufffdpath", "u8 path")
				wantAbsent(t, w.home+"/bad\xffpath")
			}},
		{what: "invalid UTF-8 in an env value (valueBytes)", id: "h-u8env", name: "U8_ENV", spec: spec("h-u8env", "U8_ENV", envMount("U8_ENV")),
			value: valueBody([]byte("\xff\xfe-x")), outcome: "created",
			check: func(t *testing.T) { wantEnv(t, w, "U8_ENV", "\xff\xfe-x") }},
		{what: "invalid UTF-8 in a file value (valueBytes)", id: "h-u8file", name: "U8_FILE", spec: spec("h-u8file", "U8_FILE", fileMount(w.home+"/u8file")),
			value: valueBody([]byte("\xff\x00\xfe")), outcome: "created",
			check: func(t *testing.T) { wantFile(t, w.home+"/u8file", "\xff\x00\xfe") }},
		{what: "raw invalid UTF-8 in a value string (read as U+FFFD)", id: "h-u8raw", name: "U8_RAW", spec: spec("h-u8raw", "U8_RAW", fileMount(w.home+"/u8raw")),
			value: `{"value":"a` + "\xff" + `b"}`, outcome: "created",
			check: func(t *testing.T) { wantFile(t, w.home+"/u8raw", "a\ufffdb") }},
		{what: "value over the 1 MiB value cap", id: "h-2mib", name: "TWO_MIB", spec: spec("h-2mib", "TWO_MIB", fileMount(w.home+"/twomib")),
			value: valueBody([]byte(strings.Repeat("x", 2<<20))), outcome: "failed", errHas: "over the limit of 1048576",
			check: func(t *testing.T) { wantAbsent(t, w.home+"/twomib") }},
		{what: "registry value not base64", id: "h-reg64", name: "REG_B64", spec: spec("h-reg64", "REG_B64", regMount("reg.b64.test")),
			value: valueBody([]byte("sekret-not base64!")), outcome: "failed", errHas: "value"},
		{what: "registry value without a colon", id: "h-regcolon", name: "REG_COLON", spec: spec("h-regcolon", "REG_COLON", regMount("reg.colon.test")),
			value: valueBody(b64("sekret-nocolon")), outcome: "failed", errHas: "value"},
		{what: "registry value with an empty user", id: "h-reguser", name: "REG_USER", spec: spec("h-reguser", "REG_USER", regMount("reg.user.test")),
			value: valueBody(b64(":sekret-pw")), outcome: "failed", errHas: "value"},
		{what: "registry host that is not a host", id: "h-reghost", name: "REG_HOST", spec: spec("h-reghost", "REG_HOST", regMount("bad host/x")),
			value: valueBody(b64("bot:sekret-pw")), outcome: "rejected", errHas: "containerRegistryBasicAuthHost"},
		{what: "unknown scope", id: "h-scope", name: "BAD_SCOPE",
			spec:  `{"id":"h-scope","name":"BAD_SCOPE","scope":"SCOPE_GALAXY","environmentVariable":"BAD_SCOPE"}`,
			value: v("h-scope"), outcome: "rejected", errHas: `unknown scope "SCOPE_GALAXY"`},
		{what: "unknown mount kind", id: "h-mount", name: "KUBE_SECRET",
			spec:  `{"id":"h-mount","name":"KUBE_SECRET","scope":"SCOPE_USER","kubernetesSecretRef":{"name":"x"}}`,
			value: v("h-mount"), outcome: "skipped", errHas: "mount kind not known"},
		{what: "git credential mount", id: "h-git", name: "GIT_CRED", spec: spec("h-git", "GIT_CRED", `"gitCredentialHost":"github.com"`),
			value: v("h-git"), outcome: "created",
			check: func(t *testing.T) {
				b, err := os.ReadFile(filepath.Join(w.home, gitcred.File))
				if err != nil || !strings.Contains(string(b), `[credential "https://github.com"]`) || strings.Contains(string(b), "sekret") {
					t.Errorf("git config %q (%v): want github.com's helper and no token", b, err)
				}
			}},
		{what: "git token with a newline", id: "h-gitnl", name: "GIT_NL", spec: spec("h-gitnl", "GIT_NL", `"gitCredentialHost":"gitlab.example"`),
			value: valueBody([]byte("sekret\nprotocol=http")), outcome: "failed", errHas: "newline"},
		{what: "two mounts", id: "h-multi", name: "MULTI", spec: spec("h-multi", "MULTI", envMount("MULTI")+","+fileMount(w.home+"/multi")),
			value: v("h-multi"), outcome: "rejected", errHas: "has 2 mounts",
			check: func(t *testing.T) { wantAbsent(t, w.home+"/multi") }},
		{what: "unknown JSON fields in the secret", id: "h-unknown", name: "UNKNOWN_FIELDS",
			spec: `{"id":"h-unknown","name":"UNKNOWN_FIELDS","scope":"SCOPE_USER","environmentVariable":"UNKNOWN_FIELDS",` +
				`"futureField":{"a":[1,2,{"b":null}]},"labels":{"x":"y"},"createdAt":"2030-01-01T00:00:00Z"}`,
			value: `{"value":"with unknown fields","futureField":true,"metadata":{"k":1}}`, outcome: "created",
			check: func(t *testing.T) { wantEnv(t, w, "UNKNOWN_FIELDS", "with unknown fields") }},
		{what: "value the control plane denies", id: "h-missing", name: "MISSING", spec: spec("h-missing", "MISSING", fileMount(w.home+"/missing")),
			outcome: "failed", errHas: "not_found",
			check: func(t *testing.T) { wantAbsent(t, w.home+"/missing") }},
	}
}

func wantFile(t *testing.T, p, want string) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil || string(b) != want {
		t.Errorf("%s holds %q (%v), want %q", p, b, err, want)
	}
}

func wantAbsent(t *testing.T, p string) {
	t.Helper()
	if _, err := os.Lstat(p); !os.IsNotExist(err) {
		t.Errorf("%s exists (%v); the agent must not have written it", p, err)
	}
}

// wantEnv checks that bash, sourcing env.sh, sees name = want.
func wantEnv(t *testing.T, w hostileWorld, name, want string) {
	t.Helper()
	out, err := exec.Command("bash", "-c", `. "$1" && printf '%s' "${!2-<unset>}"`, "_",
		filepath.Join(filepath.Dir(w.home), "envdir", "env.sh"), name).Output()
	if err != nil || string(out) != want {
		t.Errorf("bash sees %s=%q (%v), want %q", name, out, err, want)
	}
}

// hostileConfig writes an agent config for the hostile control plane with
// watch and polling off (the server has no stream) and returns its path.
func hostileConfig(t testing.TB, dir, url string) string {
	t.Helper()
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("hostile-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	off := false
	return testutil.WriteAgentConfig(t, dir, testutil.AgentConfig{URL: url, EnvironmentID: "env-hostile",
		TokenFile: token, PollInterval: "0", Watch: &off})
}

// TestHostileSpecsGetPerSecretErrorsAndHarmNothing sends every row at once,
// with good secrets alongside, to the real agent binary: run --once must fail
// (exit 1) listing the bad secrets, and the daemon's status --json must give
// each row its outcome and error while the good secrets are applied exactly,
// nothing lands outside the allowed roots or through a planted symlink, and
// no value shows in status or logs.
func TestHostileSpecsGetPerSecretErrorsAndHarmNothing(t *testing.T) {
	testutil.NeedTool(t, "bash")
	dir := t.TempDir()
	w := newHostileWorld(t, dir)
	rows := append(goodRows(w), hostileRows(w)...)
	cp := startHostileCP(t)
	var specs []string
	values := map[string]string{}
	for _, r := range rows {
		specs = append(specs, r.spec)
		if r.value != "" {
			values[r.id] = r.value
		}
	}
	values["good-file"] = goodRows(w)[1].value // the repeated id must not replace it
	cp.set(specs, values)
	cfg := hostileConfig(t, dir, cp.srv.URL)

	_, stderr, code := testutil.RunAgent(t, nil, "run", "--once", "--config", cfg)
	if code != 1 {
		t.Fatalf("run --once exited %d, want 1 (some secrets not applied):\n%s", code, stderr)
	}
	for _, want := range []string{"created   bad-name!", "rejected  REL_PATH", "failed    OUTSIDE", "skipped   KUBE_SECRET", "created   GOOD_FILE"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("run --once summary lacks %q:\n%s", want, stderr)
		}
	}

	a := testutil.StartAgent(t, cfg)
	socket := filepath.Join(dir, "agent.sock")
	var st control.Status
	var out string
	testutil.Eventually(t, deadline, "the daemon has made a pass", func() bool {
		out, _, _ = testutil.RunAgent(t, nil, "status", "--json", "--socket", socket)
		return json.Unmarshal([]byte(out), &st) == nil && st.Passes > 0 && st.State != control.Starting
	})
	if st.State != control.Degraded || !strings.Contains(st.LastError, "secrets not applied") {
		t.Errorf("status %s (%q); want degraded counting the secrets not applied", st.State, st.LastError)
	}
	for _, leak := range []string{out, stderr, a.Log()} {
		if strings.Contains(leak, "sekret-") || strings.Contains(leak, "good-password") || strings.Contains(leak, "good file value") {
			t.Fatalf("a secret value shows in status or logs:\n%s", leak)
		}
	}
	for _, r := range rows {
		t.Run(r.what, func(t *testing.T) {
			got, ok := findRow(st, r.id, r.name)
			if !ok {
				t.Fatalf("no status row for id %q name %q", r.id, r.name)
			}
			t.Logf("outcome %s; error %q; note %q", got.Outcome, got.Error, got.Note)
			// run --once made the outputs before the daemon started, so an
			// applied secret is created or, in the daemon's pass, unchanged.
			if string(got.Outcome) != r.outcome && !(r.outcome == "created" && got.Outcome == "unchanged") {
				t.Errorf("outcome %q, want %q (error %q, note %q)", got.Outcome, r.outcome, got.Error, got.Note)
			}
			if r.errHas != "" && !strings.Contains(got.Error+" "+got.Note, r.errHas) {
				t.Errorf("error %q / note %q does not say %q", got.Error, got.Note, r.errHas)
			}
			if r.check != nil {
				r.check(t)
			}
		})
	}
	wantEnv(t, w, "GOOD_ENV", "good env value")
	wantFile(t, w.home+"/good/file", "good file value")
	if b, _ := os.ReadFile(filepath.Join(w.home, ".docker/config.json")); !strings.Contains(string(b), string(b64("bot:good-password"))) {
		t.Errorf("docker config lacks the good registry login:\n%s", b)
	}
	if ents, _ := os.ReadDir(w.linkDir); len(ents) != 0 {
		t.Errorf("something was written through the planted symlink: %v", ents)
	}
}

func findRow(st control.Status, id, name string) (control.SecretStatus, bool) {
	for _, s := range st.Secrets {
		if s.ID == id && s.Name == name {
			return s, true
		}
	}
	return control.SecretStatus{}, false
}

// inProcessAgent builds the agent in this process from a config file for the
// hostile control plane, with the real client and injectors.
func inProcessAgent(t *testing.T, dir, url string) *agent.Agent {
	t.Helper()
	cfg, err := builtin.Load(hostileConfig(t, dir, url))
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(cfg, nil, agent.WithBuilders(builtin.Builders))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestHundredMegabyteValueIsRejectedAloneByTheSizeCap: a 100 MB value is
// never read whole (the client stops at its 8 MiB response cap) and fails
// only its own secret, as a value over the size cap, while a good secret of
// the same kind is applied beside it.
func TestHundredMegabyteValueIsRejectedAloneByTheSizeCap(t *testing.T) {
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	cp := startHostileCP(t)
	cp.big["huge"] = 100 << 20
	cp.set([]string{
		spec("huge", "HUGE", fileMount(home+"/huge")),
		spec("good-file", "GOOD_FILE", fileMount(home+"/good")),
	}, map[string]string{"good-file": valueBody([]byte("good"))})
	a := inProcessAgent(t, dir, cp.srv.URL)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep := a.Sync(ctx)
	if rep.Error != "" {
		t.Fatalf("the whole pass failed: %s", rep.Error)
	}
	huge, _ := findRow(rep.Status, "huge", "HUGE")
	t.Logf("100 MB value: outcome %s; error %q; note %q", huge.Outcome, huge.Error, huge.Note)
	if huge.Outcome != "failed" || !strings.Contains(huge.Error, "over the limit") {
		t.Errorf("100 MB value: outcome %q error %q; want failed, over the limit", huge.Outcome, huge.Error)
	}
	wantAbsent(t, home+"/huge")
	wantFile(t, home+"/good", "good")
}

// TestHundredThousandSecretsFailThePassAndKeepTheAppliedState: 100,000
// secrets make a spec of about 15 MB, over the client's 8 MiB response cap.
// The pass fails as a whole with an error saying so, and what the previous
// pass applied stays applied.
func TestHundredThousandSecretsFailThePassAndKeepTheAppliedState(t *testing.T) {
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	cp := startHostileCP(t)
	cp.set([]string{spec("good-file", "GOOD_FILE", fileMount(home+"/good"))},
		map[string]string{"good-file": valueBody([]byte("good"))})
	a := inProcessAgent(t, dir, cp.srv.URL)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if rep := a.Sync(ctx); !rep.OK() {
		t.Fatalf("first pass: %s %s", rep.Error, rep.Status.LastError)
	}

	many := make([]string, 0, 100_000)
	for i := range 100_000 {
		id := fmt.Sprintf("0b7f6c1e-%04x-4c2a-9d3e-%012x", i%0x10000, i)
		name := fmt.Sprintf("BULK_SECRET_%06d", i)
		many = append(many, fmt.Sprintf(`{"id":%q,"name":%q,"scope":"SCOPE_PROJECT","session":"%d-1","environmentVariable":%q}`, id, name, i, name))
	}
	cp.set(many, map[string]string{})
	rep := a.Sync(ctx)
	t.Logf("100,000 secrets: pass error %q", rep.Error)
	if rep.Error == "" || !strings.Contains(rep.Error, "resource_exhausted") || !strings.Contains(rep.Error, "over the limit") {
		t.Errorf("pass error %q; want the response cap named", rep.Error)
	}
	if rep.Status.State != control.Degraded {
		t.Errorf("state %s, want degraded", rep.Status.State)
	}
	wantFile(t, home+"/good", "good")
}

// TestMalformedValueAnswerHoldsOnlyItsInjector: a value answer that is not
// JSON, or whose valueBytes is not base64, is a broken fetch, not a bad
// value, so the agent does not leave the secret out (after a restart that
// would delete the output an earlier run made at its mount). With nothing
// applied there yet, its injector is held back for the pass and retried,
// the error names the secret and the cause, and the other injectors apply.
// An output applied earlier keeps its last value; once the answers are whole
// again everything applies.
func TestMalformedValueAnswerHoldsOnlyItsInjector(t *testing.T) {
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	w := hostileWorld{home: home}
	cp := startHostileCP(t)
	specs := []string{
		spec("good-env", "GOOD_ENV", envMount("GOOD_ENV")),
		spec("good-file", "GOOD_FILE", fileMount(home+"/good")),
		spec("garbage", "GARBAGE", fileMount(home+"/garbage")),
		spec("bad-bytes", "BAD_BYTES", regMount("reg.bytes.test")),
	}
	good := map[string]string{"good-env": valueBody([]byte("env ok")), "good-file": valueBody([]byte("file ok")),
		"garbage": valueBody([]byte("now whole")), "bad-bytes": valueBody(b64("bot:now-whole"))}
	broken := map[string]string{"good-env": good["good-env"], "good-file": good["good-file"],
		"garbage": "\x00<html>sekret-garbage", "bad-bytes": `{"valueBytes":"!!sekret!!"}`}
	cp.set(specs, broken)
	a := inProcessAgent(t, dir, cp.srv.URL)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	rep := a.Sync(ctx)
	wantEnv(t, w, "GOOD_ENV", "env ok")
	wantAbsent(t, home+"/good")
	for _, c := range []struct{ id, name, errHas string }{
		{"garbage", "GARBAGE", "not valid JSON"},
		{"bad-bytes", "BAD_BYTES", "not standard base64"},
		{"good-file", "GOOD_FILE", "injector secretfile held back"},
	} {
		row, _ := findRow(rep.Status, c.id, c.name)
		t.Logf("%s: outcome %s; error %q", c.name, row.Outcome, row.Error)
		if row.Outcome != "failed" || !strings.Contains(row.Error, c.errHas) || strings.Contains(row.Error, "sekret") {
			t.Errorf("%s: outcome %q error %q; want failed, saying %q", c.name, row.Outcome, row.Error, c.errHas)
		}
	}

	cp.set(specs, good)
	if rep := a.Sync(ctx); !rep.OK() {
		t.Fatalf("with whole answers: %s %s", rep.Error, rep.Status.LastError)
	}
	wantFile(t, home+"/good", "file ok")
	wantFile(t, home+"/garbage", "now whole")

	// Broken again with the session changed: the applied value is kept.
	specs[2] = strings.Replace(specs[2], `"session":"s1"`, `"session":"s2"`, 1)
	cp.set(specs, broken)
	rep = a.Sync(ctx)
	if row, _ := findRow(rep.Status, "garbage", "GARBAGE"); row.Note != "last applied value kept" {
		t.Errorf("garbage after it was applied: %+v; want the last applied value kept", row)
	}
	wantFile(t, home+"/garbage", "now whole")
	wantFile(t, home+"/good", "file ok")
}
