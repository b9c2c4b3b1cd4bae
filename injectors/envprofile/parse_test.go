package envprofile

import (
	"strings"
	"testing"
)

// TestParseDotenvRefusesOtherShapesWithoutTheValue: ParseDotenv reads back
// what Render writes (render_test.go and the fuzz target check that through
// parseDotenv); anything else is an error that never quotes the value.
func TestParseDotenvRefusesOtherShapesWithoutTheValue(t *testing.T) {
	for _, in := range []string{"A=bare-s3cr3t\n", "A='s3cr3t\n", "A=\"s3cr3t\\x\"\n", "A='s3cr3t'junk\n", "=x\n", "JUSTANAME\n",
		"A=s3cr3t with space\\\n"} {
		if _, err := ParseDotenv([]byte(in)); err == nil || strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("ParseDotenv(%q) = %v", in, err)
		}
	}
	vars, err := ParseDotenv([]byte("# comment\nA='x'\nB=\"y\\n\"\nC=z\\\n"))
	if err != nil || len(vars) != 3 || string(vars[1].Value) != "y\n" || string(vars[2].Value) != `z\` {
		t.Errorf("ParseDotenv = %+v, %v", vars, err)
	}
}
