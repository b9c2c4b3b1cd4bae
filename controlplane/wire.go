// Package controlplane speaks the part of the control plane's API that an
// environment uses (docs/ARCHITECTURE.md, "The control-plane contract"):
// Connect-protocol JSON over HTTP, one POST per call to
// {base}/{service}/{method}. This file holds the wire types, shared by
// the client and the reference server; client.go holds the client.
package controlplane

import (
	"encoding/base64"
	"fmt"
	"unicode/utf8"

	"github.com/secrets-agent/secrets-agent/secrets"
)

// Procedures, as paths below the base URL.
const (
	ProcGetEnvironment = "/gitpod.v1.EnvironmentService/GetEnvironment"
	ProcGetSecretValue = "/gitpod.v1.SecretService/GetSecretValue"
	ProcWatchEvents    = "/gitpod.v1.EventService/WatchEvents"
)

// GetEnvironmentRequest is the body of GetEnvironment.
type GetEnvironmentRequest struct {
	EnvironmentID string `json:"environmentId"`
}

// GetEnvironmentResponse is the answer of GetEnvironment.
type GetEnvironmentResponse struct {
	Environment Environment `json:"environment"`
}

// Environment is an environment as GetEnvironment answers it. Ona's message
// has many more fields (metadata, spec and status each hold more than this);
// the decoder ignores what is not listed here, so newer servers keep working.
// The agent acts on Spec.Secrets only.
type Environment struct {
	ID       string              `json:"id"`
	Metadata EnvironmentMetadata `json:"metadata,omitzero"`
	Spec     EnvironmentSpec     `json:"spec"`
	Status   EnvironmentStatus   `json:"status,omitzero"`
}

// EnvironmentMetadata is the part of an environment's metadata the agent
// shows in its logs.
type EnvironmentMetadata struct {
	OrganizationID string  `json:"organizationId,omitempty"`
	ProjectID      string  `json:"projectId,omitempty"`
	Creator        Subject `json:"creator,omitzero"`
}

// Subject is who did something: an id and its principal
// ("PRINCIPAL_USER", "PRINCIPAL_SERVICE_ACCOUNT", ...).
type Subject struct {
	ID        string `json:"id,omitempty"`
	Principal string `json:"principal,omitempty"`
}

// EnvironmentStatus is the part of an environment's status the agent reads.
type EnvironmentStatus struct {
	Phase string `json:"phase,omitempty"` // "ENVIRONMENT_PHASE_RUNNING", ...
}

// EnvironmentSpec is the part of an environment's spec the agent reads.
type EnvironmentSpec struct {
	Secrets []EnvironmentSpecSecret `json:"secrets,omitempty"`
}

// Wire names of the scopes. A secret may carry none: proto3 JSON leaves a
// zero enum out, and ScopeUnspecified is that zero.
const (
	ScopeUnspecified    = "SCOPE_UNSPECIFIED"
	ScopeOrganization   = "SCOPE_ORGANIZATION"
	ScopeProject        = "SCOPE_PROJECT"
	ScopeUser           = "SCOPE_USER"
	ScopeServiceAccount = "SCOPE_SERVICE_ACCOUNT"
	ScopeRunner         = "SCOPE_RUNNER"
)

var wireScopes = map[string]secrets.Scope{
	"":                  secrets.ScopeUnspecified,
	ScopeUnspecified:    secrets.ScopeUnspecified,
	ScopeOrganization:   secrets.ScopeOrganization,
	ScopeProject:        secrets.ScopeProject,
	ScopeUser:           secrets.ScopeUser,
	ScopeServiceAccount: secrets.ScopeServiceAccount,
	ScopeRunner:         secrets.ScopeRunner,
}

// WireScope returns the wire name of s ("SCOPE_USER"), or "" for
// secrets.ScopeUnspecified and any unknown scope: proto3 JSON leaves a zero
// enum out.
func WireScope(s secrets.Scope) string {
	for w, d := range wireScopes {
		if d == s && w != "" && w != ScopeUnspecified {
			return w
		}
	}
	return ""
}

