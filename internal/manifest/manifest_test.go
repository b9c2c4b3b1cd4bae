package manifest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type doc struct {
	Version int            `json:"version"`
	Key     Key            `json:"key"`
	Items   map[string]int `json:"items"`
}

// TestSaveThenLoadRoundTripsAndRewritesNothingUnchanged.
func TestSaveThenLoadRoundTripsAndRewritesNothingUnchanged(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	k, err := NewKey()
	if err != nil || !k.Valid() {
		t.Fatalf("NewKey = %q, %v", k, err)
	}
	in := doc{Version: Version, Key: k, Items: map[string]int{"b": 2, "a": 1}}
	if wrote, err := Save(dir, "m.json", in); err != nil || !wrote {
		t.Fatalf("Save = %v, %v", wrote, err)
	}
	if wrote, err := Save(dir, "m.json", in); err != nil || wrote {
		t.Errorf("second Save = %v, %v; want no write", wrote, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "m.json")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("manifest mode %v, %v; want 0600", fi.Mode(), err)
	}
	var out doc
	if found, err := Load(dir, "m.json", &out); !found || err != nil || out.Key != k || out.Items["b"] != 2 {
		t.Errorf("Load = %v, %v, %+v", found, err, out)
	}
	if k.MAC([]byte("v")) == Key(strings.Repeat("0", 64)).MAC([]byte("v")) {
		t.Error("MAC does not depend on the key")
	}
}

// TestOneCorruptionRule: a missing manifest is none; one that does not parse
// or has another version is an error naming the file, without quoting it; one
// without a version reads as Version.
func TestOneCorruptionRule(t *testing.T) {
	dir := t.TempDir()
	var d doc
	if found, err := Load(dir, "none.json", &d); found || err != nil {
		t.Errorf("missing: %v, %v", found, err)
	}
	for name, body := range map[string]string{"bad.json": `{"items": sekret`, "v2.json": `{"version": 2}`} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(dir, name, &d); err == nil || !strings.Contains(err.Error(), name) || strings.Contains(err.Error(), "sekret") {
			t.Errorf("%s: %v, want an error naming it, without its content", name, err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "old.json"), []byte(`{"items": {"a": 1}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if found, err := Load(dir, "old.json", &d); !found || err != nil || d.Items["a"] != 1 {
		t.Errorf("unversioned: %v, %v, %+v", found, err, d)
	}
}
