package controlplane

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-cleanhttp"
	"github.com/hashicorp/go-retryablehttp"

	"github.com/secrets-agent/secrets-agent/internal/backoff"
	"github.com/secrets-agent/secrets-agent/internal/jsonerr"
	"github.com/secrets-agent/secrets-agent/internal/safeopen"
)

// Defaults for the zero fields of Options.
const (
	DefaultCallTimeout      = 10 * time.Second
	DefaultRetryMax         = 4
	DefaultRetryWaitMin     = 200 * time.Millisecond
	DefaultRetryWaitMax     = 5 * time.Second
	DefaultMaxResponseBytes = 8 << 20
	DefaultMaxLineBytes     = 64 << 10
	DefaultUserAgent        = "secrets-agent"
	DefaultKeepAlive        = 15 * time.Second
	DefaultPingInterval     = 15 * time.Second
	DefaultPingTimeout      = 10 * time.Second

	// MaxRetryAfter caps how long a server's Retry-After makes the client
	// wait before the next attempt. A longer request is waited for this long.
	MaxRetryAfter = 60 * time.Second

	// maxErrorBodyBytes bounds how much of an error response is read to find
	// its Connect code and message.
	maxErrorBodyBytes = 64 << 10
)

// Options configure a Client. Only BaseURL is required; every zero field
// takes its default.
type Options struct {
	// BaseURL is where the API lives; a call goes to BaseURL + Proc*
	// (e.g. http://127.0.0.1:7878 or https://app.gitpod.io/api). Must be
	// http or https.
	BaseURL string
	// TokenFile holds the environment's bearer token (surrounding white
	// space is ignored). New reads it; it is read again by ReloadToken and
	// whenever the server answers unauthenticated, after which that call is
	// retried once if the file now holds a different token. Empty means no
	// Authorization header is sent.
	TokenFile string
	// CallTimeout bounds each attempt of a unary call, the body read
	// included: every retry gets its own CallTimeout. The whole call is
	// bounded only by the caller's context. For WatchEvents it bounds the
	// wait for the response headers. Default 10s.
	CallTimeout time.Duration
	// RetryMax is how many times a unary call is retried after its first
	// attempt. Default 4. A negative value means no retries.
	RetryMax int
	// RetryWaitMin and RetryWaitMax bound the exponential backoff between
	// attempts (full jitter: a wait is uniform in [0, min(max, min·2^n)]).
	// Defaults 200ms and 5s. On 429 and 503 a Retry-After (seconds or an
	// HTTP date) is honoured instead, up to MaxRetryAfter; when it would
	// outlast the context's deadline, the server's error is returned at once
	// rather than waited for. A context that ends during any wait ends the
	// call with CodeCanceled or CodeDeadlineExceeded.
	RetryWaitMin time.Duration
	RetryWaitMax time.Duration
	// MaxResponseBytes caps a unary response body. A larger body fails the
	// call with CodeResourceExhausted; it is never read in part. Default
	// 8 MiB.
	MaxResponseBytes int64
	// MaxLineBytes caps one line of the WatchEvents stream, its newline
	// excluded. Default 64 KiB.
	MaxLineBytes int
	// KeepAlive is the TCP keepalive of every connection: idle this long, a
	// probe is sent every KeepAlive and the connection is dropped after 3
	// unanswered probes, so a peer that vanished is found even when nothing
	// is being sent. Default 15s; negative disables probes.
	KeepAlive time.Duration
	// PingInterval and PingTimeout detect a dead HTTP/2 connection (the
	// watch stream's included, which may be silent for hours): after
	// PingInterval without a frame the client sends a PING, and closes the
	// connection when no answer comes within PingTimeout. They apply when
	// the server speaks HTTP/2 (over TLS); an HTTP/1 connection relies on
	// KeepAlive. Defaults 15s and 10s; a negative PingInterval disables pings.
	PingInterval time.Duration
	PingTimeout  time.Duration
	// HTTPClient sends the requests. Default: a pooled client over
	// Transport(o). The client is copied; its Timeout is replaced by
	// CallTimeout for unary calls and by none for the stream.
	HTTPClient *http.Client
	// UserAgent is sent as User-Agent. Default "secrets-agent".
	UserAgent string
}

// ErrNoToken is wrapped by the error New and ReloadToken return when the
// token file cannot be read (a missing file wraps fs.ErrNotExist too) or holds
// no token. A daemon started before the platform wrote the token waits for it.
var ErrNoToken = errors.New("no token")

