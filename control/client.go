package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Errors a Client returns, to be told apart with errors.Is.
var (
	// ErrUnreachable: no agent answered on the socket (no socket, nobody
	// listening, or the connection broke before an answer).
	ErrUnreachable = errors.New("secrets-agent is not reachable")
	// ErrRefused: the agent answered but does not serve this user (its
	// SO_PEERCRED check refused our uid).
	ErrRefused = errors.New("secrets-agent refused this user")
	// ErrWaitTimeout: Wait's timeout passed before the first pass was applied.
	ErrWaitTimeout = errors.New("timed out waiting for the first pass")
)

// NotFoundError is Credential's and GitCredential's answer for a host the
// agent does not serve.
type NotFoundError struct {
	Host string
}

func (e *NotFoundError) Error() string {
	return fmt.Sprintf("secrets-agent has no credentials for %s", e.Host)
}

// Client talks to a running agent over its status socket. Its zero value is
// not usable; make one with NewClient. It is safe for concurrent use.
type Client struct {
	path string
	http *http.Client
}

// NewClient returns a client of the agent listening on socketPath. It does
// not connect until a method is called.
func NewClient(socketPath string) *Client {
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	return &Client{
		path: socketPath,
		http: &http.Client{Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return dialer.DialContext(ctx, "unix", socketPath)
			},
			DisableCompression: true,
			MaxIdleConns:       1,
		}},
	}
}

// Path is the socket path the client connects to.
func (c *Client) Path() string { return c.path }

// Status returns the agent's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var st Status
	err := c.getJSON(ctx, http.MethodGet, routeStatus, nil, &st)
	return st, err
}

// Sync returns the report of a full pass that started after the call, as
// Backend.Sync does (joining one waiting to start, never the one in flight);
// a pass that failed is a report with Error set, not an error.
func (c *Client) Sync(ctx context.Context) (PassReport, error) {
	var rep PassReport
	err := c.getJSON(ctx, http.MethodPost, routeSync, nil, &rep)
	return rep, err
}

// Wait returns nil once the agent has applied its first pass (at once if it
// already has), ErrWaitTimeout when timeout passes first, ErrUnreachable when
// no agent answers, or ctx's error.
func (c *Client) Wait(ctx context.Context, timeout time.Duration) error {
	q := url.Values{"timeout": {timeout.String()}}
	resp, err := c.do(ctx, http.MethodGet, routeWait, q)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return nil
	case http.StatusGatewayTimeout:
		return fmt.Errorf("%w (%s)", ErrWaitTimeout, timeout)
	}
	return answerError(routeWait, resp)
}

// Env returns the current environment fragment in format "sh", "fish" or
// "dotenv". It holds secret values: the caller must not log it.
func (c *Client) Env(ctx context.Context, format string) ([]byte, error) {
	resp, err := c.do(ctx, http.MethodGet, routeEnv, url.Values{"format": {format}})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, answerError(routeEnv, resp)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%w: read %s: %w", ErrUnreachable, routeEnv, err)
	}
	return b, nil
}

// Credential returns the user and password the agent serves for a registry
// host (as docker names it: a host or URL). For a host it does not serve the
// error is a *NotFoundError.
func (c *Client) Credential(ctx context.Context, host string) (user, secret string, err error) {
	return c.credential(ctx, routeCredentials, host)
}

// GitCredential returns the user and password the agent serves to git for a
// host (host[:port], as git's credential protocol names it). For a host it
// does not serve the error is a *NotFoundError.
func (c *Client) GitCredential(ctx context.Context, host string) (user, secret string, err error) {
	return c.credential(ctx, routeGitCredentials, host)
}

// credential asks a credential route for host.
func (c *Client) credential(ctx context.Context, route, host string) (user, secret string, err error) {
	var cred Credential
	err = c.getJSON(ctx, http.MethodGet, route, url.Values{"host": {host}}, &cred)
	var ae *answerErr
	if errors.As(err, &ae) && ae.code == http.StatusNotFound {
		return "", "", &NotFoundError{Host: host}
	}
	return cred.Username, cred.Secret, err
}

// Hosts lists the registry hosts Credential answers for; empty when none.
func (c *Client) Hosts(ctx context.Context) ([]string, error) {
	var hosts []string
	err := c.getJSON(ctx, http.MethodGet, routeHosts, nil, &hosts)
	return hosts, err
}

// do sends one request. Any failure to get an answer is ErrUnreachable
// (unless ctx ended first: then ctx's error); a 403 is ErrRefused.
func (c *Client) do(ctx context.Context, method, route string, q url.Values) (*http.Response, error) {
	u := url.URL{Scheme: "http", Host: "secrets-agent", Path: route, RawQuery: q.Encode()}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, route, err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s %s: %w", method, route, ctx.Err())
		}
		return nil, fmt.Errorf("%w at %s: %w", ErrUnreachable, c.path, unwrapURLError(err))
	}
	if resp.StatusCode == http.StatusForbidden {
		defer resp.Body.Close()
		return nil, fmt.Errorf("%w: %w", ErrRefused, answerError(route, resp))
	}
	return resp, nil
}

// getJSON sends one request and decodes a 200 answer's JSON into out.
func (c *Client) getJSON(ctx context.Context, method, route string, q url.Values, out any) error {
	resp, err := c.do(ctx, method, route, q)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return answerError(route, resp)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s: decode answer: %w", route, err)
	}
	return nil
}

// answerErr is a non-2xx answer from the agent.
type answerErr struct {
	route string
	code  int
	msg   string
}

func (e *answerErr) Error() string {
	return fmt.Sprintf("%s: agent answered %d: %s", e.route, e.code, e.msg)
}

func answerError(route string, resp *http.Response) error {
	var body errorBody
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	msg := strings.TrimSpace(string(raw))
	if json.Unmarshal(raw, &body) == nil && body.Error != "" {
		msg = body.Error
	}
	return &answerErr{route: route, code: resp.StatusCode, msg: msg}
}

// unwrapURLError drops net/http's `Get "http://secrets-agent/...":` prefix,
// which names a host that does not exist.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
