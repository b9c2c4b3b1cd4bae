package builtin_test

import (
	"os"
	"os/user"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/secrets-agent/secrets-agent/config"
	"github.com/secrets-agent/secrets-agent/injectors/builtin"
	"github.com/secrets-agent/secrets-agent/injectors/dockercfg"
	"github.com/secrets-agent/secrets-agent/injectors/envprofile"
	"github.com/secrets-agent/secrets-agent/injectors/gitcred"
	"github.com/secrets-agent/secrets-agent/injectors/secretfile"
)

// These are the tests of the injectors' config sections as config.Load
// treats them with builtin.Sections: defaults, environment overrides, key
// paths and lines in errors, paths, validation, the example config.

// cleanEnv removes every variable that changes what Load returns, for the
// duration of the test, so the caller's shell cannot change the outcome.
func cleanEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, config.EnvPrefix) {
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

const minimal = "controlplane:\n  environment_id: env-1\n"

// load loads yaml, written to a file, with every injector's section.
func load(t *testing.T, yaml string) (*config.Config, error) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return builtin.Load(p)
}

func mustLoad(t *testing.T, yaml string) *config.Config {
	t.Helper()
	c, err := load(t, yaml)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return c
}

func loadErr(t *testing.T, yaml string) string {
	t.Helper()
	_, err := load(t, yaml)
	if err == nil {
		t.Fatalf("Load succeeded, want an error\n%s", yaml)
	}
	return err.Error()
}

func envProfile(c *config.Config) *envprofile.Section {
	return c.Injectors["envprofile"].(*envprofile.Section)
}
func secretFile(c *config.Config) *secretfile.Section {
	return c.Injectors["secretfile"].(*secretfile.Section)
}
func dockerCfg(c *config.Config) *dockercfg.Section {
	return c.Injectors["dockercfg"].(*dockercfg.Section)
}
func gitCred(c *config.Config) *gitcred.Section { return c.Injectors["gitcred"].(*gitcred.Section) }

// envProfileDir is envprofile's default dir for user.
func envProfileDir(user string) string {
	if config.SystemMode() {
		return filepath.Join("/run/secrets-agent", user)
	}
	return filepath.Join(config.RuntimeDir(), "secrets-agent")
}

func TestSectionDefaults(t *testing.T) {
	cleanEnv(t)
	// A user's agent cannot create /run/secrets: it is no default there.
	if got := secretfile.DefaultSection(false).AllowedRoots; !slices.Equal(got, []string{"~"}) {
		t.Errorf("user-mode allowed_roots = %q, want [~]", got)
	}
	if os.Geteuid() != 0 {
		t.Skip("system defaults apply when running as root")
	}
	c := mustLoad(t, minimal)
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := *envProfile(c), *envprofile.DefaultSection(true, config.RuntimeDir()); got.Dir != "/run/secrets-agent/"+me.Username || got.Enabled != want.Enabled || !got.Enabled {
		t.Errorf("envprofile %+v", got)
	}
	if got := *secretFile(c); !reflect.DeepEqual(got, secretfile.Section{Enabled: true, AllowedRoots: []string{me.HomeDir, "/run/secrets"}, Mode: 0o600}) {
		t.Errorf("secretfile %+v", got)
	}
	if got := *dockerCfg(c); got != (dockercfg.Section{Enabled: true, ConfigDir: filepath.Join(me.HomeDir, ".docker"), Mode: "inline"}) {
		t.Errorf("dockercfg %+v", got)
	}
	if got := *gitCred(c); got != (gitcred.Section{Enabled: true, Username: "oauth2"}) {
		t.Errorf("gitcred %+v", got)
	}
}

