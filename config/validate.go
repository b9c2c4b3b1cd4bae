package config

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
)

// The allowed values of the enumerated keys.
var (
	DockerCfgModes = []string{"inline", "helper", "auto"}
	LogLevels      = []string{"debug", "info", "warn", "error"}
	LogFormats     = []string{"auto", "json", "console"}
)

// Validate checks c as Load returns it (paths expanded) and returns every
// problem found, joined, each naming its key: "controlplane.url: must be http
// or https". It returns nil when c is valid.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}

	cp := c.ControlPlane
	if cp.URL == "" {
		bad("controlplane.url", "required")
	} else if u, err := url.Parse(cp.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		bad("controlplane.url", "must be http or https")
	} else if u.Host == "" {
		bad("controlplane.url", "has no host")
	} else if u.User != nil {
		bad("controlplane.url", "must not hold credentials: use token_file")
	}
	if cp.EnvironmentID == "" {
		bad("controlplane.environment_id", "required")
	}
	if cp.PollInterval < 0 {
		bad("controlplane.poll_interval", "must not be negative")
	}
	if c.ReadyTimeout < 0 {
		bad("ready_timeout", "must not be negative")
	}

	for _, p := range c.paths() {
		if *p.value == "" {
			bad(p.key, "required")
		} else if !filepath.IsAbs(*p.value) {
			bad(p.key, "%q must be an absolute path", *p.value)
		}
	}

	sf := c.Injectors.SecretFile
	if sf.Enabled && len(sf.AllowedRoots) == 0 {
		bad("injectors.secretfile.allowed_roots", "at least one root is required")
	}
	if sf.Mode&^0o600 != 0 {
		bad("injectors.secretfile.mode", "%s is wider than 0600", sf.Mode)
	} else if sf.Mode&0o400 == 0 {
		bad("injectors.secretfile.mode", "%s does not let the owner read", sf.Mode)
	}
	if !slices.Contains(DockerCfgModes, c.Injectors.DockerCfg.Mode) {
		bad("injectors.dockercfg.mode", "%q must be one of %v", c.Injectors.DockerCfg.Mode, DockerCfgModes)
	}
	if u := c.Injectors.GitCred.Username; u == "" {
		bad("injectors.gitcred.username", "required: git sends no password without a user name")
	} else if strings.ContainsFunc(u, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		bad("injectors.gitcred.username", "%q has a control character, which git's credential protocol cannot carry", u)
	}
	if !slices.Contains(LogLevels, c.Log.Level) {
		bad("log.level", "%q must be one of %v", c.Log.Level, LogLevels)
	}
	if !slices.Contains(LogFormats, c.Log.Format) {
		bad("log.format", "%q must be one of %v", c.Log.Format, LogFormats)
	}
	return errors.Join(errs...)
}
