package envprofile

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/secrets-agent/secrets-agent/injectors"
	imanifest "github.com/secrets-agent/secrets-agent/internal/manifest"
	"github.com/secrets-agent/secrets-agent/secrets"
)

// TestPassesRenderOnlyWhatChangedAndWriteWhatAFreshRenderWould: fragments
// a pass renders from the variables of the pass before (only the changed
// ones rendered again) are byte for byte what rendering every variable
// afresh gives, and the manifest is what encoding/json makes of it, through
// passes that add, change, rename and remove variables and a restart.
func TestPassesRenderOnlyWhatChangedAndWriteWhatAFreshRenderWould(t *testing.T) {
	dir, state := filepath.Join(t.TempDir(), "env"), t.TempDir()
	opts := Options{Dir: dir, Owner: injectors.Owner{UID: -1, GID: -1}, StateDir: state}
	in, _ := New(opts)
	ctx := context.Background()
	a, b, c := envSecret("a", "A_VAR", []byte("it's 1")), envSecret("b", "B_PATH", []byte("/x:/y")), envSecret("c", "C", []byte(`back\`))
	b2 := b
	b2.Value = []byte("/z")
	a2 := a
	a2.ID, a2.Name = "a2", "other secret, same value"
	passes := [][]secrets.Secret{{a, b}, {a, b, c}, {a, b2, c}, {a2, b2, c}, {c, b2}, {}, {b}}
	for i, env := range passes {
		if i == 5 {
			in, _ = New(opts) // a restart
		}
		res := in.Apply(ctx, env)
		if res.Err != nil || len(res.Failed()) != 0 {
			t.Fatalf("pass %d: %v %v", i, res.Err, res.Failed())
		}
		gen := currentGenOf(t, dir)
		fresh, _, _ := split(env)
		for _, f := range Formats {
			got, err := os.ReadFile(filepath.Join(dir, f.FileName()))
			if err != nil {
				t.Fatal(err)
			}
			if want := render(f, fresh, gen); string(got) != string(want) {
				t.Errorf("pass %d: %s is\n%s\nwant\n%s", i, f.FileName(), got, want)
			}
		}
		file, err := os.ReadFile(filepath.Join(state, manifestName))
		if err != nil {
			t.Fatal(err)
		}
		var m manifest
		if err := json.Unmarshal(file, &m); err != nil {
			t.Fatal(err)
		}
		if len(m.Vars) != len(fresh) {
			t.Errorf("pass %d: manifest has %d vars, want %d", i, len(m.Vars), len(fresh))
		}
		for _, s := range env {
			if got := m.Vars[s.Mount.Target].Secret; got != s.Ref() {
				t.Errorf("pass %d: manifest says %s is set by %+v, want %+v", i, s.Mount.Target, got, s.Ref())
			}
		}
		if want, _ := imanifest.Encode(m); string(file) != string(want) {
			t.Errorf("pass %d: manifest\n%s\nwant\n%s", i, file, want)
		}
	}
}