// Client calls the control plane's environment API (docs/ARCHITECTURE.md,
// "The control-plane contract"). It is safe for concurrent use.
//
// Unary calls (GetEnvironment, GetSecretValue) are retried, with backoff, on
// connection errors, 429 and 5xx, never on another 4xx and never once the
// context has ended. Every failure is an *Error: the Connect code from the
// response body (or inferred from the HTTP status), CodeUnavailable for a
// connection error with the cause wrapped, CodeDeadlineExceeded for a timeout,
// CodeCanceled when the context was canceled. No error, and nothing the client
// does, ever shows the token; the client does not log.
type Client struct {
	base      string
	tokenFile string
	token     atomic.Pointer[string]
	opts      Options
	retry     *retryablehttp.Client
	stream    *http.Client
	requests  atomic.Int64
	spec      specDecoder // GetEnvironment's, reusing the last answer's secrets
	lastSize  sync.Map    // procedure -> int64, the size of its last answer (readCapped's hint)
}

// New checks o, fills in defaults and reads the token file. It fails when
// BaseURL is not an http(s) URL with a host, or when the token file cannot be
// read or is empty; the error names the file, never the token.
func New(o Options) (*Client, error) {
	u, err := url.Parse(o.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("controlplane: base URL %q: must be an http or https URL with a host", o.BaseURL)
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = DefaultCallTimeout
	}
	if o.RetryMax == 0 {
		o.RetryMax = DefaultRetryMax
	} else if o.RetryMax < 0 {
		o.RetryMax = 0
	}
	if o.RetryWaitMin <= 0 {
		o.RetryWaitMin = DefaultRetryWaitMin
	}
	if o.RetryWaitMax <= 0 {
		o.RetryWaitMax = DefaultRetryWaitMax
	}
	if o.RetryWaitMax < o.RetryWaitMin {
		o.RetryWaitMax = o.RetryWaitMin
	}
	if o.MaxResponseBytes <= 0 {
		o.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if o.MaxLineBytes <= 0 {
		o.MaxLineBytes = DefaultMaxLineBytes
	}
	if o.UserAgent == "" {
		o.UserAgent = DefaultUserAgent
	}
	hc := o.HTTPClient
	if hc == nil {
		hc = &http.Client{Transport: Transport(o)}
	}
	unary, stream := *hc, *hc
	unary.Timeout = o.CallTimeout
	stream.Timeout = 0

	c := &Client{base: strings.TrimRight(o.BaseURL, "/"), tokenFile: o.TokenFile, opts: o, stream: &stream}
	if _, err := c.readToken(); err != nil {
		return nil, err
	}
	c.retry = &retryablehttp.Client{
		HTTPClient:   &unary,
		Logger:       nil, // the client never logs; errors go to the caller
		RetryWaitMin: o.RetryWaitMin,
		RetryWaitMax: o.RetryWaitMax,
		RetryMax:     o.RetryMax,
		RequestLogHook: func(retryablehttp.Logger, *http.Request, int) {
			c.requests.Add(1)
		},
		CheckRetry:   checkRetry,
		Backoff:      retryWait,
		ErrorHandler: c.finalError,
	}
	return c, nil
}

// Transport returns the transport New uses when o.HTTPClient is nil:
// cleanhttp's pooled transport (proxy from the environment, HTTP/2 over TLS)
// with o's TCP keepalive on the dialer and o's HTTP/2 health-check pings.
// Zero fields of o take their defaults. A test that needs its own TLS
// settings starts from it and passes it in an HTTPClient.
func Transport(o Options) *http.Transport {
	keep := o.KeepAlive
	if keep == 0 {
		keep = DefaultKeepAlive
	}
	ping, pingTimeout := o.PingInterval, o.PingTimeout
	if ping == 0 {
		ping = DefaultPingInterval
	}
	if pingTimeout <= 0 {
		pingTimeout = DefaultPingTimeout
	}
	t := cleanhttp.DefaultPooledTransport()
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: keep}
	if keep > 0 {
		d.KeepAliveConfig = net.KeepAliveConfig{Enable: true, Idle: keep, Interval: keep, Count: 3}
	}
	t.DialContext = d.DialContext
	t.ForceAttemptHTTP2 = true
	if ping > 0 {
		t.HTTP2 = &http.HTTP2Config{SendPingTimeout: ping, PingTimeout: pingTimeout}
	}
	return t
}

