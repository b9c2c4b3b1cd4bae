package dockercfg

import (
	"fmt"
	"os"
	"slices"

	"github.com/secrets-agent/secrets-agent/injectors"
	"github.com/secrets-agent/secrets-agent/secrets"
)

// AgentHelper is the credential helper the section's injector names in
// helper mode: secrets-agent, run by docker as docker-credential-secrets-agent.
const AgentHelper = "secrets-agent"

// Modes lists every mode, as injectors.dockercfg.mode takes them.
var Modes = []Mode{Inline, Helper, Auto}

// Section is this injector's part of the agent's config,
// injectors.dockercfg (config.Section; injectors/builtin hands it to
// config.Load).
type Section struct {
	Enabled bool `yaml:"enabled"`
	// ConfigDir holds docker's config.json; empty means the default (see
	// Derive).
	ConfigDir string `yaml:"config_dir" config:"path"`
	Mode      Mode   `yaml:"mode"`
}

// DefaultSection returns the section with its defaults: enabled, inline,
// ConfigDir derived.
func DefaultSection() *Section { return &Section{Enabled: true, Mode: Inline} }

// Derive sets an empty ConfigDir to docker's own default: $DOCKER_CONFIG
// when set, else ~/.docker.
func (s *Section) Derive(string) {
	if s.ConfigDir != "" {
		return
	}
	s.ConfigDir = "~/.docker"
	if d := os.Getenv("DOCKER_CONFIG"); d != "" {
		s.ConfigDir = d
	}
}

// Check requires one of Modes.
func (s *Section) Check(string) []error {
	if !slices.Contains(Modes, s.Mode) {
		return []error{fmt.Errorf("mode: %q must be one of %v", s.Mode, Modes)}
	}
	return nil
}

// Builder makes the injector from the section; its status row shows the
// mode.
func (s *Section) Builder(site injectors.Site) injectors.Builder {
	return injectors.Builder{Name: "dockercfg", Kind: secrets.MountRegistry, Enabled: s.Enabled, Mode: string(s.Mode),
		Build: func(o injectors.Owner) (injectors.Injector, error) {
			return New(Options{ConfigDir: s.ConfigDir, Mode: s.Mode, HelperName: AgentHelper, Owner: o, StateDir: site.StateDir})
		}}
}