// EnvironmentSpecSecret is one secret in an environment's spec. Exactly one of
// the mount fields is set; a pointer distinguishes "set to empty" (an error)
// from "absent". A mount field this agent does not know is dropped by the JSON
// decoder, which leaves the secret with no mount: it is skipped, not an error.
// Scope may be absent (lowest precedence). Name is a human-readable label.
// CredentialProxy, when present, means the value must never be written into
// the environment.
type EnvironmentSpecSecret struct {
	ID                             string           `json:"id"`
	Name                           string           `json:"name"`
	Scope                          string           `json:"scope,omitempty"`
	Session                        string           `json:"session,omitempty"`
	Source                         string           `json:"source,omitempty"`
	SourceRef                      string           `json:"sourceRef,omitempty"`
	EnvironmentVariable            *string          `json:"environmentVariable,omitempty"`
	FilePath                       *string          `json:"filePath,omitempty"`
	ContainerRegistryBasicAuthHost *string          `json:"containerRegistryBasicAuthHost,omitempty"`
	GitCredentialHost              *string          `json:"gitCredentialHost,omitempty"`
	APIOnly                        bool             `json:"apiOnly,omitempty"`
	CredentialProxy                *CredentialProxy `json:"credentialProxy,omitempty"`
}

// CredentialProxy is a spec secret's credentialProxy object: a proxy is to
// add the secret as Header to requests to TargetHosts, and the environment
// gets a dummy.
type CredentialProxy struct {
	Header      string   `json:"header,omitempty"`
	TargetHosts []string `json:"targetHosts,omitempty"`
}

// Secret converts the wire form into the domain form, without a value. It
// fails, naming the field, when the scope is unknown or more than one mount is
// set; the caller reports that secret and goes on with the others.
func (w EnvironmentSpecSecret) Secret() (secrets.Secret, error) {
	s := secrets.Secret{ID: w.ID, Name: w.Name, Session: w.Session, Source: w.Source, SourceRef: w.SourceRef}
	if p := w.CredentialProxy; p != nil {
		s.CredentialProxy = &secrets.CredentialProxy{Header: p.Header, TargetHosts: p.TargetHosts}
	}
	scope, ok := wireScopes[w.Scope]
	if !ok {
		return s, &secrets.Error{ID: w.ID, Name: w.Name, Field: "scope", Reason: fmt.Sprintf("unknown scope %q", w.Scope)}
	}
	s.Scope = scope
	m, n := w.Mount()
	if n > 1 {
		return s, &secrets.Error{ID: w.ID, Name: w.Name, Field: "mount", Reason: fmt.Sprintf("has %d mounts, want exactly one", n)}
	}
	s.Mount = m
	return s, nil
}

// Mount returns the mount w sets (MountNone when none) and how many it sets:
// more than one is an error Secret reports, and then m is the last. It
// allocates nothing, as it runs for every secret of every spec.
func (w EnvironmentSpecSecret) Mount() (m secrets.Mount, n int) {
	m = secrets.Mount{Kind: secrets.MountNone}
	add := func(k secrets.MountKind, v *string) {
		if v != nil {
			n, m = n+1, secrets.Mount{Kind: k, Target: *v}
		}
	}
	add(secrets.MountEnv, w.EnvironmentVariable)
	add(secrets.MountFile, w.FilePath)
	add(secrets.MountRegistry, w.ContainerRegistryBasicAuthHost)
	add(secrets.MountGitCredential, w.GitCredentialHost)
	if w.APIOnly {
		n, m = n+1, secrets.Mount{Kind: secrets.MountAPIOnly}
	}
	return m, n
}

