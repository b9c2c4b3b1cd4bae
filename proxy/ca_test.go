package proxy

import (
	"bytes"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCAKeyIsPrivateAndTheCAIsKept(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	ca, err := LoadCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]os.FileMode{CAKeyFile: 0o600, CACertFile: 0o644, ".": 0o700} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s mode %04o, want %04o", name, fi.Mode().Perm(), want)
		}
	}
	again, err := LoadCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.CertPEM(), ca.CertPEM()) {
		t.Error("a second LoadCA made a new CA: want the one on disk")
	}
	leaf, err := ca.Leaf("api.example.test")
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(again.Certificate())
	if _, err := leaf.Leaf.Verify(x509.VerifyOptions{DNSName: "api.example.test", Roots: pool}); err != nil {
		t.Errorf("leaf does not verify against the reloaded CA: %v", err)
	}
	if _, err := leaf.Leaf.Verify(x509.VerifyOptions{DNSName: "other.example.test", Roots: pool}); err == nil {
		t.Error("leaf verifies for another host")
	}
}

func TestCAKeyReadableByOthersIsRefused(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadCA(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, CAKeyFile), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := LoadCA(dir)
	if err == nil || !strings.Contains(err.Error(), "0644") {
		t.Errorf("LoadCA = %v, want a refusal naming the mode", err)
	}
}

func TestCAKeySymlinkIsNotFollowed(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	victim := filepath.Join(outside, "victim")
	if err := os.WriteFile(victim, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, filepath.Join(dir, CAKeyFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCA(dir); err == nil {
		t.Error("LoadCA with a symlinked key file succeeded")
	}
	if b, _ := os.ReadFile(victim); string(b) != "keep me" {
		t.Errorf("the symlink's target was changed to %q", b)
	}
}

func TestMismatchedCAFilesAreReplaced(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	if _, err := LoadCA(a); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCA(b); err != nil {
		t.Fatal(err)
	}
	other, _ := os.ReadFile(filepath.Join(b, CACertFile))
	if err := os.WriteFile(filepath.Join(a, CACertFile), other, 0o644); err != nil {
		t.Fatal(err)
	}
	ca, err := LoadCA(a)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(ca.CertPEM(), other) {
		t.Error("a certificate that does not match the key was kept")
	}
}
