// Package secrets is the domain of secrets-agent: what a secret is, where it
// is mounted, which scopes exist and how they rank, and how the secrets visible
// to one environment resolve to the set that is applied. It imports nothing of
// ours; every other package builds on it.
package secrets

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Scope is the level a secret was stored at. Scopes are ordered: a secret at a
// higher scope shadows one at a lower scope that targets the same mount.
//
// The order, highest first, is
//
//	user > service account > project > organization > runner
//
// User secrets win over project secrets, which win over organization secrets,
// as Ona documents. A service account is the principal an environment runs as
// when no person owns it, so its secrets rank like a user's, just below it (an
// environment has one or the other). Runner secrets are set by the
// infrastructure that hosts the environment and are the most general default,
// so they rank low. A secret whose scope the control plane left out (proto3
// JSON omits a zero enum) or sent as SCOPE_UNSPECIFIED is ScopeUnspecified: it
// is valid and ranks lowest of all, below runner, so any secret that says
// where it comes from shadows it.
type Scope int

// The scopes, in increasing precedence.
const (
	ScopeUnspecified Scope = iota
	ScopeRunner
	ScopeOrganization
	ScopeProject
	ScopeServiceAccount
	ScopeUser
)

var scopeNames = map[Scope]string{
	ScopeUnspecified:    "unspecified",
	ScopeRunner:         "runner",
	ScopeOrganization:   "organization",
	ScopeProject:        "project",
	ScopeServiceAccount: "service_account",
	ScopeUser:           "user",
}

// String returns the scope's short lower-case name ("user", "project", ...).
func (s Scope) String() string {
	if n, ok := scopeNames[s]; ok {
		return n
	}
	return fmt.Sprintf("scope(%d)", int(s))
}

// ParseScope parses a short name as String returns it. It returns an error for
// any other word, including "unspecified": a secret is never stored without
// a scope, it only arrives without one.
func ParseScope(name string) (Scope, error) {
	for s, n := range scopeNames {
		if n == name && s != ScopeUnspecified {
			return s, nil
		}
	}
	return ScopeUnspecified, fmt.Errorf("unknown scope %q", name)
}

// MountKind is where a secret goes inside the environment.
type MountKind int

// The mount kinds. MountNone is a secret with no mount this agent knows (for
// example a kind added to the control plane after this agent was built); it is
// skipped, not an error.
const (
	MountNone MountKind = iota
	MountEnv
	MountFile
	MountRegistry
	MountGitCredential
	MountAPIOnly
)

var mountNames = map[MountKind]string{
	MountNone:          "none",
	MountEnv:           "env",
	MountFile:          "file",
	MountRegistry:      "registry",
	MountGitCredential: "git_credential",
	MountAPIOnly:       "api_only",
}

// String returns the kind's short name ("env", "file", "registry", ...).
func (k MountKind) String() string {
	if n, ok := mountNames[k]; ok {
		return n
	}
	return fmt.Sprintf("mount(%d)", int(k))
}

// Mount is the one place a secret is delivered to. Target is the environment
// variable's name, the file's absolute path, or the registry or git host; it is
// empty for MountAPIOnly and MountNone.
type Mount struct {
	Kind   MountKind
	Target string
}

// String returns "kind:target", or just the kind when there is no target.
func (m Mount) String() string {
	if m.Target == "" {
		return m.Kind.String()
	}
	return m.Kind.String() + ":" + m.Target
}

// Key is what two secrets must share to conflict: the kind and the target in
// canonical form (a cleaned path, a canonical registry host). Secrets that are
// never injected (API-only, unknown kinds) have no key and never conflict.
func (m Mount) Key() (string, bool) {
	k, ok := m.key()
	if !ok {
		return "", false
	}
	return keyPrefixes[k.kind] + k.target, true
}

// Canonical returns m with its target in the form Key compares (a clean
// path, a lower-case host, ...): two mounts share a key exactly when their
// Canonical forms are equal. Unlike Key it builds no string when the target
// is already canonical. false when m has no key.
func (m Mount) Canonical() (Mount, bool) {
	k, ok := m.key()
	return Mount{Kind: k.kind, Target: k.target}, ok
}

