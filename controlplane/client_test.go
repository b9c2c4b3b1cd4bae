package controlplane

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/secrets-agent/secrets-agent/secrets"
)

// server is a real HTTP server on 127.0.0.1:0 whose handler learns which
// attempt (1-based) it is answering.
type server struct {
	*httptest.Server
	hits atomic.Int64
}

func serve(t *testing.T, h func(w http.ResponseWriter, r *http.Request, n int)) *server {
	t.Helper()
	s := &server{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// With the body read, the server notices a client that hangs up
		// and ends r.Context(), which hanging handlers wait for.
		_, _ = io.Copy(io.Discard, r.Body)
		h(w, r, int(s.hits.Add(1)))
	}))
	t.Cleanup(s.Close)
	return s
}

const testToken = "tok-1-do-not-print"

// newClient returns a client of url with a token file holding testToken and
// fast retries; opt may change the options.
func newClient(t *testing.T, url string, opt func(*Options)) (*Client, string) {
	t.Helper()
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(testToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	o := Options{BaseURL: url, TokenFile: tokenFile, RetryWaitMin: time.Millisecond, RetryWaitMax: 10 * time.Millisecond}
	if opt != nil {
		opt(&o)
	}
	c, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c, tokenFile
}

func writeConnectError(w http.ResponseWriter, code Code, msg string) {
	w.Header().Set("Content-Type", ContentTypeJSON)
	w.WriteHeader(code.HTTPStatus())
	_ = json.NewEncoder(w).Encode(ErrorBody{Code: string(code), Message: msg})
}

func writeEnv(w http.ResponseWriter, id string) {
	w.Header().Set("Content-Type", ContentTypeJSON)
	_ = json.NewEncoder(w).Encode(GetEnvironmentResponse{Environment: Environment{ID: id}})
}

func ctx10s(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func wantCode(t *testing.T, err error, code Code) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a *controlplane.Error", err, err)
	}
	if e.Code != code {
		t.Fatalf("code = %s, want %s (error %v)", e.Code, code, err)
	}
	return e
}

func TestRequestCarriesMethodHeadersTokenAndBody(t *testing.T) {
	type seen struct {
		r    *http.Request
		body string
	}
	ch := make(chan seen, 1)
	srv := httptest.NewServer(http.StripPrefix("/api", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ch <- seen{r.Clone(context.Background()), string(body)}
		writeEnv(w, "env-1")
	})))
	t.Cleanup(srv.Close)
	c, _ := newClient(t, srv.URL+"/api/", nil)
	if _, err := c.GetEnvironment(ctx10s(t), "env-1"); err != nil {
		t.Fatal(err)
	}
	got := <-ch
	checks := map[string][2]string{
		"method":        {got.r.Method, http.MethodPost},
		"path":          {got.r.URL.Path, ProcGetEnvironment},
		"content type":  {got.r.Header.Get("Content-Type"), ContentTypeJSON},
		"authorization": {got.r.Header.Get("Authorization"), "Bearer " + testToken},
		"user agent":    {got.r.Header.Get("User-Agent"), DefaultUserAgent},
		"body":          {got.body, `{"environmentId":"env-1"}`},
	}
	for what, v := range checks {
		if v[0] != v[1] {
			t.Errorf("%s = %q, want %q", what, v[0], v[1])
		}
	}
}

func TestRetriesConnectionErrors(t *testing.T) {
	srv := serve(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n <= 2 {
			// Drop the connection without an answer: a real connection error.
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				_ = conn.Close()
			}
			return
		}
		writeEnv(w, "env-1")
	})
	c, _ := newClient(t, srv.URL, nil)
	env, err := c.GetEnvironment(ctx10s(t), "env-1")
	if err != nil {
		t.Fatalf("GetEnvironment: %v", err)
	}
	if env.ID != "env-1" {
		t.Errorf("id = %q", env.ID)
	}
	if n := srv.hits.Load(); n != 3 {
		t.Errorf("server saw %d attempts, want 3", n)
	}
	if n := c.Requests(); n != 3 {
		t.Errorf("Requests() = %d, want 3", n)
	}
}

