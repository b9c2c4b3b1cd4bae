package config

import (
	"os"
	"os/user"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// cleanEnv removes every variable that changes what Load returns, for the
// duration of the test, so the caller's shell cannot change the outcome.
func cleanEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, EnvPrefix) {
			unsetenv(t, name)
		}
	}
	for _, name := range []string{"DOCKER_CONFIG", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME"} {
		unsetenv(t, name)
	}
}

func unsetenv(t *testing.T, name string) {
	t.Setenv(name, "") // restores the old value after the test
	os.Unsetenv(name)
}

// writeConfig writes yaml to a file in a temp dir and returns its path.
func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const minimal = "controlplane:\n  environment_id: env-1\n"

func mustLoad(t *testing.T, yaml string) *Config {
	t.Helper()
	c, err := Load(writeConfig(t, yaml))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return c
}

func loadErr(t *testing.T, yaml string) string {
	t.Helper()
	_, err := Load(writeConfig(t, yaml))
	if err == nil {
		t.Fatalf("Load succeeded, want an error\n%s", yaml)
	}
	return err.Error()
}

func TestDefaultsOfSystemService(t *testing.T) {
	cleanEnv(t)
	if os.Geteuid() != 0 {
		t.Skip("system defaults apply when running as root")
	}
	c := mustLoad(t, minimal)
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		ControlPlane: ControlPlane{
			URL: "https://app.gitpod.io/api", EnvironmentID: "env-1",
			TokenFile: "/run/secrets-agent/token", PollInterval: Duration(30 * time.Second), Watch: true,
			KeepAlive: Duration(15 * time.Second), PingInterval: Duration(15 * time.Second), PingTimeout: Duration(10 * time.Second),
		},
		User: me.Username, Home: me.HomeDir, UID: 0, GID: 0,
		StateDir:     "/var/lib/secrets-agent",
		Socket:       "/run/secrets-agent/agent.sock",
		ReadyTimeout: Duration(30 * time.Second),
		Injectors: Injectors{
			EnvProfile: EnvProfile{Enabled: true, Dir: "/run/secrets-agent/" + me.Username},
			SecretFile: SecretFile{Enabled: true, AllowedRoots: []string{me.HomeDir, "/run/secrets"}, Mode: 0o600},
			DockerCfg:  DockerCfg{Enabled: true, ConfigDir: filepath.Join(me.HomeDir, ".docker"), Mode: "inline"},
			GitCred:    GitCred{Enabled: true, Username: "oauth2"},
		},
		Proxy:    Proxy{Enabled: true, Listen: "127.0.0.1:7879", SystemTrust: true},
		Log:      Log{Level: "info", Format: "auto"},
		resolved: true,
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("Load of a minimal file:\n got %+v\nwant %+v", c, want)
	}
	uid, gid, home, err := c.Owner()
	if err != nil || uid != 0 || gid != 0 || home != me.HomeDir {
		t.Errorf("Owner() = %d, %d, %q, %v", uid, gid, home, err)
	}
}

func TestDefaultsOfUserAgent(t *testing.T) {
	cleanEnv(t)
	t.Setenv("XDG_RUNTIME_DIR", "/run/user/1000")
	c := defaults(false)
	if c.StateDir != "~/.local/state/secrets-agent" ||
		c.Socket != "/run/user/1000/secrets-agent.sock" ||
		c.ControlPlane.TokenFile != "/run/user/1000/secrets-agent/token" {
		t.Errorf("user-mode defaults: state_dir %q socket %q token_file %q", c.StateDir, c.Socket, c.ControlPlane.TokenFile)
	}
	// A user's agent cannot create /run/secrets: it is no default there.
	if got := c.Injectors.SecretFile.AllowedRoots; !slices.Equal(got, []string{"~"}) {
		t.Errorf("user-mode allowed_roots = %q, want [~]", got)
	}
	os.Unsetenv("XDG_RUNTIME_DIR")
	c = defaults(false)
	if want := filepath.Join("/run/user", strconv.Itoa(os.Geteuid()), "secrets-agent.sock"); c.Socket != want {
		t.Errorf("socket without XDG_RUNTIME_DIR = %q, want %q", c.Socket, want)
	}
}

