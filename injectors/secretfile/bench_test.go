package secretfile

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/secrets-agent/secrets-agent/injectors"
	"github.com/secrets-agent/secrets-agent/internal/injtest"
	"github.com/secrets-agent/secrets-agent/secrets"
)

// BenchmarkApplyOneChanged is what the agent asks of the injector when one
// file secret among many is updated: ApplyOnly with that one target, after
// a whole Apply of the set. Each op writes the file and the manifest.
func BenchmarkApplyOneChanged(b *testing.B) {
	for _, n := range []int{250, 2500} {
		b.Run("files="+strconv.Itoa(n), func(b *testing.B) {
			base := b.TempDir()
			home := filepath.Join(base, "home")
			if err := os.Mkdir(home, 0o755); err != nil {
				b.Fatal(err)
			}
			in, err := New(Options{AllowedRoots: []string{home}, Owner: injectors.Owner{UID: -1, GID: -1}, StateDir: filepath.Join(base, "state")})
			if err != nil {
				b.Fatal(err)
			}
			ss := make([]secrets.Secret, n)
			for j := range ss {
				ss[j] = sec(strconv.Itoa(j), fmt.Sprintf("%s/dir%02d/secret%05d", home, j%25, j), strings.Repeat("x", 200)+strconv.Itoa(j))
			}
			injtest.BenchOneChanged(b, in, ss, n/2, func(s secrets.Secret, i int) secrets.Secret {
				return sec(s.ID, s.Mount.Target, "rotated-"+strconv.Itoa(i%2))
			})
		})
	}
}