func TestConnectionRefusedIsUnavailableAfterAllRetries(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close() // nothing listens there now
	c, _ := newClient(t, "http://"+addr, func(o *Options) { o.RetryMax = 2 })
	_, err = c.GetEnvironment(ctx10s(t), "env-1")
	e := wantCode(t, err, CodeUnavailable)
	var op *net.OpError
	if !errors.As(e, &op) {
		t.Errorf("cause %v is not wrapped", e.Err)
	}
	if n := c.Requests(); n != 3 {
		t.Errorf("Requests() = %d, want 3 (first attempt + 2 retries)", n)
	}
}

func TestRetriesServerErrorsAndTooManyRequests(t *testing.T) {
	for _, status := range []int{500, 502, 503, 504, 429} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			srv := serve(t, func(w http.ResponseWriter, r *http.Request, n int) {
				if n <= 2 {
					w.WriteHeader(status)
					return
				}
				writeEnv(w, "env-1")
			})
			c, _ := newClient(t, srv.URL, nil)
			if _, err := c.GetEnvironment(ctx10s(t), "env-1"); err != nil {
				t.Fatalf("GetEnvironment: %v", err)
			}
			if n := srv.hits.Load(); n != 3 {
				t.Errorf("server saw %d attempts, want 3", n)
			}
		})
	}
}

func TestGivesUpAfterRetryMaxWithTheServersError(t *testing.T) {
	srv := serve(t, func(w http.ResponseWriter, r *http.Request, n int) {
		writeConnectError(w, CodeUnavailable, "draining")
	})
	c, _ := newClient(t, srv.URL, func(o *Options) { o.RetryMax = 3 })
	_, err := c.GetEnvironment(ctx10s(t), "env-1")
	e := wantCode(t, err, CodeUnavailable)
	if e.Message != "draining" || e.HTTPStatus != 503 || e.Procedure != ProcGetEnvironment {
		t.Errorf("error = %+v", e)
	}
	if n := srv.hits.Load(); n != 4 {
		t.Errorf("server saw %d attempts, want 4", n)
	}
}

func TestDoesNotRetryClientErrors(t *testing.T) {
	for _, tc := range []struct {
		status int
		code   Code
	}{
		{400, CodeInvalidArgument},
		{401, CodeUnauthenticated},
		{403, CodePermissionDenied},
		{404, CodeNotFound},
		{409, CodeAlreadyExists},
		{412, CodeFailedPrecondition},
	} {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			srv := serve(t, func(w http.ResponseWriter, r *http.Request, n int) {
				writeConnectError(w, tc.code, "no")
			})
			c, _ := newClient(t, srv.URL, nil)
			_, err := c.GetSecretValue(ctx10s(t), "s-1")
			wantCode(t, err, tc.code)
			if n := srv.hits.Load(); n != 1 {
				t.Errorf("server saw %d attempts, want 1", n)
			}
		})
	}
}

// retryAfterServer answers the first attempt with status and Retry-After set
// by header(), the second with an environment; times returns when each came.
func retryAfterServer(t *testing.T, status int, header func() string) (srv *server, times func() []time.Time) {
	var mu sync.Mutex
	var at []time.Time
	srv = serve(t, func(w http.ResponseWriter, r *http.Request, n int) {
		mu.Lock()
		at = append(at, time.Now())
		mu.Unlock()
		if n == 1 {
			w.Header().Set("Retry-After", header())
			code := CodeUnavailable // 503
			if status == http.StatusTooManyRequests {
				code = CodeResourceExhausted
			}
			writeConnectError(w, code, "slow down")
			return
		}
		writeEnv(w, "env-1")
	})
	return srv, func() []time.Time {
		mu.Lock()
		defer mu.Unlock()
		return append([]time.Time(nil), at...)
	}
}

func TestHonoursRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		header func() string
	}{
		{"seconds on 429", 429, func() string { return "1" }},
		{"date on 503", 503, func() string { return time.Now().Add(2 * time.Second).UTC().Format(http.TimeFormat) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, times := retryAfterServer(t, tc.status, tc.header)
			// Backoff alone would wait at most 10ms.
			c, _ := newClient(t, srv.URL, nil)
			if _, err := c.GetEnvironment(ctx10s(t), "env-1"); err != nil {
				t.Fatalf("GetEnvironment: %v", err)
			}
			at := times()
			if len(at) != 2 {
				t.Fatalf("server saw %d attempts, want 2", len(at))
			}
			// Both forms ask for at least about a second (an HTTP date has
			// whole seconds); only a lower bound is checked.
			if gap := at[1].Sub(at[0]); gap < 500*time.Millisecond {
				t.Errorf("retried after %s, want about a second", gap)
			}
		})
	}
}

func TestRetryAfterBeyondTheDeadlineReturnsTheServersAnswerAtOnce(t *testing.T) {
	srv, times := retryAfterServer(t, 429, func() string { return "30" })
	c, _ := newClient(t, srv.URL, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := c.GetEnvironment(ctx, "env-1")
	// Waiting would have ended in deadline_exceeded.
	wantCode(t, err, CodeResourceExhausted)
	if n := len(times()); n != 1 {
		t.Errorf("server saw %d attempts, want 1", n)
	}
}

func TestConnectCodesBecomeTypedErrors(t *testing.T) {
	codes := []Code{CodeCanceled, CodeUnknown, CodeInvalidArgument, CodeDeadlineExceeded, CodeNotFound,
		CodeAlreadyExists, CodePermissionDenied, CodeResourceExhausted, CodeFailedPrecondition, CodeAborted,
		CodeOutOfRange, CodeUnimplemented, CodeInternal, CodeUnavailable, CodeDataLoss, CodeUnauthenticated}
	for _, code := range codes {
		t.Run(string(code), func(t *testing.T) {
			srv := serve(t, func(w http.ResponseWriter, r *http.Request, n int) {
				writeConnectError(w, code, "about "+string(code))
			})
			c, _ := newClient(t, srv.URL, func(o *Options) { o.RetryMax = -1 })
			_, err := c.GetEnvironment(ctx10s(t), "env-1")
			e := wantCode(t, err, code)
			if e.Message != "about "+string(code) || e.HTTPStatus != code.HTTPStatus() {
				t.Errorf("error = %+v", e)
			}
			if CodeOf(err) != code {
				t.Errorf("CodeOf = %s", CodeOf(err))
			}
		})
	}
}

func TestStatusWithoutConnectBodyInfersTheCode(t *testing.T) {
	for _, tc := range []struct {
		status int
		body   string
		code   Code
	}{
		// As the Connect protocol maps a status without a code: a 404 is a
		// procedure the server does not have, a 400 a malformed exchange.
		{404, "<html>not here</html>", CodeUnimplemented},
		{400, "", CodeInternal},
		{403, `{"code":"no_such_code","message":"m"}`, CodePermissionDenied},
		{401, "", CodeUnauthenticated},
		{429, "", CodeUnavailable},
		{502, "", CodeUnavailable},
		{412, "", CodeUnknown},
		{418, "", CodeUnknown},
	} {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			srv := serve(t, func(w http.ResponseWriter, r *http.Request, n int) {
				w.WriteHeader(tc.status)
				_, _ = io.WriteString(w, tc.body)
			})
			c, _ := newClient(t, srv.URL, nil)
			_, err := c.GetEnvironment(ctx10s(t), "env-1")
			wantCode(t, err, tc.code)
		})
	}
}

func TestOversizedBodyIsAClearErrorNotAPartialRead(t *testing.T) {
	srv := serve(t, func(w http.ResponseWriter, r *http.Request, n int) {
		_, _ = fmt.Fprintf(w, `{"value":%q}`, strings.Repeat("x", 4096))
	})
	c, _ := newClient(t, srv.URL, func(o *Options) { o.MaxResponseBytes = 1024 })
	v, err := c.GetSecretValue(ctx10s(t), "s-1")
	e := wantCode(t, err, CodeResourceExhausted)
	if v != nil {
		t.Errorf("got %d bytes of value with the error", len(v))
	}
	if !strings.Contains(e.Error(), "1024") {
		t.Errorf("error %q does not state the limit", e)
	}
	if n := srv.hits.Load(); n != 1 {
		t.Errorf("server saw %d attempts, want 1", n)
	}
}

