package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/secrets-agent/secrets-agent/config"
	"github.com/secrets-agent/secrets-agent/control"
	"github.com/secrets-agent/secrets-agent/injectors"
	"github.com/secrets-agent/secrets-agent/injectors/envprofile"
)

// isolate points HOME, XDG_RUNTIME_DIR and SECRETS_AGENT_SOCKET at nothing
// of the machine's, so that discovery sees only what a test puts there.
func isolate(t *testing.T) string {
	t.Helper()
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_RUNTIME_DIR", filepath.Join(home, "run"))
	t.Setenv(socketEnv, "")
	return home
}

// TestSocketIsFoundInTheDocumentedOrder: --socket, then
// $SECRETS_AGENT_SOCKET, then the socket key of --config (with "~"
// expanded to the caller's home), each winning over the ones after it.
func TestSocketIsFoundInTheDocumentedOrder(t *testing.T) {
	home := isolate(t)
	cfg := filepath.Join(home, "config.yaml")
	if err := os.WriteFile(cfg, []byte("socket: ~/from-config.sock\nuser: whoever\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := &socketFlags{socket: "/flag.sock", config: cfg}
	t.Setenv(socketEnv, "/env.sock")
	for _, want := range []struct{ path, from string }{
		{"/flag.sock", "--socket"},
		{"/env.sock", "$" + socketEnv},
		{filepath.Join(home, "from-config.sock"), "--config " + cfg},
	} {
		if got, err := f.path(); err != nil || got != want.path || f.from() != want.from {
			t.Errorf("path() = %q, %v from %q; want %q from %q", got, err, f.from(), want.path, want.from)
		}
		switch {
		case f.socket != "":
			f.socket = ""
		default:
			t.Setenv(socketEnv, "")
		}
	}
}

// TestSocketDefaultIsTheConfigDefault: with no flag, variable or socket key,
// the socket is config.Default's, not a second copy of it; a --config that
// cannot be read is an error, not a fall-back.
func TestSocketDefaultIsTheConfigDefault(t *testing.T) {
	home := isolate(t)
	if _, err := os.Stat(config.SystemPath); err == nil {
		t.Skipf("%s exists on this machine: its socket key would be the answer", config.SystemPath)
	}
	want := config.Default().Socket
	if os.Geteuid() != 0 && !exists(want) && exists(config.SystemSocket) {
		want = config.SystemSocket
	}
	if got, err := (&socketFlags{}).path(); err != nil || got != want {
		t.Errorf("path() = %q, %v; want config.Default().Socket %q", got, err, want)
	}
	noKey := filepath.Join(home, "nokey.yaml")
	if err := os.WriteFile(noKey, []byte("user: whoever\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := (&socketFlags{config: noKey}).path(); err != nil || got != want {
		t.Errorf("path() with a config without socket = %q, %v; want %q", got, err, want)
	}
	if _, err := (&socketFlags{config: filepath.Join(home, "missing.yaml")}).path(); err == nil {
		t.Error("an unreadable --config was not an error")
	}
}

// TestUnreachableNamesTheSocketAndHowToPointElsewhere: the message of an
// unreachable agent names the path, where it came from and the three ways
// to name another; it exits 2.
func TestUnreachableNamesTheSocketAndHowToPointElsewhere(t *testing.T) {
	isolate(t)
	f := &socketFlags{socket: "/nowhere.sock"}
	err := f.clientExit(control.NewClient("/nowhere.sock"), fmt.Errorf("dial: %w", control.ErrUnreachable))
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != exitUnreachable {
		t.Fatalf("clientExit = %v, want exit %d", err, exitUnreachable)
	}
	for _, want := range []string{"/nowhere.sock", "(--socket)", "--config FILE", "--socket PATH", socketEnv + "=PATH"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q does not say %q", err, want)
		}
	}
	if err := f.clientExit(nil, errors.New("boom")); !errors.As(err, &ee) || ee.code != 1 {
		t.Errorf("another error = %v, want exit 1", err)
	}
}

// TestExitWithCarriesItsCodeThroughWrapping: main finds the code of an
// exitWith error however it was wrapped.
func TestExitWithCarriesItsCodeThroughWrapping(t *testing.T) {
	err := fmt.Errorf("wait: %w", exitWith(exitNotReady, "degraded"))
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != exitNotReady || ee.Error() != "degraded" {
		t.Errorf("exitWith through %%w = %#v", ee)
	}
}

// TestWatchedConfigIsAbsoluteOrTheDefaultFileWhenItExists: run watches the
// --config it was given, made absolute; without one, config.DefaultFile when
// it exists, else nothing.
func TestWatchedConfigIsAbsoluteOrTheDefaultFileWhenItExists(t *testing.T) {
	isolate(t)
	t.Chdir(t.TempDir())
	wd, _ := os.Getwd()
	if got := watchedConfig("c.yaml"); got != filepath.Join(wd, "c.yaml") {
		t.Errorf("watchedConfig(c.yaml) = %q", got)
	}
	def := config.DefaultFile()
	_, statErr := os.Stat(def)
	want := ""
	if statErr == nil {
		want = def
	}
	if got := watchedConfig(""); got != want {
		t.Errorf("watchedConfig(\"\") = %q, want %q (config.DefaultFile %q)", got, want, def)
	}
}

// TestEnvFormatFlagIsEnvprofilesFormats: env's --format defaults to and
// offers exactly the formats envprofile renders, and refuses another
// before asking the agent anything.
func TestEnvFormatFlagIsEnvprofilesFormats(t *testing.T) {
	isolate(t)
	cmd := newEnvCmd()
	fl := cmd.Flags().Lookup("format")
	if fl.DefValue != string(envprofile.FormatSh) {
		t.Errorf("--format default %q, want %q", fl.DefValue, envprofile.FormatSh)
	}
	for _, f := range envprofile.Formats {
		if !strings.Contains(fl.Usage, string(f)) {
			t.Errorf("--format usage %q does not offer %s", fl.Usage, f)
		}
	}
	cmd.SetArgs([]string{"--format", "csh", "--socket", "/nowhere.sock"})
	cmd.SetOut(&bytes.Buffer{})
	cmd.SetErr(&bytes.Buffer{})
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), "csh") {
		t.Errorf("--format csh: %v, want an error naming it", err)
	}
}

