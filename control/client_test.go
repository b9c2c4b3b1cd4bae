package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker-credential-helpers/client"
	"github.com/docker/docker-credential-helpers/credentials"

	"github.com/secrets-agent/secrets-agent/config"
	"github.com/secrets-agent/secrets-agent/internal/testutil"
	"github.com/secrets-agent/secrets-agent/secrets"
)

// These tests run the built secrets-agent CLI against a status socket served
// in the test process from a fake Backend.

// cliEnv is the environment the CLI runs with: ours without any
// SECRETS_AGENT_* variable, plus extra.
func cliEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SECRETS_AGENT_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// runCLI runs the built binary (or bin, when set) and returns its stdout,
// stderr and exit code.
func runCLI(t *testing.T, bin string, env []string, stdin string, args ...string) (string, string, int) {
	t.Helper()
	if bin == "" {
		bin = filepath.Join(testutil.Binaries(t), "secrets-agent")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("run %v: %v", args, err)
	}
	return stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()
}

func assertNoValue(t *testing.T, what, out string) {
	t.Helper()
	for _, v := range []string{envValue, registryValue} {
		if strings.Contains(out, v) {
			t.Errorf("%s prints a secret value:\n%s", what, out)
		}
	}
}

func TestStatusExitCodeSaysReadyDegradedOrUnreachable(t *testing.T) {
	for _, tc := range []struct {
		name  string
		state State // "" = no agent
		code  int
	}{
		{"ready", Ready, 0},
		{"degraded", Degraded, 1},
		{"starting", Starting, 1},
		{"unreachable", "", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "a.sock")
			b := newFakeBackend(tc.state)
			if tc.state != "" {
				startSocket(t, b, &config.Config{Socket: path}, nil)
			}
			out, errOut, code := runCLI(t, "", cliEnv(), "", "status", "--socket", path)
			if code != tc.code {
				t.Fatalf("status exit code = %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, out, errOut)
			}
			assertNoValue(t, "status", out+errOut)
			if tc.state == "" {
				if !strings.Contains(errOut, "not reachable at "+path) {
					t.Errorf("stderr = %q, want it to say the agent at %s is not reachable", errOut, path)
				}
				return
			}
			for _, want := range []string{"State:", string(tc.state), "env-1", "Watch stream:", "connected", "API_TOKEN", "project/API_TOKEN", "envprofile"} {
				if !strings.Contains(out, want) {
					t.Errorf("status output lacks %q:\n%s", want, out)
				}
			}

			out, _, code = runCLI(t, "", cliEnv(), "", "status", "--json", "--socket", path)
			if code != tc.code {
				t.Errorf("status --json exit code = %d, want %d", code, tc.code)
			}
			assertNoValue(t, "status --json", out)
			var got Status
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("status --json: %v\n%s", err, out)
			}
			if want := b.Status(); !reflect.DeepEqual(got, want) {
				t.Errorf("status --json = %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestSocketIsFoundFromFlagThenEnvThenConfig(t *testing.T) {
	dir := t.TempDir()
	live := startSocket(t, newFakeBackend(Ready), &config.Config{Socket: filepath.Join(dir, "live.sock")}, nil)
	missing := filepath.Join(dir, "missing.sock")
	cfgWith := func(sock string) string {
		p := filepath.Join(t.TempDir(), "config.yaml")
		if err := os.WriteFile(p, []byte("controlplane:\n  environment_id: env-1\nsocket: "+sock+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		code int
	}{
		{"flag beats env and config", []string{"SECRETS_AGENT_SOCKET=" + missing}, []string{"--socket", live, "--config", cfgWith(missing)}, 0},
		{"env beats config", []string{"SECRETS_AGENT_SOCKET=" + live}, []string{"--config", cfgWith(missing)}, 0},
		{"config", nil, []string{"--config", cfgWith(live)}, 0},
		{"config names a missing socket", nil, []string{"--config", cfgWith(missing)}, 2},
		{"unreadable config is an error", nil, []string{"--config", filepath.Join(dir, "none.yaml")}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := runCLI(t, "", cliEnv(tc.env...), "", append([]string{"status"}, tc.args...)...)
			if code != tc.code {
				t.Errorf("status %v exit code = %d, want %d\n%s%s", tc.args, code, tc.code, out, errOut)
			}
		})
	}
}

func TestSyncPrintsOutcome(t *testing.T) {
	for _, tc := range []struct {
		state State
		code  int
		want  string
	}{
		{Ready, 0, "sync ok"},
		{Degraded, 1, "sync failed: fetch environment: unavailable"},
	} {
		t.Run(string(tc.state), func(t *testing.T) {
			b := newFakeBackend(tc.state)
			path := startSocket(t, b, nil, nil)
			out, errOut, code := runCLI(t, "", cliEnv(), "", "sync", "--socket", path)
			if code != tc.code || !strings.Contains(out, tc.want) {
				t.Errorf("sync = exit %d, %q; want exit %d and %q\n%s", code, out, tc.code, tc.want, errOut)
			}
			b.mu.Lock()
			defer b.mu.Unlock()
			if b.syncs != 1 {
				t.Errorf("backend ran %d passes, want 1", b.syncs)
			}
		})
	}
}

func TestWaitExitCodes(t *testing.T) {
	t.Run("applied", func(t *testing.T) {
		b := newFakeBackend(Ready)
		close(b.applied)
		path := startSocket(t, b, nil, nil)
		if _, errOut, code := runCLI(t, "", cliEnv(), "", "wait", "--socket", path); code != 0 {
			t.Errorf("wait exit code = %d, want 0\n%s", code, errOut)
		}
	})
	t.Run("never applied", func(t *testing.T) {
		path := startSocket(t, newFakeBackend(Starting), nil, nil)
		_, errOut, code := runCLI(t, "", cliEnv(), "", "wait", "--timeout", "1s", "--socket", path)
		if code != 1 || !strings.Contains(errOut, "timed out") {
			t.Errorf("wait = exit %d, %q; want exit 1 saying it timed out", code, errOut)
		}
	})
	t.Run("no agent", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "a.sock")
		if _, errOut, code := runCLI(t, "", cliEnv(), "", "wait", "--timeout", "1s", "--socket", path); code != 2 {
			t.Errorf("wait exit code = %d, want 2\n%s", code, errOut)
		}
	})
	t.Run("agent starts after wait", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "a.sock")
		bin := filepath.Join(testutil.Binaries(t), "secrets-agent")
		cmd := exec.CommandContext(t.Context(), bin, "wait", "--timeout", "20s", "--socket", path)
		cmd.Env = cliEnv()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		b := newFakeBackend(Ready)
		close(b.applied)
		startSocket(t, b, &config.Config{Socket: path}, nil)
		if err := cmd.Wait(); err != nil {
			t.Errorf("wait for an agent that started later: %v", err)
		}
	})
}

