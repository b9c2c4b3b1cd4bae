package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/secrets-agent/secrets-agent/internal/safeopen"
	"github.com/secrets-agent/secrets-agent/internal/tilde"
)

// EnvPrefix starts the name of every environment variable that sets a key:
// EnvPrefix + the key path upper-cased with "." as "_", e.g.
// SECRETS_AGENT_CONTROLPLANE_URL for controlplane.url.
const EnvPrefix = "SECRETS_AGENT_"

// clientEnv are SECRETS_AGENT_* variables that are not configuration keys but
// are used by the CLI and the shell hooks; Load ignores them rather than
// calling them unknown. (SECRETS_AGENT_SOCKET is the key "socket".)
var clientEnv = map[string]bool{
	"SECRETS_AGENT_ENV_DIR": true,
}

// maxFileSize bounds the config file Load reads.
const maxFileSize = 1 << 20

// Load returns the configuration the agent runs with. The steps:
//
//  1. Start from Default.
//  2. Read the YAML file at path. path "" means DefaultPath(), which may be
//     missing (then the environment must supply what is required, at least
//     controlplane.environment_id); a path given explicitly must exist. The
//     YAML is strict: an unknown key is an error naming its key path and
//     line, and so is a second document.
//  3. Apply the environment: every key is set by EnvPrefix + its path
//     upper-cased with "." as "_"; a list (allowed_roots) is a comma-separated
//     list. Any other SECRETS_AGENT_* variable is an error naming it, except
//     SECRETS_AGENT_ENV_DIR, which the shell hooks use.
//  4. Resolve user (name or numeric uid; empty: the user running the agent)
//     to UID, GID and, when home is empty, Home; replace every empty path
//     (token_file, state_dir, socket, injectors.envprofile.dir,
//     injectors.dockercfg.config_dir) by its default, which may depend on
//     the user; and expand "~" to Home in every path.
//     A default inside a runtime dir that does not exist (a user's agent
//     without XDG_RUNTIME_DIR and without /run/user/<uid>) is an error
//     naming the keys to set.
//  5. Validate. When that fails and the default file was missing, the error
//     says which file was looked for and not found.
//
// Every error names the key or variable it is about.
func Load(path string) (*Config, error) { return load(path, true) }

// LoadUnconfigured is Load for the daemon, which may start before the
// platform has configured it: an empty controlplane.environment_id in a config
// file that was read (as in the one install.sh writes) is no error here, and
// the agent reports "not configured" until a reload brings one. Every other
// problem is an error, and so is a missing default file.
func LoadUnconfigured(path string) (*Config, error) { return load(path, false) }

func load(path string, requireEnvironment bool) (*Config, error) {
	c := Default()
	missing, err := c.readFile(path)
	if err != nil {
		return nil, err
	}
	if err := c.applyEnv(os.Environ()); err != nil {
		return nil, err
	}
	if err := c.resolve(); err != nil {
		return nil, err
	}
	// Waiting for an environment_id makes sense only with a file to watch.
	if err := c.validate(requireEnvironment || missing != ""); err != nil {
		if missing != "" {
			// The usual cause of a required key missing: no file was read.
			return nil, fmt.Errorf("config file %s not found, and the environment does not complete the config: %w", missing, err)
		}
		return nil, err
	}
	return c, nil
}

// Owner returns the uid, gid and home directory that every output belongs
// to. It is an error on a Config that Load did not return.
func (c *Config) Owner() (uid, gid int, home string, err error) {
	if !c.resolved {
		return 0, 0, "", errors.New("config: owner not resolved (config not from Load)")
	}
	return c.UID, c.GID, c.Home, nil
}

