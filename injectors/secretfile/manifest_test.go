package secretfile

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/secrets-agent/secrets-agent/injectors"
	imanifest "github.com/secrets-agent/secrets-agent/internal/manifest"
	"github.com/secrets-agent/secrets-agent/secrets"
)

// TestManifestEncodesAsEncodingJSONDoes: the manifest the injector writes
// from its cached entry encodings is byte for byte what encoding/json makes
// of it, after whole and incremental passes that add, change and remove
// paths and directories.
func TestManifestEncodesAsEncodingJSONDoes(t *testing.T) {
	f := newFixture(t)
	a, b, c := f.path("d1/a"), f.path("d2/b"), f.path("c")
	check := func(step string) {
		t.Helper()
		got, err := os.ReadFile(filepath.Join(f.state, manifestName))
		if err != nil {
			t.Fatal(err)
		}
		want, err := imanifest.Encode(f.in.man)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("%s: manifest\n%s\nwant\n%s", step, got, want)
		}
	}
	f.apply(sec("a", a, "1"), sec("b", b, "2"))
	check("whole apply")
	f.in.ApplyOnly(t.Context(), []secrets.Secret{sec("a", a, "1"), sec("b", b, "3"), sec("c", c, "4")}, []string{b, c})
	check("changed and added")
	f.in.ApplyOnly(t.Context(), []secrets.Secret{sec("b", b, "3"), sec("c", c, "4")}, []string{a})
	check("removed with its directory")
	f.restart()
	f.apply(sec("c", c, "5"))
	check("restarted, whole apply")
}

// TestManifestOfThePreviousVersionLoads: a manifest as the agent wrote it
// before manifests were compact (indented JSON) is read as it was: its
// files are the agent's, an unchanged one is neither rewritten nor kept
// aside, and one no longer desired is removed.
func TestManifestOfThePreviousVersionLoads(t *testing.T) {
	f := newFixture(t)
	keep, gone := f.path("keep"), f.path("dir/gone")
	f.apply(sec("k", keep, "v"), sec("g", gone, "w"))
	old, err := json.MarshalIndent(f.in.man, "", "  ") // the previous version's encoding
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.state, manifestName), append(old, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	f.restart()
	res := f.apply(sec("k", keep, "v"))
	if o := wantAction(t, res, keep, injectors.Unchanged); o.Note != "" {
		t.Errorf("note %q, want none", o.Note)
	}
	wantAction(t, res, gone, injectors.Removed)
	wantGone(t, gone)
	wantGone(t, keep+OrigSuffix)
	wantGone(t, f.path("dir"))
	wantFile(t, keep, "v", 0o600)
}
