package dockercfg

import (
	"strconv"
	"testing"

	"github.com/secrets-agent/secrets-agent/internal/injtest"
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
			injtest.BenchOneChanged(b, f.in, want, n/2, func(s secrets.Secret, i int) secrets.Secret {
				return registrySecret(s.ID, s.Mount.Target, "user", "rotated-"+strconv.Itoa(i%2))
			})
		})
	}
}