// readFile decodes the YAML file at path over c (step 2 of Load). When path
// is "" and the default file does not exist it returns that file's path as
// missing, and nil.
func (c *Config) readFile(path string) (missing string, err error) {
	explicit := path != ""
	if !explicit {
		if path = DefaultFile(); path == "" {
			return DefaultPath(), nil // no home, no per-user config file
		}
	}
	// Non-blocking and regular files only: a FIFO named as the config
	// must not hang the agent's start or a reload.
	data, err := safeopen.ReadPath(path, maxFileSize)
	if err != nil {
		if !explicit && errors.Is(err, fs.ErrNotExist) {
			return path, nil
		}
		return "", fmt.Errorf("config: %w", err)
	}
	if err := c.decode(data); err != nil {
		return "", fmt.Errorf("config %s: %w", path, err)
	}
	return "", nil
}

// decode decodes one strict YAML document over c. An empty document leaves
// c as it was.
func (c *Config) decode(data []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		// yaml's message for an unknown key names a Go type; find the key
		// path and line instead.
		var doc yaml.Node
		if yaml.Unmarshal(data, &doc) == nil {
			budget := 10000
			if kerr := checkKeys(&doc, reflect.TypeFor[Config](), "", &budget); kerr != nil {
				return kerr
			}
		}
		return err
	}
	var next yaml.Node
	if err := dec.Decode(&next); !errors.Is(err, io.EOF) {
		return errors.New("more than one YAML document")
	}
	return nil
}

// checkKeys returns an error naming the first key under n that t has no
// field for, with its line. It follows aliases and merge keys ("<<") and
// gives up quietly (nil) after visiting budget nodes.
func checkKeys(n *yaml.Node, t reflect.Type, prefix string, budget *int) error {
	if *budget--; *budget < 0 {
		return nil
	}
	switch n.Kind {
	case yaml.DocumentNode:
		for _, d := range n.Content {
			if err := checkKeys(d, t, prefix, budget); err != nil {
				return err
			}
		}
		return nil
	case yaml.AliasNode:
		if n.Alias == nil {
			return nil
		}
		return checkKeys(n.Alias, t, prefix, budget)
	case yaml.SequenceNode: // only meaningful as the value of a merge key
		for _, d := range n.Content {
			if err := checkKeys(d, t, prefix, budget); err != nil {
				return err
			}
		}
		return nil
	case yaml.MappingNode:
	default:
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Value == "<<" && k.Tag == "!!merge" {
			if err := checkKeys(v, t, prefix, budget); err != nil {
				return err
			}
			continue
		}
		f, ok := fieldByTag(t, k.Value)
		if !ok {
			return fmt.Errorf("line %d: unknown key %s", k.Line, join(prefix, k.Value))
		}
		if f.Type.Kind() == reflect.Struct {
			if err := checkKeys(v, f.Type, join(prefix, k.Value), budget); err != nil {
				return err
			}
		}
	}
	return nil
}

// key is one leaf configuration key.
type key struct {
	path  string // "controlplane.url"
	env   string // "SECRETS_AGENT_CONTROLPLANE_URL"
	index []int  // field index in Config
	typ   reflect.Type
}

// Keys returns the path of every configuration key ("controlplane.url", …)
// in the order of the struct.
func Keys() []string {
	var out []string
	for _, k := range leafKeys() {
		out = append(out, k.path)
	}
	return out
}

// leafKeys lists every key that holds a value (not a section), from the yaml
// tags of Config.
func leafKeys() []key {
	var out []key
	var walk func(t reflect.Type, prefix string, index []int)
	walk = func(t reflect.Type, prefix string, index []int) {
		for i := range t.NumField() {
			f := t.Field(i)
			tag := yamlName(f)
			if tag == "" {
				continue
			}
			idx := append(append([]int(nil), index...), i)
			p := join(prefix, tag)
			if f.Type.Kind() == reflect.Struct {
				walk(f.Type, p, idx)
				continue
			}
			env := EnvPrefix + strings.ToUpper(strings.ReplaceAll(p, ".", "_"))
			out = append(out, key{path: p, env: env, index: idx, typ: f.Type})
		}
	}
	walk(reflect.TypeFor[Config](), "", nil)
	return out
}

