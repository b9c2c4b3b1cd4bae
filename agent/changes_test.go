package agent

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/secrets-agent/secrets-agent/config"
	"github.com/secrets-agent/secrets-agent/control"
	"github.com/secrets-agent/secrets-agent/controlplane"
	"github.com/secrets-agent/secrets-agent/injectors"
	"github.com/secrets-agent/secrets-agent/injectors/builtin"
	"github.com/secrets-agent/secrets-agent/proxy"
	"github.com/secrets-agent/secrets-agent/secrets"
)

// incrementalInjector is a fileInjector that also applies only the targets
// it is told (injectors.Incremental), recording them: it writes and removes
// the files of those targets alone, as the real injectors do, so that a
// target the agent fails to hand over is not put right by accident.
type incrementalInjector struct {
	*fileInjector
	touched [][]string
}

func (i *incrementalInjector) ApplyOnly(ctx context.Context, desired []secrets.Secret, touched []string) injectors.Result {
	i.mu.Lock()
	i.touched = append(i.touched, slices.Sorted(slices.Values(touched)))
	i.mu.Unlock()
	only := map[string]bool{}
	for _, t := range touched { // a target, or a managed path (a repair pass)
		only[filepath.Base(t)] = true
	}
	return i.apply(desired, only)
}

func TestAFileSecretChangeCallsOnlyTheFileInjectorForThatFile(t *testing.T) {
	files := &incrementalInjector{fileInjector: newFileInjector(t, "secretfile", secrets.MountFile)}
	env := newFileInjector(t, "envprofile", secrets.MountEnv)
	reg := newFileInjector(t, "dockercfg", secrets.MountRegistry)
	r := newRig(t, nil, WithInjectors(env, files, reg))
	r.cp.put("e1", "API_TOKEN", controlplane.ScopeUser, "env", "API_TOKEN", "tok")
	r.cp.put("f1", "KEY", controlplane.ScopeUser, "file", "/home/u/key", "k1")
	r.cp.put("f2", "CERT", controlplane.ScopeUser, "file", "/home/u/cert", "c1")
	r.cp.put("r1", "REGISTRY", controlplane.ScopeUser, "registry", "ghcr.io", base64.StdEncoding.EncodeToString([]byte("u:p")))
	if rep := r.pass(t); !rep.OK() {
		t.Fatalf("first pass: %s", rep.Error)
	}
	if env.calls != 1 || files.calls != 1 || reg.calls != 1 || len(files.touched) != 0 {
		t.Fatalf("first pass: calls env %d, files %d, registry %d, incremental %v; want one whole Apply each", env.calls, files.calls, reg.calls, files.touched)
	}

	// Nothing changed: no injector is called.
	if rep := r.pass(t); !rep.OK() {
		t.Fatalf("second pass: %s", rep.Error)
	}
	if env.calls != 1 || files.calls != 1 || reg.calls != 1 {
		t.Fatalf("nothing changed, yet calls env %d, files %d, registry %d", env.calls, files.calls, reg.calls)
	}

	// One file secret changes: only its target is handed over.
	r.cp.put("f1", "KEY", controlplane.ScopeUser, "file", "/home/u/key", "k2")
	rep := r.pass(t)
	if !rep.OK() {
		t.Fatalf("third pass: %s", rep.Error)
	}
	if env.calls != 1 || reg.calls != 1 {
		t.Fatalf("a file secret changed, yet calls env %d, registry %d", env.calls, reg.calls)
	}
	if want := [][]string{{"/home/u/key"}}; !slices.EqualFunc(files.touched, want, slices.Equal) {
		t.Fatalf("touched %v, want %v", files.touched, want)
	}
	if got, _ := files.read(t, "/home/u/key"); got != "k2" {
		t.Fatalf("key holds %q, want k2", got)
	}
	// Every row still has its outcome: the one changed updated, the
	// others unchanged.
	for id, want := range map[string]control.Outcome{"e1": control.Outcome(injectors.Unchanged), "f1": control.Outcome(injectors.Updated),
		"f2": control.Outcome(injectors.Unchanged), "r1": control.Outcome(injectors.Unchanged)} {
		if got := r.row(t, id).Outcome; got != want {
			t.Errorf("row %s: outcome %q, want %q", id, got, want)
		}
	}
	if rep.Status.State != control.Ready {
		t.Fatalf("state %s: %s", rep.Status.State, rep.Status.LastError)
	}

	// A secret removed: only its target, and it is gone.
	r.cp.remove("f2")
	if rep := r.pass(t); !rep.OK() {
		t.Fatalf("fourth pass: %s", rep.Error)
	}
	if got := files.touched[len(files.touched)-1]; !slices.Equal(got, []string{"/home/u/cert"}) {
		t.Fatalf("touched %v, want the removed target alone", got)
	}
	if _, ok := files.read(t, "/home/u/cert"); ok {
		t.Fatal("the removed secret's file is still there")
	}
}

