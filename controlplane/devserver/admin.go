package devserver

import (
	"errors"
	"fmt"
	"time"

	"github.com/secrets-agent/secrets-agent/controlplane"
	"github.com/secrets-agent/secrets-agent/secrets"
)

// Admin procedures, as paths below the base URL. They take the admin token
// (DIR/admin-token) as bearer token.
const (
	ProcCreateSecret      = "/gitpod.v1.SecretService/CreateSecret"
	ProcListSecrets       = "/gitpod.v1.SecretService/ListSecrets"
	ProcUpdateSecretValue = "/gitpod.v1.SecretService/UpdateSecretValue"
	ProcDeleteSecret      = "/gitpod.v1.SecretService/DeleteSecret"
	ProcCreateEnvironment = "/gitpod.v1.DevService/CreateEnvironment"
)

// SecretScope says who owns a secret, as Ona's API does: exactly one of the
// four ids is set. A service account's secrets are stored, but no devserver
// environment runs as a service account, so none sees them.
type SecretScope struct {
	OrganizationID   string `json:"organizationId,omitempty"`
	ProjectID        string `json:"projectId,omitempty"`
	UserID           string `json:"userId,omitempty"`
	ServiceAccountID string `json:"serviceAccountId,omitempty"`
}

// ScopeOf returns the wire form of a scope and owner.
func ScopeOf(scope secrets.Scope, owner string) SecretScope {
	switch scope {
	case secrets.ScopeOrganization:
		return SecretScope{OrganizationID: owner}
	case secrets.ScopeProject:
		return SecretScope{ProjectID: owner}
	case secrets.ScopeUser:
		return SecretScope{UserID: owner}
	case secrets.ScopeServiceAccount:
		return SecretScope{ServiceAccountID: owner}
	}
	return SecretScope{}
}

// Parse returns the scope and owner id. It fails, naming the field "scope",
// unless exactly one id is set.
func (sc SecretScope) Parse() (secrets.Scope, string, error) {
	var set []secrets.Scope
	var owner string
	for _, c := range []struct {
		scope secrets.Scope
		id    string
	}{{secrets.ScopeOrganization, sc.OrganizationID}, {secrets.ScopeProject, sc.ProjectID}, {secrets.ScopeUser, sc.UserID},
		{secrets.ScopeServiceAccount, sc.ServiceAccountID}} {
		if c.id != "" {
			set = append(set, c.scope)
			owner = c.id
		}
	}
	if len(set) != 1 {
		return secrets.ScopeUnspecified, "", &secrets.Error{Field: "scope", Reason: fmt.Sprintf("has %d of organizationId, projectId, userId, serviceAccountId set, want exactly one", len(set))}
	}
	return set[0], owner, nil
}

// SecretMount is the mount of a secret in the admin calls, with Ona's field
// names: exactly one is set. EnvironmentVariable true means the secret's name
// is the variable's name.
type SecretMount struct {
	EnvironmentVariable            bool   `json:"environmentVariable,omitempty"`
	FilePath                       string `json:"filePath,omitempty"`
	ContainerRegistryBasicAuthHost string `json:"containerRegistryBasicAuthHost,omitempty"`
	GitCredentialHost              string `json:"gitCredentialHost,omitempty"`
	APIOnly                        bool   `json:"apiOnly,omitempty"`
}

// MountOf returns the wire form of a mount.
func MountOf(m secrets.Mount) SecretMount {
	switch m.Kind {
	case secrets.MountEnv:
		return SecretMount{EnvironmentVariable: true}
	case secrets.MountFile:
		return SecretMount{FilePath: m.Target}
	case secrets.MountRegistry:
		return SecretMount{ContainerRegistryBasicAuthHost: m.Target}
	case secrets.MountGitCredential:
		return SecretMount{GitCredentialHost: m.Target}
	case secrets.MountAPIOnly:
		return SecretMount{APIOnly: true}
	}
	return SecretMount{}
}

