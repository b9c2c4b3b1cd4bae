package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/secrets-agent/secrets-agent/secrets"
)

// seen is what an upstream server saw of the last request.
type seen struct {
	mu     sync.Mutex
	header http.Header
	proto  string
	host   string
	n      int
}

func (s *seen) last() (http.Header, string, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.header, s.proto, s.n
}

// upstream starts an HTTPS server (HTTP/1.1 and HTTP/2) with its own CA,
// that records each request's headers.
func upstream(t testing.TB) (*httptest.Server, *seen) {
	t.Helper()
	s := &seen{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.header, s.proto, s.host = r.Header.Clone(), r.Proto, r.Host
		s.n++
		s.mu.Unlock()
		_, _ = io.WriteString(w, "ok from upstream")
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, s
}

// fixture is a running proxy whose Dial sends every name in hosts to the
// address mapped to it, the way /etc/hosts would.
type fixture struct {
	p     *Proxy
	ca    *CA
	url   *url.URL
	logs  *observer.ObservedLogs
	hosts map[string]string // host name -> real host:port
}

func startProxy(t testing.TB, hosts map[string]string, extra ...*x509.Certificate) *fixture {
	t.Helper()
	ca, err := LoadCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.DebugLevel)
	f := &fixture{ca: ca, logs: logs, hosts: hosts}
	var d net.Dialer
	p, err := New(Options{CA: ca, Log: zap.New(core), ExtraRoots: extra,
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			h, _, _ := net.SplitHostPort(addr)
			if real, ok := hosts[h]; ok {
				addr = real
			}
			return d.DialContext(ctx, network, addr)
		}})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.Serve(l) }()
	t.Cleanup(func() { _ = p.Close() })
	f.p = p
	f.url = &url.URL{Scheme: "http", Host: l.Addr().String()}
	return f
}

// client is a client that uses the proxy and trusts its CA (as the
// environment's trust store would) plus roots.
func (f *fixture) client(h2 bool, roots ...*x509.Certificate) *http.Client {
	pool := x509.NewCertPool()
	pool.AddCert(f.ca.Certificate())
	for _, c := range roots {
		pool.AddCert(c)
	}
	tr := &http.Transport{Proxy: http.ProxyURL(f.url), TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: h2}
	if !h2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	return &http.Client{Transport: tr}
}

func get(t testing.TB, c *http.Client, u string, hdr http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// apiHost maps a made-up name to the upstream so the proxy, not the client,
// resolves it; the upstream's certificate has no such name, so only TLS
// verified by the proxy against ExtraRoots... is made for the name we use.
const apiHost = "api.example.test"

func cred(id, header string, hosts ...string) Credential {
	return Credential{SecretID: id, Header: header, TargetHosts: hosts, Placeholder: NewPlaceholder(),
		Value: secrets.Value("real-value-of-" + id)}
}

// upstreamFor starts an upstream whose certificate is valid for apiHost (a
// leaf of its own test CA), and a proxy that maps apiHost to it.
func upstreamFor(t testing.TB, names ...string) (*fixture, *seen, string, *x509.Certificate) {
	t.Helper()
	upCA, err := LoadCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := &seen{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.header, s.proto, s.host = r.Header.Clone(), r.Proto, r.Host
		s.n++
		s.mu.Unlock()
		_, _ = io.WriteString(w, "ok from upstream")
	}))
	srv.EnableHTTP2 = true
	var certs []tls.Certificate
	for _, n := range names {
		leaf, err := upCA.Leaf(n)
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, *leaf)
	}
	srv.TLS = &tls.Config{Certificates: certs}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	hosts := map[string]string{}
	for _, n := range names {
		hosts[n] = srv.Listener.Addr().String()
	}
	f := startProxy(t, hosts, upCA.Certificate())
	return f, s, port, upCA.Certificate()
}

func TestTargetHostGetsTheValueInPlaceOfThePlaceholder(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		name := map[bool]string{false: "HTTP/1.1", true: "HTTP/2"}[h2]
		t.Run(name, func(t *testing.T) {
			f, s, port, _ := upstreamFor(t, apiHost)
			c := cred("s1", "Authorization", apiHost)
			if bad := f.p.Set([]Credential{c}); bad != nil {
				t.Fatal(bad)
			}
			resp, body := get(t, f.client(h2), "https://"+apiHost+":"+port+"/user",
				http.Header{"Authorization": {"Bearer " + c.Placeholder}})
			if resp.StatusCode != 200 || body != "ok from upstream" {
				t.Fatalf("status %d body %q", resp.StatusCode, body)
			}
			if h2 != (resp.ProtoMajor == 2) {
				t.Errorf("client spoke %s to the proxy, want %s", resp.Proto, name)
			}
			hdr, proto, _ := s.last()
			if got := hdr.Get("Authorization"); got != "Bearer real-value-of-s1" {
				t.Errorf("upstream saw Authorization %q, want the value in place of the placeholder", got)
			}
			if proto != "HTTP/2.0" {
				t.Errorf("upstream spoke %s, want HTTP/2 (the proxy attempts it)", proto)
			}
		})
	}
}

