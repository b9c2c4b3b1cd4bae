package controlplane

import (
	"testing"

	"github.com/secrets-agent/secrets-agent/secrets"
)

// FuzzDecodeEnvironment feeds arbitrary bytes to the path a GetEnvironment
// answer takes in the agent: a Client's specDecoder (cold; what it reuses is
// FuzzDecodeEnvironmentMatchesUnmarshal's), each spec secret's Secret()
// and Resolve. None of it may panic, and every secret ends up in exactly one
// of winners, shadows, rejected or skipped (or is dropped by Secret() with an
// error). Seeds live in testdata/fuzz/FuzzDecodeEnvironment.
func FuzzDecodeEnvironment(f *testing.F) {
	f.Add([]byte(`{"environment":{"id":"e","spec":{"secrets":[{"id":"a","name":"AAA","scope":"SCOPE_USER","environmentVariable":"A"}]}}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		env, err := new(specDecoder).decode(body)
		if err != nil {
			return
		}
		var all []secrets.Secret
		for _, w := range env.Spec.Secrets {
			s, err := w.Secret()
			if err != nil {
				if err.Error() == "" {
					t.Error("empty error")
				}
				continue
			}
			all = append(all, s)
		}
		r := secrets.Resolve(all)
		n := len(r.Rejected) + len(r.Skipped)
		for _, w := range r.Winners {
			n += 1 + len(w.Shadows)
			if err := secrets.ValidateMeta(w.Secret); err != nil {
				t.Errorf("winner %v fails validation: %v", w.Secret, err)
			}
		}
		if n != len(all) {
			t.Errorf("resolution accounts for %d of %d secrets", n, len(all))
		}
	})
}
