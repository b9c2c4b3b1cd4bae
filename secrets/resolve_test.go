package secrets

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func env(id string, scope Scope, variable string) Secret {
	return Secret{ID: id, Name: "SECRET_" + strings.ToUpper(id), Scope: scope, Mount: Mount{Kind: MountEnv, Target: variable}}
}

func withMount(s Secret, kind MountKind, target string) Secret {
	s.Mount = Mount{Kind: kind, Target: target}
	return s
}

func ids(ss []Secret) []string {
	out := []string{}
	for _, s := range ss {
		out = append(out, s.ID)
	}
	return out
}

func rejectedIDs(r Resolution) []string {
	out := []string{}
	for _, x := range r.Rejected {
		out = append(out, x.Secret.ID)
	}
	return out
}

// only returns the single winner of r, failing the test if there is not
// exactly one.
func only(t *testing.T, r Resolution) Winner {
	t.Helper()
	if len(r.Winners) != 1 {
		t.Fatalf("%d winners (%s), want 1", len(r.Winners), r)
	}
	return r.Winners[0]
}

func TestUserSecretShadowsProjectSecret(t *testing.T) {
	for _, in := range [][]Secret{
		{env("p", ScopeProject, "TOKEN"), env("u", ScopeUser, "TOKEN")},
		{env("u", ScopeUser, "TOKEN"), env("p", ScopeProject, "TOKEN")},
	} {
		w := only(t, Resolve(in))
		if w.Secret.ID != "u" || !reflect.DeepEqual(ids(w.Shadows), []string{"p"}) {
			t.Errorf("winner %s shadowing %v, want u shadowing [p]", w.Secret.ID, ids(w.Shadows))
		}
	}
}

func TestProjectSecretShadowsOrganizationSecret(t *testing.T) {
	w := only(t, Resolve([]Secret{env("o", ScopeOrganization, "TOKEN"), env("p", ScopeProject, "TOKEN")}))
	if w.Secret.ID != "p" || !reflect.DeepEqual(ids(w.Shadows), []string{"o"}) {
		t.Errorf("winner %s shadowing %v, want p shadowing [o]", w.Secret.ID, ids(w.Shadows))
	}
}

func TestUnspecifiedScopeAppliesBelowRunner(t *testing.T) {
	alone := only(t, Resolve([]Secret{env("u", ScopeUnspecified, "X")}))
	if alone.Secret.ID != "u" {
		t.Errorf("winner %s, want the unspecified-scope secret applied when nothing else targets X", alone.Secret.ID)
	}
	w := only(t, Resolve([]Secret{env("u", ScopeUnspecified, "X"), env("r", ScopeRunner, "X")}))
	if w.Secret.ID != "r" || !reflect.DeepEqual(ids(w.Shadows), []string{"u"}) {
		t.Errorf("winner %s shadowing %v, want r shadowing [u]", w.Secret.ID, ids(w.Shadows))
	}
}

func TestAllScopesRankUserServiceAccountProjectOrganizationRunner(t *testing.T) {
	order := []Scope{ScopeUser, ScopeServiceAccount, ScopeProject, ScopeOrganization, ScopeRunner}
	for i := range order {
		for j := i + 1; j < len(order); j++ {
			if !(order[i] > order[j]) {
				t.Errorf("scope %s does not rank above %s", order[i], order[j])
			}
		}
	}
	// All five on one variable, given in a scrambled order: the user's wins
	// and the others are its shadows, highest first.
	in := []Secret{
		env("org", ScopeOrganization, "X"), env("user", ScopeUser, "X"), env("runner", ScopeRunner, "X"),
		env("project", ScopeProject, "X"), env("sa", ScopeServiceAccount, "X"),
	}
	w := only(t, Resolve(in))
	if w.Secret.ID != "user" {
		t.Errorf("winner %s, want user", w.Secret.ID)
	}
	if got, want := ids(w.Shadows), []string{"sa", "project", "org", "runner"}; !reflect.DeepEqual(got, want) {
		t.Errorf("shadows %v, want %v", got, want)
	}
	// Without the user's, the service account's wins.
	w = only(t, Resolve([]Secret{in[0], in[2], in[3], in[4]}))
	if w.Secret.ID != "sa" {
		t.Errorf("winner %s, want sa", w.Secret.ID)
	}
}

