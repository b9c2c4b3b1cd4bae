package controlplane

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/secrets-agent/secrets-agent/secrets"
)

// The fixtures in testdata/ona are shaped as Ona's API answers (see their
// README); devserver tests its encoder against the same files.

const goldenEnvID = "07e03a28-65a5-4d98-b532-8ea67b188048"

func golden(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "ona", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestClientDecodesOnasEnvironment(t *testing.T) {
	body := golden(t, "get_environment.json")
	srv := serve(t, func(w http.ResponseWriter, r *http.Request, n int) {
		w.Header().Set("Content-Type", ContentTypeJSON)
		_, _ = io.WriteString(w, body)
	})
	c, _ := newClient(t, srv.URL+"/api", nil)
	env, err := c.GetEnvironment(ctx10s(t), goldenEnvID)
	if err != nil {
		t.Fatalf("GetEnvironment: %v", err)
	}
	if env.ID != goldenEnvID || env.Metadata.OrganizationID != "b0e12f6c-6b49-4a9b-b4f3-1b9c8f0c1a11" ||
		env.Metadata.Creator.Principal != "PRINCIPAL_USER" || env.Status.Phase != "ENVIRONMENT_PHASE_RUNNING" {
		t.Errorf("environment %+v: id, metadata or status not decoded", env)
	}
	type want struct {
		name      string
		scope     secrets.Scope
		mount     secrets.Mount
		proxy     bool
		source    string
		sourceRef string
	}
	wants := []want{
		{"GitHub token (personal)", secrets.ScopeUnspecified, secrets.Mount{Kind: secrets.MountEnv, Target: "GH_TOKEN"}, false, "control-plane", "5f1e9c3a-0d4b-4c7e-9a2f-11aa22bb33cc"},
		{"gh", secrets.ScopeUnspecified, secrets.Mount{Kind: secrets.MountFile, Target: "/home/dev/.config/gh/hosts.yml"}, false, "control-plane", "6a2f0d4b-1e5c-4d8f-8b30-22bb33cc44dd"},
		{"Anthropic API key", secrets.ScopeUser, secrets.Mount{Kind: secrets.MountEnv, Target: "ANTHROPIC_API_KEY"}, true, "control-plane", "7b3a1e5c-2f6d-4e90-9c41-33cc44dd55ee"},
		{"ghcr pull", secrets.ScopeProject, secrets.Mount{Kind: secrets.MountRegistry, Target: "ghcr.io"}, false, "control-plane", "8c4b2f6d-3a7e-4fa1-8d52-44dd55ee66ff"},
		{"release signing key", secrets.ScopeOrganization, secrets.Mount{Kind: secrets.MountAPIOnly}, false, "control-plane", "9d5c3a7e-4b8f-4ab2-9e63-55ee66ff7700"},
		{"runner git credential", secrets.ScopeRunner, secrets.Mount{Kind: secrets.MountGitCredential, Target: "github.com"}, false, "runner", "scm-integration/github"},
	}
	if len(env.Spec.Secrets) != len(wants) {
		t.Fatalf("%d spec secrets, want %d", len(env.Spec.Secrets), len(wants))
	}
	var all []secrets.Secret
	for i, w := range env.Spec.Secrets {
		s, err := w.Secret()
		if err != nil {
			t.Errorf("secret %d (%s): %v", i, w.Name, err)
			continue
		}
		got := want{s.Name, s.Scope, s.Mount, s.CredentialProxy != nil, s.Source, s.SourceRef}
		if !reflect.DeepEqual(got, wants[i]) {
			t.Errorf("secret %d = %+v, want %+v", i, got, wants[i])
		}
		all = append(all, s)
	}
	if p := all[2].CredentialProxy; p == nil || p.Header != "x-api-key" || !reflect.DeepEqual(p.TargetHosts, []string{"api.anthropic.com"}) {
		t.Errorf("credentialProxy = %+v", p)
	}
	res := secrets.Resolve(all)
	if len(res.Rejected) != 0 {
		t.Errorf("Resolve rejected %+v; every secret of the fixture is valid", res.Rejected)
	}
}

func TestClientReadsOnasEventLines(t *testing.T) {
	var lines []string
	for _, l := range strings.SplitAfter(golden(t, "watch_events.jsonl"), "\n") {
		if l != "" {
			lines = append(lines, l)
		}
	}
	srv := streamServer(t, lines, nil)
	c, _ := newClient(t, srv.URL, nil)
	s, err := c.WatchEvents(ctx10s(t), goldenEnvID)
	if err != nil {
		t.Fatalf("WatchEvents: %v", err)
	}
	defer s.Close()
	// One per line: whether it can change this environment's secrets.
	want := []bool{
		true,  // update of this environment
		false, // status-only update
		false, // task
		false, // task execution
		false, // blank line
		false, // service
		false, // another environment
		true,  // secret created
		true,  // secret deleted
		false, // runner
		false, // unknown resource type
		false, // unknown operation
		false, // no operation
		true,  // this environment deleted
	}
	for i, w := range want {
		ev, err := s.Next()
		if err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		if got := ev.Relevant(goldenEnvID); got != w {
			t.Errorf("line %d %+v: Relevant = %v, want %v", i+1, ev, got, w)
		}
	}
	if _, err := s.Next(); err != io.EOF {
		t.Errorf("after the last line: %v, want io.EOF", err)
	}
}
