package config

import (
	"fmt"
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