func TestSameScopeConflictIsRejectedDeterministically(t *testing.T) {
	a, b := env("a", ScopeUser, "X"), env("b", ScopeUser, "X")
	for _, in := range [][]Secret{{a, b}, {b, a}} {
		r := Resolve(in)
		w := only(t, r)
		if w.Secret.ID != "a" || len(w.Shadows) != 0 {
			t.Errorf("winner %s shadowing %v, want a alone", w.Secret.ID, ids(w.Shadows))
		}
		if len(r.Rejected) != 1 || r.Rejected[0].Secret.ID != "b" {
			t.Fatalf("rejected %v, want [b]", rejectedIDs(r))
		}
		var e *Error
		if !errors.As(r.Rejected[0].Err, &e) || e.Field != "mount" || !strings.Contains(e.Reason, "secret a") {
			t.Errorf("rejection %v does not name the mount and the winner", r.Rejected[0].Err)
		}
	}
}

func TestSameScopeConflictDoesNotStopShadowingOfLowerScopes(t *testing.T) {
	r := Resolve([]Secret{env("b", ScopeUser, "X"), env("o", ScopeOrganization, "X"), env("a", ScopeUser, "X")})
	w := only(t, r)
	if w.Secret.ID != "a" || !reflect.DeepEqual(ids(w.Shadows), []string{"o"}) || !reflect.DeepEqual(rejectedIDs(r), []string{"b"}) {
		t.Errorf("winner %s shadows %v rejected %v", w.Secret.ID, ids(w.Shadows), rejectedIDs(r))
	}
}

func TestRepeatedIDIsRejected(t *testing.T) {
	first := env("same", ScopeProject, "A")
	second := env("same", ScopeUser, "B")
	r := Resolve([]Secret{first, second})
	w := only(t, r)
	if w.Secret.Mount.Target != "A" {
		t.Errorf("winner %v, want the first of the repeated id", w.Secret.Mount)
	}
	var e *Error
	if len(r.Rejected) != 1 || !errors.As(r.Rejected[0].Err, &e) || e.Field != "id" {
		t.Errorf("rejected %+v, want the second, on field id", r.Rejected)
	}
}

func TestInvalidSecretNeitherWinsNorShadows(t *testing.T) {
	bad := env("u", ScopeUser, "X")
	bad.Scope = 99 // no such scope
	badLow := env("r", ScopeRunner, "X")
	badLow.Mount.Target = "1X" // not a variable name, though it would be shadowed
	r := Resolve([]Secret{bad, env("p", ScopeProject, "X"), badLow})
	w := only(t, r)
	if w.Secret.ID != "p" || len(w.Shadows) != 0 {
		t.Errorf("winner %s shadowing %v, want p alone", w.Secret.ID, ids(w.Shadows))
	}
	if got := rejectedIDs(r); !reflect.DeepEqual(got, []string{"u", "r"}) {
		t.Errorf("rejected %v, want [u r]", got)
	}
}

func TestFilePathsConflictAfterCleaning(t *testing.T) {
	for _, pair := range [][2]string{
		{"/home/u/.ssh/id", "/home/u/.ssh/../.ssh/id"},
		{"/home/u/.ssh/id", "//home/u/./.ssh/id/"},
	} {
		k1, _ := Mount{Kind: MountFile, Target: pair[0]}.Key()
		k2, _ := Mount{Kind: MountFile, Target: pair[1]}.Key()
		if k1 != k2 {
			t.Errorf("keys of %q and %q differ: %q, %q", pair[0], pair[1], k1, k2)
		}
	}
	// Resolve accepts only clean paths, so an unclean alias cannot slip past
	// the clean one.
	clean := withMount(env("p", ScopeProject, ""), MountFile, "/home/u/.ssh/id")
	unclean := withMount(env("u", ScopeUser, ""), MountFile, "/home/u/.ssh/../.ssh/id")
	r := Resolve([]Secret{clean, unclean})
	if w := only(t, r); w.Secret.ID != "p" || !reflect.DeepEqual(rejectedIDs(r), []string{"u"}) {
		t.Errorf("winner %s rejected %v", w.Secret.ID, rejectedIDs(r))
	}
}

