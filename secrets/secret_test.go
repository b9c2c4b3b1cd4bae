package secrets

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func TestValueNeverPrintsItsBytes(t *testing.T) {
	const plain = "hunter2-Zq9"
	v := Value(plain)
	s := Secret{ID: "s1", Name: "DB_PASSWORD", Scope: ScopeUser, Mount: Mount{MountEnv, "DB_PASSWORD"}, Value: v}
	forbidden := []string{plain, hex.EncodeToString([]byte(plain)), strings.ToUpper(hex.EncodeToString([]byte(plain))), "104 117 110"}
	var outs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "% x", "%d"} {
		outs = append(outs, fmt.Sprintf(verb, v), fmt.Sprintf(verb, s), fmt.Sprintf(verb, &s), fmt.Sprintf(verb, []Secret{s}))
	}
	outs = append(outs, fmt.Sprint(v), fmt.Sprintln(s), v.String(), v.GoString(), s.String())
	for _, x := range []any{v, s, []Secret{s}, map[string]Value{"k": v}} {
		b, err := json.Marshal(x)
		if err != nil {
			t.Fatalf("json.Marshal(%T): %v", x, err)
		}
		outs = append(outs, string(b))
	}
	for _, out := range outs {
		for _, f := range forbidden {
			if strings.Contains(out, f) {
				t.Errorf("output %q shows the value (%q)", out, f)
			}
		}
	}
	if got := v.String(); got != "[redacted 11 bytes]" {
		t.Errorf("String() = %q", got)
	}
	// The bytes themselves are still there for those who mean them.
	if string(v) != plain {
		t.Errorf("Value lost its bytes")
	}
}

func TestScopeNamesRoundTrip(t *testing.T) {
	for _, s := range []Scope{ScopeRunner, ScopeOrganization, ScopeProject, ScopeServiceAccount, ScopeUser} {
		got, err := ParseScope(s.String())
		if err != nil || got != s {
			t.Errorf("ParseScope(%q) = %v, %v", s.String(), got, err)
		}
	}
	for _, bad := range []string{"unspecified", "", "USER", "team"} {
		if _, err := ParseScope(bad); err == nil {
			t.Errorf("ParseScope(%q) passed", bad)
		}
	}
	if got := Scope(42).String(); got != "scope(42)" {
		t.Errorf("String() = %q", got)
	}
}

func TestMountStringAndKey(t *testing.T) {
	for _, tc := range []struct {
		m      Mount
		str    string
		key    string
		hasKey bool
	}{
		{Mount{MountEnv, "A"}, "env:A", "env:A", true},
		{Mount{MountFile, "/a/./b"}, "file:/a/./b", "file:/a/b", true},
		{Mount{MountRegistry, "GHCR.io"}, "registry:GHCR.io", "registry:ghcr.io", true},
		{Mount{MountGitCredential, "GitHub.com"}, "git_credential:GitHub.com", "git:github.com", true},
		{Mount{MountAPIOnly, ""}, "api_only", "", false},
		{Mount{MountNone, ""}, "none", "", false},
	} {
		if got := tc.m.String(); got != tc.str {
			t.Errorf("String() = %q, want %q", got, tc.str)
		}
		if key, ok := tc.m.Key(); key != tc.key || ok != tc.hasKey {
			t.Errorf("%v.Key() = %q, %v; want %q, %v", tc.m, key, ok, tc.key, tc.hasKey)
		}
	}
}
