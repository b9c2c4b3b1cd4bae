package testutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Registry is a TLS container-registry stand-in on 127.0.0.1: enough of the
// registry v2 API for `docker manifest inspect HOST/repo:tag`, with HTTP
// Basic auth, recording every Authorization header it is sent.
//
// The live tests (make test-live) use the real registry instead
// (DockerRegistry: `docker-registry` with htpasswd, pushed to and pulled from
// by a real dockerd). The stand-in stays for the tests of `make test`, which
// run without a docker daemon, and for what the real registry cannot show: the
// exact Authorization header a client sent.
type Registry struct {
	// Host is "127.0.0.1:port", the registry's name in image references and
	// docker's config.json key.
	Host string
	// CAFile is the PEM of the self-signed CA that signed the server's
	// certificate.
	CAFile string

	srv *httptest.Server
	ca  []byte // CA certificate PEM

	mu       sync.Mutex
	user     string
	password string
	auths    []string
}

// configBlob is the image config every manifest points at; configDigest is
// its sha256 (docker verifies it).
const (
	configBlob   = `{}`
	configDigest = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
)

// manifestBody is the image manifest the stand-in serves for every tag.
const manifestBody = `{
  "schemaVersion": 2,
  "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
  "config": {
    "mediaType": "application/vnd.docker.container.image.v1+json",
    "size": 2,
    "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
  },
  "layers": []
}`

// StartRegistry starts the stand-in with a fresh CA and server certificate
// (for IP 127.0.0.1) generated in memory; it is stopped when the test ends.
// Until SetCredentials is called every request is refused.
func StartRegistry(t testing.TB) *Registry {
	t.Helper()
	caPEM, cert, err := newCertificates()
	if err != nil {
		t.Fatalf("registry certificates: %v", err)
	}
	r := &Registry{ca: caPEM}
	r.CAFile = filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(r.CAFile, caPEM, 0o644); err != nil {
		t.Fatalf("write registry CA: %v", err)
	}
	r.srv = httptest.NewUnstartedServer(http.HandlerFunc(r.serve))
	// Quiet the TLS handshake errors of clients that do not trust the CA.
	r.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	r.srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	r.srv.StartTLS()
	t.Cleanup(r.srv.Close)
	r.Host = strings.TrimPrefix(r.srv.URL, "https://")
	return r
}

// SetCredentials sets the one user and password the stand-in accepts.
func (r *Registry) SetCredentials(user, password string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.user, r.password = user, password
}

// Authorizations returns every Authorization header received so far, in
// order; a request without one is recorded as "".
func (r *Registry) Authorizations() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.auths...)
}

// TrustFor lays out the certs.d entry through which the docker CLI trusts
// the stand-in's CA. What the CLI reads (docker/cli internal/registry,
// CertsDir and newTLSConfig): /etc/docker/certs.d/<host:port>/*.crt on Linux,
// $XDG_CONFIG_HOME/docker/certs.d only under rootlesskit, never below
// DOCKER_CONFIG — and only for a "secure" registry. A loopback host
// (127.0.0.0/8, ::1) is an insecure registry by default in the CLI: it still
// speaks TLS to 127.0.0.1 but skips certificate verification and does not
// read certs.d at all. So for this stand-in trust is not needed; TrustFor
// still writes /etc/docker/certs.d/<Host>/ca.crt when it runs as root, so
// that the layout is right should the CLI start verifying loopback
// registries, and removes it (and any directory it created) when the test
// ends. Without root it only logs, since the CLI does not need it.
// dockerConfigDir is accepted for callers' convenience; the CLI does not look
// there.
func (r *Registry) TrustFor(t testing.TB, dockerConfigDir string) {
	t.Helper()
	_ = dockerConfigDir
	if os.Geteuid() != 0 {
		t.Logf("registry stand-in: not root, so no /etc/docker/certs.d/%s/ca.crt; the docker CLI does not verify loopback registries anyway", r.Host)
		return
	}
	var created []string
	// Another test process may remove an emptied parent between two of our
	// Mkdirs (ENOENT): start over a few times.
	for attempt := 0; ; attempt++ {
		var err error
		for _, d := range []string{"/etc/docker", CertsDir, filepath.Join(CertsDir, r.Host)} {
			if err = os.Mkdir(d, 0o755); err == nil {
				created = append(created, d)
			} else if errors.Is(err, fs.ErrExist) {
				err = nil
			} else {
				break
			}
		}
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrNotExist) || attempt == 3 {
			t.Fatalf("trust registry CA: %v", err)
		}
	}
	caFile := filepath.Join(CertsDir, r.Host, "ca.crt")
	t.Cleanup(func() {
		_ = os.Remove(caFile)
		for i := len(created) - 1; i >= 0; i-- {
			_ = os.Remove(created[i]) // fails, and is left, if another test put something in it
		}
	})
	if err := os.WriteFile(caFile, r.ca, 0o644); err != nil {
		t.Fatalf("trust registry CA: %v", err)
	}
}

// CertsDir is where the docker CLI reads registry CAs on Linux (outside
// rootlesskit): CertsDir/<host:port>/ca.crt.
const CertsDir = "/etc/docker/certs.d"

// serve answers GET/HEAD /v2/, /v2/<name>/manifests/<ref> and the config
// blob /v2/<name>/blobs/<configDigest>: 401 with a
// Basic challenge unless the request carries the configured credentials.
func (r *Registry) serve(w http.ResponseWriter, req *http.Request) {
	got := req.Header.Get("Authorization")
	r.mu.Lock()
	r.auths = append(r.auths, got)
	ok := r.user != "" && validBasic(got, r.user, r.password)
	r.mu.Unlock()

	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		http.Error(w, `{"errors":[{"code":"UNSUPPORTED"}]}`, http.StatusMethodNotAllowed)
		return
	}
	if !ok {
		w.Header().Set("WWW-Authenticate", `Basic realm="secrets-agent test registry"`)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
		return
	}
	switch {
	case req.URL.Path == "/v2/" || req.URL.Path == "/v2":
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, "{}")
	case strings.HasPrefix(req.URL.Path, "/v2/") && strings.Contains(req.URL.Path, "/manifests/"):
		sum := sha256.Sum256([]byte(manifestBody))
		w.Header().Set("Content-Type", "application/vnd.docker.distribution.manifest.v2+json")
		w.Header().Set("Docker-Content-Digest", "sha256:"+hex.EncodeToString(sum[:]))
		w.Header().Set("Content-Length", fmt.Sprint(len(manifestBody)))
		if req.Method == http.MethodGet {
			fmt.Fprint(w, manifestBody)
		}
	case strings.HasPrefix(req.URL.Path, "/v2/") && strings.HasSuffix(req.URL.Path, "/blobs/"+configDigest):
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Docker-Content-Digest", configDigest)
		w.Header().Set("Content-Length", fmt.Sprint(len(configBlob)))
		if req.Method == http.MethodGet {
			fmt.Fprint(w, configBlob)
		}
	default:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"errors":[{"code":"NAME_UNKNOWN"}]}`)
	}
}

func validBasic(header, user, password string) bool {
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
	return subtle.ConstantTimeCompare([]byte(header), []byte(want)) == 1
}

// newCertificates returns a fresh CA's PEM and a server certificate for
// 127.0.0.1 (and localhost) that it signed.
func newCertificates() ([]byte, tls.Certificate, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "secrets-agent test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	return caPEM, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
