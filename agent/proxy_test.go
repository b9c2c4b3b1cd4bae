package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secrets-agent/secrets-agent/config"
	"github.com/secrets-agent/secrets-agent/controlplane"
	"github.com/secrets-agent/secrets-agent/proxy"
)

// proxyRig is a rig whose agent runs the credential proxy on a free
// loopback port, without touching the system trust store.
func proxyRig(t *testing.T) *testRig {
	cfg := testConfig()
	cfg.StateDir = t.TempDir()
	cfg.Proxy = config.Proxy{Enabled: true, Listen: "127.0.0.1:0"}
	r := newRig(t, cfg)
	t.Cleanup(func() {
		if r.a.proxy != nil {
			_ = r.a.proxy.Close()
		}
	})
	return r
}

// putProxied adds or replaces a secret that carries a credentialProxy.
func putProxied(r *testRig, id, kind, target, value string) {
	r.cp.put(id, "proxied "+id, controlplane.ScopeUser, kind, target, value)
	r.cp.set(func(f *fakePlane) {
		for i := range f.spec {
			if f.spec[i].ID == id {
				f.spec[i].CredentialProxy = &controlplane.CredentialProxy{Header: "Authorization", TargetHosts: []string{"api.example.com"}}
			}
		}
	})
}

func TestProxiedSecretIsMountedAsAPlaceholderWithTheProxyVariables(t *testing.T) {
	r := proxyRig(t)
	putProxied(r, "gh", "env", "GH_TOKEN", "real-gh-value")
	putProxied(r, "cfg", "file", "/x/token", "real-file-value")
	r.cp.put("plain", "plain", controlplane.ScopeUser, "env", "PLAIN", "fine")
	rep := r.pass(t)
	if !rep.OK() {
		t.Fatalf("pass: %s", rep.Error)
	}
	env, _ := r.env.read(t, "GH_TOKEN")
	file, _ := r.file.read(t, "/x/token")
	if !proxy.IsPlaceholder(env) || !proxy.IsPlaceholder(file) || env == file {
		t.Fatalf("GH_TOKEN = %q, file = %q: want two different placeholders", env, file)
	}
	addr := r.a.proxy.Addr()
	for name, want := range map[string]string{"HTTPS_PROXY": "http://" + addr, "https_proxy": "http://" + addr,
		"NO_PROXY": "localhost,127.0.0.1,::1", "NODE_USE_ENV_PROXY": "1", "PLAIN": "fine",
		"SSL_CERT_FILE": filepath.Join(r.a.config().StateDir, "proxy-ca-bundle.pem")} {
		if got, _ := r.env.read(t, name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	for _, dir := range []string{r.env.dir, r.file.dir, r.a.config().StateDir} {
		assertNoValueBelow(t, dir, "real-gh-value", "real-file-value")
	}
	if strings.Contains(r.logs.String(), "real-gh-value") {
		t.Error("a proxied value is in the logs")
	}
	if row := r.row(t, "gh"); row.Outcome != "created" || row.Error != "" {
		t.Errorf("row %+v, want created", row)
	}

	// A new value (a new session): a new placeholder.
	putProxied(r, "gh", "env", "GH_TOKEN", "rotated")
	r.pass(t)
	if got, _ := r.env.read(t, "GH_TOKEN"); got == env || !proxy.IsPlaceholder(got) {
		t.Errorf("after rotation GH_TOKEN = %q, want a new placeholder", got)
	}

	// No proxied secret left: the proxy variables go.
	r.cp.remove("gh")
	r.cp.remove("cfg")
	r.pass(t)
	for _, name := range []string{"GH_TOKEN", "HTTPS_PROXY", "http_proxy", "NODE_EXTRA_CA_CERTS"} {
		if got, ok := r.env.read(t, name); ok {
			t.Errorf("%s = %q after the proxied secrets were deleted, want it gone", name, got)
		}
	}
	if got, _ := r.env.read(t, "PLAIN"); got != "fine" {
		t.Errorf("PLAIN = %q", got)
	}
}

func TestInvalidCredentialProxyFailsOnlyThatSecret(t *testing.T) {
	r := proxyRig(t)
	putProxied(r, "bad", "env", "BAD", "line1\nline2") // cannot go into a header
	r.cp.put("plain", "plain", controlplane.ScopeUser, "env", "PLAIN", "fine")
	r.pass(t)
	row := r.row(t, "bad")
	if row.Outcome != "failed" || !strings.Contains(row.Error, "credential proxy") || strings.Contains(row.Error, "line1") {
		t.Errorf("row %+v, want failed naming the credential proxy, without the value", row)
	}
	if _, ok := r.env.read(t, "BAD"); ok {
		t.Error("BAD was written")
	}
	if got, _ := r.env.read(t, "PLAIN"); got != "fine" {
		t.Errorf("PLAIN = %q, want the other secret applied", got)
	}
}

// assertNoValueBelow fails when a file below dir holds any of values.
func assertNoValueBelow(t *testing.T, dir string, values ...string) {
	t.Helper()
	_ = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || !fi.Mode().IsRegular() {
			return nil
		}
		b, _ := os.ReadFile(p)
		for _, v := range values {
			if strings.Contains(string(b), v) {
				t.Errorf("%s holds a proxied value", p)
			}
		}
		return nil
	})
}
