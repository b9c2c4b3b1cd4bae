// Package tilde expands a leading "~" in a path: the one rule for what "~"
// means in the config, the CLI and the injectors.
package tilde

import (
	"fmt"
	"path/filepath"
	"strings"
)

// Expand replaces a leading "~" in p by home and cleans the result; a path
// without one is only cleaned. "~user" is an error: only one home is known.
// So is a "~" with no home to expand it to.
func Expand(p, home string) (string, error) {
	switch {
	case p != "~" && !strings.HasPrefix(p, "~"):
		return filepath.Clean(p), nil
	case p != "~" && !strings.HasPrefix(p, "~/"):
		return "", fmt.Errorf("%q: only ~ and ~/ are expanded (to home)", p)
	case home == "":
		return "", fmt.Errorf("%q: no home directory to expand ~ to", p)
	}
	return filepath.Join(home, p[1:]), nil
}
