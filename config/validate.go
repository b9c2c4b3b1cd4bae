package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// The allowed values of the enumerated keys.
var (
	DockerCfgModes = []DockerMode{DockerInline, DockerHelper, DockerAuto}
	LogLevels      = []string{"debug", "info", "warn", "error"}
	LogFormats     = []string{"auto", "json", "console"}
)

// Validate checks c as Load returns it (paths expanded) and returns every
// problem found, joined, each naming its key: "controlplane.url: must be http
// or https". It returns nil when c is valid.
func (c *Config) Validate() error { return c.validate(true) }

// validate is Validate; requireEnvironment false lets
// controlplane.environment_id be empty (LoadUnconfigured).
func (c *Config) validate(requireEnvironment bool) error {
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
	if cp.EnvironmentID == "" && requireEnvironment {
		bad("controlplane.environment_id", "required")
	}
	for _, d := range []struct {
		key string
		v   Duration
	}{
		{"controlplane.poll_interval", cp.PollInterval},
		{"controlplane.watch_silence_timeout", cp.WatchSilenceTimeout},
		{"controlplane.keepalive", cp.KeepAlive},
		{"controlplane.ping_interval", cp.PingInterval},
		{"controlplane.ping_timeout", cp.PingTimeout},
	} {
		if d.v < 0 {
			bad(d.key, "must not be negative")
		}
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

	if c.resolved {
		if err := checkHome(c.Home, c.User, c.UID); err != nil {
			bad("home", "%v", err)
		}
	}
	if c.Proxy.Enabled {
		if h, _, err := net.SplitHostPort(c.Proxy.Listen); err != nil {
			bad("proxy.listen", "%q is not host:port", c.Proxy.Listen)
		} else if ip := net.ParseIP(h); h != "localhost" && (ip == nil || !ip.IsLoopback()) {
			bad("proxy.listen", "%q is not a loopback address: anyone who reaches the proxy can use its credentials", c.Proxy.Listen)
		}
	}
	sf := c.Injectors.SecretFile
	if sf.Enabled && len(sf.AllowedRoots) == 0 {
		bad("injectors.secretfile.allowed_roots", "at least one root is required")
	}
	for i, r := range sf.AllowedRoots {
		if isFilesystemRoot(r) {
			bad(fmt.Sprintf("injectors.secretfile.allowed_roots[%d]", i), "%q is (or leads to) /: the whole filesystem cannot be an allowed root", r)
		} else if sys := systemDir(r); sys != "" && !inHome(c.Home, r) {
			bad(fmt.Sprintf("injectors.secretfile.allowed_roots[%d]", i), "%q is (or leads to) %s: a system directory cannot be an allowed root; use a directory of its own, such as /run/secrets", r, sys)
		}
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

// checkHome returns why home cannot stand for "~" of the user name (uid): it
// is (or leads to) /, which would make "~" and an allowed root of "~" the
// whole filesystem, or it exists and is not a directory the user owns, which
// would let the agent write the user's secrets into someone else's tree. A
// home that does not exist yet (or that this process cannot stat) is
// accepted: nothing is written below it until it does, and then only
// through an os.Root at it.
func checkHome(home, name string, uid int) error {
	if isFilesystemRoot(home) {
		return fmt.Errorf("%q is (or leads to) /: \"~\" would be the whole filesystem", home)
	}
	fi, err := os.Stat(home)
	switch {
	case err != nil:
		return nil // missing, or not for this process to see (a CLI run by another user): nothing to judge
	case !fi.IsDir():
		return fmt.Errorf("%q is not a directory", home)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != uid {
		return fmt.Errorf("%q is owned by uid %d, not by user %s (uid %d): the agent writes only into a home its user owns", home, st.Uid, name, uid)
	}
	return nil
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
// user's own home is exempt (validate checks inHome first).
func systemDir(p string) string {
	names := []string{filepath.Clean(p)}
	if real, err := filepath.EvalSymlinks(p); err == nil && real != names[0] {
		names = append(names, real)
	}
	for _, n := range names {
		for _, t := range systemTrees {
			if n == t || strings.HasPrefix(n, t+"/") {
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
	home, r = filepath.Clean(home), filepath.Clean(r)
	return home != "/" && home != "." && (r == home || strings.HasPrefix(r, home+"/"))
}

// isFilesystemRoot reports whether the absolute path p is / or, through
// symlinks, leads to it.
func isFilesystemRoot(p string) bool {
	if filepath.Clean(p) == "/" {
		return true
	}
	real, err := filepath.EvalSymlinks(p)
	return err == nil && real == "/"
}
