package envprofile

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/docker/cli/pkg/kvfile"

	"github.com/secrets-agent/secrets-agent/internal/testutil"
	"github.com/secrets-agent/secrets-agent/secrets"
)

// pythonDotenvVariable is what python-dotenv's interpolation replaces
// (dotenv/variables.py).
var pythonDotenvVariable = regexp.MustCompile(`\$\{[^}:]*(?::-[^}]*)?\}`)

// dotenvPythons returns every python3 that has python-dotenv: Debian's
// (/usr/bin/python3, python3-dotenv) and the first on PATH, if another.
func dotenvPythons(t *testing.T) []string {
	var out []string
	seen := map[string]bool{}
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		path, err := exec.LookPath(p)
		if err != nil {
			continue
		}
		if real, err := filepath.EvalSymlinks(path); err == nil && !seen[real] {
			seen[real] = true
			if exec.Command(path, "-c", "import dotenv").Run() == nil {
				out = append(out, path)
			}
		}
	}
	if len(out) == 0 {
		testutil.NeedTool(t, "python3")
		if os.Getenv("CI") != "" {
			t.Fatal("python-dotenv is not installed; .ci/run should have installed python3-dotenv")
		}
		t.Skip("skipping: python-dotenv is not installed (Debian: python3-dotenv; CI installs it)")
	}
	return out
}

// TestDotenvReadersReadBack runs the readers quoteDotenv documents over the
// env file of every adversarial value: python-dotenv reads each UTF-8 value
// back exactly with interpolate=False (but those written last, as
// documented), and with its default interpolate=True each such value
// without a ${...}; docker's --env-file parser keeps the quotes (and reads
// a bare value exactly), as documented.
func TestDotenvReadersReadBack(t *testing.T) {
	var env []secrets.Secret
	for _, s := range corpusSecrets() {
		if utf8.Valid(s.Value) {
			env = append(env, s)
		}
	}
	// Two values python-dotenv cannot read (they end in a backslash but
	// cannot be bare): written last, they must not spoil the others.
	env = append([]secrets.Secret{envSecret("bs1", "A_SPACE_BACKSLASH", []byte(`two words\`)),
		envSecret("bs2", "A_LINES_BACKSLASH", []byte("two\nlines\\"))}, env...)
	frag, err := Render(FormatDotenv, env)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "env")
	if err := os.WriteFile(file, frag, 0o600); err != nil {
		t.Fatal(err)
	}

	t.Run("python-dotenv", func(t *testing.T) {
		for _, py := range dotenvPythons(t) {
			for _, interpolate := range []string{"False", "True"} {
				out, err := exec.Command(py, "-c", `import json, sys
import dotenv
vals = dotenv.dotenv_values(sys.argv[1], interpolate=`+interpolate+`, encoding="utf-8")
sys.stdout.write(json.dumps(vals))`, file).Output()
				if err != nil {
					t.Fatalf("%s: %v", py, err)
				}
				var got map[string]*string
				if err := json.Unmarshal(out, &got); err != nil {
					t.Fatalf("%s: %v", py, err)
				}
				for _, s := range env {
					v, want := got[s.Mount.Target], string(s.Value)
					expands := interpolate == "True" && pythonDotenvVariable.MatchString(want)
					switch {
					case dotenvLast(s.Value):
						// Documented: python-dotenv misreads it (and what follows).
					case v == nil:
						t.Errorf("%s interpolate=%s: %s is missing", py, interpolate, s.Mount.Target)
					case *v != want && !expands:
						t.Errorf("%s interpolate=%s: %s reads back as %q, want %q", py, interpolate, s.Mount.Target, trunc([]byte(*v)), trunc(s.Value))
					case *v == want && expands:
						t.Errorf("%s interpolate=%s: %s holds ${...} but was not expanded; the doc comment says it is", py, interpolate, s.Mount.Target)
					}
				}
			}
		}
	})

	t.Run("docker --env-file", func(t *testing.T) {
		frag, err := Render(FormatDotenv, []secrets.Secret{
			envSecret("p", "PLAIN", []byte("plain")),
			envSecret("m", "MULTI", []byte("one\nHOME")),
			envSecret("b", "BARE", []byte(`C:\dir\`)),
		})
		if err != nil {
			t.Fatal(err)
		}
		var looked []string
		got, err := kvfile.ParseFromReader(bytes.NewReader(frag), func(k string) (string, bool) {
			looked = append(looked, k)
			return "", false
		})
		if err != nil {
			t.Fatal(err)
		}
		want := []string{`BARE=C:\dir\`, "MULTI='one", "PLAIN='plain'"}
		if strings.Join(got, "|") != strings.Join(want, "|") || strings.Join(looked, "|") != "HOME'" {
			t.Errorf("docker reads %q and looks up %q; want %q and HOME' (a bare value exact, quotes kept, each line its own)", got, looked, want)
		}
	})
}