func TestEnvPrintsTheFragment(t *testing.T) {
	b := newFakeBackend(Ready)
	path := startSocket(t, b, nil, nil)
	for _, format := range []string{"sh", "fish", "dotenv"} {
		out, errOut, code := runCLI(t, "", cliEnv(), "", "env", "--format", format, "--socket", path)
		want, _ := b.EnvFragment(format)
		if code != 0 || out != string(want) {
			t.Errorf("env --format %s = exit %d, %q; want %q\n%s", format, code, out, want, errOut)
		}
	}
	if _, _, code := runCLI(t, "", cliEnv(), "", "env", "--format", "csh", "--socket", path); code != 1 {
		t.Errorf("env --format csh exit code = %d, want 1", code)
	}
}

func TestDockerCredentialHelperSpeaksTheProtocol(t *testing.T) {
	path := startSocket(t, newFakeBackend(Ready), nil, nil)
	// Docker runs the helper by this name; main maps it to docker-credential.
	helper := filepath.Join(t.TempDir(), "docker-credential-secrets-agent")
	if err := os.Symlink(filepath.Join(testutil.Binaries(t), "secrets-agent"), helper); err != nil {
		t.Fatal(err)
	}
	// The protocol's client side, as docker/cli uses it.
	prog := client.NewShellProgramFuncWithEnv(helper, &map[string]string{"SECRETS_AGENT_SOCKET": path})

	for _, url := range []string{"registry.example.com", "https://index.docker.io/v1/"} {
		creds, err := client.Get(prog, url)
		if err != nil {
			t.Fatalf("get %s: %v", url, err)
		}
		if creds.ServerURL != url || creds.Username == "" || creds.Secret != registryValue {
			t.Errorf("get %s = %+v, want the registry's user and password", url, creds.Username)
		}
	}
	if _, err := client.Get(prog, "ghcr.io"); !credentials.IsErrCredentialsNotFound(err) {
		t.Errorf("get ghcr.io error = %v, want credentials not found", err)
	}
	out, _, code := runCLI(t, helper, cliEnv("SECRETS_AGENT_SOCKET="+path), "ghcr.io\n", "get")
	if code != 1 || strings.TrimSpace(out) != credentials.NewErrCredentialsNotFound().Error() {
		t.Errorf("get ghcr.io = exit %d, %q; want exit 1 and the not-found text", code, out)
	}

	list, err := client.List(prog)
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if want := map[string]string{"registry.example.com": "robot", secrets.DockerHubKey: "hubuser"}; !reflect.DeepEqual(list, want) {
		t.Errorf("list = %v, want %v", list, want)
	}

	err = client.Store(prog, &credentials.Credentials{ServerURL: "registry.example.com", Username: "u", Secret: "p"})
	if err == nil || !strings.Contains(err.Error(), "change them in the control plane") {
		t.Errorf("store error = %v, want a refusal pointing at the control plane", err)
	}
	if err := client.Erase(prog, "registry.example.com"); err == nil || !strings.Contains(err.Error(), "change them in the control plane") {
		t.Errorf("erase error = %v, want a refusal pointing at the control plane", err)
	}

	// `secrets-agent docker-credential get` is the same helper.
	out, _, code = runCLI(t, "", cliEnv(), "registry.example.com\n", "docker-credential", "get", "--socket", path)
	var creds credentials.Credentials
	if code != 0 || json.Unmarshal([]byte(out), &creds) != nil || creds.Username != "robot" {
		t.Errorf("docker-credential get = exit %d, %q", code, creds.Username)
	}
}

func TestVersionPrintsVersionCommitAndGo(t *testing.T) {
	out, _, code := runCLI(t, "", cliEnv(), "", "version")
	for _, want := range []string{"secrets-agent ", "commit: ", "go: go1."} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("version = exit %d, %q; want it to contain %q", code, out, want)
		}
	}
}