// fieldByTag returns t's field whose yaml name is name.
func fieldByTag(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		if f := t.Field(i); yamlName(f) == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// yamlName is f's key in YAML, or "" when f is not a key (unexported or "-").
func yamlName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "-" || name == "" {
		return ""
	}
	return name
}

func join(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// applyEnv sets every key named by a SECRETS_AGENT_* variable in environ
// (step 3 of Load). A variable set to "" sets the key to its empty value.
func (c *Config) applyEnv(environ []string) error {
	byEnv := map[string]key{}
	for _, k := range leafKeys() {
		byEnv[k.env] = k
	}
	var errs []error
	for _, kv := range environ {
		name, value, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, EnvPrefix) || clientEnv[name] {
			continue
		}
		k, ok := byEnv[name]
		if !ok {
			errs = append(errs, fmt.Errorf("%s: unknown variable: no configuration key is named by it", name))
			continue
		}
		if err := setValue(reflect.ValueOf(c).Elem().FieldByIndex(k.index), value); err != nil {
			errs = append(errs, fmt.Errorf("%s (%s): %w", name, k.path, err))
		}
	}
	return errors.Join(errs...)
}

// setValue parses s into v according to v's type.
func setValue(v reflect.Value, s string) error {
	switch v.Addr().Interface().(type) {
	case *Duration:
		d, err := ParseDuration(s)
		if err != nil {
			return err
		}
		v.Set(reflect.ValueOf(d))
	case *FileMode:
		m, err := ParseFileMode(s)
		if err != nil {
			return err
		}
		v.Set(reflect.ValueOf(m))
	case *string, *DockerMode:
		v.SetString(s)
	case *bool:
		b, err := strconv.ParseBool(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("%q is not true or false", s)
		}
		v.SetBool(b)
	case *[]string:
		var list []string
		for _, e := range strings.Split(s, ",") {
			if e = strings.TrimSpace(e); e != "" {
				list = append(list, e)
			}
		}
		v.Set(reflect.ValueOf(list))
	default:
		return fmt.Errorf("cannot set a %s from the environment", v.Type())
	}
	return nil
}

