package dockercfg

import (
	"os"
	"os/exec"
	"slices"
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