// TestFlagDefaultsNameTheConfigDefaults: the help of --config and --socket
// names the paths config defines, so that they cannot drift apart.
func TestFlagDefaultsNameTheConfigDefaults(t *testing.T) {
	root := newRootCmd()
	for _, c := range root.Commands() {
		if fl := c.Flags().Lookup("config"); fl != nil && !strings.Contains(fl.Usage, config.SystemPath) {
			t.Errorf("%s --config usage %q does not name %s", c.Name(), fl.Usage, config.SystemPath)
		}
		if fl := c.Flags().Lookup("socket"); fl != nil && c.Name() != "exec" && c.Name() != "git-credential" &&
			!strings.Contains(fl.Usage, config.SystemSocket) {
			t.Errorf("%s --socket usage %q does not name %s", c.Name(), fl.Usage, config.SystemSocket)
		}
	}
}

// TestStatusCountsOutcomesInTheOrderTheyFirstAppear and says nothing but
// "0" for no secrets.
func TestStatusCountsOutcomesInTheOrderTheyFirstAppear(t *testing.T) {
	rows := []control.SecretStatus{{Outcome: control.Outcome(injectors.Unchanged)}, {Outcome: control.Skipped},
		{Outcome: control.Outcome(injectors.Unchanged)}, {Outcome: control.Failed}}
	if got := secretCounts(rows); got != "4: 2 unchanged, 1 skipped, 1 failed" {
		t.Errorf("secretCounts = %q", got)
	}
	if got := secretCounts(nil); got != "0" {
		t.Errorf("secretCounts(nil) = %q", got)
	}
}

// TestTextFromTheAgentCannotDriveTheTerminal: control characters in what
// the agent says (names, errors) print as '?'.
func TestTextFromTheAgentCannotDriveTheTerminal(t *testing.T) {
	if got := clean("a\x1b[2Jb\nc\td\u0085e"); got != "a?[2Jb?c?d?e" {
		t.Errorf("clean = %q", got)
	}
}

// TestSyncReportOfAFailedFetchSaysNothingWasTouched: a pass that stopped at
// the spec fetch says so, not the counts of an earlier pass.
func TestSyncReportOfAFailedFetchSaysNothingWasTouched(t *testing.T) {
	var b bytes.Buffer
	printReport(&b, control.PassReport{Error: "get environment e: unavailable", Duration: time.Second,
		Status: control.Status{Secrets: []control.SecretStatus{{Name: "OLD", Error: "old"}}}})
	if out := b.String(); !strings.Contains(out, "sync failed: get environment e: unavailable") ||
		!strings.Contains(out, "nothing applied or removed") || strings.Contains(out, "OLD") {
		t.Errorf("report:\n%s", out)
	}
}
