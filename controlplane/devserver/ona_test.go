package devserver

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/secrets-agent/secrets-agent/controlplane"
	"github.com/secrets-agent/secrets-agent/secrets"
)

// These tests hold the devserver to what Ona's API and SDK do, so that the
// agent tested against it works against Ona.

func TestAPIIsServedUnderSlashAPIAsWellAsAtTheRoot(t *testing.T) {
	ts := startServer(t, t.TempDir(), 0)
	envID, tok := ts.createEnv(t, "org1", "proj1", "user1")
	ts.createSecret(t, "GH_TOKEN", SecretScope{UserID: "user1"}, envMount, []byte("v1"))
	f := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(f, []byte(tok), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, base := range []string{ts.url, ts.url + "/api", ts.url + "/api/"} {
		c, err := controlplane.New(controlplane.Options{BaseURL: base, TokenFile: f, RetryMax: -1})
		if err != nil {
			t.Fatal(err)
		}
		env, err := c.GetEnvironment(testCtx(t), envID)
		if err != nil || len(env.Spec.Secrets) != 1 {
			t.Fatalf("GetEnvironment at base %s: %+v, %v", base, env, err)
		}
		s, err := c.WatchEvents(testCtx(t), envID)
		if err != nil {
			t.Fatalf("WatchEvents at base %s: %v", base, err)
		}
		_ = s.Close()
	}
	admin := NewAdminClient(ts.url+"/api", ts.admin.Token)
	if list, err := admin.ListSecrets(testCtx(t), nil); err != nil || len(list) != 1 {
		t.Fatalf("ListSecrets under /api: %+v, %v", list, err)
	}
}

func TestListSecretsPagesFollowTheNextToken(t *testing.T) {
	ts := startServer(t, t.TempDir(), 0)
	const n = 7
	for i := range n {
		ts.createSecret(t, fmt.Sprintf("secret %d", i), SecretScope{OrganizationID: "org1"},
			SecretMount{FilePath: fmt.Sprintf("/run/secrets/s%d", i)}, []byte("v"))
	}
	var got []string
	req := ListSecretsRequest{Pagination: PaginationRequest{PageSize: 3}}
	pages := 0
	for {
		var resp ListSecretsResponse
		if err := ts.admin.call(testCtx(t), ProcListSecrets, req, &resp); err != nil {
			t.Fatalf("ListSecrets page %d: %v", pages, err)
		}
		pages++
		if len(resp.Secrets) > 3 {
			t.Fatalf("page %d holds %d secrets, more than the page size 3", pages, len(resp.Secrets))
		}
		for _, s := range resp.Secrets {
			got = append(got, s.Name)
		}
		if resp.Pagination.NextToken == "" {
			break
		}
		req.Pagination.Token = resp.Pagination.NextToken
	}
	if pages != 3 || len(got) != n {
		t.Fatalf("%d pages with %d secrets %v, want 3 pages with all %d", pages, len(got), got, n)
	}
	seen := map[string]bool{}
	for _, name := range got {
		if seen[name] {
			t.Fatalf("secret %q listed twice across pages: %v", name, got)
		}
		seen[name] = true
	}
	var resp ListSecretsResponse
	err := ts.admin.call(testCtx(t), ProcListSecrets, ListSecretsRequest{Pagination: PaginationRequest{Token: "garbage"}}, &resp)
	wantCode(t, err, "ListSecrets with a made-up token", controlplane.CodeInvalidArgument)
	// The admin client follows the pages itself.
	if all, err := ts.admin.ListSecrets(testCtx(t), nil); err != nil || len(all) != n {
		t.Fatalf("AdminClient.ListSecrets = %d secrets, %v; want %d", len(all), err, n)
	}
}

func TestCreateSecretAcceptsTheSDKRequestShapes(t *testing.T) {
	ts := startServer(t, t.TempDir(), 0)
	cases := []struct {
		name  string
		body  string
		scope secrets.Scope
		owner string
	}{
		{"scope.userId", `{"name":"GitHub token (personal)","scope":{"userId":"u1"},"filePath":"/home/u/.gh","value":"v"}`, secrets.ScopeUser, "u1"},
		{"scope.projectId", `{"name":"NPM_TOKEN","scope":{"projectId":"p1"},"environmentVariable":true,"value":"v"}`, secrets.ScopeProject, "p1"},
		{"deprecated projectId", `{"name":"gh","projectId":"p2","containerRegistryBasicAuthHost":"ghcr.io","value":"dTpw"}`, secrets.ScopeProject, "p2"},
		{"scope.serviceAccountId", `{"name":"deploy key","scope":{"serviceAccountId":"sa1"},"apiOnly":true,"value":"v"}`, secrets.ScopeServiceAccount, "sa1"},
		{"scope.organizationId", `{"name":"ORG_KEY","scope":{"organizationId":"o1"},"environmentVariable":true,"value":"v","someFutureField":1}`, secrets.ScopeOrganization, "o1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, _, body := post(t, ts, ProcCreateSecret, ts.admin.Token, "application/json", tc.body)
			if status != 200 {
				t.Fatalf("HTTP %d %s", status, body)
			}
			var resp CreateSecretResponse
			if err := json.Unmarshal([]byte(body), &resp); err != nil {
				t.Fatal(err)
			}
			rec, err := resp.Secret.Record()
			if err != nil || rec.Scope != tc.scope || rec.Owner != tc.owner {
				t.Fatalf("created %+v (%v), want scope %s owner %s", resp.Secret, err, tc.scope, tc.owner)
			}
			if resp.Secret.Creator != Admin {
				t.Errorf("creator %+v, want %+v", resp.Secret.Creator, Admin)
			}
			if tc.scope == secrets.ScopeProject && resp.Secret.ProjectID != tc.owner {
				t.Errorf("projectId %q, want the deprecated field filled with %s", resp.Secret.ProjectID, tc.owner)
			}
		})
	}
	status, _, body := post(t, ts, ProcCreateSecret, ts.admin.Token, "application/json",
		`{"name":"x","projectId":"p1","scope":{"userId":"u1"},"apiOnly":true}`)
	if status != 400 {
		t.Fatalf("projectId disagreeing with scope: HTTP %d %s, want 400", status, body)
	}
}

func TestWatchStreamSendsNoKeepalivesByDefault(t *testing.T) {
	ts := startServer(t, t.TempDir(), 0)
	envID, tok := ts.createEnv(t, "org1", "proj1", "user1")
	st, err := ts.client(t, tok).WatchEvents(testCtx(t), envID)
	if err != nil {
		t.Fatalf("WatchEvents: %v", err)
	}
	got := make(chan controlplane.Event, 1)
	go func() {
		ev, err := st.Next()
		if err == nil {
			got <- ev
		}
	}()
	select {
	case ev := <-got:
		t.Fatalf("a silent server sent %+v", ev)
	case <-time.After(300 * time.Millisecond):
	}
	ts.createSecret(t, "K", SecretScope{UserID: "user1"}, envMount, []byte("v"))
	select {
	case ev := <-got:
		if ev.Operation != controlplane.OpUpdate || ev.ResourceID != envID {
			t.Fatalf("event %+v, want an update of %s", ev, envID)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no event after a change")
	}
	_ = st.Close()
}