// Parse returns the mount of a secret named name. It fails, naming the field
// "mount", unless exactly one mount is set.
func (m SecretMount) Parse(name string) (secrets.Mount, error) {
	var set []secrets.Mount
	if m.EnvironmentVariable {
		set = append(set, secrets.Mount{Kind: secrets.MountEnv, Target: name})
	}
	if m.FilePath != "" {
		set = append(set, secrets.Mount{Kind: secrets.MountFile, Target: m.FilePath})
	}
	if m.ContainerRegistryBasicAuthHost != "" {
		set = append(set, secrets.Mount{Kind: secrets.MountRegistry, Target: m.ContainerRegistryBasicAuthHost})
	}
	if m.GitCredentialHost != "" {
		set = append(set, secrets.Mount{Kind: secrets.MountGitCredential, Target: m.GitCredentialHost})
	}
	if m.APIOnly {
		set = append(set, secrets.Mount{Kind: secrets.MountAPIOnly})
	}
	if len(set) != 1 {
		return secrets.Mount{}, &secrets.Error{Name: name, Field: "mount", Reason: fmt.Sprintf("has %d of environmentVariable, filePath, containerRegistryBasicAuthHost, gitCredentialHost, apiOnly set, want exactly one", len(set))}
	}
	return set[0], nil
}

// Secret is a secret as the admin calls show it, in the shape of Ona's
// Secret message: never with its value. ProjectID repeats a project
// secret's owner, as Ona's deprecated field does. Session is a devserver
// addition; it changes exactly when the value changes.
type Secret struct {
	ID        string      `json:"id"`
	Name      string      `json:"name"`
	Scope     SecretScope `json:"scope"`
	ProjectID string      `json:"projectId,omitempty"`
	SecretMount
	Creator         controlplane.Subject          `json:"creator,omitzero"`
	Session         string                        `json:"session"`
	CreatedAt       time.Time                     `json:"createdAt"`
	UpdatedAt       time.Time                     `json:"updatedAt"`
	CredentialProxy *controlplane.CredentialProxy `json:"credentialProxy,omitempty"`
}

// Admin is the subject the devserver records as the creator of what its
// admin calls make: it has one administrator, the holder of the admin token.
var Admin = controlplane.Subject{ID: "devserver-admin", Principal: "PRINCIPAL_USER"}