// resolve fills User, UID, GID and Home, the defaults derived from them, and
// expands "~" in every path (step 4 of Load).
func (c *Config) resolve() error {
	u, err := lookupUser(c.User)
	if err != nil {
		return fmt.Errorf("user: %w", err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		return fmt.Errorf("user: %s has a non-numeric uid %q or gid %q", u.Username, u.Uid, u.Gid)
	}
	c.User, c.UID, c.GID = u.Username, uid, gid
	if c.Home == "" {
		c.Home = u.HomeDir
	}
	if !filepath.IsAbs(c.Home) {
		return fmt.Errorf("home: %q must be an absolute path", c.Home)
	}
	c.Home = filepath.Clean(c.Home)
	// An empty path means its default, so that one file can serve both the
	// system service and a user's agent.
	// A default inside a runtime dir that does not exist cannot be used:
	// say which keys need one rather than fail later on a mkdir.
	d := Default()
	noRun := missingRuntimeDir()
	var needRun []string
	for _, f := range []struct {
		key string
		p   *string
		def string
	}{
		{"controlplane.token_file", &c.ControlPlane.TokenFile, d.ControlPlane.TokenFile},
		{"state_dir", &c.StateDir, d.StateDir},
		{"socket", &c.Socket, d.Socket},
		{"injectors.envprofile.dir", &c.Injectors.EnvProfile.Dir, envProfileDir(c.User)},
		{"injectors.dockercfg.config_dir", &c.Injectors.DockerCfg.ConfigDir, dockerConfigDir()},
	} {
		if *f.p == "" {
			*f.p = f.def
		}
		if noRun != "" && strings.HasPrefix(*f.p, noRun+"/") {
			needRun = append(needRun, f.key)
		}
	}
	if len(needRun) > 0 {
		return fmt.Errorf("%s: no usable default: XDG_RUNTIME_DIR is unset and %s does not exist; "+
			"set XDG_RUNTIME_DIR to a directory of yours (mode 0700), or set each of these keys",
			strings.Join(needRun, ", "), noRun)
	}
	for _, p := range c.paths() {
		if *p.value == "" {
			continue // Validate says which are required
		}
		v, err := tilde.Expand(*p.value, c.Home)
		if err != nil {
			return fmt.Errorf("%s: %w", p.key, err)
		}
		*p.value = v
	}
	c.resolved = true
	return nil
}

// lookupUser finds name (a user name or a numeric uid) in the password
// database; "" is the user running the agent.
func lookupUser(name string) (*user.User, error) {
	if name == "" {
		return user.Current()
	}
	if _, err := strconv.Atoi(name); err == nil {
		return user.LookupId(name)
	}
	return user.Lookup(name)
}

// Settled waits, up to settleLimit, until the config file at path has kept
// its size and modification time for settleQuiet, so that a reload does not
// read a file an editor or `os.WriteFile` has truncated but not yet written.
// It returns an error when the file is still empty then: a running agent
// never trades its configuration for an empty file (the write that follows
// sends another event, and so another reload). A file it cannot stat, or
// that is not a regular file, is left to the loader to report.
func Settled(path string) error {
	const settleQuiet, settleLimit = 50 * time.Millisecond, 500 * time.Millisecond
	var last os.FileInfo
	for deadline := time.Now().Add(settleLimit); ; {
		fi, err := os.Stat(path)
		if err != nil || !fi.Mode().IsRegular() {
			return nil // the loader says what is wrong with it
		}
		if last != nil && fi.Size() == last.Size() && fi.ModTime().Equal(last.ModTime()) {
			break
		}
		if time.Now().After(deadline) {
			break
		}
		last = fi
		time.Sleep(settleQuiet)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() && fi.Size() == 0 {
		return fmt.Errorf("config %s is empty (being written?)", path)
	}
	return nil
}

// UserID returns the uid of name (a user name or a numeric uid); "" is the
// user running the agent.
func UserID(name string) (int, error) {
	u, err := lookupUser(name)
	if err != nil {
		return 0, fmt.Errorf("user %q: %w", name, err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return 0, fmt.Errorf("user %q: uid %q: %w", name, u.Uid, err)
	}
	return uid, nil
}

// GroupID returns the gid of name (a group name or a numeric gid).
func GroupID(name string) (int, error) {
	g, err := user.LookupGroup(name)
	if err != nil {
		var gerr error
		if g, gerr = user.LookupGroupId(name); gerr != nil {
			return 0, fmt.Errorf("group %q: %w", name, err)
		}
	}
	gid, err := strconv.Atoi(g.Gid)
	if err != nil {
		return 0, fmt.Errorf("group %q: gid %q: %w", name, g.Gid, err)
	}
	return gid, nil
}

// pathKey is a key whose value is a path.
type pathKey struct {
	key   string
	value *string
}

// paths returns every path-valued key of c, for expansion and validation.
func (c *Config) paths() []pathKey {
	ps := []pathKey{
		{"controlplane.token_file", &c.ControlPlane.TokenFile},
		{"state_dir", &c.StateDir},
		{"socket", &c.Socket},
		{"injectors.envprofile.dir", &c.Injectors.EnvProfile.Dir},
		{"injectors.dockercfg.config_dir", &c.Injectors.DockerCfg.ConfigDir},
	}
	for i := range c.Injectors.SecretFile.AllowedRoots {
		ps = append(ps, pathKey{fmt.Sprintf("injectors.secretfile.allowed_roots[%d]", i), &c.Injectors.SecretFile.AllowedRoots[i]})
	}
	return ps
}
