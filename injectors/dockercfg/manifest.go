package dockercfg

import (
	"crypto/hmac"
	"encoding/json"
	"fmt"
	"maps"
	"path/filepath"
	"slices"

	imanifest "github.com/secrets-agent/secrets-agent/internal/manifest"
	"github.com/secrets-agent/secrets-agent/secrets"
)

// manifestName is the manifest's file name in the state dir.
const manifestName = "dockercfg.json"

// manifest records which config.json entries the injector wrote, so that a
// removed secret removes exactly its entry and nothing that someone wrote
// over it since. It never holds a value: each entry is known by an HMAC of
// its canonical JSON under Key (internal/manifest says what that protects).
type manifest struct {
	Version int           `json:"version"`
	Key     imanifest.Key `json:"key"`
	Config  string        `json:"config"`
	Entries []record      `json:"entries"`

	// at indexes Entries by record id, once find needs it; with, which
	// makes a manifest with other entries, leaves it out.
	at map[string]int
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

// loadManifest reads the manifest in dir. A missing manifest is a fresh one
// with a new key; one that cannot be read is an error (the corruption rule
// of internal/manifest): Apply then writes and removes nothing.
func loadManifest(dir string) (*manifest, error) {
	var m manifest
	found, err := imanifest.Load(dir, manifestName, &m)
	switch {
	case err != nil:
		return nil, err
	case !found:
		return newManifest()
	case !m.Key.Valid():
		return nil, fmt.Errorf("manifest %s: bad key", filepath.Join(dir, manifestName))
	}
	m.Version = imanifest.Version
	return &m, nil
}

// newManifest returns an empty manifest with a fresh key.
func newManifest() (*manifest, error) {
	k, err := imanifest.NewKey()
	if err != nil {
		return nil, err
	}
	return &manifest{Version: imanifest.Version, Key: k}, nil
}

// mac returns the HMAC of entry's canonical JSON under the manifest's key.
func (m *manifest) mac(entry json.RawMessage) string { return m.Key.MAC(canonical(entry)) }

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

// find returns the record for section/key. The first call indexes the
// entries, so that a pass looking up each of n entries costs n, not n².
// Entries must not change after it (with makes a new manifest).
func (m *manifest) find(section, key string) (record, bool) {
	if m.at == nil {
		m.at = make(map[string]int, len(m.Entries))
		for i := len(m.Entries) - 1; i >= 0; i-- { // the first of an id wins, as a scan would find
			m.at[m.Entries[i].id()] = i
		}
	}
	if i, ok := m.at[record{Section: section, Key: key}.id()]; ok {
		return m.Entries[i], true
	}
	return record{}, false
}

// with returns a copy of m whose entries are recs, sorted.
func (m *manifest) with(recs []record) *manifest {
	n := *m
	n.Entries, n.at = slices.Clone(recs), nil
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

// save writes m into dir unless it is already there. It reports whether it
// wrote.
func (m *manifest) save(dir string) (bool, error) { return imanifest.Save(dir, manifestName, m) }
