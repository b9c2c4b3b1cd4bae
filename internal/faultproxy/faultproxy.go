// Package faultproxy is an HTTP reverse proxy that injects the faults a
// control plane's network produces — latency, bursts of 5xx, connection
// resets, truncated and garbage bodies, watch streams that stall or are cut —
// between the agent and a real devserver. Tests and benchmarks set a Fault and
// clear it; everything else is relayed untouched, streams flushed line by line.
package faultproxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Fault is what the proxy does to the requests it matches. The zero Fault
// relays everything untouched.
type Fault struct {
	// Path, when set, limits the fault to requests whose path contains it
	// (e.g. "WatchEvents" or "GetEnvironment"); empty matches all.
	Path string
	// Latency delays each matching request before it is relayed.
	Latency time.Duration
	// Status answers matching requests with this HTTP status and a Connect
	// error body ("unavailable") instead of relaying them.
	Status int
	// Count limits Status, Reset, Truncate and Garbage to this many requests
	// (a burst); 0 means every matching request until the fault is cleared.
	Count int
	// Reset closes the client's connection abruptly (TCP RST) without answering.
	Reset bool
	// Truncate relays the response but cuts the body after half of it and
	// aborts the connection, so the client sees an unexpected EOF.
	Truncate bool
	// Garbage answers 200 with bytes that are not JSON.
	Garbage bool
	// Stall relays response headers, then stops relaying the body (streams go
	// silent) until the fault is cleared or the client goes away.
	Stall bool
}

// Proxy is a running fault-injecting proxy on 127.0.0.1.
type Proxy struct {
	srv      *http.Server
	ln       net.Listener
	rp       *httputil.ReverseProxy
	requests atomic.Int64

	mu      sync.Mutex
	fault   Fault
	left    int           // remaining requests in a Count-limited burst
	unstall chan struct{} // closed when a Stall fault is cleared
	streams map[*streamBody]struct{}
}

// Start listens on 127.0.0.1:0 and relays to target (an http:// base URL).
// Close stops it.
func Start(target string) (*Proxy, error) {
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("faultproxy: target %q is not an http(s) URL", target)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen: %w", err)
	}
	p := &Proxy{ln: ln, unstall: make(chan struct{}), streams: map[*streamBody]struct{}{}}
	p.rp = &httputil.ReverseProxy{
		Rewrite:        func(r *httputil.ProxyRequest) { r.SetURL(u) },
		FlushInterval:  -1,
		ModifyResponse: p.modifyResponse,
		ErrorLog:       log.New(io.Discard, "", 0),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			writeConnectError(w, http.StatusBadGateway, "unavailable", "faultproxy: upstream: "+err.Error())
		},
	}
	p.srv = &http.Server{Handler: http.HandlerFunc(p.serve), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

// URL is the proxy's base URL, to give the agent as its control plane.
func (p *Proxy) URL() string { return "http://" + p.ln.Addr().String() }

// Requests is how many requests reached the proxy.
func (p *Proxy) Requests() int64 { return p.requests.Load() }

// Set replaces the current fault.
func (p *Proxy) Set(f Fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fault, p.left = f, f.Count
	if !f.Stall {
		p.releaseLocked()
	}
}

// Clear removes the fault; stalled streams resume.
func (p *Proxy) Clear() { p.Set(Fault{}) }

// CutStreams aborts every response body being relayed (watch streams among
// them), as a network that drops long-lived connections would.
func (p *Proxy) CutStreams() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for s := range p.streams {
		s.cut()
	}
}

// Close stops the proxy and aborts every connection.
func (p *Proxy) Close() error {
	p.CutStreams()
	p.Clear()
	return p.srv.Close()
}

func (p *Proxy) releaseLocked() {
	select {
	case <-p.unstall:
	default:
		close(p.unstall)
	}
}

