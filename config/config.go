// Package config is the agent's configuration: the schema (docs/ARCHITECTURE.md,
// "Configuration"), its defaults, loading from one strict YAML file with
// SECRETS_AGENT_* environment overrides, and validation. Every default is set in Default and nowhere else.
package config

import "time"

// Config is the whole configuration. Paths are absolute once Load returns:
// "~" has been expanded to Home.
type Config struct {
	ControlPlane ControlPlane `yaml:"controlplane"`
	// User owns every output; empty means the user running the agent.
	User string `yaml:"user"`
	// Home is what "~" means; empty means User's home from the password database.
	Home     string `yaml:"home"`
	StateDir string `yaml:"state_dir"`
	Socket   string `yaml:"socket"`
	// SocketGroup, when set, makes the status socket 0660 and owned by this group.
	SocketGroup  string    `yaml:"socket_group"`
	ReadyTimeout Duration  `yaml:"ready_timeout"`
	Injectors    Injectors `yaml:"injectors"`
	Proxy        Proxy     `yaml:"proxy"`
	Log          Log       `yaml:"log"`

	// UID and GID are User's, resolved by Load from the password database.
	// They are not configuration keys: YAML and the environment cannot set them.
	UID int `yaml:"-"`
	GID int `yaml:"-"`

	// resolved is set once Load has resolved User, Home, UID and GID.
	resolved bool
}

// ControlPlane is where secrets come from.
type ControlPlane struct {
	URL           string   `yaml:"url"`
	EnvironmentID string   `yaml:"environment_id"`
	TokenFile     string   `yaml:"token_file"`
	PollInterval  Duration `yaml:"poll_interval"`
	Watch         bool     `yaml:"watch"`
	// WatchSilenceTimeout, when set, ends a watch stream that sent no line
	// (not even a blank one) for this long, and reconnects. 0 (the default)
	// sets no such deadline: the control plane need not send keepalive
	// lines, and dead connections are found by KeepAlive and the pings.
	WatchSilenceTimeout Duration `yaml:"watch_silence_timeout"`
	// KeepAlive is the TCP keepalive of control-plane connections (idle
	// time and probe interval; 3 lost probes drop the connection). 0 is off.
	KeepAlive Duration `yaml:"keepalive"`
	// PingInterval and PingTimeout are the HTTP/2 health check: after
	// PingInterval without a frame a PING is sent, and the connection is
	// dropped when no answer comes within PingTimeout. They apply when the
	// control plane speaks HTTP/2. PingInterval 0 is off.
	PingInterval Duration `yaml:"ping_interval"`
	PingTimeout  Duration `yaml:"ping_timeout"`
}

// Injectors configures each injector.
type Injectors struct {
	EnvProfile EnvProfile `yaml:"envprofile"`
	SecretFile SecretFile `yaml:"secretfile"`
	DockerCfg  DockerCfg  `yaml:"dockercfg"`
	GitCred    GitCred    `yaml:"gitcred"`
}

// EnvProfile configures the shell-fragment injector.
type EnvProfile struct {
	Enabled bool   `yaml:"enabled"`
	Dir     string `yaml:"dir"`
}

// SecretFile configures the secret-file injector.
type SecretFile struct {
	Enabled      bool     `yaml:"enabled"`
	AllowedRoots []string `yaml:"allowed_roots"`
	Mode         FileMode `yaml:"mode"`
}

// DockerCfg configures the docker config injector.
type DockerCfg struct {
	Enabled   bool       `yaml:"enabled"`
	ConfigDir string     `yaml:"config_dir"`
	Mode      DockerMode `yaml:"mode"`
}

// DockerMode is how the docker injector hands out registry logins.
type DockerMode string

// The docker modes.
const (
	// DockerInline writes each login into config.json's auths.
	DockerInline DockerMode = "inline"
	// DockerHelper writes credHelpers entries naming the agent, which
	// answers docker over the status socket: no password on disk.
	DockerHelper DockerMode = "helper"
	// DockerAuto is helper mode where docker can run the helper, else inline.
	DockerAuto DockerMode = "auto"
)

// GitCred configures the git credential injector.
type GitCred struct {
	Enabled bool `yaml:"enabled"`
	// Username is the user name the git credential helper answers with
	// every token; the token is the password.
	Username string `yaml:"username"`
}

// Proxy configures the credential proxy, which serves the secrets that carry
// a credentialProxy: it starts with the first such secret.
type Proxy struct {
	Enabled bool `yaml:"enabled"`
	// Listen is the proxy's address, host:port on loopback (port 0 picks
	// a free one, which changes with each start).
	Listen string `yaml:"listen"`
	// SystemTrust adds the proxy's CA to the system trust store (Debian's
	// update-ca-certificates) when the agent runs as root. Off, or not
	// root: the env fragment points SSL_CERT_FILE at a bundle in state_dir.
	SystemTrust bool `yaml:"system_trust"`
}

// Log configures logging.
type Log struct {
	Level  string `yaml:"level"`  // debug | info | warn | error
	Format string `yaml:"format"` // auto | json | console
}

// Duration is a time.Duration written as "30s" in YAML and in the environment.
type Duration time.Duration

// FileMode is a permission mode written as an octal string ("0600").
type FileMode uint32
