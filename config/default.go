package config

import (
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/secrets-agent/secrets-agent/internal/tilde"
)

// SystemPath is the config file of the system service.
const SystemPath = "/etc/secrets-agent/config.yaml"

// SystemSocket is the status socket of the system service (the default of
// socket when running as root).
const SystemSocket = "/run/secrets-agent/agent.sock"

// DefaultPath is the config file Load reads when given "": SystemPath when
// running as root, else $XDG_CONFIG_HOME/secrets-agent/config.yaml (default
// ~/.config/secrets-agent/config.yaml).
func DefaultPath() string {
	if systemMode() {
		return SystemPath
	}
	if d := os.Getenv("XDG_CONFIG_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "secrets-agent", "config.yaml")
	}
	return "~/.config/secrets-agent/config.yaml"
}

// DefaultFile is DefaultPath with a leading "~" expanded to the home of the
// user running the process; "" when that user has no home.
func DefaultFile() string {
	home, _ := os.UserHomeDir()
	p, err := tilde.Expand(DefaultPath(), home)
	if err != nil {
		return ""
	}
	return p
}

// Default returns the configuration with every default set; it is the one
// place defaults live. Running as root it is the system service's (state in
// /var/lib/secrets-agent, socket and fragments under /run/secrets-agent),
// otherwise a user's (state in ~/.local/state/secrets-agent, socket and
// fragments under $XDG_RUNTIME_DIR, /run/user/<uid> when that is unset).
//
// Paths may start with "~" and some values are left empty on purpose, to be
// derived by Load once User and Home are known: User (the user running the
// agent), Home (User's home), Injectors.EnvProfile.Dir (see envProfileDir) and
// Injectors.DockerCfg.ConfigDir ($DOCKER_CONFIG, else ~/.docker). Load also
// reads an empty token_file, state_dir or socket as the default here.
// ControlPlane.EnvironmentID has no default: it is required.
func Default() *Config { return defaults(systemMode()) }

// defaults is Default for the system service (system) or a user's agent.
func defaults(system bool) *Config {
	c := &Config{
		ControlPlane: ControlPlane{
			URL:          "https://app.gitpod.io/api",
			PollInterval: Duration(30 * time.Second),
			Watch:        true,
			KeepAlive:    Duration(15 * time.Second),
			PingInterval: Duration(15 * time.Second),
			PingTimeout:  Duration(10 * time.Second),
		},
		ReadyTimeout: Duration(30 * time.Second),
		Injectors: Injectors{
			EnvProfile: EnvProfile{Enabled: true},
			SecretFile: SecretFile{
				Enabled:      true,
				AllowedRoots: []string{"~"},
				Mode:         0o600,
			},
			DockerCfg: DockerCfg{Enabled: true, Mode: DockerInline},
			GitCred:   GitCred{Enabled: true, Username: "oauth2"},
		},
		Proxy: Proxy{Enabled: true, Listen: "127.0.0.1:7879", SystemTrust: true},
		Log:   Log{Level: "info", Format: "auto"},
	}
	if system {
		// /run/secrets is created (root's, 0711) when a secret first needs
		// it; a user's agent could not create it, so there it is no default.
		c.Injectors.SecretFile.AllowedRoots = append(c.Injectors.SecretFile.AllowedRoots, "/run/secrets")
		c.ControlPlane.TokenFile = "/run/secrets-agent/token"
		c.StateDir = "/var/lib/secrets-agent"
		c.Socket = SystemSocket
	} else {
		run := runtimeDir()
		c.ControlPlane.TokenFile = filepath.Join(run, "secrets-agent", "token")
		c.StateDir = "~/.local/state/secrets-agent"
		c.Socket = filepath.Join(run, "secrets-agent.sock")
	}
	return c
}

// envProfileDir is the default of injectors.envprofile.dir for user:
// /run/secrets-agent/<user> for the system service, $XDG_RUNTIME_DIR/secrets-agent
// for a user's agent. Both are on tmpfs, so values do not outlive a reboot.
func envProfileDir(user string) string {
	if systemMode() {
		return filepath.Join("/run/secrets-agent", user)
	}
	return filepath.Join(runtimeDir(), "secrets-agent")
}

// dockerConfigDir is the default of injectors.dockercfg.config_dir:
// $DOCKER_CONFIG when set, else ~/.docker.
func dockerConfigDir() string {
	if d := os.Getenv("DOCKER_CONFIG"); d != "" {
		return d
	}
	return "~/.docker"
}

// systemMode reports whether the defaults are the system service's: the agent
// runs as root.
func systemMode() bool { return os.Geteuid() == 0 }

// runtimeDir is $XDG_RUNTIME_DIR, or /run/user/<uid> where it is unset.
func runtimeDir() string {
	if d := os.Getenv("XDG_RUNTIME_DIR"); filepath.IsAbs(d) {
		return d
	}
	return filepath.Join("/run/user", strconv.Itoa(os.Geteuid()))
}

// missingRuntimeDir returns the runtime dir a user's agent would default
// paths into when it cannot be there: XDG_RUNTIME_DIR is unset (common under
// `docker exec` and `su`) and /run/user/<uid> does not exist. It returns ""
// when the defaults can be used: as root, with XDG_RUNTIME_DIR set, or when
// /run/user/<uid> exists.
func missingRuntimeDir() string {
	if systemMode() {
		return ""
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); filepath.IsAbs(d) {
		return ""
	}
	d := runtimeDir()
	if fi, err := os.Stat(d); err == nil && fi.IsDir() {
		return ""
	}
	return d
}
