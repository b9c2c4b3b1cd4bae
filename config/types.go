package config

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// String formats d as time.Duration does ("30s").
func (d Duration) String() string { return time.Duration(d).String() }

// ParseDuration reads a duration as time.ParseDuration does ("30s", "1m30s",
// "0"). A bare number other than 0 is an error: it has no unit.
func ParseDuration(s string) (Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration like 30s", s)
	}
	return Duration(d), nil
}

// UnmarshalYAML reads a scalar such as 30s.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want a duration like 30s", n.Line)
	}
	v, err := ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = v
	return nil
}

// MarshalYAML writes d as "30s".
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// Perm returns m as an os.FileMode.
func (m FileMode) Perm() os.FileMode { return os.FileMode(m) & os.ModePerm }

// String formats m as four octal digits ("0600").
func (m FileMode) String() string { return fmt.Sprintf("%04o", uint32(m)) }

// ParseFileMode reads an octal permission mode: "0600", "600" or "0o600".
// Anything but permission bits (above 0777) is an error.
func ParseFileMode(s string) (FileMode, error) {
	t := strings.TrimPrefix(strings.TrimPrefix(strings.TrimSpace(s), "0o"), "0O")
	v, err := strconv.ParseUint(t, 8, 32)
	if err != nil || t == "" || v > 0o777 {
		return 0, fmt.Errorf("%q is not an octal permission mode like \"0600\"", s)
	}
	return FileMode(v), nil
}

// UnmarshalYAML reads the scalar's text as octal whatever YAML would make of
// it, so 0600 and "0600" mean the same.
func (m *FileMode) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want an octal mode like \"0600\"", n.Line)
	}
	v, err := ParseFileMode(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*m = v
	return nil
}

// MarshalYAML writes m as "0600".
func (m FileMode) MarshalYAML() (any, error) { return m.String(), nil }
