package dockercfg

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/secrets-agent/secrets-agent/internal/testutil"
)

// TestRealDockerSendsAppliedCredentials checks the config.json Apply writes
// with what reads it in the end: the real docker CLI, talking TLS to a local
// registry stand-in.
func TestRealDockerSendsAppliedCredentials(t *testing.T) {
	docker := testutil.NeedTool(t, "docker")
	reg := testutil.StartRegistry(t)
	reg.SetCredentials("robot", "tok:en$with'quotes")
	f := newFixture(t, Inline)
	f.write(t, foreignConfig)
	reg.TrustFor(t, f.cfgDir)

	inspect := func() ([]byte, error) {
		cmd := exec.Command(docker, "manifest", "inspect", reg.Host+"/team/app:v1")
		cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+f.cfgDir)
		return cmd.CombinedOutput()
	}

	f.apply(t, registrySecret("reg", reg.Host, "robot", "tok:en$with'quotes"))
	if out, err := inspect(); err != nil {
		t.Fatalf("docker manifest inspect after Apply: %v\n%s", err, out)
	}
	want := "Basic " + b64("robot:tok:en$with'quotes")
	if !slices.Contains(reg.Authorizations(), want) {
		t.Fatalf("the registry never got the applied credentials: %q", reg.Authorizations())
	}

	f.apply(t) // the secret is gone
	seen := len(reg.Authorizations())
	if out, err := inspect(); err == nil {
		t.Fatalf("docker manifest inspect succeeded after the secret was removed:\n%s", out)
	}
	if slices.Contains(reg.Authorizations()[seen:], want) {
		t.Fatal("docker still sent the removed credentials")
	}
	assertForeignSurvives(t, f)
}

// TestRealDockerRunsTheHelperNamedInCredHelpers checks helper mode against
// the real docker CLI: with the config Apply writes, docker runs
// docker-credential-secrets-agent for the registry and sends what it answers.
// The helper here is a stand-in script, because the real one (the agent
// binary answering from a running daemon) is tested with the agent; what this
// test proves is that the credHelpers key and name are the ones docker looks
// up.
func TestRealDockerRunsTheHelperNamedInCredHelpers(t *testing.T) {
	docker := testutil.NeedTool(t, "docker")
	testutil.NeedTool(t, "sh")
	reg := testutil.StartRegistry(t)
	reg.SetCredentials("robot", "from-helper")
	f := newFixture(t, Helper)
	f.write(t, `{"credsStore": "nonexistent-store"}`)
	reg.TrustFor(t, f.cfgDir)

	bin := t.TempDir()
	asked := filepath.Join(bin, "asked")
	script := "#!/bin/sh\n" +
		"[ \"$1\" = get ] || exit 1\n" +
		"read -r url\n" +
		"printf '%s\\n' \"$url\" >> " + asked + "\n" +
		"printf '{\"ServerURL\":\"%s\",\"Username\":\"robot\",\"Secret\":\"from-helper\"}\\n' \"$url\"\n"
	if err := os.WriteFile(filepath.Join(bin, "docker-credential-secrets-agent"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}

	f.apply(t, registrySecret("reg", reg.Host, "robot", "from-helper"))
	if b := f.read(t); bytes.Contains(b, []byte("from-helper")) || bytes.Contains(b, []byte(b64("robot:from-helper"))) {
		t.Fatalf("helper mode wrote the password: %s", b)
	}
	cmd := exec.Command(docker, "manifest", "inspect", reg.Host+"/team/app:v1")
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+f.cfgDir, "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("docker manifest inspect: %v\n%s", err, out)
	}
	if !slices.Contains(reg.Authorizations(), "Basic "+b64("robot:from-helper")) {
		t.Fatalf("the registry never got the helper's credentials: %q", reg.Authorizations())
	}
	got, err := os.ReadFile(asked)
	if err != nil || !strings.Contains(string(got), reg.Host) {
		t.Fatalf("helper was asked for %q (%v), want %s", got, err, reg.Host)
	}
}