func TestUnknownFieldsAreIgnored(t *testing.T) {
	srv := serve(t, func(w http.ResponseWriter, r *http.Request, n int) {
		_, _ = io.WriteString(w, `{"environment":{"id":"env-1","metadata":{"x":1},"spec":{"version":"7",
			"secrets":[
			 {"id":"s1","name":"API_KEY","scope":"SCOPE_USER","session":"v1","environmentVariable":"API_KEY","futureFlag":true},
			 {"id":"s2","name":"SSH_KEY","scope":"SCOPE_PROJECT","holographicMount":"/x"}]}},"nextPage":"z"}`)
	})
	c, _ := newClient(t, srv.URL, nil)
	env, err := c.GetEnvironment(ctx10s(t), "env-1")
	if err != nil {
		t.Fatalf("GetEnvironment: %v", err)
	}
	if env.ID != "env-1" || len(env.Spec.Secrets) != 2 {
		t.Fatalf("env = %+v", env)
	}
	s1, err := env.Spec.Secrets[0].Secret()
	if err != nil || s1.Mount != (secrets.Mount{Kind: secrets.MountEnv, Target: "API_KEY"}) || s1.Scope != secrets.ScopeUser || s1.Session != "v1" {
		t.Errorf("s1 = %+v, %v", s1, err)
	}
	// A mount this agent does not know leaves the secret with none.
	s2, err := env.Spec.Secrets[1].Secret()
	if err != nil || s2.Mount.Kind != secrets.MountNone {
		t.Errorf("s2 = %+v, %v", s2, err)
	}
}

