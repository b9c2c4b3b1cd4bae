package secretfile

import (
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestModesParse(t *testing.T) {
	for in, want := range map[string]FileMode{"0600": 0o600, "600": 0o600, "0o400": 0o400, "0": 0} {
		if got, err := ParseFileMode(in); err != nil || got != want {
			t.Errorf("ParseFileMode(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "rw", "0800", "01000", "-1", "0x1f"} {
		if _, err := ParseFileMode(in); err == nil {
			t.Errorf("ParseFileMode(%q) succeeded", in)
		}
	}
	// Both octal spellings in YAML mean the same.
	for _, y := range []string{"mode: 0400", "mode: \"0400\"", "mode: 0o400", "mode: 400"} {
		var s Section
		if err := yaml.Unmarshal([]byte(y), &s); err != nil || s.Mode != 0o400 {
			t.Errorf("%s: mode %v, err %v", y, s.Mode, err)
		}
	}
}