func TestEnvironmentOverridesEverySectionKey(t *testing.T) {
	cleanEnv(t)
	// Not created: a home that exists must be the user's.
	home := filepath.Join(t.TempDir(), "home")
	// One entry per key; the test fails when a key is added without one.
	cases := map[string]struct {
		env  string
		want func(c *config.Config) any
		val  any
	}{
		"injectors.envprofile.enabled":       {"0", func(c *config.Config) any { return envProfile(c).Enabled }, false},
		"injectors.envprofile.dir":           {"/run/env", func(c *config.Config) any { return envProfile(c).Dir }, "/run/env"},
		"injectors.secretfile.enabled":       {"false", func(c *config.Config) any { return secretFile(c).Enabled }, false},
		"injectors.secretfile.allowed_roots": {"~/a, /srv/b,,", func(c *config.Config) any { return secretFile(c).AllowedRoots }, []string{home + "/a", "/srv/b"}},
		"injectors.secretfile.mode":          {"0400", func(c *config.Config) any { return secretFile(c).Mode }, secretfile.FileMode(0o400)},
		"injectors.dockercfg.enabled":        {"FALSE", func(c *config.Config) any { return dockerCfg(c).Enabled }, false},
		"injectors.dockercfg.config_dir":     {"~/.dk", func(c *config.Config) any { return dockerCfg(c).ConfigDir }, home + "/.dk"},
		"injectors.dockercfg.mode":           {"helper", func(c *config.Config) any { return string(dockerCfg(c).Mode) }, "helper"},
		"injectors.gitcred.enabled":          {"false", func(c *config.Config) any { return gitCred(c).Enabled }, false},
		"injectors.gitcred.username":         {"x-access-token", func(c *config.Config) any { return gitCred(c).Username }, "x-access-token"},
	}
	t.Setenv("SECRETS_AGENT_HOME", home)
	keys := mustLoad(t, minimal).Keys()
	for _, k := range keys {
		if _, ok := cases[k]; strings.HasPrefix(k, "injectors.") && !ok {
			t.Errorf("key %s has no environment override case", k)
		}
	}
	for path, tc := range cases {
		if !slices.Contains(keys, path) {
			t.Errorf("case %s is no key", path)
			continue
		}
		env := config.EnvPrefix + strings.ToUpper(strings.ReplaceAll(path, ".", "_"))
		t.Run(env, func(t *testing.T) {
			t.Setenv(env, tc.env)
			// The file says otherwise wherever it can: the environment wins.
			c := mustLoad(t, minimal+"injectors:\n  envprofile: {enabled: true, dir: /file}\n  dockercfg: {mode: auto}\n  gitcred: {username: file}\n")
			if got := tc.want(c); !reflect.DeepEqual(got, tc.val) {
				t.Errorf("%s=%q: %s = %#v, want %#v", env, tc.env, path, got, tc.val)
			}
		})
	}
}