func TestGetSecretValueDecodesValueAndValueBytes(t *testing.T) {
	binary := []byte{0xff, 0x00, 'a', 0xfe, '\n'}
	for _, tc := range []struct {
		name string
		body string
		want []byte
	}{
		{"value", `{"value":"hunter2\n"}`, []byte("hunter2\n")},
		{"valueBytes preferred", `{"value":"ignored","valueBytes":"` + base64.StdEncoding.EncodeToString(binary) + `"}`, binary},
		{"empty", `{}`, []byte{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := serve(t, func(w http.ResponseWriter, r *http.Request, n int) { _, _ = io.WriteString(w, tc.body) })
			c, _ := newClient(t, srv.URL, nil)
			got, err := c.GetSecretValue(ctx10s(t), "s-1")
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(tc.want) {
				t.Errorf("value = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestUndecodableValueIsAnErrorWithoutTheValue(t *testing.T) {
	for _, body := range []string{
		`{"valueBytes":"c2VjcmV0!!!"}`,
		`{"value":"secret-Zq9", `,
		`{"value":12345678}`,
	} {
		srv := serve(t, func(w http.ResponseWriter, r *http.Request, n int) { _, _ = io.WriteString(w, body) })
		c, _ := newClient(t, srv.URL, nil)
		_, err := c.GetSecretValue(ctx10s(t), "s-1")
		wantCode(t, err, CodeInternal)
		for _, part := range []string{"c2VjcmV0", "secret-Zq9", "12345678"} {
			if strings.Contains(err.Error(), part) {
				t.Errorf("error %q shows the value", err)
			}
		}
	}
}

func TestReloadsTokenOnUnauthenticatedAndRetriesOnce(t *testing.T) {
	var accepted atomic.Value
	accepted.Store(testToken)
	srv := serve(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if r.Header.Get("Authorization") != "Bearer "+accepted.Load().(string) {
			writeConnectError(w, CodeUnauthenticated, "bad token")
			return
		}
		writeEnv(w, "env-1")
	})
	c, tokenFile := newClient(t, srv.URL, nil)
	ctx := ctx10s(t)
	if _, err := c.GetEnvironment(ctx, "env-1"); err != nil {
		t.Fatalf("first call: %v", err)
	}
	// Rotate: the server accepts only the new token, the file holds it.
	accepted.Store("tok-2")
	if err := os.WriteFile(tokenFile, []byte("tok-2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetEnvironment(ctx, "env-1"); err != nil {
		t.Fatalf("call after rotation: %v", err)
	}
	if n := srv.hits.Load(); n != 3 {
		t.Errorf("server saw %d requests, want 3 (ok, 401, ok)", n)
	}
	// The token is still wrong after a re-read: one retry is not made.
	accepted.Store("tok-3")
	_, err := c.GetEnvironment(ctx, "env-1")
	wantCode(t, err, CodeUnauthenticated)
	if n := srv.hits.Load(); n != 4 {
		t.Errorf("server saw %d requests, want 4", n)
	}
}

func TestTokenNeverAppearsInErrors(t *testing.T) {
	// A server that echoes what it was sent into its error message.
	srv := serve(t, func(w http.ResponseWriter, r *http.Request, n int) {
		writeConnectError(w, CodeUnauthenticated, "rejected "+r.Header.Get("Authorization"))
	})
	c, tokenFile := newClient(t, srv.URL, nil)
	var errs []error
	_, err := c.GetEnvironment(ctx10s(t), "env-1")
	errs = append(errs, err)
	_, err = c.WatchEvents(ctx10s(t), "env-1")
	errs = append(errs, err)
	// Unreadable token file after the server said unauthenticated.
	if err := os.Remove(tokenFile); err != nil {
		t.Fatal(err)
	}
	_, err = c.GetSecretValue(ctx10s(t), "s-1")
	errs = append(errs, err, c.ReloadToken())
	if !strings.Contains(err.Error(), tokenFile) {
		t.Errorf("error %q does not name the token file", err)
	}
	for _, err := range errs {
		if err == nil {
			t.Fatal("want an error")
		}
		if strings.Contains(err.Error(), testToken) || strings.Contains(fmt.Sprintf("%+v", err), testToken) {
			t.Errorf("error shows the token: %v", err)
		}
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte(" \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		o    Options
		want string
	}{
		{"no url", Options{}, "base URL"},
		{"ftp", Options{BaseURL: "ftp://x"}, "base URL"},
		{"no host", Options{BaseURL: "http://"}, "base URL"},
		{"missing token file", Options{BaseURL: "http://x", TokenFile: filepath.Join(dir, "nope")}, filepath.Join(dir, "nope")},
		{"empty token file", Options{BaseURL: "http://x", TokenFile: empty}, empty},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New: %v, want an error naming %q", err, tc.want)
			}
		})
	}
}

func TestCallTimeoutBoundsEachAttempt(t *testing.T) {
	srv := serve(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 1 {
			<-r.Context().Done() // hang until the client gives up on this attempt
			return
		}
		writeEnv(w, "env-1")
	})
	c, _ := newClient(t, srv.URL, func(o *Options) { o.CallTimeout = 200 * time.Millisecond })
	if _, err := c.GetEnvironment(ctx10s(t), "env-1"); err != nil {
		t.Fatalf("GetEnvironment: %v", err)
	}
	if n := srv.hits.Load(); n != 2 {
		t.Errorf("server saw %d attempts, want 2", n)
	}
}

func TestHangingServerIsDeadlineExceeded(t *testing.T) {
	srv := serve(t, func(w http.ResponseWriter, r *http.Request, n int) { <-r.Context().Done() })
	c, _ := newClient(t, srv.URL, func(o *Options) { o.CallTimeout = 100 * time.Millisecond; o.RetryMax = 1 })
	_, err := c.GetEnvironment(ctx10s(t), "env-1")
	wantCode(t, err, CodeDeadlineExceeded)
}

func TestEndedContextIsCanceledAndNotRetried(t *testing.T) {
	srv := serve(t, func(w http.ResponseWriter, r *http.Request, n int) { w.WriteHeader(503) })
	c, _ := newClient(t, srv.URL, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.GetEnvironment(ctx, "env-1")
	wantCode(t, err, CodeCanceled)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v does not wrap context.Canceled", err)
	}
	if n := srv.hits.Load(); n != 0 {
		t.Errorf("server saw %d attempts, want 0", n)
	}
}
