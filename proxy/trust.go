package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/secrets-agent/secrets-agent/internal/atomicfile"
	"github.com/secrets-agent/secrets-agent/internal/dirs"
)

// Trust is a system trust store that the proxy's CA certificate is added
// to, so that every client on the machine which uses the system roots
// (curl, git, Python's ssl, Go, OpenSSL) accepts the proxy's leaves.
type Trust struct {
	// Dir holds local CA certificates (Debian: /usr/local/share/ca-certificates);
	// the certificate is written there as CertName.
	Dir string
	// Bundle is the file Update regenerates with every trusted certificate
	// (Debian: /etc/ssl/certs/ca-certificates.crt).
	Bundle string
	// Update is the command that rebuilds Bundle from Dir (Debian:
	// update-ca-certificates). Empty: nothing is run.
	Update []string
}

// CertName is the proxy CA's file name in Trust.Dir (systemd/install.sh
// --uninstall removes it by this name). update-ca-certificates
// only reads names ending in .crt.
const CertName = "secrets-agent-proxy.crt"

// SystemTrust is Debian's (and Ubuntu's) trust store.
var SystemTrust = Trust{
	Dir:    "/usr/local/share/ca-certificates",
	Bundle: "/etc/ssl/certs/ca-certificates.crt",
	Update: []string{"update-ca-certificates"},
}

// CertPath is where Install puts the CA certificate: a file with only that
// certificate, readable by everyone (NODE_EXTRA_CA_CERTS points at it).
func (t Trust) CertPath() string { return filepath.Join(t.Dir, CertName) }

// Install adds certPEM to the trust store: it writes CertPath (0644,
// through atomicfile, never following a symlink) and, when that changed
// anything, runs Update. It reports whether the store changed. Nothing is
// done when the certificate is there already and Bundle holds it.
func (t Trust) Install(certPEM []byte) (changed bool, err error) {
	root, err := dirs.Open(t.Dir, 0o755, -1, -1)
	if err != nil {
		return false, fmt.Errorf("trust proxy CA: %w", err)
	}
	defer root.Close()
	out, err := atomicfile.Write(root, CertName, certPEM, atomicfile.Options{Mode: 0o644, UID: -1, GID: -1})
	if err != nil {
		return false, fmt.Errorf("trust proxy CA: %w", err)
	}
	if out == atomicfile.Unchanged && t.bundleHas(certPEM) {
		return false, nil
	}
	return true, t.update()
}

// Remove takes the CA certificate out of the trust store and runs Update.
// It reports whether there was one to remove; none is not an error.
func (t Trust) Remove() (removed bool, err error) {
	err = os.Remove(t.CertPath())
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("untrust proxy CA: %w", err)
	}
	return true, t.update()
}

// bundleHas reports whether Bundle holds certPEM's certificate.
func (t Trust) bundleHas(certPEM []byte) bool {
	if t.Bundle == "" {
		return true
	}
	b, err := os.ReadFile(t.Bundle)
	return err == nil && bytes.Contains(b, bytes.TrimSpace(certPEM))
}

func (t Trust) update() error {
	if len(t.Update) == 0 {
		return nil
	}
	out, err := exec.Command(t.Update[0], t.Update[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(t.Update, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// Var is one environment variable of the proxy's wiring.
type Var struct{ Name, Value string }

// Env returns the variables that make a shell's programs use the proxy at
// addr (host:port on loopback) and trust its CA, in a stable order:
//
//   - HTTPS_PROXY, HTTP_PROXY and NO_PROXY, each in upper and lower case
//     (curl reads only http_proxy in lower case; most others read either).
//     NO_PROXY keeps loopback direct.
//   - NODE_USE_ENV_PROXY=1: Node's built-in fetch honours the proxy
//     variables only with it, and only from Node 24 on.
//   - NODE_EXTRA_CA_CERTS=caCert: Node ignores the system store.
//   - REQUESTS_CA_BUNDLE=bundle: Python's requests uses certifi's roots
//     unless told otherwise.
//   - SSL_CERT_FILE=bundle, only when systemTrusted is false (the CA could
//     not be added to the system store, as in user mode): then bundle must be
//     a file with the system roots and the CA (see WriteBundle), and OpenSSL,
//     Go and Python's ssl read it instead of the system bundle.
func Env(addr, caCert, bundle string, systemTrusted bool) []Var {
	u := "http://" + addr
	const noProxy = "localhost,127.0.0.1,::1"
	vars := []Var{
		{"HTTPS_PROXY", u}, {"https_proxy", u},
		{"HTTP_PROXY", u}, {"http_proxy", u},
		{"NO_PROXY", noProxy}, {"no_proxy", noProxy},
		{"NODE_USE_ENV_PROXY", "1"},
		{"NODE_EXTRA_CA_CERTS", caCert},
		{"REQUESTS_CA_BUNDLE", bundle},
	}
	if !systemTrusted {
		vars = append(vars, Var{"SSL_CERT_FILE", bundle})
	}
	return vars
}

// WriteBundle writes path (0644) with the system roots of
// SystemTrust.Bundle followed by certPEM, for when the CA cannot be added
// to the system store. path's directory is created 0700 when missing.
func WriteBundle(path string, certPEM []byte) error {
	sys, err := os.ReadFile(SystemTrust.Bundle)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("proxy CA bundle: %w", err)
	}
	root, err := dirs.Open(filepath.Dir(path), 0o700, -1, -1)
	if err != nil {
		return fmt.Errorf("proxy CA bundle: %w", err)
	}
	defer root.Close()
	data := append(append(bytes.TrimRight(sys, "\n"), '\n'), certPEM...)
	if _, err := atomicfile.Write(root, filepath.Base(path), data, atomicfile.Options{Mode: 0o644, UID: -1, GID: -1}); err != nil {
		return fmt.Errorf("proxy CA bundle: %w", err)
	}
	return nil
}
