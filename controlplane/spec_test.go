package controlplane

import (
	"encoding/json"
	"fmt"
	"runtime"
	"testing"

	"github.com/secrets-agent/secrets-agent/secrets"
)

// largeSpec is a GetEnvironment response body with n secrets as a large
// organization's would be: 70 % env, 25 % files, 5 % registries, every
// field set, ids and sessions as long as Ona's (UUIDs), names and paths
// longer than usual.
func largeSpec(n int) []byte {
	var r GetEnvironmentResponse
	r.Environment.ID = "0193c4a5-7a3e-7c1b-9f2d-4c5e6f708192"
	scopes := []secrets.Scope{secrets.ScopeOrganization, secrets.ScopeProject, secrets.ScopeUser}
	for i := range n {
		id := fmt.Sprintf("0193c4a5-%04x-7c1b-9f2d-%012x", i%0x10000, i)
		s := secrets.Secret{ID: id, Name: fmt.Sprintf("platform team secret number %05d", i), Scope: scopes[i%3],
			Session: fmt.Sprintf("0193c4a6-%04x-7c1b-9f2d-%012x", i%0x10000, i), Source: "control-plane", SourceRef: id}
		switch {
		case i%20 < 14:
			s.Mount = secrets.Mount{Kind: secrets.MountEnv, Target: fmt.Sprintf("PLATFORM_SERVICE_CREDENTIAL_%05d", i)}
		case i%20 < 19:
			s.Mount = secrets.Mount{Kind: secrets.MountFile, Target: fmt.Sprintf("/home/developer/.config/platform/services/team-%03d/credential-%05d.json", i%100, i)}
		default:
			s.Mount = secrets.Mount{Kind: secrets.MountRegistry, Target: fmt.Sprintf("registry-%05d.platform.example.com", i)}
		}
		r.Environment.Spec.Secrets = append(r.Environment.Spec.Secrets, SpecSecret(s))
	}
	b, err := json.Marshal(r)
	if err != nil {
		panic(err)
	}
	return b
}

// specSecrets is the largest spec the response cap must hold.
const specSecrets = 10000

func TestTenThousandSecretSpecFitsTheResponseCap(t *testing.T) {
	body := largeSpec(specSecrets)
	if len(body) > DefaultMaxResponseBytes/2 {
		t.Fatalf("a %d-secret spec is %d bytes: less than twice under the %d-byte response cap", specSecrets, len(body), DefaultMaxResponseBytes)
	}
	env, err := decodeEnvironment(body)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(env.Spec.Secrets); got != specSecrets {
		t.Fatalf("decoded %d secrets, want %d", got, specSecrets)
	}
	for _, w := range env.Spec.Secrets {
		if _, err := w.Secret(); err != nil {
			t.Fatalf("spec secret %s: %v", w.ID, err)
		}
	}
	t.Logf("a %d-secret spec is %d bytes (%.0f per secret); the cap is %d", specSecrets, len(body), float64(len(body))/specSecrets, DefaultMaxResponseBytes)
}

// BenchmarkDecodeEnvironment decodes GetEnvironment responses of 1,000 and
// 10,000 secrets and converts each to the domain form, as every pass does;
// it reports the time and allocations per secret. plain is json.Unmarshal
// of the whole body (decodeEnvironment, the fallback); cold is a
// specDecoder with nothing cached; one-changed is a specDecoder that decoded
// the same spec with one other session last time, as a pass after one
// secret's value changed.
func BenchmarkDecodeEnvironment(b *testing.B) {
	for _, n := range []int{1000, specSecrets} {
		body := largeSpec(n)
		changed := withSession(b, body, n/2, n)
		for _, c := range []struct {
			name   string
			decode func(i int) (*Environment, error)
		}{
			{"plain", func(int) (*Environment, error) { return decodeEnvironment(body) }},
			{"cold", func(int) (*Environment, error) { return new(specDecoder).decode(body) }},
			{"one-changed", func() func(int) (*Environment, error) {
				var d specDecoder
				if _, err := d.decode(changed); err != nil {
					b.Fatal(err)
				}
				return func(i int) (*Environment, error) {
					if i%2 == 0 {
						return d.decode(body)
					}
					return d.decode(changed)
				}
			}()},
		} {
			b.Run(fmt.Sprintf("secrets=%d/%s", n, c.name), func(b *testing.B) {
				b.SetBytes(int64(len(body)))
				b.ReportAllocs()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				b.ResetTimer()
				for i := range b.N {
					env, err := c.decode(i)
					if err != nil {
						b.Fatal(err)
					}
					for _, w := range env.Spec.Secrets {
						if _, err := w.Secret(); err != nil {
							b.Fatal(err)
						}
					}
				}
				b.StopTimer()
				runtime.ReadMemStats(&after)
				// Per-secret figures; the totals are ns/op and allocs/op.
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/secret")
				b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(b.N*n), "allocs/secret")
				b.ReportMetric(float64(len(body))/float64(n), "bytes/secret")
			})
		}
	}
}