func TestOwnerOfUnloadedConfigIsError(t *testing.T) {
	if _, _, _, err := Default().Owner(); err == nil {
		t.Error("Owner() of Default() succeeded; want an error: nothing is resolved")
	}
}

func TestEnvironmentOverridesEveryKey(t *testing.T) {
	cleanEnv(t)
	// Not created: a home that exists must be the user's, and the cases
	// change the user.
	home := filepath.Join(t.TempDir(), "home")
	// One entry per key; the test fails when a key is added without one.
	cases := map[string]struct {
		env  string
		want func(c *Config) any
		val  any
	}{
		"controlplane.url":                   {"http://127.0.0.1:9/api", func(c *Config) any { return c.ControlPlane.URL }, "http://127.0.0.1:9/api"},
		"controlplane.environment_id":        {"env-9", func(c *Config) any { return c.ControlPlane.EnvironmentID }, "env-9"},
		"controlplane.token_file":            {"~/token", func(c *Config) any { return c.ControlPlane.TokenFile }, home + "/token"},
		"controlplane.poll_interval":         {"1m30s", func(c *Config) any { return c.ControlPlane.PollInterval }, Duration(90 * time.Second)},
		"controlplane.watch":                 {"false", func(c *Config) any { return c.ControlPlane.Watch }, false},
		"controlplane.watch_silence_timeout": {"2m", func(c *Config) any { return c.ControlPlane.WatchSilenceTimeout }, Duration(2 * time.Minute)},
		"controlplane.keepalive":             {"5s", func(c *Config) any { return c.ControlPlane.KeepAlive }, Duration(5 * time.Second)},
		"controlplane.ping_interval":         {"0", func(c *Config) any { return c.ControlPlane.PingInterval }, Duration(0)},
		"controlplane.ping_timeout":          {"3s", func(c *Config) any { return c.ControlPlane.PingTimeout }, Duration(3 * time.Second)},
		"user":                               {"nobody", func(c *Config) any { return c.User }, "nobody"},
		"home":                               {home, func(c *Config) any { return c.Home }, home},
		"state_dir":                          {"/var/lib/x", func(c *Config) any { return c.StateDir }, "/var/lib/x"},
		"socket":                             {"/run/x.sock", func(c *Config) any { return c.Socket }, "/run/x.sock"},
		"socket_group":                       {"docker", func(c *Config) any { return c.SocketGroup }, "docker"},
		"ready_timeout":                      {"0", func(c *Config) any { return c.ReadyTimeout }, Duration(0)},
		"injectors.envprofile.enabled":       {"0", func(c *Config) any { return c.Injectors.EnvProfile.Enabled }, false},
		"injectors.envprofile.dir":           {"/run/env", func(c *Config) any { return c.Injectors.EnvProfile.Dir }, "/run/env"},
		"injectors.secretfile.enabled":       {"false", func(c *Config) any { return c.Injectors.SecretFile.Enabled }, false},
		"injectors.secretfile.allowed_roots": {"~/a, /srv/b,,", func(c *Config) any { return c.Injectors.SecretFile.AllowedRoots }, []string{home + "/a", "/srv/b"}},
		"injectors.secretfile.mode":          {"0400", func(c *Config) any { return c.Injectors.SecretFile.Mode }, FileMode(0o400)},
		"injectors.dockercfg.enabled":        {"FALSE", func(c *Config) any { return c.Injectors.DockerCfg.Enabled }, false},
		"injectors.dockercfg.config_dir":     {"~/.dk", func(c *Config) any { return c.Injectors.DockerCfg.ConfigDir }, home + "/.dk"},
		"injectors.dockercfg.mode":           {"helper", func(c *Config) any { return string(c.Injectors.DockerCfg.Mode) }, "helper"},
		"injectors.gitcred.enabled":          {"false", func(c *Config) any { return c.Injectors.GitCred.Enabled }, false},
		"injectors.gitcred.username":         {"x-access-token", func(c *Config) any { return c.Injectors.GitCred.Username }, "x-access-token"},
		"proxy.enabled":                      {"false", func(c *Config) any { return c.Proxy.Enabled }, false},
		"proxy.listen":                       {"127.0.0.1:0", func(c *Config) any { return c.Proxy.Listen }, "127.0.0.1:0"},
		"proxy.system_trust":                 {"false", func(c *Config) any { return c.Proxy.SystemTrust }, false},
		"log.level":                          {"debug", func(c *Config) any { return c.Log.Level }, "debug"},
		"log.format":                         {"json", func(c *Config) any { return c.Log.Format }, "json"},
	}
	for _, k := range Keys() {
		if _, ok := cases[k]; !ok {
			t.Errorf("key %s has no environment override case", k)
		}
	}
	for _, k := range leafKeys() {
		tc, ok := cases[k.path]
		if !ok {
			continue
		}
		t.Run(k.env, func(t *testing.T) {
			t.Setenv("SECRETS_AGENT_HOME", home) // so ~ is known; overridden by the "home" case itself
			t.Setenv(k.env, tc.env)
			// The file says otherwise wherever it can: the environment wins.
			c := mustLoad(t, "controlplane:\n  environment_id: env-1\n  url: https://file.example\nlog:\n  level: warn\n")
			if got := tc.want(c); !reflect.DeepEqual(got, tc.val) {
				t.Errorf("%s=%q: %s = %#v, want %#v", k.env, tc.env, k.path, got, tc.val)
			}
		})
	}
}

