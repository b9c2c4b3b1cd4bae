// Package builtin lists the injectors secrets-agent ships with: their
// config sections, for loading the config, and the injectors built from
// them. cmd/secrets-agent hands the list to the agent, which depends only on
// the injectors interface. Adding an injector is one package (its Section,
// with a Builder, and the injector) plus one line in all.
package builtin

import (
	"github.com/secrets-agent/secrets-agent/config"
	"github.com/secrets-agent/secrets-agent/injectors"
	"github.com/secrets-agent/secrets-agent/injectors/dockercfg"
	"github.com/secrets-agent/secrets-agent/injectors/envprofile"
	"github.com/secrets-agent/secrets-agent/injectors/gitcred"
	"github.com/secrets-agent/secrets-agent/injectors/secretfile"
)

// Section is an injector's config section (config.Section) that makes the
// injector's Builder.
type Section interface {
	config.Section
	Builder(site injectors.Site) injectors.Builder
}

// named is one injector: the name of its section (injectors.<name>) and the
// section with its defaults.
type named struct {
	name    string
	section Section
}

// all lists every injector with its section's defaults, in the order a pass
// applies them.
func all() []named {
	system := config.SystemMode()
	return []named{
		{"envprofile", envprofile.DefaultSection(system, config.RuntimeDir())},
		{"secretfile", secretfile.DefaultSection(system)},
		{"dockercfg", dockercfg.DefaultSection()},
		{"gitcred", gitcred.DefaultSection()},
	}
}

// Sections returns every injector's config section with its defaults set,
// by name, for config.Load.
func Sections() config.Sections {
	out := config.Sections{}
	for _, n := range all() {
		out[n.name] = n.section
	}
	return out
}

// Load is config.Load with every injector's section (Sections).
func Load(path string) (*config.Config, error) { return config.Load(path, Sections()) }

// LoadUnconfigured is config.LoadUnconfigured with every injector's section
// (Sections).
func LoadUnconfigured(path string) (*config.Config, error) {
	return config.LoadUnconfigured(path, Sections())
}

// Builders returns the injectors cfg describes, in the order a pass applies
// them. A section cfg lacks (a Config not loaded with Sections) is taken
// with its defaults.
func Builders(cfg *config.Config) []injectors.Builder {
	site := injectors.Site{StateDir: cfg.StateDir, Home: cfg.Home, Socket: cfg.Socket}
	var out []injectors.Builder
	for _, n := range all() {
		s, ok := cfg.Injectors[n.name].(Section)
		if !ok {
			s = n.section
		}
		out = append(out, s.Builder(site))
	}
	return out
}

// EnvRenderer renders environment-variable secrets as the envprofile
// injector writes them (the agent's env route).
func EnvRenderer() injectors.EnvRenderer { return envprofile.Renderer{} }
