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

// Environment is the part of an environment the agent reads.
type Environment struct {
	ID   string          `json:"id"`
	Spec EnvironmentSpec `json:"spec"`
}

// EnvironmentSpec is the part of an environment's spec the agent reads.
type EnvironmentSpec struct {
	Secrets []EnvironmentSpecSecret `json:"secrets,omitempty"`
}

// Wire names of the scopes.
const (
	ScopeOrganization   = "SCOPE_ORGANIZATION"
	ScopeProject        = "SCOPE_PROJECT"
	ScopeUser           = "SCOPE_USER"
	ScopeServiceAccount = "SCOPE_SERVICE_ACCOUNT"
	ScopeRunner         = "SCOPE_RUNNER"
)

var wireScopes = map[string]secrets.Scope{
	ScopeOrganization:   secrets.ScopeOrganization,
	ScopeProject:        secrets.ScopeProject,
	ScopeUser:           secrets.ScopeUser,
	ScopeServiceAccount: secrets.ScopeServiceAccount,
	ScopeRunner:         secrets.ScopeRunner,
}

// WireScope returns the wire name of s ("SCOPE_USER"), or "SCOPE_UNSPECIFIED".
func WireScope(s secrets.Scope) string {
	for w, d := range wireScopes {
		if d == s {
			return w
		}
	}
	return "SCOPE_UNSPECIFIED"
}

// EnvironmentSpecSecret is one secret in an environment's spec. Exactly one of
// the mount fields is set; a pointer distinguishes "set to empty" (an error)
// from "absent". A mount field this agent does not know is dropped by the JSON
// decoder, which leaves the secret with no mount: it is skipped, not an error.
type EnvironmentSpecSecret struct {
	ID                             string  `json:"id"`
	Name                           string  `json:"name"`
	Scope                          string  `json:"scope,omitempty"`
	Session                        string  `json:"session,omitempty"`
	Source                         string  `json:"source,omitempty"`
	SourceRef                      string  `json:"sourceRef,omitempty"`
	EnvironmentVariable            *string `json:"environmentVariable,omitempty"`
	FilePath                       *string `json:"filePath,omitempty"`
	ContainerRegistryBasicAuthHost *string `json:"containerRegistryBasicAuthHost,omitempty"`
	GitCredentialHost              *string `json:"gitCredentialHost,omitempty"`
	APIOnly                        bool    `json:"apiOnly,omitempty"`
}

// Secret converts the wire form into the domain form, without a value. It
// fails, naming the field, when the scope is unknown or more than one mount is
// set; the caller reports that secret and goes on with the others.
func (w EnvironmentSpecSecret) Secret() (secrets.Secret, error) {
	s := secrets.Secret{ID: w.ID, Name: w.Name, Session: w.Session, Source: w.Source, SourceRef: w.SourceRef}
	scope, ok := wireScopes[w.Scope]
	if !ok {
		return s, &secrets.Error{ID: w.ID, Name: w.Name, Field: "scope", Reason: fmt.Sprintf("unknown scope %q", w.Scope)}
	}
	s.Scope = scope
	var mounts []secrets.Mount
	add := func(k secrets.MountKind, v *string) {
		if v != nil {
			mounts = append(mounts, secrets.Mount{Kind: k, Target: *v})
		}
	}
	add(secrets.MountEnv, w.EnvironmentVariable)
	add(secrets.MountFile, w.FilePath)
	add(secrets.MountRegistry, w.ContainerRegistryBasicAuthHost)
	add(secrets.MountGitCredential, w.GitCredentialHost)
	if w.APIOnly {
		mounts = append(mounts, secrets.Mount{Kind: secrets.MountAPIOnly})
	}
	switch len(mounts) {
	case 0:
		s.Mount = secrets.Mount{Kind: secrets.MountNone}
	case 1:
		s.Mount = mounts[0]
	default:
		return s, &secrets.Error{ID: w.ID, Name: w.Name, Field: "mount", Reason: fmt.Sprintf("has %d mounts, want exactly one", len(mounts))}
	}
	return s, nil
}

// SpecSecret converts a domain secret into its wire form (the value is not
// part of it).
func SpecSecret(s secrets.Secret) EnvironmentSpecSecret {
	w := EnvironmentSpecSecret{ID: s.ID, Name: s.Name, Scope: WireScope(s.Scope), Session: s.Session, Source: s.Source, SourceRef: s.SourceRef}
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

// Event operations and resource types the agent acts on.
const (
	OpCreate         = "RESOURCE_OPERATION_CREATE"
	OpUpdate         = "RESOURCE_OPERATION_UPDATE"
	OpDelete         = "RESOURCE_OPERATION_DELETE"
	ResEnvironment   = "RESOURCE_TYPE_ENVIRONMENT"
	ContentTypeJSON  = "application/json"
	ContentTypeJSONL = "application/jsonl"
)

// Event is one line of the WatchEvents stream.
type Event struct {
	Operation    string `json:"operation"`
	ResourceType string `json:"resourceType"`
	ResourceID   string `json:"resourceId"`
}

// ErrorBody is a Connect error as JSON: the HTTP status says little, Code says
// what happened.
type ErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message,omitempty"`
}