func TestUnknownEnvironmentVariableIsNamed(t *testing.T) {
	cleanEnv(t)
	t.Setenv("SECRETS_AGENT_CONTROLPLANE_URLL", "https://x")
	err := loadErr(t, minimal)
	if !strings.Contains(err, "SECRETS_AGENT_CONTROLPLANE_URLL: unknown variable") {
		t.Errorf("error %q does not name the variable", err)
	}
}

func TestHookVariableIsNotAConfigKey(t *testing.T) {
	cleanEnv(t)
	t.Setenv("SECRETS_AGENT_ENV_DIR", "/run/secrets-agent/x")
	mustLoad(t, minimal)
}

func TestBadEnvironmentValueNamesVariableAndKey(t *testing.T) {
	for env, value := range map[string]string{
		"SECRETS_AGENT_CONTROLPLANE_WATCH":         "maybe",
		"SECRETS_AGENT_READY_TIMEOUT":              "30",
		"SECRETS_AGENT_INJECTORS_SECRETFILE_MODE":  "rw",
		"SECRETS_AGENT_CONTROLPLANE_POLL_INTERVAL": "soon",
	} {
		t.Run(env, func(t *testing.T) {
			cleanEnv(t)
			t.Setenv(env, value)
			err := loadErr(t, minimal)
			if !strings.Contains(err, env+" (") {
				t.Errorf("error %q does not name %s", err, env)
			}
		})
	}
}

