package secretfile

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/secrets-agent/secrets-agent/internal/atomicfile"
	"github.com/secrets-agent/secrets-agent/internal/safeopen"
	"github.com/secrets-agent/secrets-agent/secrets"
)

// manifestName is the manifest's file name in the state dir.
const manifestName = "secretfile.json"

const manifestVersion = 1

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

// maxManifestSize bounds the manifest loadManifest reads.
const maxManifestSize = 64 << 20

// loadManifest reads the manifest in stateDir; a missing one is empty.
func loadManifest(stateDir string) (*manifest, error) {
	p := filepath.Join(stateDir, manifestName)
	m := &manifest{Version: manifestVersion, Files: map[string]*entry{}}
	b, err := safeopen.ReadIn(stateDir, manifestName, maxManifestSize)
	if errors.Is(err, fs.ErrNotExist) {
		return m, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	if err := json.Unmarshal(b, m); err != nil {
		return nil, fmt.Errorf("read manifest %s: %w", p, err)
	}
	if m.Version != manifestVersion {
		return nil, fmt.Errorf("read manifest %s: version %d, want %d", p, m.Version, manifestVersion)
	}
	if m.Files == nil {
		m.Files = map[string]*entry{}
	}
	return m, nil
}

// encode returns the manifest's bytes: deterministic (map keys sorted), so an
// unchanged manifest encodes to the same bytes and is not rewritten.
func (m *manifest) encode() []byte {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		panic(fmt.Sprintf("encode manifest: %v", err)) // only plain types: cannot fail
	}
	return append(b, '\n')
}

// saveManifest writes data to stateDir's manifest, 0600, through atomicfile;
// cleanTemps first removes temp files a crashed save left behind.
func saveManifest(stateDir string, data []byte, cleanTemps bool) error {
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return fmt.Errorf("save manifest: %w", err)
	}
	root, err := safeopen.OpenRoot(stateDir)
	if err != nil {
		return fmt.Errorf("save manifest: %w", err)
	}
	defer root.Close()
	if cleanTemps {
		if _, err := atomicfile.CleanTemps(root, manifestName); err != nil {
			return fmt.Errorf("save manifest: %w", err)
		}
	}
	if _, err := atomicfile.Write(root, manifestName, data, atomicfile.Options{Mode: 0o600, UID: -1, GID: -1}); err != nil {
		return fmt.Errorf("save manifest in %s: %w", stateDir, err)
	}
	return nil
}
