package devserver

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/secrets-agent/secrets-agent/internal/atomicfile"
)

// The files a devserver keeps in its data directory. All are 0600.
const (
	// DBFile is the bbolt database holding environments and secrets (values
	// sealed with the key in KeyFile).
	DBFile = "devserver.db"
	// KeyFile holds the 32-byte AES-256-GCM key that seals secret values.
	KeyFile = "key"
	// AdminTokenFile holds the bearer token of the admin calls.
	AdminTokenFile = "admin-token"
	// AddressFile holds the host:port `serve` listens on, while it runs.
	AddressFile = "address"
)

const keySize = 32

// openDataDir creates dir (0700) when it is missing and opens it as a root.
func openDataDir(dir string) (*os.Root, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir %s: %w", dir, err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open data dir %s: %w", dir, err)
	}
	return root, nil
}

// loadOrCreate returns the content of name in root. When the file does not
// exist it is first created 0600 holding gen(). An existing file readable by
// group or others is refused: it holds a secret.
func loadOrCreate(root *os.Root, name string, gen func() ([]byte, error)) ([]byte, error) {
	fi, err := root.Lstat(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		data, err := gen()
		if err != nil {
			return nil, fmt.Errorf("generate %s: %w", name, err)
		}
		if _, err := atomicfile.Write(root, name, data, atomicfile.Options{Mode: 0o600, UID: -1, GID: -1}); err != nil {
			return nil, fmt.Errorf("create %s: %w", filepath.Join(root.Name(), name), err)
		}
		return data, nil
	case err != nil:
		return nil, fmt.Errorf("stat %s: %w", filepath.Join(root.Name(), name), err)
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("%s: not a regular file", filepath.Join(root.Name(), name))
	case fi.Mode().Perm()&0o077 != 0:
		return nil, fmt.Errorf("%s: mode %04o is wider than 0600; fix it with chmod 600", filepath.Join(root.Name(), name), fi.Mode().Perm())
	}
	data, err := root.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", filepath.Join(root.Name(), name), err)
	}
	return data, nil
}

func randomBytes(n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	return b, nil
}

// randomHex returns n random bytes in hex.
func randomHex(n int) string {
	b, err := randomBytes(n)
	if err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // rand.Read never fails on Linux
	}
	return hex.EncodeToString(b)
}

// newID returns a random UUID (version 4), the form Ona's ids take.
func newID() string {
	b, _ := randomBytes(16)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// loadKey returns the sealing key in dir, creating it on first start.
func loadKey(root *os.Root) ([]byte, error) {
	key, err := loadOrCreate(root, KeyFile, func() ([]byte, error) { return randomBytes(keySize) })
	if err != nil {
		return nil, err
	}
	if len(key) != keySize {
		return nil, fmt.Errorf("%s: holds %d bytes, want %d", filepath.Join(root.Name(), KeyFile), len(key), keySize)
	}
	return key, nil
}

// loadAdminToken returns the admin token in dir, creating it on first start.
func loadAdminToken(root *os.Root) (string, error) {
	tok, err := loadOrCreate(root, AdminTokenFile, func() ([]byte, error) { return []byte(randomHex(32)), nil })
	if err != nil {
		return "", err
	}
	t := strings.TrimSpace(string(tok))
	if t == "" {
		return "", fmt.Errorf("%s: is empty", filepath.Join(root.Name(), AdminTokenFile))
	}
	return t, nil
}

// WriteAddress records addr (host:port) in dir's AddressFile, 0600, so that
// clients given only the data dir find the server.
func WriteAddress(dir, addr string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("open data dir %s: %w", dir, err)
	}
	defer root.Close()
	if _, err := atomicfile.Write(root, AddressFile, []byte(addr), atomicfile.Options{Mode: 0o600, UID: -1, GID: -1}); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Join(dir, AddressFile), err)
	}
	return nil
}

// RemoveAddress removes dir's AddressFile. A missing file is not an error.
func RemoveAddress(dir string) error {
	err := os.Remove(filepath.Join(dir, AddressFile))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove address file: %w", err)
	}
	return nil
}

// ReadAddress returns the host:port recorded in dir's AddressFile. The error
// says the server is not running when the file is missing.
func ReadAddress(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, AddressFile))
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("no %s in %s: is `secrets-devserver serve --data %s` running?", AddressFile, dir, dir)
	}
	if err != nil {
		return "", fmt.Errorf("read address: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// ReadAdminToken returns the admin token in dir, without creating one.
func ReadAdminToken(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, AdminTokenFile))
	if err != nil {
		return "", fmt.Errorf("read admin token: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}
