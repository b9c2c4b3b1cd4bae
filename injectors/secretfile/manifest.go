package secretfile

import (
	"io/fs"
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

// encode returns the manifest's bytes, to tell whether it changed since it
// was saved.
func (m *manifest) encode() []byte {
	b, err := imanifest.Encode(m)
	if err != nil {
		panic(err) // only plain types: cannot fail
	}
	return b
}
