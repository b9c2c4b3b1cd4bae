package test

import (
	"context"
	"encoding/base64"
	"path/filepath"
	"testing"

	"go.uber.org/zap"

	"github.com/secrets-agent/secrets-agent/agent"
	"github.com/secrets-agent/secrets-agent/control"
	"github.com/secrets-agent/secrets-agent/injectors/builtin"
)

// TestSecondPassWithNothingChangedWritesNothing runs two passes of the real
// agent with the real injectors and the real client against the devserver:
// the second performs zero writes, counted through the injectors' results.
func TestSecondPassWithNothingChangedWritesNothing(t *testing.T) {
	s := newStack(t)
	for i, name := range []string{"ENV_ONE", "ENV_TWO", "ENV_THREE"} {
		s.dev.CreateSecret(t, []string{"organization", "project", "user"}[i], []string{"acme", "web", "alice"}[i], name, env(), []byte(name))
	}
	s.dev.CreateSecret(t, "user", "alice", "FILE_ONE", file(filepath.Join(s.home(), "one")), []byte("1"))
	s.dev.CreateSecret(t, "project", "web", "FILE_TWO", file(filepath.Join(s.home(), "dir/two")), []byte("2"))
	s.dev.CreateSecret(t, "user", "alice", "REG_ONE", registry("reg.one.test"), []byte(base64.StdEncoding.EncodeToString([]byte("u:p"))))
	cfg, err := builtin.Load(s.writeConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(cfg, zap.NewNop(), agent.WithBuilders(builtin.Builders))
	if err != nil {
		t.Fatal(err)
	}
	writes := func(rep control.PassReport) (n int) {
		for _, r := range rep.Results {
			n += r.Writes
		}
		return n
	}
	first := a.Sync(context.Background())
	if !first.OK() || writes(first) == 0 {
		t.Fatalf("first pass: ok=%v writes=%d error=%q", first.OK(), writes(first), first.Error)
	}
	second := a.Sync(context.Background())
	if !second.OK() {
		t.Fatalf("second pass failed: %q", second.Error)
	}
	for name, r := range second.Results {
		if r.Writes != 0 {
			t.Errorf("second pass: %s performed %d writes, want 0", name, r.Writes)
		}
	}
	if len(second.Results) != 4 {
		t.Errorf("second pass ran %d injectors, want 4 (envprofile, secretfile, dockercfg, gitcred)", len(second.Results))
	}
}
