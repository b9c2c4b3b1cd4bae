package envprofile

import (
	"path/filepath"

	"github.com/secrets-agent/secrets-agent/injectors"
	"github.com/secrets-agent/secrets-agent/secrets"
)

// Section is this injector's part of the agent's config,
// injectors.envprofile (config.Section; injectors/builtin hands it to
// config.Load).
type Section struct {
	Enabled bool `yaml:"enabled"`
	// Dir is where the fragments are written; empty means the default (see
	// Derive).
	Dir string `yaml:"dir" config:"path"`

	system     bool   // the system service's defaults
	runtimeDir string // a user's agent's runtime dir
}

// DefaultSection returns the section with its defaults: enabled, and Dir
// derived once the user is known. system says whether the agent is the
// system service; runtimeDir is a user's agent's runtime dir.
func DefaultSection(system bool, runtimeDir string) *Section {
	return &Section{Enabled: true, system: system, runtimeDir: runtimeDir}
}

// Derive sets an empty Dir to its default for user: /run/secrets-agent/<user>
// for the system service, <runtime dir>/secrets-agent for a user's agent.
// Both are on tmpfs, so values do not outlive a reboot.
func (s *Section) Derive(user string) {
	if s.Dir != "" {
		return
	}
	if s.system {
		s.Dir = filepath.Join("/run/secrets-agent", user)
	} else {
		s.Dir = filepath.Join(s.runtimeDir, "secrets-agent")
	}
}

// Check finds nothing wrong: Dir is checked as every path is.
func (s *Section) Check(string) []error { return nil }

// Builder makes the injector from the section. The fragment dir is reserved
// even with the injector disabled (the shell hooks still source what is
// there), and so are the files install-hooks writes the hooks into.
func (s *Section) Builder(site injectors.Site) injectors.Builder {
	reserved := []injectors.Reserved{{Path: s.Dir, What: "the env fragment dir"}}
	for _, p := range HookFiles(site.Home) {
		reserved = append(reserved, injectors.Reserved{Path: p, What: "a file install-hooks writes"})
	}
	return injectors.Builder{Name: "envprofile", Kind: secrets.MountEnv, Enabled: s.Enabled, Reserved: reserved,
		Build: func(o injectors.Owner) (injectors.Injector, error) {
			return New(Options{Dir: s.Dir, Owner: o, StateDir: site.StateDir})
		}}
}