func TestARepairPassHandsOnlyTheChangedPathToItsInjector(t *testing.T) {
	files := &incrementalInjector{fileInjector: newFileInjector(t, "secretfile", secrets.MountFile)}
	env := newFileInjector(t, "envprofile", secrets.MountEnv)
	r := newRig(t, nil, WithInjectors(env, files))
	r.cp.put("e1", "API_TOKEN", controlplane.ScopeUser, "env", "API_TOKEN", "tok")
	r.cp.put("f1", "KEY", controlplane.ScopeUser, "file", "/home/u/key", "k1")
	r.cp.put("f2", "CERT", controlplane.ScopeUser, "file", "/home/u/cert", "c1")
	if rep := r.pass(t); !rep.OK() {
		t.Fatalf("first pass: %s", rep.Error)
	}
	keyPath := files.path(secrets.Secret{Mount: secrets.Mount{Target: "/home/u/key"}})
	r.a.onFileEvent(keyPath)
	if !r.a.repairPass(context.Background()) {
		t.Fatal("no repair pass after an applied pass")
	}
	if env.calls != 1 {
		t.Fatalf("envprofile called %d times; its outputs did not change", env.calls)
	}
	// The fake manages its files under its own dir, not at the targets:
	// the event names a path the file injector manages, which is not a
	// target, so it is handed as is.
	if got := files.touched[len(files.touched)-1]; !slices.Equal(got, []string{keyPath}) {
		t.Fatalf("touched %v, want [%s]", got, keyPath)
	}
}

func TestSameEntryCoversEveryField(t *testing.T) {
	// sameEntry compares these twelve fields; a new one must be added
	// there, or a spec differing only in it would pass for unchanged.
	if n := reflect.TypeFor[controlplane.EnvironmentSpecSecret]().NumField(); n != 12 {
		t.Fatalf("EnvironmentSpecSecret has %d fields; sameEntry knows 12: add the new one to it, and to this count", n)
	}
	env, file, env2 := "A", "/a", "A"
	base := controlplane.EnvironmentSpecSecret{ID: "1", Name: "n", Scope: "SCOPE_USER", Session: "s", Source: "src", SourceRef: "ref", EnvironmentVariable: &env}
	variants := []func(*controlplane.EnvironmentSpecSecret){
		func(w *controlplane.EnvironmentSpecSecret) { w.ID = "2" },
		func(w *controlplane.EnvironmentSpecSecret) { w.Name = "m" },
		func(w *controlplane.EnvironmentSpecSecret) { w.Scope = "SCOPE_PROJECT" },
		func(w *controlplane.EnvironmentSpecSecret) { w.Source = "other" },
		func(w *controlplane.EnvironmentSpecSecret) { w.SourceRef = "x" },
		func(w *controlplane.EnvironmentSpecSecret) { w.EnvironmentVariable, w.FilePath = nil, &file },
		func(w *controlplane.EnvironmentSpecSecret) {
			w.EnvironmentVariable, w.ContainerRegistryBasicAuthHost = nil, &env
		},
		func(w *controlplane.EnvironmentSpecSecret) { w.EnvironmentVariable, w.GitCredentialHost = nil, &env },
		func(w *controlplane.EnvironmentSpecSecret) { w.APIOnly = true },
		func(w *controlplane.EnvironmentSpecSecret) {
			w.CredentialProxy = &controlplane.CredentialProxy{Header: "h"}
		},
	}
	for i, change := range variants {
		w := base
		change(&w)
		if sameEntry(base, w) || sameEntry(w, base) {
			t.Errorf("variant %d compares as the same entry", i)
		}
	}
	a, b := base, base
	a.CredentialProxy = &controlplane.CredentialProxy{Header: "h", TargetHosts: []string{"x"}}
	b.CredentialProxy = &controlplane.CredentialProxy{Header: "h", TargetHosts: []string{"y"}}
	if sameEntry(a, b) {
		t.Error("other proxy target hosts compare as the same entry")
	}
	// Equal values behind other pointers are the same entry; a moved
	// session is the one difference sameEntry lets through, and diffSpecs
	// names it.
	c := base
	c.EnvironmentVariable, c.Session = &env2, "t"
	if !sameEntry(base, c) {
		t.Error("an entry differing in its session alone compares as another")
	}
	if d := diffSpecs([]controlplane.EnvironmentSpecSecret{base, base}, []controlplane.EnvironmentSpecSecret{base, c}); len(d.old)+len(d.new) != 0 || !slices.Equal(d.moved, []int{1}) {
		t.Errorf("diffSpecs: %+v; want nothing replaced and entry 1 moved", d)
	}
	other := base
	other.ID = "2"
	// base, other, base -> base, c, other, base: one entry added after the first.
	d := diffSpecs([]controlplane.EnvironmentSpecSecret{base, other, base}, []controlplane.EnvironmentSpecSecret{base, c, other, c})
	if len(d.old) != 0 || !slices.Equal(d.new, []int{1}) || !slices.Equal(d.moved, []int{3}) || d.tooMany {
		t.Errorf("diffSpecs: %+v; want next[1] added and entry 3 moved", d)
	}
}

