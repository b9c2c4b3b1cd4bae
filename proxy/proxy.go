// Package proxy is the credential proxy: an HTTP forward proxy on loopback
// that puts a secret's real value into requests bound for the secret's
// target hosts, so that the environment only ever holds a placeholder.
//
// What it does with each request:
//
//   - CONNECT to a target host (HTTPS): the proxy terminates the client's
//     TLS with a leaf certificate for that host signed by its local CA,
//     reads each request (HTTP/1.1 or HTTP/2), replaces the placeholder of
//     every credential for that host by its value in the credential's header
//     and in Basic authorization's user:password (adding the header when the
//     request lacks it), and forwards the request upstream over TLS verified
//     against the system roots. A placeholder of another secret still in the
//     request after that is refused (403), as below.
//   - CONNECT to any other host: a byte tunnel, untouched. The proxy cannot
//     see inside it, so it cannot tell whether a placeholder travels in it;
//     a placeholder that does is useless there, since only this proxy turns
//     it into the value.
//   - A plain-HTTP request (absolute URL): forwarded without any credential,
//     whatever the host, since the value would cross the wire in clear; one
//     that carries a placeholder anywhere in its URL or headers is refused
//     (403) and logged with the secret's id, never its value. The body is
//     not looked at.
//
// The value never appears in a log line, an error or a response of the
// proxy's own.
package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Options configure a Proxy.
type Options struct {
	// CA signs the leaf certificates of target hosts. Required.
	CA *CA
	// Log receives refusals and upstream failures, never a value. Default: none.
	Log *zap.Logger
	// ExtraRoots are trusted upstream besides the system roots. For tests
	// only: production verifies against the system roots alone.
	ExtraRoots []*x509.Certificate
	// Dial connects upstream (host:port as the client named it). Default: a
	// net.Dialer with a 30 s timeout. Tests resolve names with it.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Proxy is the credential proxy. Its credentials are replaced whole by Set;
// each request uses the set current when it arrives, so a rotated value is
// used from the next request on, even on a connection already open.
type Proxy struct {
	log   *zap.Logger
	ca    *CA
	dial  func(ctx context.Context, network, addr string) (net.Conn, error)
	creds atomic.Pointer[table]

	upstream *http.Transport // to target hosts (TLS) and plain-HTTP hosts
	outer    *http.Server    // the proxy port
	inner    *http.Server    // serves the intercepted TLS connections
	innerL   *connListener
	targets  sync.Map // net.Conn (an intercepted *tls.Conn) -> string (host:port)
	closing  chan struct{}

	mu      sync.Mutex // guards closed and the Add of tunnels
	closed  bool
	tunnels sync.WaitGroup
}

type ctxKey struct{}

// New returns a proxy with no credentials: until Set, it tunnels and
// forwards everything untouched.
func New(o Options) (*Proxy, error) {
	if o.CA == nil {
		return nil, errors.New("proxy: no CA")
	}
	p := &Proxy{log: o.Log, ca: o.CA, dial: o.Dial, closing: make(chan struct{})}
	if p.log == nil {
		p.log = zap.NewNop()
	}
	if p.dial == nil {
		p.dial = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	}
	roots, err := x509.SystemCertPool()
	if err != nil {
		return nil, fmt.Errorf("proxy: system roots: %w", err)
	}
	for _, c := range o.ExtraRoots {
		roots.AddCert(c)
	}
	p.creds.Store(&table{})
	p.upstream = &http.Transport{
		Proxy:                 nil, // never through HTTPS_PROXY: that is us
		DialContext:           p.dial,
		TLSClientConfig:       &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	errLog := zap.NewStdLog(p.log.Named("http"))
	p.innerL = &connListener{ch: make(chan net.Conn), done: make(chan struct{})}
	p.inner = &http.Server{
		Handler:           http.HandlerFunc(p.serveIntercepted),
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          errLog,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if t, ok := p.targets.Load(c); ok {
				ctx = context.WithValue(ctx, ctxKey{}, t.(string))
			}
			return ctx
		},
		ConnState: func(c net.Conn, s http.ConnState) {
			if s == http.StateClosed || s == http.StateHijacked {
				p.targets.Delete(c)
			}
		},
	}
	p.outer = &http.Server{
		Handler:           http.HandlerFunc(p.serveProxy),
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          errLog,
	}
	go func() { _ = p.inner.Serve(p.innerL) }()
	return p, nil
}

// Set replaces the credentials. A credential that fails Validate is left
// out; the returned map says why, by SecretID (nil when all are in).
func (p *Proxy) Set(creds []Credential) map[string]error {
	t, bad := newTable(creds)
	p.creds.Store(t)
	if len(bad) == 0 {
		return nil
	}
	return bad
}

// Serve accepts proxy clients on l until Close. l should listen on
// loopback only: anyone who can reach the port can use the credentials.
// It returns http.ErrServerClosed after Close.
func (p *Proxy) Serve(l net.Listener) error { return p.outer.Serve(l) }

// Close stops the proxy: listeners, intercepted connections and tunnels.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.closing)
	}
	p.mu.Unlock()
	err := p.outer.Close()
	_ = p.innerL.Close()
	_ = p.inner.Close()
	p.tunnels.Wait()
	p.upstream.CloseIdleConnections()
	return err
}

