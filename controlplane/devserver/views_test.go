package devserver

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/secrets-agent/secrets-agent/controlplane"
)

// cachedView returns the view ts holds for envID, nil when none.
func (ts *testServer) cachedView(envID string) *view {
	ts.srv.views.mu.Lock()
	defer ts.srv.views.mu.Unlock()
	return ts.srv.views.byID[envID]
}

func TestAChangeReachesOnlyTheViewsOfEnvironmentsThatSeeIt(t *testing.T) {
	ts := startServer(t, t.TempDir(), 0)
	envA, tokA := ts.createEnv(t, "org1", "projA", "alice")
	envB, tokB := ts.createEnv(t, "org1", "projB", "bob")
	a, b := ts.client(t, tokA), ts.client(t, tokB)
	shared := ts.createSecret(t, "SHARED", SecretScope{OrganizationID: "org1"}, envMount, []byte("s1"))
	onlyA := ts.createSecret(t, "ONLY_A", SecretScope{ProjectID: "projA"}, envMount, []byte("a1"))
	resolve(t, a, envA)
	resolve(t, b, envB)
	viewB := ts.cachedView(envB)
	if ts.cachedView(envA) == nil || viewB == nil {
		t.Fatal("GetEnvironment cached no view")
	}

	// A new value of a secret only A sees leaves B's view as it was.
	updated := ts.update(t, onlyA.ID, "a2")
	if ts.cachedView(envB) != viewB {
		t.Fatal("B's view was rebuilt for a change B does not see")
	}
	// A's view holds the new session without being built again.
	if v := ts.cachedView(envA); v == nil || v.recs[v.pos[onlyA.ID]].Session != updated.Session {
		t.Fatal("A's view does not hold the new session")
	}
	for _, w := range resolve(t, a, envA).Winners {
		if w.Secret.ID == onlyA.ID && w.Secret.Session != updated.Session {
			t.Fatalf("GetEnvironment session %q, want %q", w.Secret.Session, updated.Session)
		}
	}
	if got := value(t, a, onlyA.ID); got != "a2" {
		t.Fatalf("value = %q, want a2", got)
	}

	// A secret added where both see it is seen by both, and shadows.
	user := ts.createSecret(t, "SHARED", SecretScope{UserID: "bob"}, envMount, []byte("mine"))
	if ts.cachedView(envA) == nil {
		t.Fatal("A's view was dropped for a secret A does not see")
	}
	if got := value(t, b, user.ID); got != "mine" {
		t.Fatalf("value = %q, want mine", got)
	}
	_, err := b.GetSecretValue(testCtx(t), shared.ID)
	wantCode(t, err, "the shadowed organization secret", controlplane.CodePermissionDenied)

	// Deleted, it is gone from the views of those that saw it.
	if err := ts.admin.DeleteSecret(testCtx(t), shared.ID); err != nil {
		t.Fatal(err)
	}
	for _, w := range resolve(t, a, envA).Winners {
		if w.Secret.ID == shared.ID {
			t.Fatal("a deleted secret is still in A's spec")
		}
	}
	_, err = a.GetSecretValue(testCtx(t), shared.ID)
	wantCode(t, err, "the deleted secret", controlplane.CodeNotFound)
}

// encodedEnvironment is GetEnvironment's answer for env as writeJSON
// encodes it from the store, without a view's encoded secrets.
func encodedEnvironment(t *testing.T, ts *testServer, token string) string {
	t.Helper()
	env, err := ts.srv.store.EnvironmentByToken(token)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := ts.srv.visible(env)
	if err != nil {
		t.Fatal(err)
	}
	resp := envelope(env)
	for _, rec := range rs {
		sec := rec.Secret()
		sec.Source, sec.SourceRef = SourceControlPlane, rec.ID
		resp.Environment.Spec.Secrets = append(resp.Environment.Spec.Secrets, controlplane.SpecSecret(sec))
	}
	rec := httptest.NewRecorder()
	writeJSON(rec, resp)
	return rec.Body.String()
}

func TestGetEnvironmentFromTheViewIsWhatEncodingTheSpecWrites(t *testing.T) {
	ts := startServer(t, t.TempDir(), 0)
	envID, tok := ts.createEnv(t, "org<1>", "proj&A", "alice")
	get := func(what string) {
		t.Helper()
		status, _, body := post(t, ts, controlplane.ProcGetEnvironment, tok, "application/json", `{"environmentId":"`+envID+`"}`)
		if status != http.StatusOK {
			t.Fatalf("%s: GetEnvironment: HTTP %d %s", what, status, body)
		}
		if want := encodedEnvironment(t, ts, tok); body != want {
			t.Fatalf("%s: GetEnvironment answered\n%s\nwant\n%s", what, body, want)
		}
	}
	get("no secrets")
	ts.createSecret(t, "A", SecretScope{OrganizationID: "org<1>"}, envMount, []byte("a"))
	ts.createSecret(t, "H<&>", SecretScope{OrganizationID: "org<1>"}, SecretMount{FilePath: "/home/u/<h&>"}, []byte("h"))
	f := ts.createSecret(t, "F", SecretScope{ProjectID: "proj&A"}, SecretMount{FilePath: "/home/u/.f\u2028"}, []byte("f"))
	ts.createSecret(t, "R", SecretScope{UserID: "alice"}, SecretMount{ContainerRegistryBasicAuthHost: "r.example"}, []byte("dTpw"))
	ts.createSecret(t, "API", SecretScope{UserID: "alice"}, SecretMount{APIOnly: true}, []byte("x"))
	get("four secrets")
	ts.update(t, f.ID, "f2")
	get("after a new value")
}

// BenchmarkGetEnvironment answers GetEnvironment for an environment that
// sees 1,000 and 10,000 file secrets, its view built before the timing
// starts; it reports the time per secret.
func BenchmarkGetEnvironment(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("secrets=%d", n), func(b *testing.B) {
			srv, err := New(Options{Dir: b.TempDir()})
			if err != nil {
				b.Fatal(err)
			}
			defer srv.store.Close()
			env, tok, err := srv.store.CreateEnvironment("org1", "proj1", "user1")
			if err != nil {
				b.Fatal(err)
			}
			// Concurrent creates share commits (Store.CreateSecret).
			errs := make(chan error, n)
			next := make(chan int)
			for range 64 {
				go func() {
					for i := range next {
						rec, err := Secret{Name: fmt.Sprintf("S%05d", i), Scope: SecretScope{UserID: "user1"},
							SecretMount: SecretMount{FilePath: fmt.Sprintf("/home/user1/secrets/s%05d", i)}, Creator: Admin}.Record()
						if err == nil {
							_, err = srv.store.CreateSecret(rec, []byte("v"))
						}
						errs <- err
					}
				}()
			}
			go func() {
				for i := range n {
					next <- i
				}
				close(next)
			}()
			for range n {
				if err := <-errs; err != nil {
					b.Fatal(err)
				}
			}
			body := `{"environmentId":"` + env.ID + `"}`
			get := func() {
				req := httptest.NewRequest(http.MethodPost, controlplane.ProcGetEnvironment, strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+tok)
				req.Header.Set("Content-Type", controlplane.ContentTypeJSON)
				rec := httptest.NewRecorder()
				srv.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("HTTP %d %s", rec.Code, rec.Body)
				}
			}
			get() // builds the view
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				get()
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/secret")
		})
	}
}
