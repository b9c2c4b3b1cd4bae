package test

import (
	"strings"
	"testing"
	"time"
)

// BenchmarkChaosRecovery measures, for each fault that makes control-plane
// calls fail, how long the agent takes to apply a change made during the
// fault once the fault stops (issue 6): with a 1 s poll floor, and with the
// default 30 s one, where the failed pass's retry backoff (full jitter,
// capped at 60 s) and the stream's reconnect bring it back.
func BenchmarkChaosRecovery(b *testing.B) {
	const runs = 3
	for _, f := range chaosFaults {
		if f.wantErr == "" {
			continue // fails no call: the change lands during the fault
		}
		name := strings.NewReplacer(" ", "-", "(", "", ")", "").Replace(f.name)
		for _, poll := range []string{"1s", "30s"} {
			var took []time.Duration
			for range runs {
				took = append(took, measureRecovery(b, poll, f.fault))
			}
			b.ReportMetric(millis(percentile(took, 50)), name+"-poll"+poll+"-p50-ms")
			b.ReportMetric(millis(percentile(took, 100)), name+"-poll"+poll+"-max-ms")
		}
	}
	b.Logf("note: each figure is over %d fresh stacks (devserver, faultproxy, agent binary); the fault holds %v after the change, so retries have backed off as in a real outage; time runs from the fault's end to the change on disk", runs, faultHold)
	b.ReportMetric(0, "ns/op")
}