func TestUnknownKeyNamesKeyAndLine(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		{"top level", minimal + "stat_dir: /x\n", "line 3: unknown key stat_dir"},
		{"nested", "controlplane:\n  environment_id: e\n  urll: https://x\n", "line 3: unknown key controlplane.urll"},
		{"deep", minimal + "injectors:\n  dockercfg:\n    mode: inline\n    credstore: x\n", "line 6: unknown key injectors.dockercfg.credstore"},
		{"resolved field", minimal + "uid: 0\n", "line 3: unknown key uid"},
		{"via merge key", "base: &b\n  x: 1\n", "line 1: unknown key base"},
		{"inside merged map", "cp: &cp {environment_id: e, bogus: 1}\n", "unknown key cp"},
		{"merged into section", "log:\n  <<: {level: info, colour: true}\n", "line 2: unknown key log.colour"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cleanEnv(t)
			if err := loadErr(t, tc.yaml); !strings.Contains(err, tc.want) {
				t.Errorf("error %q\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

func TestFileErrors(t *testing.T) {
	cleanEnv(t)
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Error("a missing file given explicitly loaded; want an error")
	}
	for name, tc := range map[string]struct{ yaml, want string }{
		"two documents": {minimal + "---\nuser: root\n", "more than one YAML document"},
		"wrong type":    {"controlplane: [1, 2]\n", "cannot unmarshal"},
		"bad duration":  {minimal + "ready_timeout: 30\n", `line 3: "30" is not a duration`},
		"bad mode":      {minimal + "injectors:\n  secretfile:\n    mode: 0999\n", `line 5: "0999" is not an octal`},
		"syntax":        {"controlplane: {\n", "config "},
	} {
		t.Run(name, func(t *testing.T) {
			if err := loadErr(t, tc.yaml); !strings.Contains(err, tc.want) {
				t.Errorf("error %q\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

func TestMissingDefaultFileIsAllowedWhenEnvironmentSuffices(t *testing.T) {
	cleanEnv(t)
	if _, err := os.Stat(DefaultPath()); err == nil {
		t.Skipf("%s exists on this machine", DefaultPath())
	}
	t.Setenv("SECRETS_AGENT_CONTROLPLANE_ENVIRONMENT_ID", "env-1")
	if _, err := Load(""); err != nil {
		t.Errorf("Load(\"\") without the default file: %v", err)
	}
}

func TestEmptyFileLeavesDefaults(t *testing.T) {
	cleanEnv(t)
	t.Setenv("SECRETS_AGENT_CONTROLPLANE_ENVIRONMENT_ID", "env-1")
	c := mustLoad(t, "# nothing\n")
	if c.Log.Level != "info" || c.ControlPlane.PollInterval != Duration(30*time.Second) {
		t.Errorf("empty file changed defaults: %+v", c)
	}
}

func TestValidationErrorsNameTheKey(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		{"no environment", "user: root\n", "controlplane.environment_id: required"},
		{"ftp url", minimal + "  url: ftp://x\n", "controlplane.url: must be http or https"},
		{"no scheme", minimal + "  url: app.gitpod.io\n", "controlplane.url: must be http or https"},
		{"empty url", minimal + "  url: \"\"\n", "controlplane.url: required"},
		{"credentials in url", minimal + "  url: https://u:p@x\n", "controlplane.url: must not hold credentials"},
		{"negative poll", minimal + "  poll_interval: -1s\n", "controlplane.poll_interval: must not be negative"},
		{"negative ping timeout", minimal + "  ping_timeout: -1s\n", "controlplane.ping_timeout: must not be negative"},
		{"negative ready", minimal + "ready_timeout: -5s\n", "ready_timeout: must not be negative"},
		{"wide mode", minimal + "injectors:\n  secretfile:\n    mode: \"0644\"\n", "injectors.secretfile.mode: 0644 is wider than 0600"},
		{"group mode", minimal + "injectors:\n  secretfile:\n    mode: \"0640\"\n", "wider than 0600"},
		{"unreadable mode", minimal + "injectors:\n  secretfile:\n    mode: \"0200\"\n", "injectors.secretfile.mode: 0200 does not let the owner read"},
		{"docker mode", minimal + "injectors:\n  dockercfg:\n    mode: keychain\n", `injectors.dockercfg.mode: "keychain" must be one of`},
		{"git username empty", minimal + "injectors:\n  gitcred:\n    username: \"\"\n", "injectors.gitcred.username: required"},
		{"git username newline", minimal + "injectors:\n  gitcred:\n    username: \"a\\nb\"\n", "injectors.gitcred.username: \"a\\nb\" has a control character"},
		{"log level", minimal + "log:\n  level: trace\n", `log.level: "trace" must be one of`},
		{"log format", minimal + "log:\n  format: xml\n", `log.format: "xml" must be one of`},
		{"relative state", minimal + "state_dir: var/lib\n", `state_dir: "var/lib" must be an absolute path`},
		{"no roots", minimal + "injectors:\n  secretfile:\n    allowed_roots: []\n", "injectors.secretfile.allowed_roots: at least one root"},
		{"relative root", minimal + "injectors:\n  secretfile:\n    allowed_roots: [srv]\n", "injectors.secretfile.allowed_roots[0]: \"srv\" must be an absolute path"},
		{"other user's home", minimal + "state_dir: ~bob/x\n", "state_dir: \"~bob/x\": only ~ and ~/ are expanded"},
		{"unknown user", minimal + "user: no-such-user-here\n", "user: "},
		{"relative home", minimal + "home: h\n", `home: "h" must be an absolute path`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cleanEnv(t)
			if err := loadErr(t, tc.yaml); !strings.Contains(err, tc.want) {
				t.Errorf("error %q\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

func TestValidationReportsEveryProblem(t *testing.T) {
	cleanEnv(t)
	err := loadErr(t, "log: {level: x, format: y}\n")
	for _, want := range []string{"controlplane.environment_id", "log.level", "log.format"} {
		if !strings.Contains(err, want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

func TestTildeExpandsToHome(t *testing.T) {
	cleanEnv(t)
	home := t.TempDir()
	c := mustLoad(t, minimal+"home: "+home+"\nstate_dir: ~/state\nsocket: ~/s/../agent.sock\n"+
		"injectors:\n  secretfile:\n    allowed_roots: [\"~\", ~/sub, /run/secrets]\n  envprofile:\n    dir: ~/env\n")
	if c.StateDir != home+"/state" || c.Socket != home+"/agent.sock" || c.Injectors.EnvProfile.Dir != home+"/env" {
		t.Errorf("state_dir %q socket %q envprofile.dir %q", c.StateDir, c.Socket, c.Injectors.EnvProfile.Dir)
	}
	if want := []string{home, home + "/sub", "/run/secrets"}; !slices.Equal(c.Injectors.SecretFile.AllowedRoots, want) {
		t.Errorf("allowed_roots = %q, want %q", c.Injectors.SecretFile.AllowedRoots, want)
	}
	if c.Injectors.DockerCfg.ConfigDir != home+"/.docker" {
		t.Errorf("dockercfg.config_dir = %q, want ~/.docker in the configured home", c.Injectors.DockerCfg.ConfigDir)
	}
}

func TestEmptyPathMeansDefault(t *testing.T) {
	cleanEnv(t)
	c := mustLoad(t, minimal+"  token_file: \"\"\nstate_dir: \"\"\nsocket: \"\"\ninjectors: {envprofile: {dir: \"\"}, dockercfg: {config_dir: \"\"}}\n")
	d := Default()
	if c.StateDir != d.StateDir || c.Socket != d.Socket || c.ControlPlane.TokenFile != d.ControlPlane.TokenFile ||
		c.Injectors.EnvProfile.Dir != envProfileDir(c.User) || c.Injectors.DockerCfg.ConfigDir != filepath.Join(c.Home, ".docker") {
		t.Errorf("empty paths did not take their defaults: %+v", c)
	}
}

func TestDockerConfigEnvironmentIsTheDefaultConfigDir(t *testing.T) {
	cleanEnv(t)
	t.Setenv("DOCKER_CONFIG", "/srv/docker")
	if c := mustLoad(t, minimal); c.Injectors.DockerCfg.ConfigDir != "/srv/docker" {
		t.Errorf("config_dir = %q, want $DOCKER_CONFIG", c.Injectors.DockerCfg.ConfigDir)
	}
}

func TestUserResolvesToUIDGIDAndHome(t *testing.T) {
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody on this machine")
	}
	for _, name := range []string{"nobody", nobody.Uid} {
		t.Run(name, func(t *testing.T) {
			cleanEnv(t)
			c := mustLoad(t, minimal+"user: \""+name+"\"\n")
			uid, gid, home, err := c.Owner()
			if err != nil || strconv.Itoa(uid) != nobody.Uid || strconv.Itoa(gid) != nobody.Gid || home != nobody.HomeDir || c.User != "nobody" {
				t.Errorf("user %q: Owner() = %d, %d, %q, %v; User %q; want nobody's", name, uid, gid, home, err, c.User)
			}
			if c.Injectors.EnvProfile.Dir != envProfileDir("nobody") {
				t.Errorf("envprofile.dir = %q, want it derived from the configured user", c.Injectors.EnvProfile.Dir)
			}
		})
	}
}

func TestModesAndDurationsParse(t *testing.T) {
	for in, want := range map[string]FileMode{"0600": 0o600, "600": 0o600, "0o400": 0o400, "0": 0} {
		if got, err := ParseFileMode(in); err != nil || got != want {
			t.Errorf("ParseFileMode(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "rw", "0800", "01000", "-1", "0x1f"} {
		if _, err := ParseFileMode(in); err == nil {
			t.Errorf("ParseFileMode(%q) succeeded", in)
		}
	}
	for in, want := range map[string]time.Duration{"30s": 30 * time.Second, "0": 0, "1h2m": time.Hour + 2*time.Minute, " 5ms ": 5 * time.Millisecond} {
		if got, err := ParseDuration(in); err != nil || time.Duration(got) != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "30", "soon"} {
		if _, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) succeeded", in)
		}
	}
	// Both octal spellings in YAML mean the same.
	for _, y := range []string{"mode: 0400", "mode: \"0400\"", "mode: 0o400", "mode: 400"} {
		var s SecretFile
		if err := yaml.Unmarshal([]byte(y), &s); err != nil || s.Mode != 0o400 {
			t.Errorf("%s: mode %v, err %v", y, s.Mode, err)
		}
	}
}

func TestExampleConfigLoadsAndDocumentsEveryKey(t *testing.T) {
	cleanEnv(t)
	path := filepath.Join("..", "config.example.yaml")
	t.Setenv("SECRETS_AGENT_CONTROLPLANE_ENVIRONMENT_ID", "env-1")
	if _, err := Load(path); err != nil {
		t.Fatalf("config.example.yaml: %v", err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	present := map[string]bool{}
	var walk func(n *yaml.Node, prefix string)
	walk = func(n *yaml.Node, prefix string) {
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := join(prefix, n.Content[i].Value)
			present[p] = true
			if n.Content[i+1].Kind == yaml.MappingNode {
				walk(n.Content[i+1], p)
			}
		}
	}
	walk(doc.Content[0], "")
	for _, k := range Keys() {
		if !present[k] {
			t.Errorf("config.example.yaml does not document %s", k)
		}
	}
}

func TestMissingDefaultFileIsNamedWhenTheConfigIsIncomplete(t *testing.T) {
	cleanEnv(t)
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	want := DefaultPath()
	if _, err := os.Stat(want); err == nil {
		t.Skipf("%s exists on this machine", want)
	}
	_, err := Load("")
	if err == nil || !strings.Contains(err.Error(), "config file "+want+" not found") ||
		!strings.Contains(err.Error(), "controlplane.environment_id: required") {
		t.Errorf("Load(\"\") without a file or environment: %v; want it to name %s as not found and the missing key", err, want)
	}
}

func TestUserAgentWithoutRuntimeDirIsToldWhichKeysToSet(t *testing.T) {
	if systemMode() {
		t.Skip("skipping: as root the defaults are the system service's, which need no runtime dir (test/ runs this as nobody)")
	}
	cleanEnv(t)
	if _, err := os.Stat(runtimeDir()); err == nil {
		t.Skipf("skipping: %s exists", runtimeDir())
	}
	t.Setenv("SECRETS_AGENT_CONTROLPLANE_ENVIRONMENT_ID", "env-1")
	_, err := Load(writeConfig(t, "state_dir: /tmp/x\n"))
	if err == nil || !strings.Contains(err.Error(), "XDG_RUNTIME_DIR is unset") || !strings.Contains(err.Error(), "socket") {
		t.Errorf("Load without a runtime dir: %v", err)
	}
	t.Setenv("SECRETS_AGENT_SOCKET", "/tmp/x/agent.sock")
	t.Setenv("SECRETS_AGENT_CONTROLPLANE_TOKEN_FILE", "/tmp/x/token")
	t.Setenv("SECRETS_AGENT_INJECTORS_ENVPROFILE_DIR", "/tmp/x/env")
	if _, err := Load(writeConfig(t, "state_dir: /tmp/x\n")); err != nil {
		t.Errorf("Load with the keys set: %v", err)
	}
}
