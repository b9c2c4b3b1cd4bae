package proxy

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net"
	"os"
	"sync"
	"time"

	"github.com/secrets-agent/secrets-agent/internal/atomicfile"
	"github.com/secrets-agent/secrets-agent/internal/dirs"
	"github.com/secrets-agent/secrets-agent/internal/safeopen"
)

// Names of the CA's files in the agent's state dir.
const (
	CAKeyFile  = "proxy-ca.key" // 0600: whoever reads it can impersonate any host to this machine
	CACertFile = "proxy-ca.crt" // 0644: public
)

const (
	caValidity   = 10 * 365 * 24 * time.Hour
	caRenewAhead = 30 * 24 * time.Hour // a CA this close to expiry is replaced
	leafValidity = 7 * 24 * time.Hour
	leafRenew    = 24 * time.Hour // a cached leaf this close to expiry is reissued
	backdate     = time.Hour      // NotBefore, for clocks a little behind
	maxCAFile    = 64 << 10
)

// CA is the proxy's local certificate authority: it signs a leaf certificate
// for each target host whose TLS the proxy terminates. Leaves are cached in
// memory. It is safe for concurrent use.
type CA struct {
	cert    *x509.Certificate
	certPEM []byte
	key     crypto.Signer

	mu     sync.Mutex
	leaves map[string]*tls.Certificate // by host
}

// LoadCA loads the CA from stateDir, or creates it there when its key or
// certificate is missing, unreadable as such, does not match, or is within
// 30 days of expiry. The key is written 0600 and the certificate 0644,
// through internal/atomicfile below an *os.Root of stateDir, so a symlink
// planted in stateDir cannot redirect either. A key file that is not a
// regular file, or that is readable by anyone but its owner, is an error:
// it may have been read, and the caller must not trust it (remove it to
// start over). stateDir is created 0700 when missing.
func LoadCA(stateDir string) (*CA, error) {
	root, err := dirs.Open(stateDir, 0o700, -1, -1)
	if err != nil {
		return nil, fmt.Errorf("proxy CA: %w", err)
	}
	defer root.Close()
	keyPEM, err := readPrivate(root, CAKeyFile)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("proxy CA: %s in %s: %w", CAKeyFile, stateDir, err)
	}
	certPEM, cerr := readPrivate(root, CACertFile)
	if err == nil && cerr == nil {
		if ca, perr := parseCA(certPEM, keyPEM); perr == nil && time.Until(ca.cert.NotAfter) > caRenewAhead {
			return ca, nil
		}
	}
	ca, keyPEM, err := newCA()
	if err != nil {
		return nil, fmt.Errorf("proxy CA: %w", err)
	}
	if _, err := atomicfile.Write(root, CAKeyFile, keyPEM, atomicfile.Options{Mode: 0o600, UID: -1, GID: -1}); err != nil {
		return nil, fmt.Errorf("proxy CA: in %s: %w", stateDir, err)
	}
	if _, err := atomicfile.Write(root, CACertFile, ca.certPEM, atomicfile.Options{Mode: 0o644, UID: -1, GID: -1}); err != nil {
		return nil, fmt.Errorf("proxy CA: in %s: %w", stateDir, err)
	}
	return ca, nil
}

// readPrivate reads name below root through safeopen (no symlink followed,
// no blocking on a FIFO, regular files only), refusing a key file that
// anyone but its owner may read or write.
func readPrivate(root *os.Root, name string) ([]byte, error) {
	f, fi, err := safeopen.Open(root, name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if name == CAKeyFile && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("mode %04o: readable or writable by others than its owner, so it may have been copied; remove it and the agent makes a new CA", fi.Mode().Perm())
	}
	return io.ReadAll(io.LimitReader(f, maxCAFile))
}

// parseCA checks that certPEM is a CA certificate for keyPEM's key.
func parseCA(certPEM, keyPEM []byte) (*CA, error) {
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return nil, errors.New("not PEM")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, err
	}
	key, ok := k.(crypto.Signer)
	if !ok || !cert.IsCA {
		return nil, errors.New("not a CA key pair")
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return nil, errors.New("key does not match certificate")
	}
	return &CA{cert: cert, certPEM: certPEM, key: key, leaves: map[string]*tls.Certificate{}}, nil
}

// newCA makes a fresh CA: an ECDSA P-256 key and a self-signed certificate
// that may sign leaves only (path length 0).
func newCA() (*CA, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	host, _ := os.Hostname()
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "secrets-agent credential proxy CA (" + host + ")", Organization: []string{"secrets-agent"}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	ca := &CA{cert: cert, certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), key: key,
		leaves: map[string]*tls.Certificate{}}
	return ca, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), nil
}

// CertPEM returns the CA certificate, PEM-encoded: what clients must trust.
func (ca *CA) CertPEM() []byte { return bytes.Clone(ca.certPEM) }

// Certificate returns the CA certificate.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// Leaf returns a certificate for host (a DNS name or an IP address) signed
// by the CA, from the cache while it has more than a day left.
func (ca *CA) Leaf(host string) (*tls.Certificate, error) {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	if c, ok := ca.leaves[host]; ok && time.Until(c.Leaf.NotAfter) > leafRenew {
		return c, nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("leaf for %s: %w", host, err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: host},
		NotBefore:    now.Add(-backdate),
		NotAfter:     now.Add(leafValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if ip := net.ParseIP(host); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	} else {
		tmpl.DNSNames = []string{host}
	}
	if tmpl.NotAfter.After(ca.cert.NotAfter) {
		tmpl.NotAfter = ca.cert.NotAfter
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		return nil, fmt.Errorf("leaf for %s: %w", host, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("leaf for %s: %w", host, err)
	}
	c := &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
	ca.leaves[host] = c
	return c, nil
}

// serial returns a random 128-bit certificate serial number.
func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	return n.Add(n, big.NewInt(1))
}
