package systemd_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secrets-agent/secrets-agent/config"
	"github.com/secrets-agent/secrets-agent/injectors/builtin"
	"github.com/secrets-agent/secrets-agent/internal/testutil"
)

const featureDir = "../devcontainer/src/secrets-agent"

func TestDevContainerFeatureIsWellFormed(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(featureDir, "devcontainer-feature.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		ID               string
		Version          string
		Options          map[string]struct{ Type, Default, Description string }
		Entrypoint       string
		PostStartCommand string
	}
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatalf("devcontainer-feature.json: %v", err)
	}
	if f.ID != "secrets-agent" || f.Version == "" {
		t.Errorf("id %q version %q", f.ID, f.Version)
	}
	for _, o := range []string{"controlplaneUrl", "environmentId", "tokenFile", "binary"} {
		if opt, ok := f.Options[o]; !ok || opt.Type != "string" || opt.Description == "" {
			t.Errorf("option %s missing or undocumented: %+v", o, opt)
		}
	}
	if f.Entrypoint != "/usr/local/share/secrets-agent/entrypoint.sh" {
		t.Errorf("entrypoint = %q", f.Entrypoint)
	}
	if !strings.Contains(f.PostStartCommand, "secrets-agent wait") {
		t.Errorf("postStartCommand %q does not wait for the first sync", f.PostStartCommand)
	}
	script := filepath.Join(featureDir, "install.sh")
	if info, err := os.Stat(script); err != nil || info.Mode()&0o111 == 0 {
		t.Fatalf("install.sh missing or not executable: %v", err)
	}
	sh := testutil.NeedTool(t, "sh")
	if out, err := exec.Command(sh, "-n", script).CombinedOutput(); err != nil {
		t.Errorf("sh -n install.sh: %v\n%s", err, out)
	}
}

// TestDevContainerFeatureInstalls runs the feature's install.sh as the
// devcontainer CLI would (options as upper-cased variables), into a temp
// root, and loads the config it wrote.
func TestDevContainerFeatureInstalls(t *testing.T) {
	sh := testutil.NeedTool(t, "sh")
	root := t.TempDir()
	cmd := exec.Command(sh, filepath.Join(featureDir, "install.sh"))
	cmd.Env = append(os.Environ(),
		"FEATURE_ROOT="+root,
		"BINARY="+filepath.Join(testutil.Binaries(t), "secrets-agent"),
		"CONTROLPLANEURL=http://127.0.0.1:8080/api",
		`ENVIRONMENTID=env "quoted" \ id`,
		"TOKENFILE=/run/secrets-agent/token",
		"_REMOTE_USER=nobody",
	)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("feature install.sh: %v\n%s", err, out)
	}
	for p, want := range map[string]os.FileMode{
		"usr/local/bin/secrets-agent":                   0o755,
		"usr/local/share/secrets-agent/entrypoint.sh":   0o755,
		"etc/secrets-agent/config.yaml":                 0o600,
		"etc/profile.d/secrets-agent.sh":                0,
		"usr/local/bin/docker-credential-secrets-agent": os.ModeSymlink,
	} {
		info, err := os.Lstat(filepath.Join(root, p))
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		if want == os.ModeSymlink && info.Mode()&os.ModeSymlink == 0 || want != os.ModeSymlink && want != 0 && info.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", p, info.Mode(), want)
		}
	}
	if _, err := exec.Command(sh, "-n", filepath.Join(root, "usr/local/share/secrets-agent/entrypoint.sh")).CombinedOutput(); err != nil {
		t.Errorf("entrypoint.sh does not parse: %v", err)
	}
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, config.EnvPrefix) {
			t.Setenv(name, "")
			os.Unsetenv(name)
		}
	}
	c, err := builtin.Load(filepath.Join(root, "etc/secrets-agent/config.yaml"))
	if err != nil {
		t.Fatalf("the feature's config does not load: %v", err)
	}
	if c.ControlPlane.URL != "http://127.0.0.1:8080/api" || c.ControlPlane.EnvironmentID != `env "quoted" \ id` || c.User != "nobody" {
		t.Errorf("config from the options: url %q environment_id %q user %q", c.ControlPlane.URL, c.ControlPlane.EnvironmentID, c.User)
	}
}
