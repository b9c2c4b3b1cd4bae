package dockercfg

import (
	"context"
	"strconv"
	"testing"

	"github.com/secrets-agent/secrets-agent/injectors"
	"github.com/secrets-agent/secrets-agent/secrets"
)

// BenchmarkDockerOneChanged is what the agent asks of the injector when one
// registry secret among many is updated: an Apply of the whole set. Each op
// rewrites config.json and the manifest.
func BenchmarkDockerOneChanged(b *testing.B) {
	for _, n := range []int{50, 500} {
		b.Run("registries="+strconv.Itoa(n), func(b *testing.B) {
			f := newFixture(b, Inline)
			want := make([]secrets.Secret, n)
			for j := range want {
				want[j] = registrySecret("r"+strconv.Itoa(j), "registry"+strconv.Itoa(j)+".example.com", "user", "password-"+strconv.Itoa(j))
			}
			ctx := context.Background()
			if res := f.in.Apply(ctx, want); res.Err != nil || len(res.Failed()) != 0 {
				b.Fatalf("apply: %v %v", res.Err, res.Failed())
			}
			k := n / 2
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				want[k] = registrySecret("r"+strconv.Itoa(k), want[k].Mount.Target, "user", "rotated-"+strconv.Itoa(i%2))
				res := f.in.Apply(ctx, want)
				if res.Err != nil || len(res.Failed()) != 0 || actionFor(res, want[k].Mount.Target) != injectors.Updated {
					b.Fatalf("apply: %v %v", res.Err, res.Failed())
				}
			}
		})
	}
}

// actionFor returns the action of target's outcome in res.
func actionFor(res injectors.Result, target string) injectors.Action {
	for _, o := range res.Outcomes {
		if o.Target == target {
			return o.Action
		}
	}
	return ""
}