func TestAbsentHeaderIsAddedWithTheValueAsStored(t *testing.T) {
	f, s, port, _ := upstreamFor(t, apiHost)
	c := cred("s1", "x-api-key", apiHost)
	f.p.Set([]Credential{c})
	get(t, f.client(false), "https://"+apiHost+":"+port+"/", nil)
	hdr, _, _ := s.last()
	if got := hdr.Get("X-Api-Key"); got != "real-value-of-s1" {
		t.Errorf("X-Api-Key = %q, want the value as stored", got)
	}
}

func TestPlaceholderInURLUserinfoIsReplaced(t *testing.T) {
	f, s, port, _ := upstreamFor(t, apiHost)
	c := cred("s1", "Authorization", apiHost)
	f.p.Set([]Credential{c})
	// A client turns https://user:pass@host/ into Basic authorization.
	get(t, f.client(false), "https://x-access-token:"+c.Placeholder+"@"+apiHost+":"+port+"/repo.git", nil)
	hdr, _, _ := s.last()
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte("x-access-token:real-value-of-s1"))
	if got := hdr.Get("Authorization"); got != want {
		t.Errorf("Authorization = %q, want %q", got, want)
	}
}

func TestPlaceholderToAnotherHostIsRefusedAndLoggedWithoutTheValue(t *testing.T) {
	const other = "other.example.test"
	f, s, port, _ := upstreamFor(t, apiHost, other)
	a := cred("secret-a", "Authorization", apiHost)
	b := cred("secret-b", "Authorization", other)
	f.p.Set([]Credential{a, b})

	// Over TLS to b's target, carrying a's placeholder.
	resp, body := get(t, f.client(false), "https://"+other+":"+port+"/", http.Header{"X-Token": {a.Placeholder}})
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("status %d, want 403", resp.StatusCode)
	}
	if _, _, n := s.last(); n != 0 {
		t.Errorf("upstream got %d requests, want none", n)
	}
	// Over plain HTTP to a host that is nobody's target.
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("plain upstream got a request carrying a placeholder")
	}))
	defer plain.Close()
	resp, _ = get(t, f.client(false), plain.URL+"/?token="+a.Placeholder, nil)
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("plain HTTP: status %d, want 403", resp.StatusCode)
	}

	entries := f.logs.FilterMessageSnippet("refused").All()
	if len(entries) != 2 {
		t.Fatalf("%d refusals logged, want 2", len(entries))
	}
	for _, e := range entries {
		if e.ContextMap()["secret_id"] != "secret-a" {
			t.Errorf("refusal names %v, want secret-a", e.ContextMap()["secret_id"])
		}
	}
	for _, e := range f.logs.All() {
		line := e.Message + " " + strings.ReplaceAll(strings.Join(fieldsOf(e), " "), "\n", " ")
		for _, c := range []Credential{a, b} {
			if strings.Contains(line, string(c.Value)) || strings.Contains(line, c.Placeholder) {
				t.Errorf("log line holds a value or placeholder: %s", line)
			}
		}
	}
	if strings.Contains(body, a.Placeholder) {
		t.Errorf("refusal body repeats the placeholder")
	}
}

func fieldsOf(e observer.LoggedEntry) []string {
	var out []string
	for k, v := range e.ContextMap() {
		out = append(out, k, toString(v))
	}
	return out
}

func toString(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, _ := jsonMarshal(v)
	return string(b)
}

func TestOtherHostsAreTunnelledUntouched(t *testing.T) {
	srv, s := upstream(t)
	f := startProxy(t, nil)
	f.p.Set([]Credential{cred("s1", "Authorization", apiHost)})
	// The client trusts the upstream's own certificate and not the proxy's
	// CA: it works only if the proxy did not terminate TLS.
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(f.url), TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
	resp, body := get(t, c, srv.URL+"/", http.Header{"Authorization": {"Bearer mine"}})
	if resp.StatusCode != 200 || body != "ok from upstream" {
		t.Fatalf("status %d body %q", resp.StatusCode, body)
	}
	hdr, proto, _ := s.last()
	if hdr.Get("Authorization") != "Bearer mine" || proto != "HTTP/2.0" {
		t.Errorf("upstream saw %q over %s, want the client's header over the client's HTTP/2", hdr.Get("Authorization"), proto)
	}
}

func TestPlainHTTPToATargetHostGetsNoCredential(t *testing.T) {
	var got http.Header
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = r.Header.Clone() }))
	defer plain.Close()
	f := startProxy(t, map[string]string{apiHost: plain.Listener.Addr().String()})
	f.p.Set([]Credential{cred("s1", "Authorization", apiHost)})
	_, port, _ := net.SplitHostPort(plain.Listener.Addr().String())
	resp, _ := get(t, f.client(false), "http://"+apiHost+":"+port+"/", nil)
	if resp.StatusCode != 200 || got.Get("Authorization") != "" {
		t.Errorf("status %d, Authorization %q: want 200 and no credential over plain HTTP", resp.StatusCode, got.Get("Authorization"))
	}
}