// Requests returns how many HTTP requests the client has sent so far, every
// attempt of every call counted, the stream's included.
func (c *Client) Requests() int64 { return c.requests.Load() }

// ReloadToken reads the token file again and uses its token from the next
// request on. With no TokenFile it does nothing and returns nil. On error the
// previous token stays in use; the error names the file, never the token.
func (c *Client) ReloadToken() error {
	_, err := c.readToken()
	return err
}

// maxTokenSize bounds the token file readToken reads.
const maxTokenSize = 64 << 10

// readToken reads the token file into c.token and reports whether the token
// changed.
func (c *Client) readToken() (changed bool, err error) {
	if c.tokenFile == "" {
		return false, nil
	}
	// Non-blocking and regular files only: a FIFO as the token file must
	// not hang a pass or a reload.
	b, err := safeopen.ReadPath(c.tokenFile, maxTokenSize)
	if err != nil {
		// The *PathError names the file and the cause, not the content.
		return false, fmt.Errorf("controlplane: %w: %w", ErrNoToken, err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return false, fmt.Errorf("controlplane: %w: token file %s is empty", ErrNoToken, c.tokenFile)
	}
	old := c.token.Swap(&tok)
	return old == nil || *old != tok, nil
}

func (c *Client) currentToken() string {
	if p := c.token.Load(); p != nil {
		return *p
	}
	return ""
}

// GetEnvironment returns the environment with its spec's secrets (without
// values). Unknown JSON fields are ignored. A spec secret unchanged since the
// last call is not decoded again (specDecoder): the result shares it with
// earlier results and is to be treated as read-only.
func (c *Client) GetEnvironment(ctx context.Context, environmentID string) (*Environment, error) {
	body, err := c.unary(ctx, ProcGetEnvironment, GetEnvironmentRequest{EnvironmentID: environmentID})
	if err != nil {
		return nil, err
	}
	env, err := c.spec.decode(body)
	if err != nil {
		return nil, &Error{Procedure: ProcGetEnvironment, Code: CodeInternal, HTTPStatus: http.StatusOK, Message: "decode response", Err: err}
	}
	return env, nil
}

// decodeEnvironment decodes a GetEnvironment response body. Unknown fields are
// ignored; the error describes where the body is malformed, never its content.
func decodeEnvironment(body []byte) (*Environment, error) {
	var r GetEnvironmentResponse
	if err := decodeJSON(body, &r); err != nil {
		return nil, err
	}
	return &r.Environment, nil
}

// GetSecretValue returns the value of the secret with id secretID, decoded
// with DecodeValue (valueBytes is preferred over value). The value appears in
// no error.
func (c *Client) GetSecretValue(ctx context.Context, secretID string) ([]byte, error) {
	body, err := c.unary(ctx, ProcGetSecretValue, GetSecretValueRequest{SecretID: secretID})
	if err != nil {
		return nil, err
	}
	var r GetSecretValueResponse
	if err := decodeJSON(body, &r); err != nil {
		return nil, &Error{Procedure: ProcGetSecretValue, Code: CodeInternal, HTTPStatus: http.StatusOK, Message: "decode response", Err: err}
	}
	v, err := DecodeValue(r.Value, r.ValueBytes)
	if err != nil {
		return nil, &Error{Procedure: ProcGetSecretValue, Code: CodeInternal, HTTPStatus: http.StatusOK, Message: "decode response", Err: err}
	}
	return v, nil
}

// decodeJSON unmarshals body into v. Its error says where and what kind of
// thing was wrong, never any byte of the body: a secret value may be in it.
func decodeJSON(body []byte, v any) error {
	err := json.Unmarshal(body, v)
	if err == nil {
		return nil
	}
	return fmt.Errorf("response is not valid JSON: %w", jsonerr.Scrub(err))
}

// unary sends one unary call and returns the body of its 200 response. On
// CodeUnauthenticated it re-reads the token file and, if the token changed,
// sends the call once more.
func (c *Client) unary(ctx context.Context, proc string, req any) ([]byte, error) {
	payload, err := json.Marshal(req)
	if err != nil {
		return nil, &Error{Procedure: proc, Code: CodeInternal, Message: "encode request", Err: err}
	}
	var body []byte
	err = c.withTokenRetry(proc, func() error {
		body, err = c.attempts(ctx, proc, payload)
		return err
	})
	return body, err
}

// withTokenRetry runs call; when it fails unauthenticated and the token file
// now holds a different token, it runs call once more. A failure to re-read
// the file is wrapped into the unauthenticated error.
func (c *Client) withTokenRetry(proc string, call func() error) error {
	err := call()
	if CodeOf(err) != CodeUnauthenticated || c.tokenFile == "" {
		return err
	}
	changed, rerr := c.readToken()
	if rerr != nil {
		var e *Error
		if errors.As(err, &e) && e.Err == nil {
			e.Err = rerr
		}
		return err
	}
	if !changed {
		return err
	}
	return call()
}

// attempts sends the call with retryablehttp: checkRetry decides, retryWait
// waits, readResponse reads each final answer inside the attempt (so a body
// that breaks is retried like a connection error) and finalError turns the
// last failure into an *Error.
func (c *Client) attempts(ctx context.Context, proc string, payload []byte) ([]byte, error) {
	// A []byte body is re-readable: retryablehttp rewinds it for each attempt.
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPost, c.base+proc, payload)
	if err != nil {
		return nil, &Error{Procedure: proc, Code: CodeInvalidArgument, Message: "build request", Err: err}
	}
	c.setHeaders(req.Header, ContentTypeJSON)
	var body []byte
	req.SetResponseHandler(func(resp *http.Response) error {
		if resp.StatusCode != http.StatusOK {
			return c.statusError(resp)
		}
		hint := resp.ContentLength
		if last, ok := c.lastSize.Load(proc); ok && hint < 0 {
			hint = last.(int64)
		}
		b, err := readCapped(resp.Body, c.opts.MaxResponseBytes, hint)
		if err != nil {
			return err
		}
		c.lastSize.Store(proc, int64(len(b)))
		body = b
		return nil
	})
	resp, err := c.retry.Do(req)
	if err != nil {
		return nil, c.withProcedure(proc, toError(err))
	}
	_ = resp.Body.Close()
	return body, nil
}