func TestDiffSpecsMatchesAReorderedSpecByID(t *testing.T) {
	var prev []controlplane.EnvironmentSpecSecret
	for i := range 200 {
		v := fmt.Sprintf("V%d", i)
		prev = append(prev, controlplane.EnvironmentSpecSecret{ID: fmt.Sprint(i), Session: "s", EnvironmentVariable: &v})
	}
	next := slices.Clone(prev)
	slices.Reverse(next)
	next[10].Session = "t"            // prev[189], moved
	v := "OTHER"                      //
	next[20].EnvironmentVariable = &v // prev[179], replaced
	d := diffSpecs(prev, next)
	if d.tooMany || !slices.Equal(d.old, []int{179}) || !slices.Equal(d.new, []int{20}) || !slices.Equal(d.moved, []int{10}) {
		t.Fatalf("diffSpecs of a reversed spec: %+v; want prev[179] replaced by next[20], next[10] moved", d)
	}
	for i := range 70 {
		next[i].Name = "renamed"
	}
	if d := diffSpecs(prev, next); !d.tooMany || d.same() {
		t.Fatalf("70 entries renamed: %+v; want too many", d)
	}
}

func TestAReloadHasEveryOutputLookedAtOnceMore(t *testing.T) {
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("t0k"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(strings.NewReplacer("%TOKEN%", token, "%DIR%", dir).Replace(testConfigYAML)), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := builtin.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	r := newRig(t, cfg, WithConfigFile(path, builtin.Load))
	r.cp.put("f1", "KEY", controlplane.ScopeUser, "file", "/home/u/key", "k1")
	r.pass(t)
	r.pass(t)
	if r.file.calls != 1 {
		t.Fatalf("secretfile called %d times before the reload, want 1", r.file.calls)
	}
	r.a.reloadNow()
	r.pass(t)
	if r.file.calls != 2 {
		t.Fatalf("secretfile called %d times after the reload, want 2: a reload re-checks every output", r.file.calls)
	}
}

// TestAReusedPlanMatchesANewOne drives two agents through the same 300
// random changes: one reuses its plan whenever it may (a spec that differs
// in sessions alone), the other makes a new plan on every pass. After every
// pass both must show the same rows, injector counts and state, and hold
// the same files. The changes: rotated values (most of them, as in life),
// added and removed secrets, moved targets and scopes (shadows and
// conflicts), values that cannot be fetched or are invalid, and files whose
// write fails. Both run with the credential proxy off, then both with it on
// (and no secret for it: the default configuration). SEED=n in the
// environment runs another sequence.
func TestAReusedPlanMatchesANewOne(t *testing.T) {
	for _, proxied := range []bool{false, true} {
		t.Run(fmt.Sprintf("proxy=%v", proxied), func(t *testing.T) { testReusedPlan(t, proxied) })
	}
}

func testReusedPlan(t *testing.T, proxied bool) {
	type rig struct {
		*testRig
		files *incrementalInjector
	}
	mk := func(opts ...Option) rig {
		files := &incrementalInjector{fileInjector: newFileInjector(t, "secretfile", secrets.MountFile)}
		files.fail = map[string]bool{}
		env := newFileInjector(t, "envprofile", secrets.MountEnv)
		env.fail = map[string]bool{}
		cfg := testConfig()
		if proxied {
			cfg.StateDir = t.TempDir()
			cfg.Proxy = config.Proxy{Enabled: true, Listen: "127.0.0.1:0"}
		}
		r := newRig(t, cfg, append([]Option{WithInjectors(env, files)}, opts...)...)
		if proxied && r.a.proxy == nil {
			t.Fatal("no credential proxy")
		}
		r.env = env
		return rig{testRig: r, files: files}
	}
	reused, fresh := mk(), mk(withoutPlanReuse())
	both := func(f func(r rig)) { f(reused); f(fresh) }

	seed := uint64(2026)
	if v, err := strconv.ParseUint(os.Getenv("SEED"), 10, 64); err == nil {
		seed = v
	}
	rnd := rand.New(rand.NewPCG(16, seed))
	type spec struct{ id, scope, kind, target string }
	var live []spec
	scopes := []string{controlplane.ScopeOrganization, controlplane.ScopeProject, controlplane.ScopeUser}
	newSpec := func(id string) spec {
		kind, target := "env", fmt.Sprintf("VAR_%d", rnd.IntN(12))
		if rnd.IntN(2) == 0 {
			kind, target = "file", fmt.Sprintf("/home/u/f%d", rnd.IntN(12))
		}
		return spec{id: id, scope: scopes[rnd.IntN(3)], kind: kind, target: target}
	}
	put := func(s spec, value string) {
		both(func(r rig) { r.cp.put(s.id, "N"+s.id, s.scope, s.kind, s.target, value) })
	}
	for i := range 20 {
		s := newSpec(fmt.Sprintf("s%02d", i))
		live = append(live, s)
		put(s, fmt.Sprintf("v%d-0", i))
	}
	reuses, broken := 0, map[string]bool{}
	for step := range 300 {
		i := rnd.IntN(len(live))
		s := live[i]
		what := rnd.IntN(100)
		switch {
		case what < 60: // a rotation; half of them mend a broken secret
			if j := slices.IndexFunc(live, func(l spec) bool { return broken[l.id] }); j >= 0 && rnd.IntN(2) == 0 {
				i, s = j, live[j]
				delete(broken, s.id)
				both(func(r rig) { r.cp.set(func(f *fakePlane) { delete(f.valueErr, s.id) }) })
			}
			put(s, fmt.Sprintf("v%d-%d", i, step))
		case what < 64: // a value that cannot be fetched, then rotated
			broken[s.id] = true
			both(func(r rig) {
				r.cp.set(func(f *fakePlane) { f.valueErr[s.id] = errors.New("unavailable") })
			})
			put(s, fmt.Sprintf("v%d-%d", i, step))
		case what < 72: // every fetch works again
			both(func(r rig) { r.cp.set(func(f *fakePlane) { clear(f.valueErr) }) })
		case what < 76: // an invalid value (a NUL in a variable)
			broken[s.id] = true
			put(s, "bad\x00value")
		case what < 80: // a file whose write fails, or works again
			name := filepath.Base(s.target)
			both(func(r rig) {
				r.files.mu.Lock()
				r.files.fail[name] = !r.files.fail[name]
				r.files.mu.Unlock()
			})
			put(s, fmt.Sprintf("v%d-%d", i, step))
		case what < 86: // another secret
			n := newSpec(fmt.Sprintf("s%02d", len(live)+step))
			live = append(live, n)
			put(n, "new")
		case what < 90 && len(live) > 5: // a secret deleted
			both(func(r rig) { r.cp.remove(s.id) })
			live = slices.Delete(live, i, i+1)
		case what < 95: // moved to another target
			n := newSpec(s.id)
			live[i] = n
			put(n, fmt.Sprintf("v%d-%d", i, step))
		case what < 97: // another scope
			s.scope = scopes[rnd.IntN(3)]
			live[i] = s
			put(s, fmt.Sprintf("v%d-%d", i, step))
		default: // the control plane lists them in another order, one rotated
			perm := rnd.Perm(len(live))
			both(func(r rig) {
				r.cp.set(func(f *fakePlane) {
					spec := slices.Clone(f.spec)
					for k, j := range perm {
						f.spec[k] = spec[j]
					}
				})
			})
			put(s, fmt.Sprintf("v%d-%d", i, step))
		}
		before := reused.a.lastPlan
		a, b := reused.pass(t), fresh.pass(t)
		if reused.a.lastPlan == before {
			reuses++
		}
		if a.Error != b.Error {
			t.Fatalf("step %d: pass errors differ: %q and %q", step, a.Error, b.Error)
		}
		compareStatus(t, step, reused.a.Status(), fresh.a.Status())
		for _, pair := range [][2]*fileInjector{{reused.env, fresh.env}, {reused.files.fileInjector, fresh.files.fileInjector}} {
			if x, y := dirContents(t, pair[0].dir), dirContents(t, pair[1].dir); !maps.Equal(x, y) {
				t.Fatalf("step %d: %s holds %v with plan reuse, %v without", step, pair[0].name, x, y)
			}
		}
	}
	if reuses < 100 {
		t.Fatalf("the plan was reused in %d passes of 300: the test no longer exercises reuse", reuses)
	}
	t.Logf("the plan was reused in %d passes of 300", reuses)
}

// compareStatus fails unless a and b show the same rows (times aside),
// injector counts and state.
func compareStatus(t *testing.T, step int, a, b control.Status) {
	t.Helper()
	strip := func(rows []control.SecretStatus) []control.SecretStatus {
		out := slices.Clone(rows)
		for i := range out {
			out[i].LastChanged = time.Time{}
		}
		return out
	}
	if x, y := strip(a.Secrets), strip(b.Secrets); !reflect.DeepEqual(x, y) {
		for i := range min(len(x), len(y)) {
			if !reflect.DeepEqual(x[i], y[i]) {
				t.Fatalf("step %d: row %d of %d/%d differs\nwith plan reuse: %+v\nwithout:         %+v", step, i, len(x), len(y), x[i], y[i])
			}
		}
		t.Fatalf("step %d: %d rows with plan reuse, %d without", step, len(x), len(y))
	}
	if !reflect.DeepEqual(a.Injectors, b.Injectors) {
		t.Fatalf("step %d: injectors differ\nwith plan reuse: %+v\nwithout:         %+v", step, a.Injectors, b.Injectors)
	}
	if a.State != b.State || a.LastError != b.LastError {
		t.Fatalf("step %d: state %s (%s) with plan reuse, %s (%s) without", step, a.State, a.LastError, b.State, b.LastError)
	}
}

// dirContents maps each file in dir to its content.
func dirContents(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = string(b)
	}
	return out
}

