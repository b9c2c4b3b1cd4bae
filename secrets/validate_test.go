package secrets

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

func TestValidEnvName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"A", true},
		{"_", true},
		{"_x1", true},
		{"PATH", true},
		{"", false},
		{"1X", false},
		{"A-B", false},
		{"A B", false},
		{"A=B", false},
		{"É", false},
	} {
		if got := ValidEnvName(tc.name); got != tc.ok {
			t.Errorf("ValidEnvName(%q) = %v, want %v", tc.name, got, tc.ok)
		}
	}
}

func TestValidateMetaNamesTheBadField(t *testing.T) {
	good := Secret{ID: "s1", Name: "GOOD_NAME", Scope: ScopeUser, Mount: Mount{Kind: MountEnv, Target: "GOOD"}}
	mod := func(f func(*Secret)) Secret { s := good; f(&s); return s }
	mount := func(k MountKind, target string) Secret { return mod(func(s *Secret) { s.Mount = Mount{k, target} }) }
	for _, tc := range []struct {
		what  string
		s     Secret
		field string // "" means valid
	}{
		{"good", good, ""},
		{"file", mount(MountFile, "/home/u/.config/x"), ""},
		{"registry", mount(MountRegistry, "ghcr.io"), ""},
		{"registry with port", mount(MountRegistry, "localhost:5000"), ""},
		{"git", mount(MountGitCredential, "github.com"), ""},
		{"api only", mount(MountAPIOnly, ""), ""},
		{"no mount", mount(MountNone, ""), ""},
		{"no id", mod(func(s *Secret) { s.ID = "" }), "id"},
		{"human-readable name", mod(func(s *Secret) { s.Name = "GitHub token (personal)" }), ""},
		{"short name", mod(func(s *Secret) { s.Name = "gh" }), ""},
		{"no name", mod(func(s *Secret) { s.Name = "" }), ""},
		{"unspecified scope", mod(func(s *Secret) { s.Scope = ScopeUnspecified }), ""},
		{"negative scope", mod(func(s *Secret) { s.Scope = -1 }), "scope"},
		{"unknown scope", mod(func(s *Secret) { s.Scope = 99 }), "scope"},
		{"env name", mount(MountEnv, "1ABC"), "environmentVariable"},
		{"empty env name", mount(MountEnv, ""), "environmentVariable"},
		{"relative path", mount(MountFile, "home/u/x"), "filePath"},
		{"unclean path", mount(MountFile, "/home/u/../u/x"), "filePath"},
		{"trailing slash", mount(MountFile, "/home/u/x/"), "filePath"},
		{"NUL in path", mount(MountFile, "/home/u/x\x00y"), "filePath"},
		{"root", mount(MountFile, "/"), "filePath"},
		{"empty registry", mount(MountRegistry, ""), "containerRegistryBasicAuthHost"},
		{"space in registry", mount(MountRegistry, "ghcr .io"), "containerRegistryBasicAuthHost"},
		{"registry without host", mount(MountRegistry, "https:///v2"), "containerRegistryBasicAuthHost"},
		{"empty git host", mount(MountGitCredential, ""), "gitCredentialHost"},
		{"unknown kind", mount(MountKind(42), "x"), "mount"},
	} {
		t.Run(tc.what, func(t *testing.T) {
			err := ValidateMeta(tc.s)
			if tc.field == "" {
				if err != nil {
					t.Fatalf("ValidateMeta: %v", err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) || e.Field != tc.field {
				t.Fatalf("ValidateMeta = %v, want an *Error on %s", err, tc.field)
			}
			if e.ID != tc.s.ID || !strings.Contains(err.Error(), tc.field) {
				t.Errorf("error %q does not name the secret and field", err)
			}
		})
	}
}

func TestValidateValue(t *testing.T) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	envS := Secret{ID: "e", Name: "ENV_S", Scope: ScopeUser, Mount: Mount{MountEnv, "E"}}
	fileS := Secret{ID: "f", Name: "FILE_S", Scope: ScopeUser, Mount: Mount{MountFile, "/run/secrets/f"}}
	regS := Secret{ID: "r", Name: "REG_S", Scope: ScopeUser, Mount: Mount{MountRegistry, "ghcr.io"}}
	with := func(s Secret, v string) Secret { s.Value = Value(v); return s }
	for _, tc := range []struct {
		what string
		s    Secret
		lim  Limits
		ok   bool
	}{
		{"env", with(envS, "multi\nline 'quoted' $x"), Limits{}, true},
		{"empty env", with(envS, ""), Limits{}, true},
		{"NUL in env", with(envS, "a\x00b"), Limits{}, false},
		{"NUL in file", with(fileS, "a\x00b"), Limits{}, true},
		{"at default cap", with(fileS, strings.Repeat("x", DefaultMaxValueSize)), Limits{}, true},
		{"over default cap", with(fileS, strings.Repeat("x", DefaultMaxValueSize+1)), Limits{}, false},
		{"at custom cap", with(fileS, "12345"), Limits{MaxValueSize: 5}, true},
		{"over custom cap", with(fileS, "123456"), Limits{MaxValueSize: 5}, false},
		{"registry", with(regS, b64("user:pass")), Limits{}, true},
		{"registry, colon in password", with(regS, b64("user:pa:ss")), Limits{}, true},
		{"registry, empty password", with(regS, b64("user:")), Limits{}, true},
		{"registry, trailing newline", with(regS, b64("user:pass")+"\n"), Limits{}, true},
		{"registry, empty user", with(regS, b64(":pass")), Limits{}, false},
		{"registry, no colon", with(regS, b64("userpass")), Limits{}, false},
		{"registry, bad base64", with(regS, "me:pw-not-b64"), Limits{}, false},
		{"registry, empty", with(regS, ""), Limits{}, false},
	} {
		t.Run(tc.what, func(t *testing.T) {
			err := ValidateValue(tc.s, tc.lim)
			if (err == nil) != tc.ok {
				t.Fatalf("ValidateValue = %v, want ok=%v", err, tc.ok)
			}
			var e *Error
			if err != nil && (!errors.As(err, &e) || e.Field != "value") {
				t.Errorf("error %v is not an *Error on value", err)
			}
			if err != nil && len(tc.s.Value) > 3 && strings.Contains(err.Error(), string(tc.s.Value)) {
				t.Errorf("error %q shows the value", err)
			}
		})
	}
}

func TestRegistryAuthErrorsNeverShowTheValue(t *testing.T) {
	for _, v := range []string{"p4ssw0rd-not-b64!", base64.StdEncoding.EncodeToString([]byte("p4ssw0rd")),
		base64.StdEncoding.EncodeToString([]byte(":p4ssw0rd"))} {
		_, _, err := RegistryAuth([]byte(v))
		if err == nil {
			t.Fatalf("RegistryAuth(%q) passed", v)
		}
		if strings.Contains(err.Error(), "p4ssw0rd") || strings.Contains(err.Error(), v) {
			t.Errorf("error %q shows the value", err)
		}
	}
	u, p, err := RegistryAuth([]byte(base64.StdEncoding.EncodeToString([]byte("me:s3:cret"))))
	if err != nil || u != "me" || p != "s3:cret" {
		t.Errorf("RegistryAuth = %q, %q, %v", u, p, err)
	}
}

func TestValidateChecksMetaFirst(t *testing.T) {
	s := Secret{ID: "", Name: "OK_NAME", Scope: ScopeUser, Mount: Mount{MountEnv, "E"}, Value: Value("a\x00")}
	var e *Error
	if err := Validate(s, Limits{}); !errors.As(err, &e) || e.Field != "id" {
		t.Errorf("Validate = %v, want the id error", err)
	}
	s.ID = "x"
	if err := Validate(s, Limits{}); !errors.As(err, &e) || e.Field != "value" {
		t.Errorf("Validate = %v, want the value error", err)
	}
}

func TestLabelShowsAnyNameSafely(t *testing.T) {
	for _, tc := range []struct{ name, want string }{
		{"GitHub token (personal)", "GitHub token (personal)"},
		{"gh", "gh"},
		{"", ""},
		{"a\nb\x1b[31mc", "a\uFFFDb\uFFFD[31mc"},
		{"bad\xffutf8", "bad\uFFFDutf8"},
		{"Schlüssel", "Schlüssel"},
		{strings.Repeat("é", 100), strings.Repeat("é", 64) + "..."},
	} {
		if got := Label(tc.name); got != tc.want {
			t.Errorf("Label(%q) = %q, want %q", tc.name, got, tc.want)
		}
	}
}
