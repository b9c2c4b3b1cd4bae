// Package test holds the end-to-end tests: they build the real binaries, run
// a real secrets-devserver on loopback and the real secrets-agent against
// throw-away homes, and check the results with real programs.
package test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secrets-agent/secrets-agent/internal/testutil"
)

// stack is one devserver with one environment for organization acme,
// project web and user alice, and an agent config pointing at it.
type stack struct {
	dev       *testutil.Devserver
	envID     string
	tokenFile string
	dir       string
	cfg       testutil.AgentConfig
}

func newStack(t testing.TB) *stack {
	t.Helper()
	s := &stack{dev: testutil.StartDevserver(t), dir: t.TempDir()}
	var token string
	s.envID, token = s.dev.CreateEnv(t, "acme", "web", "alice")
	s.tokenFile = filepath.Join(s.dir, "token")
	if err := os.WriteFile(s.tokenFile, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	s.cfg = testutil.AgentConfig{
		URL: s.dev.URL, EnvironmentID: s.envID, TokenFile: s.tokenFile,
		Home:   filepath.Join(s.dir, "home"),
		EnvDir: filepath.Join(s.dir, "envdir"),
		Socket: filepath.Join(s.dir, "agent.sock"),
	}
	return s
}

func (s *stack) home() string   { return s.cfg.Home }
func (s *stack) envDir() string { return s.cfg.EnvDir }

// writeConfig writes the agent config and returns its path.
func (s *stack) writeConfig(t testing.TB) string {
	t.Helper()
	return testutil.WriteAgentConfig(t, s.dir, s.cfg)
}

// once runs `secrets-agent run --once` and returns its exit code and stderr.
func (s *stack) once(t testing.TB) (int, string) {
	t.Helper()
	cfg := s.writeConfig(t)
	_, stderr, code := testutil.RunAgent(t, nil, "run", "--once", "--config", cfg)
	return code, stderr
}

// mustOnce is once, failing the test unless every secret applied.
func (s *stack) mustOnce(t testing.TB) {
	t.Helper()
	if code, stderr := s.once(t); code != 0 {
		t.Fatalf("run --once exited %d:\n%s", code, stderr)
	}
}

func env() testutil.Mount              { return testutil.Mount{Env: true} }
func file(path string) testutil.Mount  { return testutil.Mount{File: path} }
func registry(h string) testutil.Mount { return testutil.Mount{Registry: h} }
func apiOnly() testutil.Mount          { return testutil.Mount{APIOnly: true} }
func lines(s string) []string          { return strings.Split(strings.TrimSpace(s), "\n") }
func readFile(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	return b
}