func TestASecretForTheProxyMakesANewPlanEachPass(t *testing.T) {
	r := proxyRig(t)
	r.cp.put("plain", "plain", controlplane.ScopeUser, "env", "PLAIN", "v1")
	r.pass(t)
	r.cp.put("plain", "plain", controlplane.ScopeUser, "env", "PLAIN", "v2")
	r.pass(t)
	if n := strings.Count(r.logs.String(), "making a new plan"); n != 1 {
		t.Fatalf("%d new plans with the proxy on and no secret for it, want 1 (the first pass)", n)
	}
	putProxied(r, "gh", "env", "GH_TOKEN", "real-gh-value")
	r.pass(t)
	r.cp.put("plain", "plain", controlplane.ScopeUser, "env", "PLAIN", "v3")
	if rep := r.pass(t); !rep.OK() {
		t.Fatal(rep.Error)
	}
	if !strings.Contains(r.logs.String(), "a secret is served by the credential proxy") {
		t.Fatalf("a rotation beside a proxied secret did not make a new plan:\n%s", r.logs.String())
	}
	if got, _ := r.env.read(t, "PLAIN"); got != "v3" {
		t.Fatalf("PLAIN = %q, want v3", got)
	}
	if got, _ := r.env.read(t, "GH_TOKEN"); !proxy.IsPlaceholder(got) {
		t.Fatalf("GH_TOKEN = %q, want a placeholder", got)
	}
}

