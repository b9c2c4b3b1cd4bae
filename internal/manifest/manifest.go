// Package manifest is how an injector records on disk what it wrote, so
// that a removed secret removes exactly its output and nothing else, and a
// restart after a crash converges. Every injector's manifest is one JSON
// file in the agent's state dir, 0600, written through internal/atomicfile,
// carrying the format version. A manifest never holds a value; where an
// injector must recognise what it wrote, it keeps an HMAC under a random Key
// of that manifest (a salted hash: no precomputed table matches it).
//
// The one corruption rule: a manifest that exists but cannot be read, does
// not parse, or has another version is an error naming it. The injector then
// applies nothing and removes nothing, since it can no longer prove what it
// wrote, and says so in its result, until the file is repaired or removed
// (removing it makes the injector start afresh, owning nothing). A manifest
// without a version was written before versions were, and reads as Version.
package manifest

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/secrets-agent/secrets-agent/internal/atomicfile"
	"github.com/secrets-agent/secrets-agent/internal/jsonerr"
	"github.com/secrets-agent/secrets-agent/internal/safeopen"
)

// Version is the manifest format this agent reads and writes: the value of
// every manifest's "version" field.
const Version = 1

// maxSize bounds the manifest Load reads.
const maxSize = 64 << 20

// Load reads the manifest name in dir into v, a pointer to the injector's
// manifest (a struct with a "version" field). It returns false and nil when
// there is none: v is left as it was, for the injector to start empty. Any
// other failure follows the corruption rule: an error naming the file.
func Load(dir, name string, v any) (found bool, err error) {
	p := filepath.Join(dir, name)
	data, err := safeopen.ReadIn(dir, name, maxSize)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read manifest: %w", err)
	}
	var head struct {
		Version *int `json:"version"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return false, fmt.Errorf("manifest %s: %w", p, jsonerr.Scrub(err))
	}
	if head.Version != nil && *head.Version != Version {
		return false, fmt.Errorf("manifest %s: version %d, want %d", p, *head.Version, Version)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return false, fmt.Errorf("manifest %s: %w", p, jsonerr.Scrub(err))
	}
	return true, nil
}

// Encode returns v as its manifest's bytes: compact JSON, deterministic
// (map keys sorted), so an unchanged manifest is not rewritten. (Manifests
// were indented before; Load reads both.)
func Encode(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode manifest: %w", err)
	}
	return append(b, '\n'), nil
}

// Save writes v as the manifest name in dir: SaveBytes of Encode(v).
func Save(dir, name string, v any) (wrote bool, err error) {
	data, err := Encode(v)
	if err != nil {
		return false, err
	}
	return SaveBytes(dir, name, data)
}

// SaveBytes writes data, a manifest's bytes (an injector that keeps its
// manifest encoded, e.g. with Entries, makes them itself), as the manifest
// name in dir (created 0700 when missing), 0600, through atomicfile, first
// removing the temp files a save that crashed left behind. It reports
// whether it wrote: false when the file already said the same.
func SaveBytes(dir, name string, data []byte) (wrote bool, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false, fmt.Errorf("save manifest: %w", err)
	}
	root, err := safeopen.OpenRoot(dir)
	if err != nil {
		return false, fmt.Errorf("save manifest: %w", err)
	}
	defer root.Close()
	if _, err := atomicfile.CleanTemps(root, name); err != nil {
		return false, fmt.Errorf("save manifest: %w", err)
	}
	out, err := atomicfile.Write(root, name, data, atomicfile.Options{Mode: 0o600, UID: -1, GID: -1})
	if err != nil {
		return false, fmt.Errorf("save manifest in %s: %w", dir, err)
	}
	return out != atomicfile.Unchanged, nil
}

// Key is a manifest's random HMAC key, hex-encoded as it is stored. It sits
// beside the MACs, so the manifest must be guarded like what it describes:
// with it, a guess of a value can be checked, no more.
type Key string

// NewKey returns a fresh random key.
func NewKey() (Key, error) {
	var k [32]byte
	if _, err := rand.Read(k[:]); err != nil {
		return "", fmt.Errorf("manifest key: %w", err)
	}
	return Key(hex.EncodeToString(k[:])), nil
}

// Valid reports whether k is a key NewKey could have made.
func (k Key) Valid() bool {
	_, err := hex.DecodeString(string(k))
	return err == nil && len(k) == 64
}

// MAC returns the HMAC-SHA256 of data under k, hex-encoded.
func (k Key) MAC(data []byte) string {
	raw, _ := hex.DecodeString(string(k))
	h := hmac.New(sha256.New, raw)
	h.Write(data)
	return hex.EncodeToString(h.Sum(nil))
}
