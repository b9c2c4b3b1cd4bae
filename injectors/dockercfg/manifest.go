package dockercfg

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"slices"

	"github.com/secrets-agent/secrets-agent/internal/atomicfile"
	"github.com/secrets-agent/secrets-agent/internal/safeopen"
	"github.com/secrets-agent/secrets-agent/secrets"
)

// manifestName is the manifest's file name in the state dir.
const manifestName = "dockercfg.json"

// manifest records which config.json entries the injector wrote, so that a
// removed secret removes exactly its entry and nothing that someone wrote
// over it since. It never holds a value: each entry is known by an HMAC-SHA256
// of its canonical JSON under Key, a random key of this manifest — a salted
// hash, so no precomputed table matches it. Key sits beside the HMACs, so the
// manifest (0600, in the agent's state dir) must be guarded like the config
// it describes: with it, a guess of a password can be checked.
type manifest struct {
	Version int      `json:"version"`
	Key     string   `json:"key"` // hex HMAC key
	Config  string   `json:"config"`
	Entries []record `json:"entries"`
}

// record is one entry the injector wrote: section ("auths" or
// "credHelpers"), the key in it, and the HMACs of what it wrote there. There
// is more than one HMAC only while a write is in flight (the old and the new
// entry are both the injector's).
type record struct {
	Section string      `json:"section"`
	Key     string      `json:"key"`
	Secret  secrets.Ref `json:"secret"`
	MACs    []string    `json:"macs"`
}

func (r record) id() string { return r.Section + "\x00" + r.Key }

// maxManifestSize bounds the manifest loadManifest reads.
const maxManifestSize = 64 << 20

// loadManifest reads the manifest in dir. A missing manifest is a fresh one
// with a new key. A manifest that cannot be read is returned fresh together
// with the error, so that the caller can go on (without removing anything it
// can no longer prove it wrote) and report the error.
func loadManifest(root *os.Root) (*manifest, error) {
	data, err := safeopen.ReadFile(root, manifestName, maxManifestSize)
	if errors.Is(err, fs.ErrNotExist) {
		return newManifest()
	}
	if err == nil {
		var m manifest
		if err = json.Unmarshal(data, &m); err == nil {
			if _, kerr := hex.DecodeString(m.Key); kerr == nil && len(m.Key) == 64 && m.Version == 1 {
				return &m, nil
			}
			err = errors.New("bad version or key")
		}
	}
	m, nerr := newManifest()
	if nerr != nil {
		return nil, nerr
	}
	return m, fmt.Errorf("read manifest %s: %w (starting afresh: entries written before are no longer removed)", manifestName, err)
}

func newManifest() (*manifest, error) {
	var k [32]byte
	if _, err := rand.Read(k[:]); err != nil {
		return nil, fmt.Errorf("manifest key: %w", err)
	}
	return &manifest{Version: 1, Key: hex.EncodeToString(k[:])}, nil
}

// mac returns the HMAC of entry's canonical JSON under the manifest's key.
func (m *manifest) mac(entry json.RawMessage) string {
	k, _ := hex.DecodeString(m.Key)
	h := hmac.New(sha256.New, k)
	h.Write(canonical(entry))
	return hex.EncodeToString(h.Sum(nil))
}

// owns reports whether entry is one the injector wrote for r.
func (m *manifest) owns(r record, entry json.RawMessage) bool {
	if entry == nil {
		return false
	}
	mac := m.mac(entry)
	for _, x := range r.MACs {
		if hmac.Equal([]byte(x), []byte(mac)) {
			return true
		}
	}
	return false
}

// find returns the record for section/key.
func (m *manifest) find(section, key string) (record, bool) {
	for _, r := range m.Entries {
		if r.Section == section && r.Key == key {
			return r, true
		}
	}
	return record{}, false
}

// with returns a copy of m whose entries are recs, sorted.
func (m *manifest) with(recs []record) *manifest {
	n := *m
	n.Entries = slices.Clone(recs)
	slices.SortFunc(n.Entries, func(a, b record) int {
		switch {
		case a.id() < b.id():
			return -1
		case a.id() > b.id():
			return 1
		}
		return 0
	})
	return &n
}

// union returns a copy of m holding its records and recs, the MACs of records
// for the same entry merged: the manifest to write before a config write, so
// that a crash between the two still knows both the old and the new entry.
func (m *manifest) union(recs []record) *manifest {
	byID := map[string]record{}
	for _, r := range m.Entries {
		byID[r.id()] = r
	}
	for _, r := range recs {
		if old, ok := byID[r.id()]; ok {
			for _, x := range old.MACs {
				if !slices.Contains(r.MACs, x) {
					r.MACs = append(r.MACs, x)
				}
			}
		}
		byID[r.id()] = r
	}
	all := make([]record, 0, len(byID))
	for _, k := range slices.Sorted(maps.Keys(byID)) {
		all = append(all, byID[k])
	}
	return m.with(all)
}

// save writes m into root unless it is already there. It reports whether it
// wrote.
func (m *manifest) save(root *os.Root) (bool, error) {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return false, fmt.Errorf("encode manifest: %w", err)
	}
	out, err := atomicfile.Write(root, manifestName, append(data, '\n'), atomicfile.Options{Mode: 0o600, UID: -1, GID: -1})
	if err != nil {
		return false, fmt.Errorf("write manifest: %w", err)
	}
	return out != atomicfile.Unchanged, nil
}
