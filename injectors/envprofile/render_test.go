package envprofile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secrets-agent/secrets-agent/injectors"
	"github.com/secrets-agent/secrets-agent/internal/testutil"
	"github.com/secrets-agent/secrets-agent/secrets"
)

// applyCorpus writes the corpus with a fresh injector and returns its dir.
func applyCorpus(t *testing.T) (string, []secrets.Secret) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "env")
	in, err := New(Options{Dir: dir, Owner: injectors.Owner{UID: -1, GID: -1}})
	if err != nil {
		t.Fatal(err)
	}
	env := corpusSecrets()
	res := in.Apply(context.Background(), env)
	if res.Err != nil || len(res.Failed()) > 0 {
		t.Fatalf("apply: %v %v", res.Err, res.Failed())
	}
	return dir, env
}

// parseEnv0 parses `env -0` output.
func parseEnv0(b []byte) map[string]string {
	m := map[string]string{}
	for _, kv := range bytes.Split(b, []byte{0}) {
		if k, v, ok := bytes.Cut(kv, []byte("=")); ok {
			m[string(k)] = string(v)
		}
	}
	return m
}

// TestEveryValueReadsBackExactlyInEveryShell sources the fragment in bash,
// dash, zsh and fish, prints every variable with printf '%s' into a file and
// dumps the exported environment with env -0, and compares bytes in Go.
func TestEveryValueReadsBackExactlyInEveryShell(t *testing.T) {
	dir, env := applyCorpus(t)
	envTool := testutil.NeedTool(t, "env")
	for _, sh := range []string{"bash", "dash", "zsh", "fish"} {
		t.Run(sh, func(t *testing.T) {
			bin := testutil.NeedTool(t, sh)
			out := t.TempDir()
			var script strings.Builder
			if sh == "fish" {
				fmt.Fprintf(&script, "source %s/env.fish; or exit 3\n", dir)
			} else {
				fmt.Fprintf(&script, ". %s/env.sh || exit 3\n", dir)
			}
			for _, s := range env {
				fmt.Fprintf(&script, "printf '%%s' \"$%s\" > %s/%s\n", s.Mount.Target, out, s.Mount.Target)
			}
			fmt.Fprintf(&script, "%s -0 > %s/ENV0\n", envTool, out)
			for _, locale := range []string{"C", "C.UTF-8"} {
				cmd := exec.Command(bin, "-c", script.String())
				cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + out, "LC_ALL=" + locale, "LANG=" + locale}
				if b, err := cmd.CombinedOutput(); err != nil || len(b) > 0 {
					t.Fatalf("%s (%s): %v\n%s", sh, locale, err, b)
				}
				exported, err := os.ReadFile(filepath.Join(out, "ENV0"))
				if err != nil {
					t.Fatal(err)
				}
				envm := parseEnv0(exported)
				for _, s := range env {
					got, err := os.ReadFile(filepath.Join(out, s.Mount.Target))
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(got, s.Value) {
						t.Errorf("%s (%s): %s reads back as %q, want %q", sh, locale, s.Mount.Target, trunc(got), trunc(s.Value))
					}
					if e, ok := envm[s.Mount.Target]; !ok || e != string(s.Value) {
						// env -0 cannot show a value with a newline apart
						// from the next variable; it is still exact here
						// because values never contain NUL.
						t.Errorf("%s (%s): %s exported as %q (present %v)", sh, locale, s.Mount.Target, trunc([]byte(e)), ok)
					}
				}
			}
		})
	}
}

func trunc(b []byte) string {
	if len(b) > 80 {
		return string(b[:80]) + fmt.Sprintf("...(%d bytes)", len(b))
	}
	return string(b)
}

// TestDotenvReadsBackExactly parses env with the dialect's own parser.
func TestDotenvReadsBackExactly(t *testing.T) {
	dir, env := applyCorpus(t)
	data, err := os.ReadFile(filepath.Join(dir, "env"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseDotenv(data)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, kv := range got {
		m[kv[0]] = kv[1]
	}
	if len(m) != len(env) {
		t.Errorf("parsed %d variables, want %d", len(m), len(env))
	}
	for _, s := range env {
		if m[s.Mount.Target] != string(s.Value) {
			t.Errorf("%s reads back as %q, want %q", s.Mount.Target, trunc([]byte(m[s.Mount.Target])), trunc(s.Value))
		}
	}
}

// TestBadSecretFailsAloneOthersAreWritten: an invalid or reserved name, a NUL
// byte and a duplicate variable each fail only their own secret.
func TestBadSecretFailsAloneOthersAreWritten(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "env")
	in, err := New(Options{Dir: dir, Owner: injectors.Owner{UID: -1, GID: -1}})
	if err != nil {
		t.Fatal(err)
	}
	good := envSecret("1", "GOOD", []byte("fine"))
	bad := []secrets.Secret{
		envSecret("2", "1BAD", []byte("x")),
		envSecret("3", "BAD-NAME", []byte("x")),
		envSecret("4", "NULVAL", []byte("a\x00b")),
		envSecret("5", "GOOD", []byte("dup")),
		envSecret("6", "UID", []byte("0")),
		envSecret("7", "__SECRETS_AGENT_VARS", []byte("x")),
		envSecret("8", "status", []byte("x")),
	}
	res := in.Apply(context.Background(), append([]secrets.Secret{good}, bad...))
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	failed := map[string]bool{}
	for _, o := range res.Failed() {
		failed[o.Secret.ID] = true
		var se *secrets.Error
		if !errors.As(o.Err, &se) || strings.Contains(o.Err.Error(), "a\x00b") {
			t.Errorf("%s: error %v is not a *secrets.Error without the value", o.Secret.ID, o.Err)
		}
	}
	for _, s := range bad {
		if !failed[s.ID] {
			t.Errorf("secret %s (%s) did not fail", s.ID, s.Mount.Target)
		}
	}
	if failed["1"] {
		t.Error("the good secret failed")
	}
	for _, f := range Formats {
		data, err := os.ReadFile(filepath.Join(dir, f.FileName()))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(data, []byte("GOOD")) || !bytes.Contains(data, []byte("fine")) || bytes.Contains(data, []byte("dup")) {
			t.Errorf("%s does not hold exactly the good secret:\n%s", f.FileName(), data)
		}
	}
	if _, err := Render(FormatSh, bad); err == nil {
		t.Error("Render of bad secrets returned no error")
	}
}

func TestParseFormat(t *testing.T) {
	for _, s := range []string{"sh", "fish", "dotenv"} {
		if f, err := ParseFormat(s); err != nil || string(f) != s {
			t.Errorf("ParseFormat(%q) = %q, %v", s, f, err)
		}
	}
	if _, err := ParseFormat("bash"); err == nil {
		t.Error("ParseFormat(bash) succeeded")
	}
}
