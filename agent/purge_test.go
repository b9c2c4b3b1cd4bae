package agent

import (
	"context"
	"testing"

	"github.com/secrets-agent/secrets-agent/controlplane"
)

func TestPurgeRemovesEveryOutput(t *testing.T) {
	r := newRig(t, nil)
	r.cp.put("e", "TOKEN", controlplane.ScopeUser, "env", "TOKEN", "v")
	r.cp.put("f", "KEY", controlplane.ScopeUser, "file", "/x/key", "v")
	r.cp.put("g", "REG", controlplane.ScopeUser, "registry", "reg.test", "dTpw")
	if rep := r.pass(t); !rep.OK() {
		t.Fatalf("pass: %+v", rep.Status)
	}
	calls := r.cp.count(func(f *fakePlane) int { return f.specCalls })
	results, err := r.a.Purge(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, inj := range []*fileInjector{r.env, r.file, r.reg} {
		if len(inj.owned) != 0 {
			t.Errorf("%s still owns %v after Purge", inj.name, inj.owned)
		}
		if res := results[inj.name]; len(res.Outcomes) != 1 || res.Outcomes[0].Err != nil {
			t.Errorf("%s: outcomes %+v", inj.name, res.Outcomes)
		}
	}
	if _, ok := r.file.read(t, "/x/key"); ok {
		t.Error("the secret file is still there")
	}
	if got := r.cp.count(func(f *fakePlane) int { return f.specCalls }); got != calls {
		t.Errorf("Purge asked the control plane (%d spec calls, was %d)", got, calls)
	}
}