// serveProxy handles a request to the proxy port: CONNECT, or a plain-HTTP
// request in absolute form.
func (p *Proxy) serveProxy(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodConnect {
		p.serveConnect(w, r)
		return
	}
	if r.URL.Host == "" || r.URL.Scheme != "http" {
		http.Error(w, "secrets-agent proxy: only proxy requests (CONNECT, or an absolute http:// URL) are served here", http.StatusBadRequest)
		return
	}
	if where, ph := carried(r.URL, r.Header); where != "" {
		p.refuse(w, r.URL.Host, where, ph, "plain HTTP never carries a credential")
		return
	}
	p.forward(w, r, "http", r.URL.Host)
}

// serveConnect handles CONNECT host:port: intercepted when host is a target
// of some credential, else tunnelled.
func (p *Proxy) serveConnect(w http.ResponseWriter, r *http.Request) {
	hostport := r.Host
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		http.Error(w, "secrets-agent proxy: CONNECT needs host:port", http.StatusBadRequest)
		return
	}
	if len(p.creds.Load().forHost(host, port)) > 0 {
		p.intercept(w, hostport, host)
		return
	}
	up, err := p.dial(r.Context(), "tcp", hostport)
	if err != nil {
		p.log.Info("proxy: tunnel: dial failed", zap.String("host", hostport), zap.Error(err))
		http.Error(w, "secrets-agent proxy: cannot reach "+hostport, http.StatusBadGateway)
		return
	}
	c, err := hijack(w)
	if err != nil {
		up.Close()
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		up.Close()
		return
	}
	p.tunnels.Add(1)
	go func() {
		defer p.tunnels.Done()
		tunnel(c, up, p.closing)
	}()
}

// intercept answers CONNECT, terminates TLS with a leaf for host and hands
// the connection to the inner server, which serves HTTP/1.1 or HTTP/2 as the
// client negotiated.
func (p *Proxy) intercept(w http.ResponseWriter, hostport, host string) {
	leaf, err := p.ca.Leaf(strings.ToLower(strings.Trim(host, "[]")))
	if err != nil {
		p.log.Error("proxy: no certificate", zap.String("host", host), zap.Error(err))
		http.Error(w, "secrets-agent proxy: cannot make a certificate for "+host, http.StatusInternalServerError)
		return
	}
	c, err := hijack(w)
	if err != nil {
		return
	}
	tc := tls.Server(c, &tls.Config{
		Certificates: []tls.Certificate{*leaf},
		NextProtos:   []string{"h2", "http/1.1"},
		MinVersion:   tls.VersionTLS12,
	})
	p.targets.Store(net.Conn(tc), hostport)
	select {
	case p.innerL.ch <- tc:
	case <-p.innerL.done:
		p.targets.Delete(net.Conn(tc))
		tc.Close()
	}
}