// SpecSecret converts a domain secret into its wire form (the value is not
// part of it).
func SpecSecret(s secrets.Secret) EnvironmentSpecSecret {
	w := EnvironmentSpecSecret{ID: s.ID, Name: s.Name, Scope: WireScope(s.Scope), Session: s.Session, Source: s.Source, SourceRef: s.SourceRef}
	if p := s.CredentialProxy; p != nil {
		w.CredentialProxy = &CredentialProxy{Header: p.Header, TargetHosts: p.TargetHosts}
	}
	t := s.Mount.Target
	switch s.Mount.Kind {
	case secrets.MountEnv:
		w.EnvironmentVariable = &t
	case secrets.MountFile:
		w.FilePath = &t
	case secrets.MountRegistry:
		w.ContainerRegistryBasicAuthHost = &t
	case secrets.MountGitCredential:
		w.GitCredentialHost = &t
	case secrets.MountAPIOnly:
		w.APIOnly = true
	}
	return w
}

// GetSecretValueRequest is the body of GetSecretValue.
type GetSecretValueRequest struct {
	SecretID string `json:"secretId"`
}

// GetSecretValueResponse is the answer of GetSecretValue.
//
// Value is the plaintext as a JSON string, as Ona's API sends it. A JSON
// string can only carry valid UTF-8, so for a value that is not, our servers
// send ValueBytes instead: the bytes in proto3 JSON's form for bytes
// (standard base64). A client prefers ValueBytes when it is present.
type GetSecretValueResponse struct {
	Value      string `json:"value,omitempty"`
	ValueBytes string `json:"valueBytes,omitempty"`
}

// EncodeValue fills Value or ValueBytes with v, whichever carries it exactly.
// The same rule serves every message with a value field pair.
func EncodeValue(v []byte) (value, valueBytes string) {
	if utf8.Valid(v) {
		return string(v), ""
	}
	return "", base64.StdEncoding.EncodeToString(v)
}

// DecodeValue is the inverse of EncodeValue. The error never holds the value.
func DecodeValue(value, valueBytes string) ([]byte, error) {
	if valueBytes == "" {
		return []byte(value), nil
	}
	b, err := base64.StdEncoding.DecodeString(valueBytes)
	if err != nil {
		return nil, fmt.Errorf("valueBytes: not standard base64")
	}
	return b, nil
}

// WatchEventsRequest is the body of WatchEvents.
type WatchEventsRequest struct {
	EnvironmentID string `json:"environmentId"`
}

// Event operations and resource types the agent acts on. Ona sends many
// more (RESOURCE_TYPE_TASK, RESOURCE_TYPE_SERVICE, ...,
// RESOURCE_OPERATION_UPDATE_STATUS); Event.Relevant says which matter.
const (
	OpUnspecified    = "RESOURCE_OPERATION_UNSPECIFIED"
	OpCreate         = "RESOURCE_OPERATION_CREATE"
	OpUpdate         = "RESOURCE_OPERATION_UPDATE"
	OpDelete         = "RESOURCE_OPERATION_DELETE"
	ResEnvironment   = "RESOURCE_TYPE_ENVIRONMENT"
	ResSecret        = "RESOURCE_TYPE_SECRET"
	ContentTypeJSON  = "application/json"
	ContentTypeJSONL = "application/jsonl"
)

// Event is one line of the WatchEvents stream.
type Event struct {
	Operation    string `json:"operation,omitempty"`
	ResourceType string `json:"resourceType,omitempty"`
	ResourceID   string `json:"resourceId,omitempty"`
}

// Relevant reports whether e can change the secrets of environment envID, so
// that the spec must be read again: a create, update or delete of that
// environment (an event without a resource id counts as about it) or of any
// secret. Everything else is not: other resource types (tasks, services,
// runners, ...), other environments, status-only updates, keepalive lines
// (RESOURCE_OPERATION_UNSPECIFIED or empty) and any operation or type this
// agent does not know.
func (e Event) Relevant(envID string) bool {
	switch e.Operation {
	case OpCreate, OpUpdate, OpDelete:
	default:
		return false
	}
	switch e.ResourceType {
	case ResEnvironment:
		return e.ResourceID == "" || e.ResourceID == envID
	case ResSecret:
		return true
	}
	return false
}

// ErrorBody is a Connect error as JSON: the HTTP status says little, Code says
// what happened.
type ErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message,omitempty"`
}
