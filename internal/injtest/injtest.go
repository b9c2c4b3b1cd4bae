// Package injtest holds what the injectors' tests share. It is apart from
// internal/testutil, which the packages injectors build on (secrets) import
// in their own tests.
package injtest

import (
	"context"
	"testing"

	"github.com/secrets-agent/secrets-agent/injectors"
	"github.com/secrets-agent/secrets-agent/secrets"
)

// BenchOneChanged times what the agent asks of an injector when one secret
// of set, set[k], is updated: after a whole Apply of set, each op puts
// rotate(set[k], i) in its place and hands the set over as the agent does,
// ApplyOnly of that one target when in is an injectors.Incremental, else
// Apply. Every op must succeed and report set[k] Updated (and, through
// ApplyOnly, nothing else).
func BenchOneChanged(b *testing.B, in injectors.Injector, set []secrets.Secret, k int, rotate func(s secrets.Secret, i int) secrets.Secret) {
	b.Helper()
	ctx := context.Background()
	if res := in.Apply(ctx, set); res.Err != nil || len(res.Failed()) != 0 {
		b.Fatalf("apply: %v %v", res.Err, res.Failed())
	}
	inc, incremental := in.(injectors.Incremental)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		set[k] = rotate(set[k], i)
		var res injectors.Result
		if incremental {
			res = inc.ApplyOnly(ctx, set, []string{set[k].Mount.Target})
		} else {
			res = in.Apply(ctx, set)
		}
		if res.Err != nil || len(res.Failed()) != 0 || actionOf(res, set[k].ID) != injectors.Updated ||
			(incremental && len(res.Outcomes) != 1) {
			b.Fatalf("apply: %v %+v", res.Err, res.Outcomes)
		}
	}
}

// actionOf returns the action of the outcome for secret id in res.
func actionOf(res injectors.Result, id string) injectors.Action {
	for _, o := range res.Outcomes {
		if o.Secret.ID == id {
			return o.Action
		}
	}
	return ""
}