// take returns the fault for r, counting it against a burst.
func (p *Proxy) take(r *http.Request) (Fault, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f := p.fault
	if f.Path != "" && !strings.Contains(r.URL.Path, f.Path) {
		return Fault{}, nil
	}
	if f.Stall {
		select {
		case <-p.unstall:
			p.unstall = make(chan struct{})
		default:
		}
	}
	if f.Count > 0 && (f.Status != 0 || f.Reset || f.Truncate || f.Garbage) {
		if p.left <= 0 {
			return Fault{Latency: f.Latency}, nil
		}
		p.left--
	}
	return f, p.unstall
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	p.requests.Add(1)
	// Buffer the request body before relaying: net/http's server closes
	// it once the handler relays the response headers, and the transport
	// still reading it then (it reads past Content-Length to check for
	// extra bytes) would fail and close the upstream connection, ending a
	// stream that had only just started.
	body, err := io.ReadAll(r.Body)
	if err != nil {
		writeConnectError(w, http.StatusBadRequest, "invalid_argument", "faultproxy: read request: "+err.Error())
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	f, unstall := p.take(r)
	if f.Latency > 0 {
		select {
		case <-time.After(f.Latency):
		case <-r.Context().Done():
			return
		}
	}
	switch {
	case f.Reset:
		reset(w)
		return
	case f.Status != 0:
		writeConnectError(w, f.Status, "unavailable", "faultproxy: injected status")
		return
	case f.Garbage:
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, "\x00\xff<html>not json at all")
		return
	}
	ctx := context.WithValue(r.Context(), faultKey{}, faultCtx{f: f, unstall: unstall})
	p.rp.ServeHTTP(w, r.WithContext(ctx))
}

type faultKey struct{}

type faultCtx struct {
	f       Fault
	unstall <-chan struct{}
}

func (p *Proxy) modifyResponse(resp *http.Response) error {
	fc, _ := resp.Request.Context().Value(faultKey{}).(faultCtx)
	sb := &streamBody{rc: resp.Body, done: make(chan struct{}), ctx: resp.Request.Context(), p: p}
	if fc.f.Truncate {
		n := resp.ContentLength / 2
		if n <= 0 {
			n = 16
		}
		sb.limit = n
	}
	if fc.f.Stall {
		sb.unstall = fc.unstall
	}
	p.mu.Lock()
	p.streams[sb] = struct{}{}
	p.mu.Unlock()
	resp.Body = sb
	return nil
}

// streamBody relays a response body and lets the proxy stall, truncate or cut it.
type streamBody struct {
	rc      io.ReadCloser
	ctx     context.Context
	p       *Proxy
	limit   int64 // >0: abort after this many bytes
	read    int64
	unstall <-chan struct{}
	once    sync.Once
	done    chan struct{}
}

var errCut = errors.New("faultproxy: stream cut")

func (s *streamBody) cut() { s.once.Do(func() { close(s.done) }) }

func (s *streamBody) Read(b []byte) (int, error) {
	if s.unstall != nil {
		select {
		case <-s.unstall:
			s.unstall = nil
		case <-s.done:
			return 0, errCut
		case <-s.ctx.Done():
			return 0, s.ctx.Err()
		}
	}
	select {
	case <-s.done:
		return 0, errCut
	default:
	}
	if s.limit > 0 {
		if s.read >= s.limit {
			return 0, errCut
		}
		if rem := s.limit - s.read; int64(len(b)) > rem {
			b = b[:rem]
		}
	}
	type result struct {
		n   int
		err error
	}
	ch := make(chan result, 1)
	go func() { n, err := s.rc.Read(b); ch <- result{n, err} }()
	select {
	case r := <-ch:
		s.read += int64(r.n)
		return r.n, r.err
	case <-s.done:
		s.rc.Close()
		<-ch
		return 0, errCut
	}
}

func (s *streamBody) Close() error {
	s.p.mu.Lock()
	delete(s.p.streams, s)
	s.p.mu.Unlock()
	s.cut()
	return s.rc.Close()
}

// reset aborts the client connection with a TCP RST.
func reset(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	conn.Close()
}

func writeConnectError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = fmt.Fprintf(w, `{"code":%q,"message":%q}`, code, msg)
}
