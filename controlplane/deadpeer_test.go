package controlplane

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/secrets-agent/secrets-agent/internal/faultproxy"
)

// silentH2Server is a TLS server speaking HTTP/2 whose WatchEvents answers
// 200 and then sends nothing, as Ona does while nothing changes. It counts
// the streams opened and checks that they are HTTP/2.
func silentH2Server(t *testing.T, opened *atomic.Int32) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 2 {
			t.Errorf("request over %s, want HTTP/2", r.Proto)
		}
		opened.Add(1)
		w.Header().Set("Content-Type", ContentTypeJSONL)
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// TestDeadPeerIsFoundByHTTP2PingsAndReplaced: a watch stream whose
// connection is black-holed (it stays open but carries nothing) fails within
// the ping interval plus the ping timeout, and the next WatchEvents opens a
// fresh stream. TCP keepalive could not tell: the relay's kernel answers it.
func TestDeadPeerIsFoundByHTTP2PingsAndReplaced(t *testing.T) {
	var opened atomic.Int32
	srv := silentH2Server(t, &opened)
	relay, err := faultproxy.StartRelay(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = relay.Close() })

	const ping, pingTimeout = 300 * time.Millisecond, 300 * time.Millisecond
	o := Options{PingInterval: ping, PingTimeout: pingTimeout}
	tr := Transport(o)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	o.HTTPClient = &http.Client{Transport: tr}
	o.BaseURL = "https://" + relay.Addr()
	o.TokenFile = filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(o.TokenFile, []byte(testToken), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}

	s, err := c.WatchEvents(ctx10s(t), "env-1")
	if err != nil {
		t.Fatalf("WatchEvents: %v", err)
	}
	defer s.Close()
	// Silent but alive: the pings are answered, the stream stays up.
	ended := make(chan error, 1)
	go func() {
		_, err := s.Next()
		ended <- err
	}()
	select {
	case err := <-ended:
		t.Fatalf("a silent, live stream ended: %v", err)
	case <-time.After(4 * (ping + pingTimeout)):
	}

	relay.Blackhole()
	cut := time.Now()
	select {
	case err := <-ended:
		took := time.Since(cut)
		t.Logf("dead peer found after %v: %v", took.Round(time.Millisecond), err)
		if CodeOf(err) != CodeUnavailable {
			t.Errorf("Next = %v, want an unavailable error", err)
		}
		if limit := 2*ping + pingTimeout + time.Second; took > limit {
			t.Errorf("dead peer found after %v, want within %v (ping interval + ping timeout, with slack)", took, limit)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a black-holed stream was not found dead within 20s")
	}

	s2, err := c.WatchEvents(ctx10s(t), "env-1")
	if err != nil {
		t.Fatalf("WatchEvents after the dead peer: %v", err)
	}
	defer s2.Close()
	if n := opened.Load(); n != 2 {
		t.Errorf("%d streams opened, want 2 (the first, then its replacement)", n)
	}
}
