package test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/secrets-agent/secrets-agent/proxy"
	"github.com/secrets-agent/secrets-agent/secrets"
)

// BenchmarkProxyLatency measures what the credential proxy adds to a
// request to a target host on loopback: the same GET to a local HTTPS
// server, directly and through the proxy (which terminates TLS, puts the
// value in place of the placeholder and forwards over verified TLS),
// alternating so that both see the same machine load. Keep-alive
// connections, as clients hold them; a second series opens a new
// connection per request (TLS handshakes on both legs). The CPU figure is
// this process's CPU per proxied request less per direct request: client,
// server and proxy all run here, so the difference is the proxy's share.
func BenchmarkProxyLatency(b *testing.B) {
	const host = "api.bench.test"
	const keepAliveRounds, newConnRounds = 2000, 200
	b.Logf("target: added-p50-ms < 1")

	upCA, err := proxy.LoadCA(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	leaf, err := upCA.Leaf(host)
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer the-value" {
			http.Error(w, "no credential", http.StatusUnauthorized)
			return
		}
		_, _ = io.WriteString(w, `{"login":"bench"}`)
	}))
	srv.EnableHTTP2 = true
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{*leaf}}
	srv.StartTLS()
	defer srv.Close()
	real := srv.Listener.Addr().String()
	_, port, _ := net.SplitHostPort(real)
	var d net.Dialer
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		return d.DialContext(ctx, network, real)
	}

	ca, err := proxy.LoadCA(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	p, err := proxy.New(proxy.Options{CA: ca, ExtraRoots: []*x509.Certificate{upCA.Certificate()}, Dial: dial})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	ph := proxy.NewPlaceholder()
	if bad := p.Set([]proxy.Credential{{SecretID: "bench", Header: "Authorization", TargetHosts: []string{host},
		Placeholder: ph, Value: secrets.Value("the-value")}}); bad != nil {
		b.Fatal(bad)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = p.Serve(l) }()

	client := func(viaProxy, keepAlive bool) *http.Client {
		roots := x509.NewCertPool()
		tr := &http.Transport{DisableKeepAlives: !keepAlive, ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 4}
		if viaProxy {
			roots.AddCert(ca.Certificate())
			tr.Proxy = http.ProxyURL(&url.URL{Scheme: "http", Host: l.Addr().String()})
		} else {
			roots.AddCert(upCA.Certificate())
			tr.DialContext = dial
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: roots}
		return &http.Client{Transport: tr}
	}
	u := "https://" + host + ":" + port + "/user"
	once := func(c *http.Client, auth string) time.Duration {
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		req.Header.Set("Authorization", auth)
		start := time.Now()
		resp, err := c.Do(req)
		if err != nil {
			b.Fatalf("GET: %v", err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		took := time.Since(start)
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("GET: status %d", resp.StatusCode)
		}
		return took
	}
	series := func(keepAlive bool, rounds int) (direct, proxied []time.Duration, cpuDirect, cpuProxied time.Duration) {
		dc, pc := client(false, keepAlive), client(true, keepAlive)
		defer dc.CloseIdleConnections()
		defer pc.CloseIdleConnections()
		for range 20 { // warm up: connections, leaf certificate, code paths
			once(dc, "Bearer the-value")
			once(pc, "Bearer "+ph)
		}
		for range rounds {
			c0 := selfCPU(b)
			direct = append(direct, once(dc, "Bearer the-value"))
			c1 := selfCPU(b)
			proxied = append(proxied, once(pc, "Bearer "+ph))
			cpuDirect += c1 - c0
			cpuProxied += selfCPU(b) - c1
		}
		return direct, proxied, cpuDirect, cpuProxied
	}

	b.ResetTimer()
	for range b.N {
		direct, proxied, cd, cp := series(true, keepAliveRounds)
		b.ReportMetric(millis(percentile(direct, 50)), "direct-p50-ms")
		b.ReportMetric(millis(percentile(proxied, 50)), "proxied-p50-ms")
		b.ReportMetric(millis(percentile(proxied, 50)-percentile(direct, 50)), "added-p50-ms")
		b.ReportMetric(millis(percentile(proxied, 99)-percentile(direct, 99)), "added-p99-ms")
		b.ReportMetric(float64((cp-cd).Microseconds())/keepAliveRounds, "added-cpu-us/req")

		direct, proxied, _, _ = series(false, newConnRounds)
		b.ReportMetric(millis(percentile(proxied, 50)-percentile(direct, 50)), "added-newconn-p50-ms")
	}
	b.ReportMetric(0, "ns/op")
	b.Logf("note: %d keep-alive GETs each way over HTTP/2, alternating direct and proxied, on loopback; "+
		"then %d with a new connection per request (both TLS handshakes of the proxied leg included). "+
		"added-cpu-us/req is this process's CPU (client, server and proxy) per proxied request less per direct one.",
		keepAliveRounds, newConnRounds)
}
