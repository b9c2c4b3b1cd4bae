//go:build live

package test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/secrets-agent/secrets-agent/internal/testutil"
)

// baseImage is the Debian rootfs of the systemd tests imported into docker:
// the dev container's base image (no registry is reachable to pull one).
const baseImage = "secrets-agent-test/debian:bookworm"

// devcontainerCLI returns the devcontainer CLI: the one on PATH, else the one
// .ci/run installs into the cache.
func devcontainerCLI(t testing.TB) string {
	if p, err := exec.LookPath("devcontainer"); err == nil {
		return p
	}
	p := filepath.Join(testutil.CacheDir(), "devcontainers-cli", "node_modules", ".bin", "devcontainer")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	return testutil.NeedTool(t, "devcontainer") // skips (or fails under CI) naming it
}

// TestLiveDevContainer brings up a dev container with the local Feature in
// devcontainer/src/secrets-agent using the devcontainer CLI and a dockerd the
// test starts: the agent starts by itself from the Feature's entrypoint,
// applies the environment's secrets from the devserver on the host, and
// `devcontainer exec bash -lc` sees them; a change on the host reaches it
// within a second.
func TestLiveDevContainer(t *testing.T) {
	cli := devcontainerCLI(t)
	testutil.NeedTool(t, "node")
	rootfs := testutil.LiveRootfs(t)
	d := testutil.StartDockerd(t)
	d.ImportDir(t, rootfs, baseImage)

	s := newStack(t)
	value := unique("devc-")
	id := s.dev.CreateSecret(t, "user", "alice", "APP_TOKEN", env(), []byte(value))

	// The workspace: devcontainer.json with the local Feature, the binary
	// beside its install.sh, and the token in a directory the container
	// mounts (where a platform would put it).
	ws := t.TempDir()
	feature := filepath.Join(ws, ".devcontainer", "secrets-agent")
	if err := os.Mkdir(filepath.Dir(feature), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-r", filepath.Join(testutil.ModuleRoot(t), "devcontainer", "src", "secrets-agent"),
		feature).CombinedOutput(); err != nil {
		t.Fatalf("copy the feature: %v\n%s", err, out)
	}
	if out, err := exec.Command("cp", testutil.AgentBin(t), filepath.Join(feature, "secrets-agent")).CombinedOutput(); err != nil {
		t.Fatalf("copy the binary: %v\n%s", err, out)
	}
	conf := map[string]any{
		"name":  "secrets-agent live test",
		"image": baseImage,
		"features": map[string]any{"./secrets-agent": map[string]string{
			"controlplaneUrl": s.dev.URL,
			"environmentId":   s.envID,
			"tokenFile":       "/run/platform/token",
		}},
		// The devserver listens on the host's 127.0.0.1.
		"runArgs": []string{"--network=host"},
		"mounts":  []string{"source=" + filepath.Dir(s.tokenFile) + ",target=/run/platform,type=bind,readonly"},
	}
	b, _ := json.MarshalIndent(conf, "", "  ")
	if err := os.WriteFile(filepath.Join(ws, ".devcontainer", "devcontainer.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}

	devc := func(args ...string) (string, error) {
		cmd := exec.Command(cli, args...)
		cmd.Env = append(os.Environ(), "DOCKER_HOST="+d.Host)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		if err != nil {
			return out.String() + errOut.String(), err
		}
		return out.String(), nil
	}
	t.Cleanup(func() {
		// The container and the image the CLI built with the Feature.
		ids, _ := d.Docker("docker", nil, "ps", "-aq", "--filter", "label=devcontainer.local_folder="+ws)
		for _, c := range strings.Fields(ids) {
			_, _ = d.Docker("docker", nil, "rm", "-f", c)
		}
		imgs, _ := d.Docker("docker", nil, "images", "-q", "--filter", "reference=vsc-"+strings.ToLower(filepath.Base(ws))+"*")
		for _, i := range strings.Fields(imgs) {
			_, _ = d.Docker("docker", nil, "rmi", "-f", i)
		}
	})

	began := time.Now()
	if out, err := devc("up", "--workspace-folder", ws, "--docker-path", "docker"); err != nil {
		t.Fatalf("devcontainer up: %v\n%s", err, out)
	}
	t.Logf("devcontainer up took %v", time.Since(began).Round(time.Millisecond))

	echo := func() string {
		out, err := devc("exec", "--workspace-folder", ws, "bash", "-lc", `printf '%s' "$APP_TOKEN"`)
		if err != nil {
			t.Fatalf("devcontainer exec: %v\n%s", err, out)
		}
		return strings.TrimSpace(out)
	}
	if got := echo(); got != value {
		out, _ := devc("exec", "--workspace-folder", ws, "sh", "-c", "cat /run/secrets-agent/agent.log; secrets-agent status")
		t.Fatalf("devcontainer exec bash -lc 'echo $APP_TOKEN' = %q, want the secret's value\n%s", got, out)
	}
	if out, err := devc("exec", "--workspace-folder", ws, "secrets-agent", "status"); err != nil {
		t.Errorf("secrets-agent status in the container: %v\n%s", err, out)
	}

	// The change: the fragment in the container is polled with docker exec
	// (cheap); then a devcontainer exec, which starts a node process, sees it.
	container := strings.TrimSpace(d.Must(t, "ps", "-q", "--filter", "label=devcontainer.local_folder="+ws))
	newValue := unique("devc2-")
	began = time.Now()
	s.dev.UpdateSecret(t, id, []byte(newValue))
	testutil.Eventually(t, 10*time.Second, "the change in a login shell in the container", func() bool {
		out, _ := d.Docker("docker", nil, "exec", container, "bash", "-lc", `printf '%s' "$APP_TOKEN"`)
		return out == newValue
	})
	took := time.Since(began)
	t.Logf("changed secret in a new login shell in the container %v after the update", took.Round(time.Millisecond))
	if took > time.Second {
		t.Errorf("the change took %v to reach a shell in the container; want within a second", took)
	}
	if got := echo(); got != newValue {
		t.Errorf("after the update, devcontainer exec sees %q", got)
	}
}
