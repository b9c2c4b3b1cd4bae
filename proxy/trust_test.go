package proxy

import (
	"crypto/x509"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/secrets-agent/secrets-agent/internal/testutil"
)

// verifies reports whether a leaf of ca for host verifies against the
// certificates in bundle.
func verifies(t *testing.T, ca *CA, bundle string) bool {
	t.Helper()
	b, err := os.ReadFile(bundle)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(b)
	leaf, err := ca.Leaf("api.example.test")
	if err != nil {
		t.Fatal(err)
	}
	_, err = leaf.Leaf.Verify(x509.VerifyOptions{DNSName: "api.example.test", Roots: pool})
	return err == nil
}

const trustNSEnv = "PROXY_TRUST_TEST_IN_NAMESPACE"

// TestSystemTrustInstallAndRemove runs Debian's real update-ca-certificates
// on the real paths, inside a private mount namespace whose
// /usr/local/share/ca-certificates is an empty tmpfs and whose /etc/ssl/certs
// is a copy: the test binary runs itself again under unshare -m.
func TestSystemTrustInstallAndRemove(t *testing.T) {
	if os.Getenv(trustNSEnv) == "" {
		testutil.NeedRoot(t, "bind-mount over the system trust store in a private mount namespace")
		unshare := testutil.NeedTool(t, "unshare")
		testutil.NeedTool(t, "update-ca-certificates")
		certs := filepath.Join(t.TempDir(), "certs")
		if out, err := exec.Command("cp", "-a", "/etc/ssl/certs", certs).CombinedOutput(); err != nil {
			t.Fatalf("copy /etc/ssl/certs: %v: %s", err, out)
		}
		script := `set -e
mount --make-rprivate /
mount -t tmpfs -o mode=0755 none /usr/local/share/ca-certificates
mount --bind "$1" /etc/ssl/certs
shift
exec "$@"`
		cmd := exec.Command(unshare, "-m", "sh", "-c", script, "sh", certs, os.Args[0], "-test.run=^TestSystemTrustInstallAndRemove$", "-test.v")
		cmd.Env = append(os.Environ(), trustNSEnv+"=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestSystemTrustInstallAndRemove") {
			t.Fatalf("in the namespace: %v\n%s", err, out)
		}
		if _, err := os.Stat(SystemTrust.CertPath()); err == nil {
			t.Errorf("%s exists outside the namespace", SystemTrust.CertPath())
		}
		return
	}
	ca, err := LoadCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if verifies(t, ca, SystemTrust.Bundle) {
		t.Fatal("the new CA is trusted before Install")
	}
	changed, err := SystemTrust.Install(ca.CertPEM())
	if err != nil || !changed {
		t.Fatalf("Install = %v, %v; want changed", changed, err)
	}
	if !verifies(t, ca, SystemTrust.Bundle) {
		t.Fatal("after Install the bundle does not trust the CA")
	}
	fi, err := os.Stat(SystemTrust.CertPath())
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("certificate file: %v, mode %v; want 0644", err, fi.Mode())
	}
	if changed, err := SystemTrust.Install(ca.CertPEM()); err != nil || changed {
		t.Errorf("second Install = %v, %v; want no change", changed, err)
	}
	removed, err := SystemTrust.Remove()
	if err != nil || !removed {
		t.Fatalf("Remove = %v, %v", removed, err)
	}
	if verifies(t, ca, SystemTrust.Bundle) {
		t.Error("after Remove the bundle still trusts the CA")
	}
	if removed, err := SystemTrust.Remove(); err != nil || removed {
		t.Errorf("second Remove = %v, %v; want nothing to remove", removed, err)
	}
}

func TestEnvSetsSSLCertFileOnlyWithoutSystemTrust(t *testing.T) {
	names := func(vs []Var) []string {
		var out []string
		for _, v := range vs {
			out = append(out, v.Name)
		}
		return out
	}
	want := []string{"HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy",
		"NODE_USE_ENV_PROXY", "NODE_EXTRA_CA_CERTS", "REQUESTS_CA_BUNDLE"}
	sys := Env("127.0.0.1:7", "/ca.crt", "/bundle", true)
	if got := names(sys); !reflect.DeepEqual(got, want) {
		t.Errorf("system-trusted Env = %v, want %v", got, want)
	}
	if sys[0].Value != "http://127.0.0.1:7" {
		t.Errorf("HTTPS_PROXY = %q", sys[0].Value)
	}
	if got := names(Env("127.0.0.1:7", "/ca.crt", "/bundle", false)); !reflect.DeepEqual(got, append(want, "SSL_CERT_FILE")) {
		t.Errorf("Env without system trust = %v, want SSL_CERT_FILE added", got)
	}
}

func TestWriteBundleHoldsTheSystemRootsAndTheCA(t *testing.T) {
	ca, err := LoadCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "sub", "bundle.pem")
	if err := WriteBundle(p, ca.CertPEM()); err != nil {
		t.Fatal(err)
	}
	if !verifies(t, ca, p) {
		t.Error("bundle does not trust the CA")
	}
	sys, _ := os.ReadFile(SystemTrust.Bundle)
	if b, _ := os.ReadFile(p); len(b) < len(sys) {
		t.Error("bundle lacks the system roots")
	}
}