func TestDockerHubAliasesConflict(t *testing.T) {
	aliases := []string{"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com",
		"https://index.docker.io/v1/", "Docker.IO"}
	for _, a := range aliases {
		if k := RegistryKey(a); k != DockerHubKey {
			t.Errorf("RegistryKey(%q) = %q, want %q", a, k, DockerHubKey)
		}
	}
	org := withMount(env("o", ScopeOrganization, ""), MountRegistry, "docker.io")
	user := withMount(env("u", ScopeUser, ""), MountRegistry, "https://index.docker.io/v1/")
	w := only(t, Resolve([]Secret{org, user}))
	if w.Secret.ID != "u" || !reflect.DeepEqual(ids(w.Shadows), []string{"o"}) {
		t.Errorf("winner %s shadowing %v, want u shadowing [o]", w.Secret.ID, ids(w.Shadows))
	}
	// Other registries are told apart, host case aside.
	r := Resolve([]Secret{withMount(env("g", ScopeUser, ""), MountRegistry, "GHCR.io"), withMount(env("q", ScopeUser, ""), MountRegistry, "quay.io")})
	if len(r.Winners) != 2 || len(r.Rejected) != 0 {
		t.Errorf("got %s, want 2 winners", r)
	}
}

func TestAPIOnlyAndUnknownMountsAreSkipped(t *testing.T) {
	api1 := withMount(env("a1", ScopeUser, ""), MountAPIOnly, "")
	api2 := withMount(env("a2", ScopeUser, ""), MountAPIOnly, "")
	none := withMount(env("n", ScopeProject, ""), MountNone, "")
	r := Resolve([]Secret{api1, none, api2, env("e", ScopeOrganization, "E")})
	if w := only(t, r); w.Secret.ID != "e" {
		t.Errorf("winner %s, want e", w.Secret.ID)
	}
	if got := ids(r.Skipped); !reflect.DeepEqual(got, []string{"a1", "n", "a2"}) {
		t.Errorf("skipped %v, want [a1 n a2]", got)
	}
	if len(r.Rejected) != 0 {
		t.Errorf("rejected %v: API-only secrets never conflict", rejectedIDs(r))
	}
}

func TestWinnersAreSortedByKindAndTarget(t *testing.T) {
	in := []Secret{
		withMount(env("f", ScopeUser, ""), MountFile, "/run/secrets/b"),
		env("z", ScopeUser, "Z"),
		withMount(env("r", ScopeUser, ""), MountRegistry, "ghcr.io"),
		env("a", ScopeUser, "A"),
		withMount(env("g", ScopeUser, ""), MountFile, "/run/secrets/a"),
	}
	var got []string
	for _, w := range Resolve(in).Winners {
		got = append(got, w.Secret.ID)
	}
	if want := []string{"a", "z", "g", "f", "r"}; !reflect.DeepEqual(got, want) {
		t.Errorf("order %v, want %v", got, want)
	}
	if got := ids(Resolve(in).ByKind(MountFile)); !reflect.DeepEqual(got, []string{"g", "f"}) {
		t.Errorf("ByKind(file) = %v", got)
	}
}

func TestResolveOfNothingIsEmpty(t *testing.T) {
	r := Resolve(nil)
	if len(r.Winners)+len(r.Rejected)+len(r.Skipped) != 0 {
		t.Errorf("Resolve(nil) = %s", r)
	}
	if r.String() != "0 applied, 0 rejected, 0 skipped" {
		t.Errorf("String() = %q", r.String())
	}
}

func TestResolveDoesNotLookAtValues(t *testing.T) {
	s := withMount(env("r", ScopeUser, ""), MountRegistry, "ghcr.io")
	s.Value = Value("not base64 at all")
	if w := only(t, Resolve([]Secret{s})); w.Secret.ID != "r" {
		t.Errorf("winner %s", w.Secret.ID)
	}
}

// BenchmarkResolve resolves 10,000 secrets as one environment sees them:
// env and file secrets, one in a hundred shadowing another; it reports the
// time per secret.
func BenchmarkResolve(b *testing.B) {
	const n = 10000
	all := make([]Secret, 0, n)
	for i := range n {
		s := Secret{ID: fmt.Sprintf("id-%05d", i), Name: fmt.Sprintf("S%05d", i), Scope: ScopeUser, Session: "sess"}
		if i%2 == 0 {
			s.Mount = Mount{Kind: MountEnv, Target: fmt.Sprintf("VAR_%05d", i)}
		} else {
			s.Mount = Mount{Kind: MountFile, Target: fmt.Sprintf("/home/user/secrets/s%05d", i)}
		}
		if i%100 == 99 {
			s.Scope, s.Mount = ScopeProject, all[i-1].Mount
		}
		all = append(all, s)
	}
	b.ReportAllocs()
	for b.Loop() {
		if res := Resolve(all); len(res.Rejected) != 0 {
			b.Fatalf("rejected: %v", res.Rejected[0].Err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/secret")
}
