package agent

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"testing"

	"go.uber.org/zap"

	"github.com/secrets-agent/secrets-agent/controlplane"
	"github.com/secrets-agent/secrets-agent/injectors"
	"github.com/secrets-agent/secrets-agent/secrets"
)

// nopInjector reports on what it is handed and writes nothing: with it a
// benchmark times the agent's own part of a pass.
type nopInjector struct {
	name string
	kind secrets.MountKind
}

func (n nopInjector) Name() string            { return n.name }
func (n nopInjector) Kind() secrets.MountKind { return n.kind }

func (n nopInjector) Apply(ctx context.Context, desired []secrets.Secret) injectors.Result {
	return n.report(desired, nil)
}

func (n nopInjector) ApplyOnly(ctx context.Context, desired []secrets.Secret, touched []string) injectors.Result {
	return n.report(desired, touched)
}

func (n nopInjector) report(desired []secrets.Secret, only []string) injectors.Result {
	var r injectors.Result
	for _, s := range desired {
		if only == nil || slices.Contains(only, s.Mount.Target) {
			r.Outcomes = append(r.Outcomes, injectors.Outcome{Secret: s.Ref(), Target: s.Mount.Target, Action: injectors.Updated})
		}
	}
	return r
}

// BenchmarkPass times the agent's own part of a full pass (no HTTP, no
// decoding, injectors that write nothing) with 1,000 and 10,000 secrets
// applied, after one change: a rotated value (the spec differs in one
// session: the last plan is reused) or an added secret (a new plan).
func BenchmarkPass(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		for _, change := range []string{"rotate", "add"} {
			b.Run(fmt.Sprintf("secrets=%d/change=%s", n, change), func(b *testing.B) { benchPass(b, n, change) })
		}
	}
}

func benchPass(b *testing.B, n int, change string) {
	cp := newFakePlane()
	for i := range n {
		id := fmt.Sprintf("s%05d", i)
		switch {
		case i%20 < 14:
			cp.put(id, id, controlplane.ScopeUser, "env", fmt.Sprintf("VAR_%05d", i), "v")
		case i%20 < 19:
			cp.put(id, id, controlplane.ScopeProject, "file", fmt.Sprintf("/home/u/f%05d", i), "v")
		default:
			cp.put(id, id, controlplane.ScopeOrganization, "registry", fmt.Sprintf("r%05d.example.com", i),
				base64.StdEncoding.EncodeToString([]byte("u:p")))
		}
	}
	a, err := New(testConfig(), zap.NewNop(), WithControlPlane(cp), withNotifier(nopNotifier{}), WithInjectors(
		nopInjector{"envprofile", secrets.MountEnv}, nopInjector{"secretfile", secrets.MountFile}, nopInjector{"dockercfg", secrets.MountRegistry}))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if rep, _, _ := a.pass(ctx); !rep.OK() {
		b.Fatal(rep.Error)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		if change == "rotate" {
			cp.put("s00015", "s00015", controlplane.ScopeProject, "file", "/home/u/f00015", fmt.Sprint(i))
		} else {
			cp.put(fmt.Sprintf("new%d", i), "new", controlplane.ScopeUser, "env", fmt.Sprintf("NEW_%d", i), "v")
		}
		b.StartTimer()
		if rep, _, _ := a.pass(ctx); !rep.OK() {
			b.Fatal(rep.Error)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/secret")
}
