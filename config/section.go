package config

import (
	"fmt"
	"reflect"
	"slices"

	"go.yaml.in/yaml/v3"
)

// Sections are the injectors' parts of the config, "injectors.<name>", by
// injector name. config knows none of them: whoever loads the config
// (injectors/builtin) hands Load every injector's section with its defaults
// set, and Load treats each section's keys as it does its own: decoded
// strictly from the file (an unknown key is an error naming its key path
// and line), set by SECRETS_AGENT_INJECTORS_<NAME>_<KEY>, paths resolved,
// checked.
type Sections map[string]Section

// Section is one injector's section: a pointer to a struct whose exported,
// yaml-tagged fields are its keys, of a kind the environment can set (string
// or a string type, bool, []string, or a type with UnmarshalText). A string
// or []string field tagged `config:"path"` is a path: "~" in it is expanded
// to Home and it must be absolute.
type Section interface {
	// Derive sets the defaults that depend on the user the outputs are for
	// (user, as Load resolved it), once the file and the environment have
	// been applied and before "~" is expanded.
	Derive(user string)
	// Check returns every problem of the section, its paths resolved, each
	// starting with its key below the section ("mode: 0644 is wider than
	// 0600"); home is what "~" means.
	Check(home string) []error
}

// names returns the section names, sorted: the order of every walk over
// the sections, so that keys and errors come in the same order each time.
func (s Sections) names() []string {
	var out []string
	for name := range s {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// UnmarshalYAML decodes each injector's section over the one Load was
// given (holding its defaults). A name no section has is an unknown key.
func (s *Sections) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: injectors: want a mapping of injector names to their sections", n.Line)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		sec, ok := (*s)[k.Value]
		if !ok {
			return fmt.Errorf("line %d: unknown key %s", k.Line, join("injectors", k.Value))
		}
		budget := 10000
		if err := checkKeys(v, reflect.TypeOf(sec).Elem(), join("injectors", k.Value), &budget); err != nil {
			return err
		}
		if err := v.Decode(sec); err != nil {
			return fmt.Errorf("injectors.%s: %w", k.Value, err)
		}
	}
	return nil
}

// isPath reports whether f is tagged as a path (`config:"path"`).
func isPath(f reflect.StructField) bool { return f.Tag.Get("config") == "path" }