// TestAnIDRepeatedByAnEntryThatDoesNotConvertMakesANewPlan: an entry with
// an unknown scope shares its id with a valid one. Such a spec is broken
// (ids are unique), and a plan made from it is never brought up to date: a
// patch or a moved session could not tell the two entries apart.
func TestAnIDRepeatedByAnEntryThatDoesNotConvertMakesANewPlan(t *testing.T) {
	r := newRig(t, nil)
	entry := func(scope, session, target string) controlplane.EnvironmentSpecSecret {
		return controlplane.EnvironmentSpecSecret{ID: "x", Name: "X", Scope: scope, Session: session, EnvironmentVariable: &target}
	}
	r.cp.set(func(f *fakePlane) {
		f.values["x"] = []byte("v1")
		f.spec = []controlplane.EnvironmentSpecSecret{entry("bogus", "s1", "AAA"), entry(controlplane.ScopeUser, "s1", "FOO")}
	})
	r.pass(t)
	r.cp.set(func(f *fakePlane) { f.spec[0].Session = "s2"; f.values["x"] = []byte("v2") })
	r.pass(t)
	if n := strings.Count(r.logs.String(), "making a new plan"); n != 2 {
		t.Fatalf("%d new plans in two passes, want 2: a spec with a repeated id is never patched", n)
	}
	rows := r.a.Status().Secrets
	if len(rows) != 2 || rows[0].Outcome == rows[1].Outcome {
		t.Fatalf("rows %+v: want the valid entry applied and the other rejected", rows)
	}
}