// AdminSecret returns the admin view of r.
func AdminSecret(r Record) Secret {
	s := Secret{ID: r.ID, Name: r.Name, Scope: ScopeOf(r.Scope, r.Owner), SecretMount: MountOf(r.Mount),
		Creator: r.Creator, Session: r.Session, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
	if p := r.CredentialProxy; p != nil {
		s.CredentialProxy = &controlplane.CredentialProxy{Header: p.Header, TargetHosts: p.TargetHosts}
	}
	if r.Scope == secrets.ScopeProject {
		s.ProjectID = r.Owner
	}
	return s
}

// Record returns the scope, owner and mount of s as a Record (id, name,
// session and times copied).
func (s Secret) Record() (Record, error) {
	scope, owner, err := s.Scope.Parse()
	var se *secrets.Error
	if errors.As(err, &se) {
		se.Name = s.Name
	}
	if err != nil {
		return Record{}, err
	}
	m, err := s.SecretMount.Parse(s.Name)
	if err != nil {
		return Record{}, err
	}
	rec := Record{ID: s.ID, Name: s.Name, Scope: scope, Owner: owner, Mount: m, Creator: s.Creator, Session: s.Session, CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt}
	if p := s.CredentialProxy; p != nil {
		if p.Header == "" || len(p.TargetHosts) == 0 {
			return Record{}, &secrets.Error{Name: s.Name, Field: "credentialProxy", Reason: "needs a header and at least one target host"}
		}
		rec.CredentialProxy = &secrets.CredentialProxy{Header: p.Header, TargetHosts: p.TargetHosts}
	}
	return rec, nil
}

// CreateSecretRequest is the body of CreateSecret, in the shapes Ona's SDK
// sends: the owner in Scope (organizationId, projectId, userId or
// serviceAccountId), or in the deprecated top-level ProjectID. Value carries
// the plaintext as a JSON string; ValueBytes, base64, carries a value that is
// not UTF-8 (see controlplane.EncodeValue). Never log it.
type CreateSecretRequest struct {
	Name      string      `json:"name"`
	Scope     SecretScope `json:"scope"`
	ProjectID string      `json:"projectId,omitempty"` // deprecated by Ona: use Scope.ProjectID
	SecretMount
	// CredentialProxy makes the secret one that environments hand to a
	// credential proxy, mounting a placeholder instead of the value.
	CredentialProxy *controlplane.CredentialProxy `json:"credentialProxy,omitempty"`
	Value           string                        `json:"value,omitempty"`
	ValueBytes      string                        `json:"valueBytes,omitempty"`
}

// scope returns the request's scope, the deprecated ProjectID read as
// Scope.ProjectID when Scope is empty. Both set is an error unless they agree.
func (r CreateSecretRequest) scope() (SecretScope, error) {
	if r.ProjectID == "" {
		return r.Scope, nil
	}
	switch r.Scope {
	case SecretScope{}, SecretScope{ProjectID: r.ProjectID}:
		return SecretScope{ProjectID: r.ProjectID}, nil
	}
	return SecretScope{}, &secrets.Error{Name: r.Name, Field: "projectId", Reason: "the deprecated projectId disagrees with scope"}
}

// CreateSecretResponse is the answer of CreateSecret.
type CreateSecretResponse struct {
	Secret Secret `json:"secret"`
}

// Page sizes of ListSecrets, as Ona's pagination has them.
const (
	DefaultPageSize = 25
	MaxPageSize     = 100
)

// ListSecretsRequest is the body of ListSecrets; an empty filter lists all,
// a page of Pagination.PageSize (default DefaultPageSize, at most
// MaxPageSize) at a time from Pagination.Token.
type ListSecretsRequest struct {
	Filter     ListSecretsFilter `json:"filter"`
	Pagination PaginationRequest `json:"pagination,omitzero"`
}

// ListSecretsFilter narrows ListSecrets: to one owner when Scope is set, to
// the secrets of these projects when ProjectIDs is (the SDK's older filter).
type ListSecretsFilter struct {
	Scope      *SecretScope `json:"scope,omitempty"`
	ProjectIDs []string     `json:"projectIds,omitempty"`
}

// PaginationRequest asks for one page: PageSize items after the position
// Token (a NextToken from the previous page; empty for the first).
type PaginationRequest struct {
	PageSize int    `json:"pageSize,omitempty"`
	Token    string `json:"token,omitempty"`
}

// PaginationResponse says where the next page starts; NextToken is empty
// on the last page.
type PaginationResponse struct {
	NextToken string `json:"nextToken,omitempty"`
}

// ListSecretsResponse is one page of ListSecrets, sorted by scope, owner
// and name.
type ListSecretsResponse struct {
	Pagination PaginationResponse `json:"pagination"`
	Secrets    []Secret           `json:"secrets"`
}

// UpdateSecretValueRequest is the body of UpdateSecretValue.
type UpdateSecretValueRequest struct {
	SecretID   string `json:"secretId"`
	Value      string `json:"value,omitempty"`
	ValueBytes string `json:"valueBytes,omitempty"`
}

// UpdateSecretValueResponse is the answer of UpdateSecretValue. Ona's is
// empty; the devserver adds the secret, whose session shows whether the value
// changed.
type UpdateSecretValueResponse struct {
	Secret Secret `json:"secret"`
}

// DeleteSecretRequest is the body of DeleteSecret.
type DeleteSecretRequest struct {
	SecretID string `json:"secretId"`
}

// DeleteSecretResponse is the (empty) answer of DeleteSecret.
type DeleteSecretResponse struct{}

// CreateEnvironmentRequest is the body of DevService/CreateEnvironment.
// OrganizationID and UserID are required; ProjectID may be empty.
type CreateEnvironmentRequest struct {
	OrganizationID string `json:"organizationId"`
	ProjectID      string `json:"projectId,omitempty"`
	UserID         string `json:"userId"`
}

// CreateEnvironmentResponse is the answer of CreateEnvironment: the new
// environment's id and the bearer token its agent uses.
type CreateEnvironmentResponse struct {
	EnvironmentID string `json:"environmentId"`
	Token         string `json:"token"`
}

// decodeValue reads a value pair, refusing both halves at once.
func decodeValue(value, valueBytes string) ([]byte, error) {
	if value != "" && valueBytes != "" {
		return nil, &secrets.Error{Field: "value", Reason: "set value or valueBytes, not both"}
	}
	v, err := controlplane.DecodeValue(value, valueBytes)
	if err != nil {
		return nil, &secrets.Error{Field: "valueBytes", Reason: "is not standard base64"}
	}
	return v, nil
}
