package envprofile

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/secrets-agent/secrets-agent/injectors"
	"github.com/secrets-agent/secrets-agent/internal/injtest"
	"github.com/secrets-agent/secrets-agent/secrets"
)

// BenchmarkEnvOneChanged is what the agent asks of the injector when one
// variable among many is updated: an Apply of the whole set (ApplyOnly of
// the one variable when the injector is incremental). Each op writes the
// fragments, their deltas and the manifest.
func BenchmarkEnvOneChanged(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run("vars="+strconv.Itoa(n), func(b *testing.B) {
			in, err := New(Options{Dir: filepath.Join(b.TempDir(), "env"), Owner: injectors.Owner{UID: -1, GID: -1}, StateDir: b.TempDir()})
			if err != nil {
				b.Fatal(err)
			}
			env := make([]secrets.Secret, n)
			for j := range env {
				env[j] = envSecret(strconv.Itoa(j), "VAR_"+strconv.Itoa(j), []byte(strings.Repeat("v", 40)+strconv.Itoa(j)))
			}
			injtest.BenchOneChanged(b, in, env, n/2, func(s secrets.Secret, i int) secrets.Secret {
				s.Value = []byte("rotated-" + strconv.Itoa(i%2))
				return s
			})
		})
	}
}