// keyPrefixes name the kind in Mount.Key.
var keyPrefixes = map[MountKind]string{
	MountEnv:           "env:",
	MountFile:          "file:",
	MountRegistry:      "registry:",
	MountGitCredential: "git:",
}

// mountKey is Mount.Key as a comparable struct: building it allocates
// nothing when the target is already canonical.
type mountKey struct {
	kind   MountKind
	target string
}

// key returns the kind and canonical target of Mount.Key; false when m has
// none.
func (m Mount) key() (mountKey, bool) {
	switch m.Kind {
	case MountEnv:
		return mountKey{m.Kind, m.Target}, true
	case MountFile:
		return mountKey{m.Kind, cleanPath(m.Target)}, true
	case MountRegistry:
		return mountKey{m.Kind, RegistryKey(m.Target)}, true
	case MountGitCredential:
		return mountKey{m.Kind, GitHostKey(m.Target)}, true
	}
	return mountKey{}, false
}

// GitHostKey is how git credential hosts are compared: lower case, as git's
// URL matching does.
func GitHostKey(host string) string { return strings.ToLower(host) }

// Value is a secret's plaintext. It formats, prints and marshals as a
// redaction so that a value handed to a logger or a %v by mistake does not
// leak; use the bytes directly where the plaintext is meant.
type Value []byte

// String returns a redaction, never the value.
func (v Value) String() string { return fmt.Sprintf("[redacted %d bytes]", len(v)) }

// GoString returns a redaction, never the value.
func (v Value) GoString() string { return v.String() }

// Format writes a redaction for every verb.
func (v Value) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(v.String())) }

// MarshalJSON encodes a redaction, never the value.
func (v Value) MarshalJSON() ([]byte, error) { return []byte(`"` + v.String() + `"`), nil }

// MarshalText encodes a redaction, never the value.
func (v Value) MarshalText() ([]byte, error) { return []byte(v.String()), nil }

// CredentialProxy says that a secret is meant to reach the environment only
// through a proxy that adds it, as Header, to requests to TargetHosts: its
// real value must never be written into the environment.
type CredentialProxy struct {
	Header      string
	TargetHosts []string
}

// Secret is one secret as the control plane describes it to an environment.
// Session changes whenever Value changes, so an unchanged Session means the
// value need not be fetched again. Value is empty until it has been fetched.
//
// Name is a human-readable label ("GitHub token (personal)"), not an
// identifier: the mount carries the variable name, path or host. Show it
// through Label. A secret with a CredentialProxy takes part in precedence
// like any other, but its value is never materialised.
type Secret struct {
	ID              string
	Name            string
	Scope           Scope
	Session         string
	Source          string
	SourceRef       string
	Mount           Mount
	CredentialProxy *CredentialProxy
	Value           Value
}

// Ref identifies a secret without its value, for reports and status.
type Ref struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Scope string `json:"scope"`
}

// Ref returns the secret's identity without its value.
func (s Secret) Ref() Ref { return Ref{ID: s.ID, Name: s.Name, Scope: s.Scope.String()} }

// String describes the secret by name (as Label shows it), scope and id;
// never by value.
func (s Secret) String() string {
	return fmt.Sprintf("%s (%s, id %s)", Label(s.Name), s.Scope, s.ID)
}

// maxLabel is how many bytes of a name Label keeps.
const maxLabel = 128

// Label returns name fit to show in status and logs: control characters
// (newlines, escape sequences) replaced by U+FFFD, invalid UTF-8 likewise,
// and at most maxLabel bytes, cut on a rune boundary and marked with "...".
// A name is a human-readable label chosen by whoever stored the secret; it
// is never used to address anything.
func Label(name string) string {
	var b strings.Builder
	for _, r := range strings.ToValidUTF8(name, "\uFFFD") {
		if unicode.IsControl(r) || r == utf8.RuneError {
			r = '\uFFFD'
		}
		if b.Len()+utf8.RuneLen(r) > maxLabel {
			b.WriteString("...")
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}
