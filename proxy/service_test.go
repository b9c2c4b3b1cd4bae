package proxy

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secrets-agent/secrets-agent/secrets"
)

func proxied(id, session, value string) secrets.Secret {
	return secrets.Secret{ID: id, Name: id, Scope: secrets.ScopeUser, Session: session,
		Mount:           secrets.Mount{Kind: secrets.MountEnv, Target: strings.ToUpper(id)},
		CredentialProxy: &secrets.CredentialProxy{Header: "Authorization", TargetHosts: []string{apiHost}},
		Value:           secrets.Value(value)}
}

func prepare(t *testing.T, s *Service, ss ...secrets.Secret) map[string][]secrets.Secret {
	t.Helper()
	sets := map[string][]secrets.Secret{"envprofile": ss}
	if errs := s.Prepare(sets, "envprofile"); errs != nil {
		t.Fatal(errs)
	}
	return sets
}

func TestPlaceholdersSurviveARestartUntilTheSessionChanges(t *testing.T) {
	dir := t.TempDir()
	start := func() *Service {
		s := NewService(ServiceOptions{StateDir: dir, Listen: "127.0.0.1:0"})
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	first := prepare(t, start(), proxied("gh", "s1", "real-value"))["envprofile"][0]
	if !IsPlaceholder(string(first.Value)) {
		t.Fatalf("mounted value %q, want a placeholder", first.Value)
	}
	b, err := os.ReadFile(filepath.Join(dir, placeholdersFile))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "real-value") {
		t.Error("the placeholders file holds the value")
	}
	if fi, _ := os.Stat(filepath.Join(dir, placeholdersFile)); fi.Mode().Perm() != 0o600 {
		t.Errorf("placeholders file mode %v, want 0600", fi.Mode())
	}
	again := prepare(t, start(), proxied("gh", "s1", "real-value"))["envprofile"][0]
	if string(again.Value) != string(first.Value) {
		t.Errorf("after a restart the placeholder changed: want the same one for the same session")
	}
	rotated := prepare(t, start(), proxied("gh", "s2", "new-value"))["envprofile"][0]
	if string(rotated.Value) == string(first.Value) {
		t.Error("a new session kept the old placeholder")
	}
}

func TestPrepareAddsTheProxyVariablesOnlyWhileAProxiedSecretExists(t *testing.T) {
	s := NewService(ServiceOptions{StateDir: t.TempDir(), Listen: "127.0.0.1:0"})
	t.Cleanup(func() { _ = s.Close() })
	plain := secrets.Secret{ID: "p", Mount: secrets.Mount{Kind: secrets.MountEnv, Target: "PLAIN"}, Value: secrets.Value("v")}
	mine := secrets.Secret{ID: "mine", Mount: secrets.Mount{Kind: secrets.MountEnv, Target: "NO_PROXY"}, Value: secrets.Value("corp")}
	names := func(set []secrets.Secret) map[string]string {
		m := map[string]string{}
		for _, x := range set {
			m[x.Mount.Target] = string(x.Value)
		}
		return m
	}
	got := names(prepare(t, s, plain)["envprofile"])
	if len(got) != 1 {
		t.Errorf("without a proxied secret the set is %v, want PLAIN alone", got)
	}
	got = names(prepare(t, s, plain, mine, proxied("gh", "s1", "real"))["envprofile"])
	if got["HTTPS_PROXY"] != "http://"+s.Addr() || got["NO_PROXY"] != "corp" || got["SSL_CERT_FILE"] == "" {
		t.Errorf("with a proxied secret the set is %v, want the proxy variables, a secret's own NO_PROXY kept", got)
	}
	if got := names(prepare(t, s, plain)["envprofile"]); len(got) != 1 {
		t.Errorf("after the proxied secret went the set is %v, want PLAIN alone", got)
	}
}

func TestAProxyThatCouldNotStartIsTriedAgain(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := NewService(ServiceOptions{StateDir: t.TempDir(), Listen: busy.Addr().String()})
	t.Cleanup(func() { _ = s.Close() })
	sets := map[string][]secrets.Secret{"envprofile": {proxied("gh", "s1", "real")}}
	errs := s.Prepare(sets, "envprofile")
	if errs["gh"] == nil || len(sets["envprofile"]) != 0 {
		t.Fatalf("port taken: errors %v, set %d secrets; want gh failed and left out", errs, len(sets["envprofile"]))
	}
	busy.Close()
	if got := prepare(t, s, proxied("gh", "s1", "real"))["envprofile"]; len(got) == 0 || !IsPlaceholder(string(got[0].Value)) {
		t.Errorf("after the port was freed: %v, want the placeholder", got)
	}
}
