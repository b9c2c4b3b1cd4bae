package agent

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/secrets-agent/secrets-agent/controlplane"
	"github.com/secrets-agent/secrets-agent/internal/faultproxy"
)

// TestAgentReplacesAWatchStreamWhosePeerWentDead runs the agent with the
// real control-plane client against an HTTP/2 server whose watch stream is
// silent, through a relay that then black-holes the connection: the pings
// find it dead and the agent opens a new stream, within the ping interval
// plus the ping timeout (and a short reconnect wait).
func TestAgentReplacesAWatchStreamWhosePeerWentDead(t *testing.T) {
	var streams atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		switch r.URL.Path {
		case controlplane.ProcGetEnvironment:
			w.Header().Set("Content-Type", controlplane.ContentTypeJSON)
			_, _ = io.WriteString(w, `{"environment":{"id":"env-1","spec":{}}}`)
		case controlplane.ProcWatchEvents:
			streams.Add(1)
			w.Header().Set("Content-Type", controlplane.ContentTypeJSONL)
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			<-r.Context().Done() // silent, as Ona is while nothing changes
		default:
			http.NotFound(w, r)
		}
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	relay, err := faultproxy.StartRelay(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = relay.Close() })

	const ping, pingTimeout = 300 * time.Millisecond, 300 * time.Millisecond
	o := controlplane.Options{BaseURL: "https://" + relay.Addr(), PingInterval: ping, PingTimeout: pingTimeout,
		TokenFile: filepath.Join(t.TempDir(), "token")}
	if err := os.WriteFile(o.TokenFile, []byte("tok"), 0o600); err != nil {
		t.Fatal(err)
	}
	tr := controlplane.Transport(o)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	o.HTTPClient = &http.Client{Transport: tr}
	c, err := controlplane.New(o)
	if err != nil {
		t.Fatal(err)
	}

	cfg := testConfig()
	cfg.ControlPlane.Watch = true
	r := newRig(t, cfg, WithControlPlane(clientAdapter{c}), WithoutFileWatch(), WithoutStatusSocket())
	r.run(t)
	eventually(t, "watch connected", func() bool { return r.a.Status().WatchConnected })
	time.Sleep(4 * (ping + pingTimeout)) // silent but alive: pings are answered
	if n := streams.Load(); n != 1 {
		t.Fatalf("%d streams opened while the first was alive and silent, want 1", n)
	}

	relay.Blackhole()
	cut := time.Now()
	eventually(t, "a new stream after the dead peer", func() bool { return streams.Load() >= 2 })
	took := time.Since(cut)
	t.Logf("stream replaced %v after the connection went dead", took.Round(time.Millisecond))
	// Detection takes at most ping + pingTimeout; the first reconnect waits
	// at most the flap floor or 250 ms; the rest is slack for a busy machine.
	if limit := 2*(ping+pingTimeout) + 2*time.Second; took > limit {
		t.Errorf("stream replaced after %v, want within %v", took, limit)
	}
	eventually(t, "watch connected again", func() bool { return r.a.Status().WatchConnected })
}
