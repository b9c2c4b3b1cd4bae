package devserver

import (
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