func TestRotatedValueIsUsedByTheNextRequestOnTheSameConnection(t *testing.T) {
	f, s, port, _ := upstreamFor(t, apiHost)
	c := cred("s1", "Authorization", apiHost)
	f.p.Set([]Credential{c})
	client := f.client(true)
	u := "https://" + apiHost + ":" + port + "/"
	get(t, client, u, http.Header{"Authorization": {"Bearer " + c.Placeholder}})
	c2 := c
	c2.Placeholder, c2.Value = NewPlaceholder(), secrets.Value("rotated")
	f.p.Set([]Credential{c2})
	get(t, client, u, http.Header{"Authorization": {"Bearer " + c2.Placeholder}})
	if hdr, _, _ := s.last(); hdr.Get("Authorization") != "Bearer rotated" {
		t.Errorf("after rotation upstream saw %q", hdr.Get("Authorization"))
	}
	// The old placeholder now belongs to no secret: refused, not forwarded.
	resp, _ := get(t, client, u, http.Header{"Authorization": {"Bearer " + c.Placeholder}})
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("stale placeholder: status %d, want 403", resp.StatusCode)
	}
	// Deleted: the header is no longer added.
	f.p.Set(nil)
	get(t, client, u, nil)
	if hdr, _, _ := s.last(); hdr.Get("Authorization") != "" {
		t.Errorf("after delete upstream saw Authorization %q", hdr.Get("Authorization"))
	}
}

func TestUpstreamTLSIsVerified(t *testing.T) {
	srv, s := upstream(t) // a certificate for 127.0.0.1 from httptest's CA, which the proxy does not trust
	f := startProxy(t, nil)
	f.p.Set([]Credential{cred("s1", "Authorization", "127.0.0.1")})
	resp, _ := get(t, f.client(false), srv.URL+"/", nil)
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("status %d, want 502 for an upstream the proxy cannot verify", resp.StatusCode)
	}
	if _, _, n := s.last(); n != 0 {
		t.Errorf("unverified upstream got %d requests carrying the value", n)
	}
}

func TestSetLeavesOutInvalidCredentials(t *testing.T) {
	good := cred("good", "Authorization", apiHost)
	for _, tc := range []struct {
		name string
		mod  func(*Credential)
	}{
		{"CRLF in value", func(c *Credential) { c.Value = secrets.Value("a\r\nX-Evil: 1") }},
		{"empty value", func(c *Credential) { c.Value = nil }},
		{"bad header", func(c *Credential) { c.Header = "Bad Header" }},
		{"no hosts", func(c *Credential) { c.TargetHosts = nil }},
		{"bad host", func(c *Credential) { c.TargetHosts = []string{"https://x/"} }},
		{"bad placeholder", func(c *Credential) { c.Placeholder = "guessable" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := cred("bad", "Authorization", apiHost)
			tc.mod(&bad)
			f := startProxy(t, nil)
			errs := f.p.Set([]Credential{good, bad})
			if errs["bad"] == nil || errs["good"] != nil {
				t.Fatalf("Set = %v, want an error for bad only", errs)
			}
			if strings.Contains(errs["bad"].Error(), "X-Evil") {
				t.Errorf("error holds the value: %v", errs["bad"])
			}
			if n := len(f.p.creds.Load().forHost(apiHost, "443")); n != 1 {
				t.Errorf("%d credentials for the host, want the good one", n)
			}
		})
	}
}

func TestTargetHostMatching(t *testing.T) {
	tb, _ := newTable([]Credential{cred("any", "A", "API.Example.test"), cred("port", "B", "api.example.test:8443")})
	for _, tc := range []struct {
		host, port string
		want       int
	}{
		{"api.example.test", "443", 1},
		{"api.example.test.", "443", 1},
		{"API.EXAMPLE.TEST", "8443", 2},
		{"example.test", "443", 0},
		{"evil-api.example.test", "443", 0},
	} {
		if got := len(tb.forHost(tc.host, tc.port)); got != tc.want {
			t.Errorf("forHost(%s, %s) = %d credentials, want %d", tc.host, tc.port, got, tc.want)
		}
	}
}

func TestCloseReturnsAfterATunnelEndedOnOneSide(t *testing.T) {
	srv, _ := upstream(t)
	f := startProxy(t, nil)
	c := f.client(false, srv.Certificate())
	get(t, c, srv.URL+"/", nil)
	c.CloseIdleConnections() // the client's side of the tunnel ends first
	time.Sleep(100 * time.Millisecond)
	done := make(chan struct{})
	go func() { _ = f.p.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return within 5s of a tunnel whose client left")
	}
}
