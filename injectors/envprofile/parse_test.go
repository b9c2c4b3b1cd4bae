package envprofile

import (
	"bytes"
	"strings"
	"testing"

	"github.com/secrets-agent/secrets-agent/internal/testutil"
	"github.com/secrets-agent/secrets-agent/secrets"
)

func TestParseDotenvReadsBackEveryRenderedValue(t *testing.T) {
	var in []secrets.Secret
	for _, v := range testutil.AdversarialValues() {
		if bytes.IndexByte(v.Value, 0) >= 0 {
			continue
		}
		in = append(in, envSecret(v.Name, v.Name, v.Value))
	}
	in = append(in, envSecret("EMPTY", "EMPTY", nil), envSecret("HASH_LINE", "HASH_LINE", []byte("a\n# not a comment\nb")))
	frag, err := Render(FormatDotenv, in)
	if err != nil {
		t.Fatal(err)
	}
	vars, err := ParseDotenv(frag)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]byte{}
	for _, v := range vars {
		got[v.Name] = v.Value
	}
	if len(got) != len(in) {
		t.Fatalf("%d variables read back, want %d", len(got), len(in))
	}
	for _, s := range in {
		if !bytes.Equal(got[s.Mount.Target], s.Value) {
			t.Errorf("%s read back differently", s.Mount.Target)
		}
	}
}

func TestParseDotenvRefusesOtherShapesWithoutTheValue(t *testing.T) {
	for _, in := range []string{"A=unquoted-s3cr3t\n", "A='s3cr3t\n", "A=\"s3cr3t\\x\"\n", "A='s3cr3t'junk\n", "=x\n", "JUSTANAME\n"} {
		if _, err := ParseDotenv([]byte(in)); err == nil || strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("ParseDotenv(%q) = %v", in, err)
		}
	}
}

func FuzzParseDotenvRoundTrip(f *testing.F) {
	f.Add([]byte("plain"), []byte("it's \"q\" $HOME \\ \n\r"))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		if bytes.IndexByte(a, 0) >= 0 || bytes.IndexByte(b, 0) >= 0 {
			return
		}
		frag, err := Render(FormatDotenv, []secrets.Secret{envSecret("AAA", "AAA", a), envSecret("BBB", "BBB", b)})
		if err != nil {
			t.Fatal(err)
		}
		vars, err := ParseDotenv(frag)
		if err != nil || len(vars) != 2 || !bytes.Equal(vars[0].Value, a) || !bytes.Equal(vars[1].Value, b) {
			t.Fatalf("round trip: %v %+v", err, vars)
		}
		_, _ = ParseDotenv(a) // never panics on anything
	})
}