// setHeaders sets what every request carries.
func (c *Client) setHeaders(h http.Header, accept string) {
	h.Set("Content-Type", ContentTypeJSON)
	h.Set("Accept", accept)
	h.Set("User-Agent", c.opts.UserAgent)
	if tok := c.currentToken(); tok != "" {
		h.Set("Authorization", "Bearer "+tok)
	}
}

// withProcedure names proc in e and removes the token from its message in
// case a server echoed it back.
func (c *Client) withProcedure(proc string, e *Error) *Error {
	e.Procedure = proc
	if tok := c.currentToken(); tok != "" && strings.Contains(e.Message, tok) {
		e.Message = strings.ReplaceAll(e.Message, tok, "[redacted]")
	}
	return e
}

// readCapped reads all of r, failing with CodeResourceExhausted when r holds
// more than max bytes. Read errors are returned as they are. hint, when
// positive, is the size r is likely to have (its Content-Length, or the size
// of the procedure's last answer): the buffer starts that large, up to max,
// instead of growing from nothing (a 3 MiB spec grew it twenty times).
func readCapped(r io.Reader, max, hint int64) ([]byte, error) {
	var buf bytes.Buffer
	if hint > 0 {
		buf.Grow(int(min(hint, max) + 512)) // bytes.Buffer wants room for a last read that returns EOF
	}
	_, err := buf.ReadFrom(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	b := buf.Bytes()
	if int64(len(b)) > max {
		return nil, &Error{Code: CodeResourceExhausted, HTTPStatus: http.StatusOK,
			Message: fmt.Sprintf("response body is over the limit of %d bytes", max)}
	}
	return b, nil
}

// statusError reads (a bounded part of) a non-200 response and closes it. The
// code is the Connect body's when it has a known one, else inferred from the
// HTTP status.
func (c *Client) statusError(resp *http.Response) *Error {
	defer resp.Body.Close()
	e := &Error{Code: CodeFromHTTPStatus(resp.StatusCode), HTTPStatus: resp.StatusCode}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBodyBytes))
	var eb ErrorBody
	if json.Unmarshal(b, &eb) == nil {
		if known(Code(eb.Code)) {
			e.Code = Code(eb.Code)
		}
		e.Message = eb.Message
	}
	if e.Message == "" {
		e.Message = http.StatusText(resp.StatusCode)
	}
	return e
}

