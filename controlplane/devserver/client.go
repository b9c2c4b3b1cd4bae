package devserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/secrets-agent/secrets-agent/controlplane"
)

// AdminClient calls a devserver's admin procedures with the admin token. It
// does not retry: the CLI and benchmarks it serves want to see each failure.
type AdminClient struct {
	BaseURL string // http://host:port
	Token   string // the admin token
	HTTP    *http.Client

	// staleHint ends the error of a refused connection: DialDir sets it to
	// say the address came from a data dir whose server may have died.
	staleHint string
}

// NewAdminClient returns a client of the devserver at baseURL.
func NewAdminClient(baseURL, token string) *AdminClient {
	return &AdminClient{BaseURL: strings.TrimRight(baseURL, "/"), Token: token, HTTP: &http.Client{Timeout: 30 * time.Second}}
}

// DialDir returns a client of the devserver serving data dir dir, found
// through dir's address and admin-token files.
func DialDir(dir string) (*AdminClient, error) {
	addr, err := ReadAddress(dir)
	if err != nil {
		return nil, err
	}
	tok, err := ReadAdminToken(dir)
	if err != nil {
		return nil, err
	}
	c := NewAdminClient("http://"+addr, tok)
	c.staleHint = fmt.Sprintf("; %s is left from a server that stopped without removing it: start one with `secrets-devserver serve --data %s`",
		filepath.Join(dir, AddressFile), dir)
	return c, nil
}

// call posts req to proc and decodes the answer into resp. A Connect error
// answer is returned as a *controlplane.Error; a failure on the way as a
// *controlplane.Error with code unavailable.
func (c *AdminClient) call(ctx context.Context, proc string, req, resp any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("%s: encode request: %w", proc, err)
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, c.BaseURL+proc, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s: %w", proc, err)
	}
	hr.Header.Set("Content-Type", controlplane.ContentTypeJSON)
	hr.Header.Set("Authorization", "Bearer "+c.Token)
	res, err := c.HTTP.Do(hr)
	if errors.Is(err, syscall.ECONNREFUSED) {
		err = fmt.Errorf("the server at %s is not running (%w)%s", strings.TrimPrefix(c.BaseURL, "http://"), syscall.ECONNREFUSED, c.staleHint)
	}
	if err != nil {
		return &controlplane.Error{Procedure: proc, Code: controlplane.CodeUnavailable, Err: err}
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, maxRequestBody))
	if err != nil {
		return &controlplane.Error{Procedure: proc, Code: controlplane.CodeUnavailable, HTTPStatus: res.StatusCode, Err: err}
	}
	if res.StatusCode != http.StatusOK {
		var eb controlplane.ErrorBody
		if json.Unmarshal(data, &eb) != nil || eb.Code == "" {
			eb.Code = string(controlplane.CodeFromHTTPStatus(res.StatusCode))
		}
		return &controlplane.Error{Procedure: proc, Code: controlplane.Code(eb.Code), Message: eb.Message, HTTPStatus: res.StatusCode}
	}
	if err := json.Unmarshal(data, resp); err != nil {
		return fmt.Errorf("%s: decode answer: %w", proc, err)
	}
	return nil
}

// CreateSecret creates a secret and returns it (without its value).
func (c *AdminClient) CreateSecret(ctx context.Context, req CreateSecretRequest) (Secret, error) {
	var resp CreateSecretResponse
	err := c.call(ctx, ProcCreateSecret, req, &resp)
	return resp.Secret, err
}

// ListSecrets lists the secrets of one owner, or all when scope is nil,
// following the pages to the last.
func (c *AdminClient) ListSecrets(ctx context.Context, scope *SecretScope) ([]Secret, error) {
	req := ListSecretsRequest{Filter: ListSecretsFilter{Scope: scope}, Pagination: PaginationRequest{PageSize: MaxPageSize}}
	var all []Secret
	for {
		var resp ListSecretsResponse
		if err := c.call(ctx, ProcListSecrets, req, &resp); err != nil {
			return all, err
		}
		all = append(all, resp.Secrets...)
		if resp.Pagination.NextToken == "" {
			return all, nil
		}
		req.Pagination.Token = resp.Pagination.NextToken
	}
}

// UpdateSecretValue sets the value of secret id and returns the secret; its
// session is new exactly when the value differs from the stored one.
func (c *AdminClient) UpdateSecretValue(ctx context.Context, id string, value []byte) (Secret, error) {
	req := UpdateSecretValueRequest{SecretID: id}
	req.Value, req.ValueBytes = controlplane.EncodeValue(value)
	var resp UpdateSecretValueResponse
	err := c.call(ctx, ProcUpdateSecretValue, req, &resp)
	return resp.Secret, err
}

// DeleteSecret deletes secret id.
func (c *AdminClient) DeleteSecret(ctx context.Context, id string) error {
	return c.call(ctx, ProcDeleteSecret, DeleteSecretRequest{SecretID: id}, &DeleteSecretResponse{})
}

// CreateEnvironment creates an environment of an organization, project
// (may be "") and user, and returns its id and token.
func (c *AdminClient) CreateEnvironment(ctx context.Context, org, project, user string) (CreateEnvironmentResponse, error) {
	var resp CreateEnvironmentResponse
	err := c.call(ctx, ProcCreateEnvironment, CreateEnvironmentRequest{OrganizationID: org, ProjectID: project, UserID: user}, &resp)
	return resp, err
}