func TestSectionErrorsNameTheKey(t *testing.T) {
	cases := []struct{ name, yaml, env, want string }{
		{"unknown key", minimal + "injectors:\n  dockercfg:\n    mode: inline\n    credstore: x\n", "", "line 6: unknown key injectors.dockercfg.credstore"},
		{"unknown injector", minimal + "injectors:\n  kubecfg: {}\n", "", "line 4: unknown key injectors.kubecfg"},
		{"unknown variable", minimal, "SECRETS_AGENT_INJECTORS_KUBECFG_ENABLED", "SECRETS_AGENT_INJECTORS_KUBECFG_ENABLED: unknown variable"},
		{"bad mode", minimal + "injectors:\n  secretfile:\n    mode: 0999\n", "", `line 5: "0999" is not an octal`},
		{"bad mode variable", minimal, "SECRETS_AGENT_INJECTORS_SECRETFILE_MODE", "SECRETS_AGENT_INJECTORS_SECRETFILE_MODE ("},
		{"wide mode", minimal + "injectors:\n  secretfile:\n    mode: \"0644\"\n", "", "injectors.secretfile.mode: 0644 is wider than 0600"},
		{"group mode", minimal + "injectors:\n  secretfile:\n    mode: \"0640\"\n", "", "wider than 0600"},
		{"unreadable mode", minimal + "injectors:\n  secretfile:\n    mode: \"0200\"\n", "", "injectors.secretfile.mode: 0200 does not let the owner read"},
		{"docker mode", minimal + "injectors:\n  dockercfg:\n    mode: keychain\n", "", `injectors.dockercfg.mode: "keychain" must be one of`},
		{"git username empty", minimal + "injectors:\n  gitcred:\n    username: \"\"\n", "", "injectors.gitcred.username: required"},
		{"git username newline", minimal + "injectors:\n  gitcred:\n    username: \"a\\nb\"\n", "", "injectors.gitcred.username: \"a\\nb\" has a control character"},
		{"no roots", minimal + "injectors:\n  secretfile:\n    allowed_roots: []\n", "", "injectors.secretfile.allowed_roots: at least one root"},
		{"relative root", minimal + "injectors:\n  secretfile:\n    allowed_roots: [srv]\n", "", "injectors.secretfile.allowed_roots[0]: \"srv\" must be an absolute path"},
		{"relative dir", minimal + "injectors:\n  envprofile:\n    dir: env\n", "", "injectors.envprofile.dir: \"env\" must be an absolute path"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cleanEnv(t)
			if tc.env != "" {
				t.Setenv(tc.env, "rw")
			}
			if err := loadErr(t, tc.yaml); !strings.Contains(err, tc.want) {
				t.Errorf("error %q\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

func TestSectionPaths(t *testing.T) {
	cleanEnv(t)
	home := t.TempDir()
	c := mustLoad(t, minimal+"home: "+home+"\n"+
		"injectors:\n  secretfile:\n    allowed_roots: [\"~\", ~/sub, /run/secrets]\n  envprofile:\n    dir: ~/env\n")
	if envProfile(c).Dir != home+"/env" {
		t.Errorf("envprofile.dir %q", envProfile(c).Dir)
	}
	if want := []string{home, home + "/sub", "/run/secrets"}; !slices.Equal(secretFile(c).AllowedRoots, want) {
		t.Errorf("allowed_roots = %q, want %q", secretFile(c).AllowedRoots, want)
	}
	if dockerCfg(c).ConfigDir != home+"/.docker" {
		t.Errorf("dockercfg.config_dir = %q, want ~/.docker in the configured home", dockerCfg(c).ConfigDir)
	}

	c = mustLoad(t, minimal+"injectors: {envprofile: {dir: \"\"}, dockercfg: {config_dir: \"\"}}\n")
	if envProfile(c).Dir != envProfileDir(c.User) || dockerCfg(c).ConfigDir != filepath.Join(c.Home, ".docker") {
		t.Errorf("empty paths did not take their defaults: %+v %+v", envProfile(c), dockerCfg(c))
	}

	t.Setenv("DOCKER_CONFIG", "/srv/docker")
	if c := mustLoad(t, minimal); dockerCfg(c).ConfigDir != "/srv/docker" {
		t.Errorf("config_dir = %q, want $DOCKER_CONFIG", dockerCfg(c).ConfigDir)
	}
}

func TestEnvProfileDirIsDerivedFromTheConfiguredUser(t *testing.T) {
	if _, err := user.Lookup("nobody"); err != nil {
		t.Skip("no user nobody on this machine")
	}
	cleanEnv(t)
	c := mustLoad(t, minimal+"user: nobody\n")
	if envProfile(c).Dir != envProfileDir("nobody") {
		t.Errorf("envprofile.dir = %q, want it derived from the configured user", envProfile(c).Dir)
	}
}

func TestExampleConfigLoadsAndDocumentsEveryKey(t *testing.T) {
	cleanEnv(t)
	path := filepath.Join("..", "..", "config.example.yaml")
	t.Setenv("SECRETS_AGENT_CONTROLPLANE_ENVIRONMENT_ID", "env-1")
	c, err := builtin.Load(path)
	if err != nil {
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
			p := n.Content[i].Value
			if prefix != "" {
				p = prefix + "." + p
			}
			present[p] = true
			if n.Content[i+1].Kind == yaml.MappingNode {
				walk(n.Content[i+1], p)
			}
		}
	}
	walk(doc.Content[0], "")
	for _, k := range c.Keys() {
		if !present[k] {
			t.Errorf("config.example.yaml does not document %s", k)
		}
	}
}

func TestUserAgentWithoutRuntimeDirIsToldWhichKeysToSet(t *testing.T) {
	if config.SystemMode() {
		t.Skip("skipping: as root the defaults are the system service's, which need no runtime dir (test/ runs this as nobody)")
	}
	cleanEnv(t)
	if _, err := os.Stat(config.RuntimeDir()); err == nil {
		t.Skipf("skipping: %s exists", config.RuntimeDir())
	}
	t.Setenv("SECRETS_AGENT_CONTROLPLANE_ENVIRONMENT_ID", "env-1")
	err := loadErr(t, "state_dir: /tmp/x\n")
	for _, want := range []string{"XDG_RUNTIME_DIR is unset", "socket", "controlplane.token_file", "injectors.envprofile.dir"} {
		if !strings.Contains(err, want) {
			t.Errorf("Load without a runtime dir: %v; want it to name %s", err, want)
		}
	}
	t.Setenv("SECRETS_AGENT_SOCKET", "/tmp/x/agent.sock")
	t.Setenv("SECRETS_AGENT_CONTROLPLANE_TOKEN_FILE", "/tmp/x/token")
	t.Setenv("SECRETS_AGENT_INJECTORS_ENVPROFILE_DIR", "/tmp/x/env")
	if _, err := load(t, "state_dir: /tmp/x\n"); err != nil {
		t.Errorf("Load with the keys set: %v", err)
	}
}

// TestRootsThatOpenTheWholeFilesystemAreRefused: an allowed root of / or of
// a system directory (/etc and below, /home, /tmp, ...) is a load error
// naming its key; the agent does not start with it.
func TestRootsThatOpenTheWholeFilesystemAreRefused(t *testing.T) {
	dir := t.TempDir()
	toRoot := filepath.Join(dir, "to-root")
	if err := os.Symlink("/", toRoot); err != nil {
		t.Fatal(err)
	}
	cases := []struct{ name, yaml, want string }{
		{"allowed root /", minimal + "injectors:\n  secretfile:\n    allowed_roots: [\"~\", /]\n",
			`injectors.secretfile.allowed_roots[1]: "/" is (or leads to) /`},
		{"allowed root /./", minimal + "injectors:\n  secretfile:\n    allowed_roots: [/./]\n",
			`injectors.secretfile.allowed_roots[0]: "/" is (or leads to) /`},
		{"allowed root through a symlink to /", minimal + "injectors:\n  secretfile:\n    allowed_roots: [" + toRoot + "]\n",
			"injectors.secretfile.allowed_roots[0]: "},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cleanEnv(t)
			if err := loadErr(t, tc.yaml); !strings.Contains(err, tc.want) {
				t.Errorf("error %q\nwant it to contain %q", err, tc.want)
			}
		})
	}
	t.Run("system directories", func(t *testing.T) {
		toEtc := filepath.Join(dir, "to-etc")
		if err := os.Symlink("/etc", toEtc); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct{ root, want string }{
			{"/etc", "/etc"}, {"/etc/profile.d", "/etc"}, {"/usr/local/bin", "/usr"}, {toEtc + "/cron.d", "/etc"},
			{"/home", "/home"}, {"/tmp", "/tmp"}, {"/var/lib", "/var/lib"}, {"/run", "/run"}, {"/var/tmp", "/var/tmp"},
		} {
			cleanEnv(t)
			err := loadErr(t, minimal+"injectors:\n  secretfile:\n    allowed_roots: [\"~\", "+c.root+"]\n")
			if want := `injectors.secretfile.allowed_roots[1]: "` + c.root + `" is (or leads to) ` + c.want + ": a system directory"; !strings.Contains(err, want) {
				t.Errorf("%s: error %q\nwant it to contain %q", c.root, err, want)
			}
		}
		for _, ok := range []string{"/run/secrets", "/srv/app/secrets", "/var/lib/app/secrets", "/opt/app/secrets", dir} {
			cleanEnv(t)
			if _, err := load(t, minimal+"injectors:\n  secretfile:\n    allowed_roots: [\"~\", "+ok+"]\n"); err != nil {
				t.Errorf("%s: refused: %v", ok, err)
			}
		}
	})
	t.Run("allowed root from the environment", func(t *testing.T) {
		cleanEnv(t)
		t.Setenv("SECRETS_AGENT_INJECTORS_SECRETFILE_ALLOWED_ROOTS", "~,/")
		if err := loadErr(t, minimal); !strings.Contains(err, "injectors.secretfile.allowed_roots[1]") {
			t.Errorf("error %q does not name allowed_roots[1]", err)
		}
	})
}

// TestEmptyInjectorsKeepsEverySectionsDefaults: "injectors:" with nothing
// under it changes no section.
func TestEmptyInjectorsKeepsEverySectionsDefaults(t *testing.T) {
	cleanEnv(t)
	c := mustLoad(t, minimal+"injectors:\n")
	if !envProfile(c).Enabled || !secretFile(c).Enabled || !dockerCfg(c).Enabled || gitCred(c).Username != "oauth2" {
		t.Errorf("sections changed: %+v %+v %+v %+v", envProfile(c), secretFile(c), dockerCfg(c), gitCred(c))
	}
}