// known reports whether code is one of the Connect codes.
func known(code Code) bool {
	switch code {
	case CodeCanceled, CodeUnknown, CodeInvalidArgument, CodeDeadlineExceeded, CodeNotFound,
		CodeAlreadyExists, CodePermissionDenied, CodeResourceExhausted, CodeFailedPrecondition,
		CodeAborted, CodeOutOfRange, CodeUnimplemented, CodeInternal, CodeUnavailable,
		CodeDataLoss, CodeUnauthenticated:
		return true
	}
	return false
}

// finalError is retryablehttp's ErrorHandler: it turns the last attempt's
// outcome into an *Error once retries are over or not allowed. resp, when
// there is one, has not been read yet unless err already is an *Error.
func (c *Client) finalError(resp *http.Response, err error, _ int) (*http.Response, error) {
	var e *Error
	if errors.As(err, &e) {
		if resp != nil {
			_ = resp.Body.Close()
		}
		return nil, e
	}
	if err == nil && resp != nil {
		return nil, c.statusError(resp)
	}
	if resp != nil {
		_ = resp.Body.Close()
	}
	return nil, toError(err)
}

// toError returns err as an *Error: itself if it is one, CodeCanceled or
// CodeDeadlineExceeded for an ended context or a timeout, else
// CodeUnavailable. The cause is wrapped.
func toError(err error) *Error {
	var e *Error
	var ne net.Error
	switch {
	case errors.As(err, &e):
		return e
	case errors.Is(err, context.Canceled):
		return &Error{Code: CodeCanceled, Message: "call canceled", Err: err}
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return &Error{Code: CodeDeadlineExceeded, Message: "call timed out", Err: err}
	}
	return &Error{Code: CodeUnavailable, Message: "no answer from the control plane", Err: err}
}

// checkRetry is the retry policy. In order:
//
//  1. once ctx has ended, never retry (the ctx error is the outcome);
//  2. an *Error is a final answer (made from a non-200 response): no retry;
//  3. any other error is a connection error: retry, except a TLS certificate
//     that does not verify, which no retry will fix;
//  4. 429 and 5xx: retry, unless the Retry-After asked for would outlast ctx's
//     deadline (then the server's answer is returned at once);
//  5. anything else is final.
func checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil { // (1)
		return false, ctx.Err()
	}
	if err != nil {
		var e *Error
		if errors.As(err, &e) { // (2)
			return false, nil
		}
		var cert *tls.CertificateVerificationError
		return !errors.As(err, &cert), nil // (3)
	}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 { // (4)
		if wait, ok := retryAfter(resp); ok {
			if d, has := ctx.Deadline(); has && time.Until(d) < wait {
				return false, nil
			}
		}
		return true, nil
	}
	return false, nil // (5)
}

// retryWait is the wait before retry number attempt+1: the server's
// Retry-After on 429 and 503 (capped at MaxRetryAfter), otherwise exponential
// with full jitter, uniform in [0, min(max, min·2^attempt)].
func retryWait(min, max time.Duration, attempt int, resp *http.Response) time.Duration {
	if wait, ok := retryAfter(resp); ok {
		return wait
	}
	return backoff.Jitter(backoff.Ceiling(min, attempt, max))
}

// retryAfter returns the wait a 429 or 503 response asks for in Retry-After,
// as seconds or an HTTP date, capped at MaxRetryAfter. ok is false when resp
// is another status or has no valid header.
func retryAfter(resp *http.Response) (wait time.Duration, ok bool) {
	if resp == nil || (resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusServiceUnavailable) {
		return 0, false
	}
	h := strings.TrimSpace(resp.Header.Get("Retry-After"))
	if h == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(h, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		wait = time.Duration(min(secs, int64(MaxRetryAfter/time.Second))) * time.Second
	} else if t, err := http.ParseTime(h); err == nil {
		wait = max(time.Until(t), 0)
	} else {
		return 0, false
	}
	return min(wait, MaxRetryAfter), true
}

// post builds a POST of payload to proc with the call's headers; for the
// stream, which is sent without retryablehttp.
func (c *Client) post(ctx context.Context, proc string, payload []byte, accept string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+proc, bytes.NewReader(payload))
	if err != nil {
		return nil, err
	}
	c.setHeaders(req.Header, accept)
	return req, nil
}
