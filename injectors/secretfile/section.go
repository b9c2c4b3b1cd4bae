package secretfile

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/secrets-agent/secrets-agent/injectors"
	"github.com/secrets-agent/secrets-agent/internal/dirs"
	"github.com/secrets-agent/secrets-agent/secrets"
)

// Section is this injector's part of the agent's config,
// injectors.secretfile (config.Section; injectors/builtin hands it to
// config.Load).
type Section struct {
	Enabled bool `yaml:"enabled"`
	// AllowedRoots are the directories file secrets may be written below.
	AllowedRoots []string `yaml:"allowed_roots" config:"path"`
	// Mode is every secret file's mode.
	Mode FileMode `yaml:"mode"`
}

// DefaultSection returns the section with its defaults: enabled, mode 0600,
// the home as allowed root and, for the system service (system), also
// /run/secrets, which is created (root's, 0711) when a secret first needs
// it; a user's agent could not create it, so there it is no default.
func DefaultSection(system bool) *Section {
	s := &Section{Enabled: true, AllowedRoots: []string{"~"}, Mode: 0o600}
	if system {
		s.AllowedRoots = append(s.AllowedRoots, "/run/secrets")
	}
	return s
}

// Derive has no default that depends on the user.
func (s *Section) Derive(string) {}

// Check refuses an enabled section without roots, a root that is (or leads
// to) / or a system directory outside home, and a mode wider than 0600 or
// that the owner cannot read.
func (s *Section) Check(home string) []error {
	var errs []error
	if s.Enabled && len(s.AllowedRoots) == 0 {
		errs = append(errs, fmt.Errorf("allowed_roots: at least one root is required"))
	}
	for i, r := range s.AllowedRoots {
		if dirs.LeadsToRoot(r) {
			errs = append(errs, fmt.Errorf("allowed_roots[%d]: %q is (or leads to) /: the whole filesystem cannot be an allowed root", i, r))
		} else if sys := systemDir(r); sys != "" && !inHome(home, r) {
			errs = append(errs, fmt.Errorf("allowed_roots[%d]: %q is (or leads to) %s: a system directory cannot be an allowed root; use a directory of its own, such as /run/secrets", i, r, sys))
		}
	}
	if s.Mode&^0o600 != 0 {
		errs = append(errs, fmt.Errorf("mode: %s is wider than 0600", s.Mode))
	} else if s.Mode&0o400 == 0 {
		errs = append(errs, fmt.Errorf("mode: %s does not let the owner read", s.Mode))
	}
	return errs
}

// Builder makes the injector from the section.
func (s *Section) Builder(site injectors.Site) injectors.Builder {
	return injectors.Builder{Name: "secretfile", Kind: secrets.MountFile, Enabled: s.Enabled,
		Build: func(o injectors.Owner) (injectors.Injector, error) {
			return New(Options{AllowedRoots: s.AllowedRoots, Mode: s.Mode.Perm(), Owner: o, StateDir: site.StateDir})
		}}
}

// systemTrees are the directories that hold what the system runs and reads
// as root (programs, libraries, /etc/profile.d, cron, sudoers, units, the
// kernel's files): no allowed root may be one of them or lie below one.
// systemDirs hold the trees of other users and of the system's services: no
// allowed root may be one of them, but one may lie below (/run/secrets,
// /srv/app/secrets).
var (
	systemTrees = []string{"/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/sbin", "/sys", "/usr"}
	systemDirs  = []string{"/home", "/media", "/mnt", "/opt", "/root", "/run", "/run/user", "/srv", "/tmp",
		"/var", "/var/lib", "/var/log", "/var/run", "/var/tmp"}
)

// systemDir returns the system directory (systemTrees, systemDirs) the
// absolute path p is, lies below or leads to through symlinks, or "". The
// user's own home is exempt (Check asks inHome too).
func systemDir(p string) string {
	names := []string{filepath.Clean(p)}
	if real, err := filepath.EvalSymlinks(p); err == nil && real != names[0] {
		names = append(names, real)
	}
	for _, n := range names {
		for _, t := range systemTrees {
			if dirs.Below(t, n) {
				return t
			}
		}
		if slices.Contains(systemDirs, n) {
			return n
		}
	}
	return ""
}

// inHome reports whether the root r is the home or lies below it, by name:
// root's own home is /root, and "~" an allowed root like any other.
func inHome(home, r string) bool {
	home = filepath.Clean(home)
	return home != "/" && home != "." && dirs.Below(home, r)
}

// FileMode is a permission mode written as an octal string ("0600") in the
// config and its environment variable.
type FileMode uint32

// Perm returns m as an os.FileMode.
func (m FileMode) Perm() os.FileMode { return os.FileMode(m) & os.ModePerm }

// String formats m as four octal digits ("0600").
func (m FileMode) String() string { return fmt.Sprintf("%04o", uint32(m)) }

// ParseFileMode reads an octal permission mode: "0600", "600" or "0o600".
// Anything but permission bits (above 0777) is an error.
func ParseFileMode(s string) (FileMode, error) {
	t := strings.TrimPrefix(strings.TrimPrefix(strings.TrimSpace(s), "0o"), "0O")
	v, err := strconv.ParseUint(t, 8, 32)
	if err != nil || t == "" || v > 0o777 {
		return 0, fmt.Errorf("%q is not an octal permission mode like \"0600\"", s)
	}
	return FileMode(v), nil
}

// UnmarshalYAML reads the scalar's text as octal whatever YAML would make of
// it, so 0600 and "0600" mean the same.
func (m *FileMode) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want an octal mode like \"0600\"", n.Line)
	}
	if err := m.UnmarshalText([]byte(n.Value)); err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	return nil
}

// UnmarshalText reads the text as octal (an environment variable's value).
func (m *FileMode) UnmarshalText(text []byte) error {
	v, err := ParseFileMode(string(text))
	if err != nil {
		return err
	}
	*m = v
	return nil
}
