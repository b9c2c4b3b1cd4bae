package devserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secrets-agent/secrets-agent/controlplane"
	"github.com/secrets-agent/secrets-agent/secrets"
)

// testServer is a Server serving real HTTP on 127.0.0.1:0.
type testServer struct {
	dir    string
	url    string
	srv    *Server
	admin  *AdminClient
	served chan error
	once   sync.Once
}

func startServer(t *testing.T, dir string, keepalive time.Duration) *testServer {
	t.Helper()
	srv, err := New(Options{Dir: dir, Keepalive: keepalive})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	ts := &testServer{dir: dir, url: "http://" + ln.Addr().String(), srv: srv, served: make(chan error, 1)}
	go func() { ts.served <- srv.Serve(ln) }()
	tok, err := ReadAdminToken(dir)
	if err != nil {
		t.Fatal(err)
	}
	ts.admin = NewAdminClient(ts.url, tok)
	t.Cleanup(func() { ts.stop(t) })
	return ts
}

// stop shuts the server down and waits for Serve to return; again, nothing.
func (ts *testServer) stop(t *testing.T) {
	t.Helper()
	ts.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := ts.srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-ts.served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// client returns the agent's control-plane client holding token (from a
// token file, as the agent reads it). It does not retry, so a refusal shows
// at once.
func (ts *testServer) client(t *testing.T, token string) *controlplane.Client {
	t.Helper()
	f := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(f, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := controlplane.New(controlplane.Options{BaseURL: ts.url, TokenFile: f, RetryMax: -1})
	if err != nil {
		t.Fatalf("controlplane.New: %v", err)
	}
	return c
}

func (ts *testServer) createEnv(t *testing.T, org, project, user string) (string, string) {
	t.Helper()
	resp, err := ts.admin.CreateEnvironment(testCtx(t), org, project, user)
	if err != nil {
		t.Fatalf("CreateEnvironment: %v", err)
	}
	return resp.EnvironmentID, resp.Token
}

var envMount = SecretMount{EnvironmentVariable: true}

func (ts *testServer) createSecret(t *testing.T, name string, scope SecretScope, m SecretMount, value []byte) Secret {
	t.Helper()
	req := CreateSecretRequest{Name: name, Scope: scope, SecretMount: m}
	req.Value, req.ValueBytes = controlplane.EncodeValue(value)
	s, err := ts.admin.CreateSecret(testCtx(t), req)
	if err != nil {
		t.Fatalf("CreateSecret %s: %v", name, err)
	}
	return s
}

// resolve reads the environment's spec through the client and resolves it
// as the agent does.
func resolve(t *testing.T, c *controlplane.Client, envID string) secrets.Resolution {
	t.Helper()
	env, err := c.GetEnvironment(testCtx(t), envID)
	if err != nil {
		t.Fatalf("GetEnvironment: %v", err)
	}
	if env.ID != envID {
		t.Fatalf("GetEnvironment answered for %q, want %q", env.ID, envID)
	}
	var all []secrets.Secret
	for _, w := range env.Spec.Secrets {
		s, err := w.Secret()
		if err != nil {
			t.Fatalf("spec secret %s: %v", w.ID, err)
		}
		all = append(all, s)
	}
	res := secrets.Resolve(all)
	if len(res.Rejected) > 0 {
		t.Fatalf("the server sent secrets Resolve rejects: %v", res.Rejected)
	}
	return res
}

func value(t *testing.T, c *controlplane.Client, id string) string {
	t.Helper()
	v, err := c.GetSecretValue(testCtx(t), id)
	if err != nil {
		t.Fatalf("GetSecretValue %s: %v", id, err)
	}
	return string(v)
}

func wantCode(t *testing.T, err error, what string, codes ...controlplane.Code) {
	t.Helper()
	for _, c := range codes {
		if controlplane.CodeOf(err) == c {
			return
		}
	}
	t.Fatalf("%s: got %v, want code %v", what, err, codes)
}

func TestUserSecretShadowsProjectAndOrganizationThroughTheWholeStack(t *testing.T) {
	ts := startServer(t, t.TempDir(), 0)
	envID, tok := ts.createEnv(t, "org1", "proj1", "user1")
	org := ts.createSecret(t, "API_KEY", SecretScope{OrganizationID: "org1"}, envMount, []byte("org-value"))
	proj := ts.createSecret(t, "API_KEY", SecretScope{ProjectID: "proj1"}, envMount, []byte("project-value"))
	user := ts.createSecret(t, "API_KEY", SecretScope{UserID: "user1"}, envMount, []byte("user-value"))
	c := ts.client(t, tok)

	res := resolve(t, c, envID)
	if len(res.Winners) != 1 {
		t.Fatalf("winners = %d, want 1 (the spec lists all three, Resolve keeps one)", len(res.Winners))
	}
	w := res.Winners[0]
	if w.Secret.ID != user.ID || w.Secret.Scope != secrets.ScopeUser {
		t.Fatalf("winner = %v, want the user's secret %s", w.Secret, user.ID)
	}
	if len(w.Shadows) != 2 || w.Shadows[0].ID != proj.ID || w.Shadows[1].ID != org.ID {
		t.Fatalf("shadows = %v, want the project's then the organization's", w.Shadows)
	}
	if got := value(t, c, user.ID); got != "user-value" {
		t.Fatalf("value = %q, want the user's", got)
	}
	// A shadowed secret is not in the environment's resolved set: no value.
	_, err := c.GetSecretValue(testCtx(t), proj.ID)
	wantCode(t, err, "value of the shadowed project secret", controlplane.CodePermissionDenied)

	if err := ts.admin.DeleteSecret(testCtx(t), user.ID); err != nil {
		t.Fatalf("DeleteSecret: %v", err)
	}
	res = resolve(t, c, envID)
	if len(res.Winners) != 1 || res.Winners[0].Secret.ID != proj.ID {
		t.Fatalf("after deleting the user's secret the winner is %v, want the project's", res.Winners)
	}
	if got := value(t, c, proj.ID); got != "project-value" {
		t.Fatalf("value = %q, want the project's", got)
	}
}

func TestSessionChangesOnlyWhenTheValueChanges(t *testing.T) {
	ts := startServer(t, t.TempDir(), 0)
	envID, tok := ts.createEnv(t, "org1", "proj1", "user1")
	c := ts.client(t, tok)
	s := ts.createSecret(t, "TOKEN", SecretScope{UserID: "user1"}, envMount, []byte("v1"))
	other := ts.createSecret(t, "OTHER", SecretScope{UserID: "user1"}, envMount, []byte("x"))
	session := func() string {
		t.Helper()
		for _, w := range resolve(t, c, envID).Winners {
			if w.Secret.ID == s.ID {
				return w.Secret.Session
			}
		}
		t.Fatal("secret missing from the spec")
		return ""
	}
	first := session()
	if first == "" || first != s.Session {
		t.Fatalf("spec session %q, CreateSecret said %q", first, s.Session)
	}

	steps := []struct {
		name    string
		do      func()
		changes bool
	}{
		{"same value again", func() { ts.update(t, s.ID, "v1") }, false},
		{"another secret changes", func() { ts.update(t, other.ID, "y") }, false},
		{"another secret is deleted", func() { _ = ts.admin.DeleteSecret(testCtx(t), other.ID) }, false},
		{"new value", func() { ts.update(t, s.ID, "v2") }, true},
		{"back to the old value", func() { ts.update(t, s.ID, "v1") }, true},
	}
	prev := first
	for _, st := range steps {
		st.do()
		got := session()
		if (got != prev) != st.changes {
			t.Fatalf("%s: session %q -> %q, want changed=%v", st.name, prev, got, st.changes)
		}
		prev = got
	}
	if got := value(t, c, s.ID); got != "v1" {
		t.Fatalf("value = %q, want v1", got)
	}
}

func (ts *testServer) update(t *testing.T, id, v string) Secret {
	t.Helper()
	s, err := ts.admin.UpdateSecretValue(testCtx(t), id, []byte(v))
	if err != nil {
		t.Fatalf("UpdateSecretValue: %v", err)
	}
	return s
}

func TestEnvironmentCannotReadAnotherEnvironmentsSecrets(t *testing.T) {
	ts := startServer(t, t.TempDir(), 0)
	envA, tokA := ts.createEnv(t, "orgA", "projA", "alice")
	envB, _ := ts.createEnv(t, "orgB", "projB", "bob")
	const bobs = "bob-only-value"
	sB := ts.createSecret(t, "BOB_TOKEN", SecretScope{UserID: "bob"}, envMount, []byte(bobs))
	orgB := ts.createSecret(t, "ORG_B", SecretScope{OrganizationID: "orgB"}, SecretMount{APIOnly: true}, []byte(bobs))
	a := ts.client(t, tokA)

	for _, id := range []string{sB.ID, orgB.ID, "no-such-secret"} {
		v, err := a.GetSecretValue(testCtx(t), id)
		wantCode(t, err, "A reads "+id, controlplane.CodeNotFound, controlplane.CodePermissionDenied)
		if v != nil || strings.Contains(err.Error(), bobs) {
			t.Fatalf("A's refusal shows the value: %v", err)
		}
	}
	_, err := a.GetEnvironment(testCtx(t), envB)
	wantCode(t, err, "A reads B's spec", controlplane.CodePermissionDenied)
	_, err = a.WatchEvents(testCtx(t), envB)
	wantCode(t, err, "A watches B", controlplane.CodePermissionDenied)
	if res := resolve(t, a, envA); len(res.Winners)+len(res.Skipped) != 0 {
		t.Fatalf("A sees B's secrets: %v", res.Winners)
	}
}

func TestUnknownTokenIsUnauthenticated(t *testing.T) {
	ts := startServer(t, t.TempDir(), 0)
	envID, tok := ts.createEnv(t, "org1", "proj1", "user1")
	s := ts.createSecret(t, "API_KEY", SecretScope{UserID: "user1"}, envMount, []byte("v"))
	bad := ts.client(t, "not-a-token")

	_, err := bad.GetEnvironment(testCtx(t), envID)
	wantCode(t, err, "GetEnvironment", controlplane.CodeUnauthenticated)
	_, err = bad.GetSecretValue(testCtx(t), s.ID)
	wantCode(t, err, "GetSecretValue", controlplane.CodeUnauthenticated)
	_, err = bad.WatchEvents(testCtx(t), envID)
	wantCode(t, err, "WatchEvents", controlplane.CodeUnauthenticated)

	// The admin calls take the admin token only.
	_, err = NewAdminClient(ts.url, "not-a-token").ListSecrets(testCtx(t), nil)
	wantCode(t, err, "ListSecrets with a bad token", controlplane.CodeUnauthenticated)
	_, err = NewAdminClient(ts.url, tok).ListSecrets(testCtx(t), nil)
	wantCode(t, err, "ListSecrets with an environment's token", controlplane.CodePermissionDenied)
	// And the admin token is no environment's.
	_, err = ts.client(t, ts.admin.Token).GetEnvironment(testCtx(t), envID)
	wantCode(t, err, "GetEnvironment with the admin token", controlplane.CodeUnauthenticated)
}

// nextEvent reads the stream's next line that is not a keepalive.
func nextEvent(t *testing.T, st *controlplane.Stream) controlplane.Event {
	t.Helper()
	for {
		ev, err := st.Next()
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		if ev.Operation != OpKeepalive {
			return ev
		}
	}
}

func TestWatchEventFollowsEachChangeThatAffectsTheEnvironmentAndNoOther(t *testing.T) {
	ts := startServer(t, t.TempDir(), time.Hour)
	envA, tokA := ts.createEnv(t, "org1", "proj1", "alice")
	envB, tokB := ts.createEnv(t, "org1", "proj2", "bob")
	envC, _ := ts.createEnv(t, "org2", "proj3", "carol")
	stA, err := ts.client(t, tokA).WatchEvents(testCtx(t), envA)
	if err != nil {
		t.Fatalf("WatchEvents A: %v", err)
	}
	defer stA.Close()
	stB, err := ts.client(t, tokB).WatchEvents(testCtx(t), envB)
	if err != nil {
		t.Fatalf("WatchEvents B: %v", err)
	}
	defer stB.Close()
	// Taps on the server's fan-out count the notices each environment gets:
	// a notice is sent before the admin call answers, so after each call a
	// tap holds exactly the notices that call caused (0 or 1), with no
	// waiting. The streams show the notices reach the wire.
	taps := map[string]<-chan struct{}{}
	for _, env := range []string{envA, envB, envC} {
		ch, cancel := ts.srv.hub.subscribe(env)
		defer cancel()
		taps[env] = ch
	}

	var ids = map[string]string{}
	steps := []struct {
		name    string
		do      func()
		touches []string
	}{
		{"create alice's", func() {
			ids["a"] = ts.createSecret(t, "ALICE", SecretScope{UserID: "alice"}, envMount, []byte("1")).ID
		}, []string{envA}},
		{"create org1's", func() {
			ids["o"] = ts.createSecret(t, "ORG", SecretScope{OrganizationID: "org1"}, envMount, []byte("1")).ID
		}, []string{envA, envB}},
		{"create proj2's", func() {
			ids["p"] = ts.createSecret(t, "PROJ", SecretScope{ProjectID: "proj2"}, envMount, []byte("1")).ID
		}, []string{envB}},
		{"create an unknown user's", func() {
			ids["x"] = ts.createSecret(t, "NOBODY", SecretScope{UserID: "nobody"}, envMount, []byte("1")).ID
		}, nil},
		{"update alice's", func() { ts.update(t, ids["a"], "2") }, []string{envA}},
		{"update alice's to the same value", func() { ts.update(t, ids["a"], "2") }, nil},
		{"update the unknown user's", func() { ts.update(t, ids["x"], "2") }, nil},
		{"update org1's", func() { ts.update(t, ids["o"], "2") }, []string{envA, envB}},
		{"delete proj2's", func() { _ = ts.admin.DeleteSecret(testCtx(t), ids["p"]) }, []string{envB}},
		{"delete org1's", func() { _ = ts.admin.DeleteSecret(testCtx(t), ids["o"]) }, []string{envA, envB}},
		{"delete alice's", func() { _ = ts.admin.DeleteSecret(testCtx(t), ids["a"]) }, []string{envA}},
	}
	streams := map[string]*controlplane.Stream{envA: stA, envB: stB}
	for _, st := range steps {
		st.do()
		for env, tap := range taps {
			want := 0
			for _, e := range st.touches {
				if e == env {
					want = 1
				}
			}
			if got := len(tap); got != want {
				t.Fatalf("%s: environment %s got %d notices, want %d", st.name, env, got, want)
			}
			if want == 1 {
				<-tap
				if s := streams[env]; s != nil {
					ev := nextEvent(t, s)
					if ev.Operation != controlplane.OpUpdate || ev.ResourceType != controlplane.ResEnvironment || ev.ResourceID != env {
						t.Fatalf("%s: event %+v, want an update of environment %s", st.name, ev, env)
					}
				}
			}
		}
	}
}

func TestWatchStreamSendsKeepalives(t *testing.T) {
	ts := startServer(t, t.TempDir(), 20*time.Millisecond)
	envID, tok := ts.createEnv(t, "org1", "proj1", "user1")
	st, err := ts.client(t, tok).WatchEvents(testCtx(t), envID)
	if err != nil {
		t.Fatalf("WatchEvents: %v", err)
	}
	defer st.Close()
	for range 2 {
		ev, err := st.Next()
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		if ev.Operation != OpKeepalive || ev.ResourceID != envID {
			t.Fatalf("event %+v, want a keepalive", ev)
		}
	}
}

func TestShutdownEndsWatchStreams(t *testing.T) {
	ts := startServer(t, t.TempDir(), time.Hour)
	envID, tok := ts.createEnv(t, "org1", "proj1", "user1")
	st, err := ts.client(t, tok).WatchEvents(testCtx(t), envID)
	if err != nil {
		t.Fatalf("WatchEvents: %v", err)
	}
	defer st.Close()
	ts.stop(t) // returns only once the stream's handler has returned
	if _, err := st.Next(); err == nil {
		t.Fatal("Next after Shutdown: no error")
	}
}

func TestManyWatchersEachGetTheirEvent(t *testing.T) {
	const n = 1000
	ts := startServer(t, t.TempDir(), time.Hour)
	// Every environment shares org1, so one organization secret touches all.
	type watcher struct {
		env string
		st  *controlplane.Stream
	}
	ws := make([]watcher, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	// Sixteen at a time: enough for bbolt to batch the commits, few enough
	// that no call waits long on a busy machine.
	sem := make(chan struct{}, 16)
	for i := range ws {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			// Straight to the store: the admin call is tested elsewhere,
			// and this test is about the streams.
			env, tok, err := ts.srv.Store().CreateEnvironment("org1", "", fmt.Sprintf("user%d", i))
			if err != nil {
				errs <- err
				return
			}
			st, err := ts.client(t, tok).WatchEvents(testCtx(t), env.ID)
			if err != nil {
				errs <- fmt.Errorf("WatchEvents %d: %w", i, err)
				return
			}
			ws[i] = watcher{env.ID, st}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, w := range ws {
		defer w.st.Close()
	}
	// The first watcher never reads its event: that holds up no one.
	ts.createSecret(t, "SHARED", SecretScope{OrganizationID: "org1"}, envMount, []byte("1"))
	errs = make(chan error, n)
	for _, w := range ws[1:] {
		go func() {
			ev, err := w.st.Next()
			if err == nil && ev.ResourceID != w.env {
				err = errors.New("event for " + ev.ResourceID + ", want " + w.env)
			}
			errs <- err
		}()
	}
	for range n - 1 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

func TestDataSurvivesARestart(t *testing.T) {
	dir := t.TempDir()
	ts := startServer(t, dir, 0)
	envID, tok := ts.createEnv(t, "org1", "proj1", "user1")
	s := ts.createSecret(t, "CERT", SecretScope{ProjectID: "proj1"}, SecretMount{FilePath: "/home/u/cert.pem"}, []byte("pem\n"))
	ts.stop(t)

	ts = startServer(t, dir, 0)
	c := ts.client(t, tok)
	res := resolve(t, c, envID)
	if len(res.Winners) != 1 || res.Winners[0].Secret.ID != s.ID || res.Winners[0].Secret.Session != s.Session {
		t.Fatalf("after restart the spec is %v, want secret %s with session %s", res.Winners, s.ID, s.Session)
	}
	if got := value(t, c, s.ID); got != "pem\n" {
		t.Fatalf("value after restart = %q", got)
	}
}

func TestStoreHoldsNoPlaintextValueAndSecretFilesAre0600(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	ts := startServer(t, dir, 0)
	envID, tok := ts.createEnv(t, "org1", "proj1", "user1")
	values := [][]byte{
		[]byte("plaintext-canary-7c1f9e"),
		[]byte("updated-canary-29ab44"),
		{0xff, 0xfe, 'b', 'i', 'n', 'a', 'r', 'y', 0x00, 0x01, 'c', 'a', 'n', 'a', 'r', 'y'},
	}
	s := ts.createSecret(t, "API_KEY", SecretScope{UserID: "user1"}, envMount, values[0])
	ts.update(t, s.ID, string(values[1]))
	bin := ts.createSecret(t, "BLOB", SecretScope{UserID: "user1"}, SecretMount{FilePath: "/tmp/blob"}, values[2])
	c := ts.client(t, tok)
	if got, _ := c.GetSecretValue(testCtx(t), bin.ID); !bytes.Equal(got, values[2]) {
		t.Fatalf("binary value came back as %q", got)
	}
	_ = envID
	ts.stop(t) // bbolt has written everything

	raw, err := os.ReadFile(filepath.Join(dir, DBFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range append(values, []byte(tok)) {
		if bytes.Contains(raw, v) {
			t.Errorf("%s holds a plaintext value or token (%d bytes)", DBFile, len(v))
		}
	}
	for _, f := range []string{DBFile, KeyFile, AdminTokenFile} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %04o, want 0600", f, fi.Mode().Perm())
		}
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Errorf("data dir has mode %04o, want 0700", fi.Mode().Perm())
	}
}

func TestAPIOnlySecretIsReadableThroughTheAPI(t *testing.T) {
	ts := startServer(t, t.TempDir(), 0)
	envID, tok := ts.createEnv(t, "org1", "proj1", "user1")
	s := ts.createSecret(t, "SERVICE_KEY", SecretScope{OrganizationID: "org1"}, SecretMount{APIOnly: true}, []byte("svc"))
	c := ts.client(t, tok)
	if res := resolve(t, c, envID); len(res.Skipped) != 1 || res.Skipped[0].ID != s.ID {
		t.Fatalf("spec = %+v, want the API-only secret listed (and skipped by Resolve)", res)
	}
	if got := value(t, c, s.ID); got != "svc" {
		t.Fatalf("value = %q", got)
	}
}

func TestBadRequestIsInvalidArgumentNamingTheField(t *testing.T) {
	ts := startServer(t, t.TempDir(), 0)
	const v = "do-not-echo-this-value"
	user := SecretScope{UserID: "u1"}
	cases := []struct {
		name  string
		req   CreateSecretRequest
		field string
	}{
		{"no scope", CreateSecretRequest{Name: "AAA", SecretMount: envMount, Value: v}, "scope"},
		{"two scopes", CreateSecretRequest{Name: "AAA", Scope: SecretScope{UserID: "u", ProjectID: "p"}, SecretMount: envMount, Value: v}, "scope"},
		{"no mount", CreateSecretRequest{Name: "AAA", Scope: user, Value: v}, "mount"},
		{"two mounts", CreateSecretRequest{Name: "AAA", Scope: user, SecretMount: SecretMount{EnvironmentVariable: true, APIOnly: true}, Value: v}, "mount"},
		{"no name", CreateSecretRequest{Scope: user, SecretMount: SecretMount{FilePath: "/run/secrets/x"}, Value: v}, "name"},
		{"name not a variable", CreateSecretRequest{Name: "1AB", Scope: user, SecretMount: envMount, Value: v}, "environmentVariable"},
		{"relative path", CreateSecretRequest{Name: "AAA", Scope: user, SecretMount: SecretMount{FilePath: "rel/path"}, Value: v}, "filePath"},
		{"registry value not base64", CreateSecretRequest{Name: "AAA", Scope: user, SecretMount: SecretMount{ContainerRegistryBasicAuthHost: "ghcr.io"}, Value: v}, "value"},
		{"value and valueBytes", CreateSecretRequest{Name: "AAA", Scope: user, SecretMount: envMount, Value: v, ValueBytes: "AAAA"}, "value"},
		{"valueBytes not base64", CreateSecretRequest{Name: "AAA", Scope: user, SecretMount: envMount, ValueBytes: "%%" + v}, "valueBytes"},
		{"value too large", CreateSecretRequest{Name: "AAA", Scope: user, SecretMount: envMount, Value: strings.Repeat("x", secrets.DefaultMaxValueSize+1)}, "value"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ts.admin.CreateSecret(testCtx(t), tc.req)
			wantCode(t, err, "CreateSecret", controlplane.CodeInvalidArgument)
			var ce *controlplane.Error
			errors.As(err, &ce)
			if ce.HTTPStatus != 400 || !strings.Contains(ce.Message, tc.field+":") {
				t.Fatalf("error %v (HTTP %d): want 400 and a message naming %q", err, ce.HTTPStatus, tc.field)
			}
			if strings.Contains(ce.Message, v) {
				t.Fatalf("message echoes the value: %s", ce.Message)
			}
		})
	}
	_, err := ts.admin.CreateEnvironment(testCtx(t), "", "p", "u")
	wantCode(t, err, "CreateEnvironment without an organization", controlplane.CodeInvalidArgument)
	err = ts.admin.DeleteSecret(testCtx(t), "no-such-id")
	wantCode(t, err, "DeleteSecret of an unknown id", controlplane.CodeNotFound)

	// A second secret on the same mount of the same owner would make
	// Resolve reject one of them: refused up front.
	ts.createSecret(t, "API_KEY", user, envMount, []byte("1"))
	_, err = ts.admin.CreateSecret(testCtx(t), CreateSecretRequest{Name: "API_KEY", Scope: user, SecretMount: envMount})
	wantCode(t, err, "a duplicate", controlplane.CodeAlreadyExists)
}

func TestServerRefusesADatabaseWithoutItsKey(t *testing.T) {
	dir := t.TempDir()
	ts := startServer(t, dir, 0)
	ts.stop(t)
	if err := os.Remove(filepath.Join(dir, KeyFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Options{Dir: dir}); err == nil || !strings.Contains(err.Error(), KeyFile) {
		t.Fatalf("New without the key file: %v, want an error naming it", err)
	}
	if _, err := os.Stat(filepath.Join(dir, KeyFile)); err == nil {
		t.Fatal("a new key was made for the old database")
	}
}
