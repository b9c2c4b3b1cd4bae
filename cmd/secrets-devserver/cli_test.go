package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/secrets-agent/secrets-agent/controlplane"
	"github.com/secrets-agent/secrets-agent/controlplane/devserver"
	"github.com/secrets-agent/secrets-agent/internal/testutil"
)

// cli runs the built secrets-devserver with args against d and returns its
// stdout, stderr and error.
func cli(t *testing.T, d *testutil.Devserver, stdin string, args ...string) (string, string, error) {
	t.Helper()
	cmd := exec.Command(filepath.Join(testutil.Binaries(t), "secrets-devserver"), append(args, "--data", d.Dir)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

func listJSON(t *testing.T, d *testutil.Devserver) []devserver.Secret {
	t.Helper()
	out, stderr, err := cli(t, d, "", "secret", "list", "--json")
	if err != nil {
		t.Fatalf("secret list --json: %v\n%s", err, stderr)
	}
	var resp devserver.ListSecretsResponse
	if err := json.Unmarshal([]byte(out), &resp); err != nil {
		t.Fatalf("secret list --json printed %q: %v", out, err)
	}
	return resp.Secrets
}

func envClient(t *testing.T, d *testutil.Devserver, token string) *controlplane.Client {
	t.Helper()
	f := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(f, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := controlplane.New(controlplane.Options{BaseURL: d.URL, TokenFile: f, RetryMax: -1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func envValue(t *testing.T, d *testutil.Devserver, token, id string) (string, error) {
	t.Helper()
	v, err := envClient(t, d, token).GetSecretValue(testCtx(t), id)
	return string(v), err
}

func TestCLICreatesListsUpdatesAndDeletesSecrets(t *testing.T) {
	d := testutil.StartDevserver(t)
	_, token := d.CreateEnv(t, "org1", "proj1", "user1")
	id := d.CreateSecret(t, "user", "user1", "API_KEY", testutil.Mount{Env: true}, []byte("first-value"))

	list := listJSON(t, d)
	if len(list) != 1 || list[0].ID != id || list[0].Name != "API_KEY" || list[0].Scope.UserID != "user1" || !list[0].EnvironmentVariable {
		t.Fatalf("list = %+v, want the one user secret", list)
	}
	session := list[0].Session

	// --value-stdin is byte-exact: the trailing newline is part of the value.
	d.UpdateSecret(t, id, []byte("second-value\n"))
	if v, err := envValue(t, d, token, id); err != nil || v != "second-value\n" {
		t.Fatalf("value after update = %q, %v; want the stdin bytes exactly", v, err)
	}
	list = listJSON(t, d)
	if list[0].Session == session {
		t.Fatal("session did not change with the value")
	}

	out, stderr, err := cli(t, d, "", "secret", "list")
	if err != nil {
		t.Fatalf("secret list: %v\n%s", err, stderr)
	}
	if !strings.Contains(out, id) || !strings.Contains(out, "env:API_KEY") {
		t.Fatalf("secret list printed:\n%s", out)
	}
	if strings.Contains(out+stderr, "second-value") {
		t.Fatalf("secret list shows a value:\n%s", out+stderr)
	}

	d.DeleteSecret(t, id)
	if list := listJSON(t, d); len(list) != 0 {
		t.Fatalf("after delete, list = %+v", list)
	}
	if _, err := envValue(t, d, token, id); controlplane.CodeOf(err) != controlplane.CodeNotFound {
		t.Fatalf("value of a deleted secret: %v, want not_found", err)
	}
}

// TestCLICreatesAGitCredentialSecret: --git-host makes a gitCredentialHost
// mount that the environment's spec carries, with the token as the value.
func TestCLICreatesAGitCredentialSecret(t *testing.T) {
	d := testutil.StartDevserver(t)
	envID, token := d.CreateEnv(t, "org1", "proj1", "user1")
	id := d.CreateSecret(t, "project", "proj1", "GIT_TOKEN", testutil.Mount{GitHost: "git.example.com:8443"}, []byte("tok-1"))
	list := listJSON(t, d)
	if len(list) != 1 || list[0].GitCredentialHost != "git.example.com:8443" {
		t.Fatalf("list = %+v, want the git secret", list)
	}
	env, err := envClient(t, d, token).GetEnvironment(testCtx(t), envID)
	if err != nil {
		t.Fatal(err)
	}
	if len(env.Spec.Secrets) != 1 || env.Spec.Secrets[0].GitCredentialHost == nil || *env.Spec.Secrets[0].GitCredentialHost != "git.example.com:8443" {
		t.Fatalf("spec %+v, want the gitCredentialHost mount", env.Spec.Secrets)
	}
	if v, err := envValue(t, d, token, id); err != nil || v != "tok-1" {
		t.Fatalf("value %q, %v", v, err)
	}
	if _, stderr, err := cli(t, d, "", "secret", "create", "--scope", "user", "--owner", "user1", "--name", "TWO_MOUNTS",
		"--git-host", "h.example", "--env"); err == nil || !strings.Contains(stderr, "git-host") {
		t.Errorf("two mounts accepted: %v %s", err, stderr)
	}
}

func TestCLICreatesACredentialProxySecret(t *testing.T) {
	d := testutil.StartDevserver(t)
	envID, token := d.CreateEnv(t, "org1", "proj1", "user1")
	id := d.CreateSecret(t, "user", "user1", "GITHUB_TOKEN", testutil.Mount{Env: true,
		ProxyHeader: "Authorization", ProxyHosts: []string{"api.github.com", "github.com"}}, []byte("ghp_x"))
	want := &controlplane.CredentialProxy{Header: "Authorization", TargetHosts: []string{"api.github.com", "github.com"}}
	if list := listJSON(t, d); len(list) != 1 || !reflect.DeepEqual(list[0].CredentialProxy, want) {
		t.Fatalf("list = %+v, want the secret with %+v", list, want)
	}
	env, err := envClient(t, d, token).GetEnvironment(testCtx(t), envID)
	if err != nil {
		t.Fatal(err)
	}
	if len(env.Spec.Secrets) != 1 || env.Spec.Secrets[0].ID != id || !reflect.DeepEqual(env.Spec.Secrets[0].CredentialProxy, want) {
		t.Fatalf("spec secrets = %+v, want %s with credentialProxy %+v", env.Spec.Secrets, id, want)
	}
	_, stderr, err := cli(t, d, "", "secret", "create", "--scope", "user", "--owner", "user1", "--name", "X", "--env", "--proxy-header", "Authorization")
	if err == nil || !strings.Contains(stderr, "--proxy-host") {
		t.Errorf("--proxy-header alone: %v, %s; want an error naming --proxy-host", err, stderr)
	}
}

func TestCLIRejectsABadSecretNamingTheField(t *testing.T) {
	d := testutil.StartDevserver(t)
	cases := []struct {
		name  string
		args  []string
		field string
	}{
		{"name not a variable", []string{"--scope", "user", "--owner", "u", "--name", "a-b", "--env"}, "environmentVariable:"},
		{"empty name", []string{"--scope", "user", "--owner", "u", "--name", "", "--file", "/run/secrets/x"}, "name:"},
		{"relative file", []string{"--scope", "user", "--owner", "u", "--name", "CERT", "--file", "cert.pem"}, "filePath:"},
		{"unknown scope", []string{"--scope", "team", "--owner", "u", "--name", "ABC", "--env"}, "--scope"},
		{"two mounts", []string{"--scope", "user", "--owner", "u", "--name", "ABC", "--env", "--api-only"}, "env"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, err := cli(t, d, "secret-on-stdin", append([]string{"secret", "create", "--value-stdin"}, tc.args...)...)
			if err == nil {
				t.Fatal("secret create succeeded")
			}
			if !strings.Contains(stderr, tc.field) || strings.Contains(stderr, "secret-on-stdin") {
				t.Fatalf("stderr %q: want it to name %q and not hold the value", stderr, tc.field)
			}
		})
	}
}

func TestServeShutsDownCleanlyOnSIGTERMAndKeepsItsData(t *testing.T) {
	d := testutil.StartDevserver(t)
	envID, token := d.CreateEnv(t, "org1", "proj1", "user1")
	id := d.CreateSecret(t, "project", "proj1", "CONFIG", testutil.Mount{File: "/etc/app/config"}, []byte("kept"))
	stream, err := envClient(t, d, token).WatchEvents(testCtx(t), envID)
	if err != nil {
		t.Fatalf("WatchEvents: %v", err)
	}
	defer stream.Close()

	d.Stop(t) // fails the test unless serve exits 0 within 10 s
	if ev, err := stream.Next(); err == nil {
		t.Fatalf("the watch stream outlived the server: %+v", ev)
	}
	if _, err := os.Stat(filepath.Join(d.Dir, devserver.AddressFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("address file after a clean exit: %v, want it removed", err)
	}
	d.Start(t)
	if v, err := envValue(t, d, token, id); err != nil || v != "kept" {
		t.Fatalf("after restart: %q, %v", v, err)
	}

	d.Kill(t) // leaves a stale address file, which Start replaces
	d.Start(t)
	if v, err := envValue(t, d, token, id); err != nil || v != "kept" {
		t.Fatalf("after a crash and restart: %q, %v", v, err)
	}
}
