package agent

import (
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/secrets-agent/secrets-agent/control"
	"github.com/secrets-agent/secrets-agent/controlplane"
	"github.com/secrets-agent/secrets-agent/injectors"
	"github.com/secrets-agent/secrets-agent/injectors/builtin"
	"github.com/secrets-agent/secrets-agent/secrets"
)

// incrementalInjector is a fileInjector that also applies only the targets
// it is told (injectors.Incremental), recording them.
type incrementalInjector struct {
	*fileInjector
	touched [][]string
}

func (i *incrementalInjector) ApplyOnly(ctx context.Context, desired []secrets.Secret, touched []string) injectors.Result {
	i.mu.Lock()
	i.touched = append(i.touched, slices.Sorted(slices.Values(touched)))
	i.mu.Unlock()
	var only []secrets.Secret
	for _, s := range desired {
		if slices.Contains(touched, s.Mount.Target) {
			only = append(only, s)
		}
	}
	// The fake's Apply removes whatever is not desired: hand it the others
	// as well (unchanged, they write nothing) and keep only the outcomes
	// of the touched targets.
	r := i.fileInjector.Apply(ctx, desired)
	r.Outcomes = slices.DeleteFunc(r.Outcomes, func(o injectors.Outcome) bool {
		return !slices.ContainsFunc(only, func(s secrets.Secret) bool { return s.ID == o.Secret.ID })
	})
	return r
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

func TestSpecFingerprintCoversEveryField(t *testing.T) {
	// specFingerprint hashes these twelve fields; a new one must be added
	// there, or a spec differing only in it would pass for unchanged.
	if n := reflect.TypeFor[controlplane.EnvironmentSpecSecret]().NumField(); n != 12 {
		t.Fatalf("EnvironmentSpecSecret has %d fields; specFingerprint knows 12: add the new one to it, and to this count", n)
	}
	env, file := "A", "/a"
	base := controlplane.EnvironmentSpecSecret{ID: "1", Name: "n", Scope: "SCOPE_USER", Session: "s", Source: "src", SourceRef: "ref", EnvironmentVariable: &env}
	variants := []func(*controlplane.EnvironmentSpecSecret){
		func(w *controlplane.EnvironmentSpecSecret) { w.ID = "2" },
		func(w *controlplane.EnvironmentSpecSecret) { w.Name = "m" },
		func(w *controlplane.EnvironmentSpecSecret) { w.Scope = "SCOPE_PROJECT" },
		func(w *controlplane.EnvironmentSpecSecret) { w.Session = "t" },
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
		func(w *controlplane.EnvironmentSpecSecret) {
			w.CredentialProxy = &controlplane.CredentialProxy{Header: "h", TargetHosts: []string{"x"}}
		},
	}
	seen := map[[32]byte]int{specFingerprint(controlplane.EnvironmentSpec{Secrets: []controlplane.EnvironmentSpecSecret{base}}): -1}
	for i, change := range variants {
		w := base
		change(&w)
		sum := specFingerprint(controlplane.EnvironmentSpec{Secrets: []controlplane.EnvironmentSpecSecret{w}})
		if j, ok := seen[sum]; ok {
			t.Errorf("variant %d fingerprints like %d", i, j)
		}
		seen[sum] = i
	}
	// Boundaries between fields count: "ab"+"c" is not "a"+"bc".
	a := base
	a.ID, a.Name = "ab", "c"
	b := base
	b.ID, b.Name = "a", "bc"
	if specFingerprint(controlplane.EnvironmentSpec{Secrets: []controlplane.EnvironmentSpecSecret{a}}) ==
		specFingerprint(controlplane.EnvironmentSpec{Secrets: []controlplane.EnvironmentSpecSecret{b}}) {
		t.Error("moving a byte from one field to the next does not change the fingerprint")
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
