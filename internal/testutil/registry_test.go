package testutil

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func basic(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

func TestRegistryAsksForBasicAuthAndServesManifest(t *testing.T) {
	r := StartRegistry(t)
	r.SetCredentials("alice", "s3cret")
	ca, err := os.ReadFile(r.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		t.Fatal("CAFile holds no certificate")
	}
	// The server certificate verifies against CAFile for 127.0.0.1.
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}

	tests := []struct {
		name, path, auth string
		status           int
		body             string
	}{
		{"no auth", "/v2/", "", 401, ""},
		{"wrong password", "/v2/", basic("alice", "nope"), 401, ""},
		{"right", "/v2/", basic("alice", "s3cret"), 200, "{}"},
		{"manifest", "/v2/team/app/manifests/v1", basic("alice", "s3cret"), 200, `"schemaVersion": 2`},
		{"config blob", "/v2/team/app/blobs/" + configDigest, basic("alice", "s3cret"), 200, configBlob},
		{"manifest without auth", "/v2/team/app/manifests/v1", "", 401, ""},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(http.MethodGet, "https://"+r.Host+tt.path, nil)
		if tt.auth != "" {
			req.Header.Set("Authorization", tt.auth)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.status || !strings.Contains(string(body), tt.body) {
			t.Errorf("%s: %d %s, want %d with %q", tt.name, resp.StatusCode, body, tt.status, tt.body)
		}
		if tt.status == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
			t.Errorf("%s: WWW-Authenticate %q, want a Basic challenge", tt.name, resp.Header.Get("WWW-Authenticate"))
		}
	}
	var want []string
	for _, tt := range tests {
		want = append(want, tt.auth)
	}
	if got := r.Authorizations(); !slices.Equal(got, want) {
		t.Errorf("Authorizations() = %q, want %q", got, want)
	}
}

func TestRegistryRefusesEveryoneBeforeSetCredentials(t *testing.T) {
	r := StartRegistry(t)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	req, _ := http.NewRequest(http.MethodGet, "https://"+r.Host+"/v2/", nil)
	req.SetBasicAuth("", "")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("status %d, want 401", resp.StatusCode)
	}
}

// inspect runs the real `docker manifest inspect` with DOCKER_CONFIG=dir.
func inspect(t *testing.T, r *Registry, dir string) ([]byte, error) {
	t.Helper()
	docker := NeedTool(t, "docker")
	cmd := exec.Command(docker, "manifest", "inspect", r.Host+"/team/app:v1")
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+dir)
	return cmd.CombinedOutput()
}

func TestDockerCLIInspectsThroughStandIn(t *testing.T) {
	r := StartRegistry(t)
	r.SetCredentials("alice", "s3cret")
	dir := t.TempDir()
	r.TrustFor(t, dir)
	write := func(user, password string) {
		auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
		if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"auths":{"`+r.Host+`":{"auth":"`+auth+`"}}}`), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	write("alice", "s3cret")
	out, err := inspect(t, r, dir)
	if err != nil || !bytes.Contains(out, []byte("schemaVersion")) {
		t.Fatalf("docker manifest inspect with the right credentials: %v\n%s", err, out)
	}
	if !slices.Contains(r.Authorizations(), basic("alice", "s3cret")) {
		t.Fatalf("the stand-in never got the credentials: %q", r.Authorizations())
	}

	write("alice", "wrong")
	if out, err := inspect(t, r, dir); err == nil {
		t.Fatalf("docker manifest inspect with wrong credentials succeeded:\n%s", out)
	}
}

// The docker CLI treats loopback registries as insecure: it speaks TLS to
// them without verifying the certificate (and without reading certs.d). If
// this test starts failing, the CLI has begun to verify, and TrustFor (which
// then needs root) is what makes the docker tests pass.
func TestDockerCLIDoesNotVerifyLoopbackRegistries(t *testing.T) {
	r := StartRegistry(t)
	r.SetCredentials("alice", "s3cret")
	dir := t.TempDir()
	auth := base64.StdEncoding.EncodeToString([]byte("alice:s3cret"))
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"auths":{"`+r.Host+`":{"auth":"`+auth+`"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := inspect(t, r, dir); err != nil {
		t.Fatalf("without trust: %v\n%s", err, out)
	}
}

func TestTrustForLaysOutCertsDirAndCleansUp(t *testing.T) {
	NeedRoot(t, "write into /etc/docker/certs.d")
	r := StartRegistry(t)
	caFile := filepath.Join(CertsDir, r.Host, "ca.crt")
	t.Run("trusted", func(t *testing.T) {
		r.TrustFor(t, t.TempDir())
		got, err := os.ReadFile(caFile)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := os.ReadFile(r.CAFile)
		if !bytes.Equal(got, want) {
			t.Fatal("certs.d holds another certificate than CAFile")
		}
	})
	if _, err := os.Stat(filepath.Dir(caFile)); !os.IsNotExist(err) {
		t.Fatalf("%s left behind after the test: %v", filepath.Dir(caFile), err)
	}
}