// serveIntercepted handles a request read from an intercepted connection
// to target (host:port from CONNECT).
func (p *Proxy) serveIntercepted(w http.ResponseWriter, r *http.Request) {
	target, _ := r.Context().Value(ctxKey{}).(string)
	host, port, _ := net.SplitHostPort(target)
	if !sameHost(r.Host, host, port) {
		http.Error(w, fmt.Sprintf("secrets-agent proxy: request for %q inside a tunnel to %q", r.Host, target), http.StatusBadRequest)
		return
	}
	inject(r.Header, p.creds.Load().forHost(host, port))
	if where, ph := carried(r.URL, r.Header); where != "" {
		p.refuse(w, target, where, ph, "not a target host of that secret")
		return
	}
	p.forward(w, r, "https", target)
}

// sameHost reports whether the Host of a request names host (and port, or
// the default port 443 when it has none).
func sameHost(reqHost, host, port string) bool {
	h, pt, err := net.SplitHostPort(reqHost)
	if err != nil {
		h, pt = reqHost, "443"
	}
	return strings.EqualFold(strings.Trim(h, "[]"), strings.Trim(host, "[]")) && pt == port
}

// forward sends r to scheme://hostport and copies the answer back.
func (p *Proxy) forward(w http.ResponseWriter, r *http.Request, scheme, hostport string) {
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = scheme
			pr.Out.URL.Host = hostport
			pr.Out.URL.User = nil
			pr.Out.Host = pr.In.Host
		},
		Transport:     p.upstream,
		FlushInterval: -1, // stream: server-sent events, long polls
		ErrorLog:      zap.NewStdLog(p.log.Named("http")),
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			if !errors.Is(err, context.Canceled) {
				p.log.Info("proxy: upstream failed", zap.String("host", hostport), zap.Error(err))
			}
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	rp.ServeHTTP(w, r)
}

// refuse answers 403 to a request that carries a placeholder where it must
// not, and logs it with the secret's id (never its value).
func (p *Proxy) refuse(w http.ResponseWriter, host, where, placeholder, why string) {
	id := "unknown (a placeholder no current secret has)"
	if c, ok := p.creds.Load().byPH[placeholder]; ok {
		id = c.SecretID
	}
	p.log.Warn("proxy: request refused: it carries a secret's placeholder",
		zap.String("host", host), zap.String("where", where), zap.String("secret_id", id), zap.String("reason", why))
	http.Error(w, fmt.Sprintf("secrets-agent proxy: refused: %s carries a secrets-agent placeholder, and %s: %s", where, host, why), http.StatusForbidden)
}

// hijack takes the client connection of a CONNECT and answers 200. Bytes
// the client sent after the CONNECT request, already buffered (a TLS
// ClientHello sent without waiting for the answer), are read first from
// the returned connection.
func hijack(w http.ResponseWriter) (net.Conn, error) {
	c, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		http.Error(w, "secrets-agent proxy: cannot take over the connection", http.StatusInternalServerError)
		return nil, err
	}
	if _, err := c.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n")); err != nil {
		c.Close()
		return nil, err
	}
	if rw.Reader.Buffered() > 0 {
		return &bufferedConn{Conn: c, r: rw.Reader}, nil
	}
	return c, nil
}

// bufferedConn reads what the server buffered before the hijack first.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }

// tunnel copies bytes both ways between a and b until either side ends or
// the proxy closes.
func tunnel(a, b net.Conn, closing <-chan struct{}) {
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		done <- struct{}{}
	}
	go cp(a, b)
	go cp(b, a)
	ended := 0
	select {
	case <-done:
		ended++
		// One way ended: give the other a while to finish its answer.
		select {
		case <-done:
			ended++
		case <-time.After(30 * time.Second):
		case <-closing:
		}
	case <-closing:
	}
	a.Close()
	b.Close()
	for ; ended < 2; ended++ {
		<-done
	}
}

// connListener is a net.Listener whose connections are handed in through ch.
type connListener struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *connListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *connListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

// CloseWrite half-closes the connection when the one it wraps can.
func (b *bufferedConn) CloseWrite() error {
	if cw, ok := b.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
