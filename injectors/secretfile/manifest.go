package secretfile

import (
	"encoding/json"
	"io/fs"
	"slices"
	"strconv"
	"syscall"

	imanifest "github.com/secrets-agent/secrets-agent/internal/manifest"
	"github.com/secrets-agent/secrets-agent/secrets"
)

// manifestName is the manifest's file name in the state dir.
const manifestName = "secretfile.json"

// manifest is what the injector owns on disk. It holds paths, secret ids and
// flags, never a value nor anything derived from one (not even the control
// plane's session token, which a server may derive from the value).
type manifest struct {
	Version int `json:"version"`
	// Files are the paths the injector manages, by absolute path.
	Files map[string]*entry `json:"files"`
	// Dirs are the directories the injector created, absolute; it removes
	// them once they are empty and hold no managed path.
	Dirs []string `json:"dirs,omitempty"`

	// enc is Files as last synced (sync), each entry kept encoded, and
	// encDirs Dirs as then: what encode writes.
	enc     imanifest.Entries[entry]
	encDirs []string
	encLen  int // the length of the last encoding, to size the next
}

// entry is one managed path.
type entry struct {
	Secret secrets.Ref `json:"secret"`
	// Mode is the mode the file was last written with.
	Mode fs.FileMode `json:"mode"`
	// KeptAside: a file that was at the path before the agent is at
	// path + OrigSuffix and is the agent's to put back.
	KeptAside bool `json:"keptAside,omitempty"`
	// MountPoint: the path is a mount point, written in place.
	MountPoint bool `json:"mountPoint,omitempty"`
	// Dev, Ino and MtimeNs identify the file as the agent last left it, so
	// that a file someone has since replaced or edited is never deleted.
	// All zero: the agent has not written the path yet.
	Dev     uint64 `json:"dev,omitempty"`
	Ino     uint64 `json:"ino,omitempty"`
	MtimeNs int64  `json:"mtimeNs,omitempty"`
}

// record notes fi as the file the agent left at the entry's path.
func (e *entry) record(fi fs.FileInfo) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		e.Dev, e.Ino, e.MtimeNs = st.Dev, st.Ino, st.Mtim.Nano()
	}
}

// isOurs reports whether fi is still the file the agent left there.
func (e *entry) isOurs(fi fs.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && e.Ino != 0 && st.Dev == e.Dev && st.Ino == e.Ino && st.Mtim.Nano() == e.MtimeNs
}

// loadManifest reads the manifest in stateDir; a missing one is empty. One
// that cannot be read is an error (the corruption rule of internal/manifest):
// New fails, and the injector writes and removes nothing.
func loadManifest(stateDir string) (*manifest, error) {
	m := &manifest{Version: imanifest.Version, Files: map[string]*entry{}}
	if _, err := imanifest.Load(stateDir, manifestName, m); err != nil {
		return nil, err
	}
	if m.Files == nil {
		m.Files = map[string]*entry{}
	}
	return m, nil
}

// sync brings the manifest's encoding in line with Files at the paths in
// only, or at every path when only is nil, and with Dirs. It reports whether
// that changed the encoding. A pass that changes Files only at the paths in
// its only set (every ApplyOnly) syncs just those: the other entries stay
// encoded as they were.
func (m *manifest) sync(only map[string]bool) (changed bool) {
	if !slices.Equal(m.Dirs, m.encDirs) {
		m.encDirs, changed = slices.Clone(m.Dirs), true
	}
	if only == nil {
		for p, e := range m.Files {
			changed = m.enc.Put(p, *e) || changed
		}
		for _, p := range m.enc.Keys() {
			if m.Files[p] == nil {
				changed = m.enc.Delete(p) || changed
			}
		}
		return changed
	}
	for p := range only {
		if e := m.Files[p]; e != nil {
			changed = m.enc.Put(p, *e) || changed
		} else {
			changed = m.enc.Delete(p) || changed
		}
	}
	return changed
}

// encode returns the manifest's bytes as of the last sync: what
// imanifest.Encode makes of it (TestManifestEncodesAsEncodingJSONDoes),
// with the entries copied from their cached encodings.
func (m *manifest) encode() []byte {
	b := make([]byte, 0, m.encLen+512)
	b = append(b, `{"version":`...)
	b = strconv.AppendInt(b, int64(m.Version), 10)
	b = append(b, `,"files":`...)
	b = m.enc.AppendJSON(b)
	if len(m.encDirs) > 0 {
		dirs, err := json.Marshal(m.encDirs)
		if err != nil {
			panic(err) // strings: cannot fail
		}
		b = append(append(b, `,"dirs":`...), dirs...)
	}
	b = append(b, "}\n"...)
	m.encLen = len(b)
	return b
}
