package secrets

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"path"
	"strings"
)

// DefaultMaxValueSize is the largest value accepted when Limits leaves it 0.
const DefaultMaxValueSize = 1 << 20

// Limits bounds what validation accepts.
type Limits struct {
	// MaxValueSize is the largest value in bytes; 0 means DefaultMaxValueSize.
	MaxValueSize int
}

func (l Limits) maxValueSize() int {
	if l.MaxValueSize <= 0 {
		return DefaultMaxValueSize
	}
	return l.MaxValueSize
}

// Error is one secret's validation failure. It names the secret and the field,
// never the value.
type Error struct {
	ID     string
	Name   string
	Field  string
	Reason string
}

func (e *Error) Error() string {
	who := Label(e.Name)
	if who == "" {
		who = "(unnamed)"
	}
	if e.ID != "" {
		who += " (id " + e.ID + ")"
	}
	return fmt.Sprintf("secret %s: %s: %s", who, e.Field, e.Reason)
}

func invalid(s Secret, field, format string, args ...any) error {
	return &Error{ID: s.ID, Name: s.Name, Field: field, Reason: fmt.Sprintf(format, args...)}
}

// ValidEnvName reports whether name is a POSIX shell identifier:
// [A-Za-z_][A-Za-z0-9_]*.
func ValidEnvName(name string) bool {
	if name == "" || (name[0] >= '0' && name[0] <= '9') {
		return false
	}
	for i := 0; i < len(name); i++ {
		if !isWordByte(name[i]) {
			return false
		}
	}
	return true
}

func isWordByte(c byte) bool {
	return c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
}

// ValidateMeta checks everything about s but its value: the id, the scope
// and the mount. It returns nil or an *Error naming the first bad field. A
// secret with MountNone passes: it is skipped, not wrong. The name is a
// label, never checked (Label makes any name safe to show); ScopeUnspecified
// is valid and ranks lowest.
func ValidateMeta(s Secret) error {
	if s.ID == "" {
		return invalid(s, "id", "is empty")
	}
	if s.Scope < ScopeUnspecified || s.Scope > ScopeUser {
		return invalid(s, "scope", "is not a known scope")
	}
	t := s.Mount.Target
	switch s.Mount.Kind {
	case MountEnv:
		if !ValidEnvName(t) {
			return invalid(s, "environmentVariable", "%q is not a POSIX variable name", printable(t))
		}
		if why := EnvNameRefusal(t); why != "" {
			return invalid(s, "environmentVariable", "%s %s", t, why)
		}
	case MountFile:
		switch {
		case strings.IndexByte(t, 0) >= 0:
			return invalid(s, "filePath", "contains a NUL byte")
		case !path.IsAbs(t):
			return invalid(s, "filePath", "%q is not absolute", printable(t))
		case cleanPath(t) != t:
			return invalid(s, "filePath", "%q is not clean (want %q)", printable(t), printable(cleanPath(t)))
		case t == "/":
			return invalid(s, "filePath", "is the root directory")
		}
	case MountRegistry:
		if err := validHost(t); err != "" {
			return invalid(s, "containerRegistryBasicAuthHost", "%s", err)
		}
	case MountGitCredential:
		if err := validHost(t); err != "" {
			return invalid(s, "gitCredentialHost", "%s", err)
		}
	case MountAPIOnly, MountNone:
	default:
		return invalid(s, "mount", "unknown kind %d", int(s.Mount.Kind))
	}
	return nil
}

// ValidateValue checks s.Value against its mount and lim: the size cap for
// every kind, no NUL in an environment variable and a NAME=VALUE string no
// longer than MaxEnvString, and for a registry secret
// base64 of "user:password" with a non-empty user. It returns nil or an *Error.
func ValidateValue(s Secret, lim Limits) error {
	if n := len(s.Value); n > lim.maxValueSize() {
		return invalid(s, "value", "is %d bytes, over the limit of %d", n, lim.maxValueSize())
	}
	switch s.Mount.Kind {
	case MountEnv:
		if bytes.IndexByte(s.Value, 0) >= 0 {
			return invalid(s, "value", "contains a NUL byte, which no environment variable can hold")
		}
		if err := checkEnvString(s); err != nil {
			return err
		}
	case MountRegistry:
		if _, _, err := RegistryAuth(s.Value); err != nil {
			return invalid(s, "value", "%v", err)
		}
	}
	return nil
}

// Validate is ValidateMeta followed by ValidateValue.
func Validate(s Secret, lim Limits) error {
	if err := ValidateMeta(s); err != nil {
		return err
	}
	return ValidateValue(s, lim)
}

// RegistryAuth decodes a registry secret's value, base64("user:password"),
// into its user and password. The user must be non-empty; the password may be
// empty. Errors never contain the value.
func RegistryAuth(value []byte) (user, password string, err error) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(value)))
	if err != nil {
		return "", "", fmt.Errorf("is not base64 of user:password")
	}
	u, p, ok := strings.Cut(string(raw), ":")
	if !ok {
		return "", "", fmt.Errorf("decodes to no user:password pair (no ':')")
	}
	if u == "" {
		return "", "", fmt.Errorf("has an empty user")
	}
	return u, p, nil
}

// DockerHubKey is the key docker uses for Docker Hub in config.json auths.
const DockerHubKey = "https://index.docker.io/v1/"

// RegistryKey returns the canonical form of a registry host: lower case,
// without scheme or path, and Docker Hub's many names as DockerHubKey.
func RegistryKey(host string) string {
	h := strings.ToLower(strings.TrimSpace(host))
	h = strings.TrimPrefix(h, "https://")
	h = strings.TrimPrefix(h, "http://")
	if i := strings.IndexByte(h, '/'); i >= 0 {
		h = h[:i]
	}
	switch h {
	case "docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com":
		return DockerHubKey
	}
	return h
}

// validHost returns why host is not a usable registry or git host, or "".
func validHost(host string) string {
	if host == "" {
		return "is empty"
	}
	if len(host) > 255 {
		return "is longer than 255 characters"
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		if c <= ' ' || c >= 0x7f || c == '"' || c == '\\' {
			return fmt.Sprintf("%q has a character not allowed in a host", printable(host))
		}
	}
	if RegistryKey(host) == "" {
		return fmt.Sprintf("%q names no host", host)
	}
	return ""
}

// cleanPath is path.Clean, kept in one place so that conflict keys and
// validation agree.
func cleanPath(p string) string { return path.Clean(p) }

// printable shortens s and escapes what a terminal should not see, for error
// messages about names and paths (never values).
func printable(s string) string {
	const max = 200
	if len(s) > max {
		s = s[:max] + "..."
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
