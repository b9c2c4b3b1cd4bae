package controlplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/secrets-agent/secrets-agent/secrets"
)

func ptr(s string) *string { return &s }

func TestSpecSecretToDomain(t *testing.T) {
	base := EnvironmentSpecSecret{ID: "s1", Name: "API_KEY", Scope: ScopeProject, Session: "v3", Source: "src", SourceRef: "ref"}
	with := func(f func(*EnvironmentSpecSecret)) EnvironmentSpecSecret { w := base; f(&w); return w }
	for _, tc := range []struct {
		what  string
		w     EnvironmentSpecSecret
		mount secrets.Mount
		field string // the field the error names; "" for none
	}{
		{"env", with(func(w *EnvironmentSpecSecret) { w.EnvironmentVariable = ptr("API_KEY") }), secrets.Mount{Kind: secrets.MountEnv, Target: "API_KEY"}, ""},
		{"file", with(func(w *EnvironmentSpecSecret) { w.FilePath = ptr("/run/secrets/k") }), secrets.Mount{Kind: secrets.MountFile, Target: "/run/secrets/k"}, ""},
		{"registry", with(func(w *EnvironmentSpecSecret) { w.ContainerRegistryBasicAuthHost = ptr("ghcr.io") }), secrets.Mount{Kind: secrets.MountRegistry, Target: "ghcr.io"}, ""},
		{"git", with(func(w *EnvironmentSpecSecret) { w.GitCredentialHost = ptr("github.com") }), secrets.Mount{Kind: secrets.MountGitCredential, Target: "github.com"}, ""},
		{"api only", with(func(w *EnvironmentSpecSecret) { w.APIOnly = true }), secrets.Mount{Kind: secrets.MountAPIOnly}, ""},
		{"no mount", base, secrets.Mount{Kind: secrets.MountNone}, ""},
		{"set to empty", with(func(w *EnvironmentSpecSecret) { w.EnvironmentVariable = ptr("") }), secrets.Mount{Kind: secrets.MountEnv}, ""},
		{"two mounts", with(func(w *EnvironmentSpecSecret) { w.EnvironmentVariable = ptr("A"); w.FilePath = ptr("/a") }), secrets.Mount{}, "mount"},
		{"mount and api only", with(func(w *EnvironmentSpecSecret) { w.FilePath = ptr("/a"); w.APIOnly = true }), secrets.Mount{}, "mount"},
		{"unknown scope", with(func(w *EnvironmentSpecSecret) { w.Scope = "SCOPE_GALAXY" }), secrets.Mount{}, "scope"},
	} {
		t.Run(tc.what, func(t *testing.T) {
			s, err := tc.w.Secret()
			if tc.field != "" {
				var e *secrets.Error
				if !errors.As(err, &e) || e.Field != tc.field || e.ID != "s1" {
					t.Fatalf("Secret() = %v, want a *secrets.Error on %s naming s1", err, tc.field)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := secrets.Secret{ID: "s1", Name: "API_KEY", Scope: secrets.ScopeProject, Session: "v3", Source: "src", SourceRef: "ref", Mount: tc.mount}
			if !reflect.DeepEqual(s, want) {
				t.Errorf("Secret() = %+v, want %+v", s, want)
			}
		})
	}
}

func TestSpecSecretWithoutScopeIsUnspecified(t *testing.T) {
	for _, body := range []string{
		`{"id":"s1","name":"gh","environmentVariable":"GH_TOKEN"}`,
		`{"id":"s1","name":"gh","scope":"SCOPE_UNSPECIFIED","environmentVariable":"GH_TOKEN"}`,
	} {
		var w EnvironmentSpecSecret
		if err := json.Unmarshal([]byte(body), &w); err != nil {
			t.Fatal(err)
		}
		s, err := w.Secret()
		if err != nil || s.Scope != secrets.ScopeUnspecified {
			t.Errorf("%s: Secret() = scope %s, %v; want scope unspecified, no error", body, s.Scope, err)
		}
	}
}

func TestSpecSecretKeepsItsCredentialProxy(t *testing.T) {
	body := `{"id":"s1","name":"GitHub token (personal)","scope":"SCOPE_USER","environmentVariable":"GH_TOKEN",` +
		`"credentialProxy":{"header":"Authorization","targetHosts":["api.github.com"],"futureField":1}}`
	var w EnvironmentSpecSecret
	if err := json.Unmarshal([]byte(body), &w); err != nil {
		t.Fatal(err)
	}
	s, err := w.Secret()
	if err != nil {
		t.Fatal(err)
	}
	want := &secrets.CredentialProxy{Header: "Authorization", TargetHosts: []string{"api.github.com"}}
	if !reflect.DeepEqual(s.CredentialProxy, want) {
		t.Errorf("CredentialProxy = %+v, want %+v", s.CredentialProxy, want)
	}
	b, err := json.Marshal(SpecSecret(s))
	if err != nil || !strings.Contains(string(b), `"credentialProxy":{"header":"Authorization","targetHosts":["api.github.com"]}`) {
		t.Errorf("SpecSecret encodes %s, %v; want the credentialProxy kept", b, err)
	}
}

func TestEventRelevance(t *testing.T) {
	for _, tc := range []struct {
		ev   Event
		want bool
	}{
		{Event{OpUpdate, ResEnvironment, "env-1"}, true},
		{Event{OpUpdate, ResEnvironment, ""}, true},
		{Event{OpDelete, ResEnvironment, "env-1"}, true},
		{Event{OpCreate, ResSecret, "sec-9"}, true},
		{Event{OpUpdate, ResSecret, "sec-9"}, true},
		{Event{OpDelete, ResSecret, ""}, true},
		{Event{OpUpdate, ResEnvironment, "env-2"}, false},
		{Event{"RESOURCE_OPERATION_UPDATE_STATUS", ResEnvironment, "env-1"}, false},
		{Event{OpUpdate, "RESOURCE_TYPE_TASK", "t-1"}, false},
		{Event{OpUpdate, "RESOURCE_TYPE_SERVICE", "svc-1"}, false},
		{Event{OpUpdate, "RESOURCE_TYPE_FROM_THE_FUTURE", "x"}, false},
		{Event{"RESOURCE_OPERATION_FROM_THE_FUTURE", ResEnvironment, "env-1"}, false},
		{Event{OpUnspecified, ResEnvironment, "env-1"}, false},
		{Event{}, false},
	} {
		if got := tc.ev.Relevant("env-1"); got != tc.want {
			t.Errorf("%+v.Relevant(env-1) = %v, want %v", tc.ev, got, tc.want)
		}
	}
}

func TestSpecSecretRoundTrip(t *testing.T) {
	mounts := []secrets.Mount{
		{Kind: secrets.MountEnv, Target: "X"},
		{Kind: secrets.MountFile, Target: "/home/u/.netrc"},
		{Kind: secrets.MountRegistry, Target: "docker.io"},
		{Kind: secrets.MountGitCredential, Target: "gitlab.com"},
		{Kind: secrets.MountAPIOnly},
		{Kind: secrets.MountNone},
	}
	scopes := []secrets.Scope{secrets.ScopeUnspecified, secrets.ScopeRunner, secrets.ScopeOrganization, secrets.ScopeProject, secrets.ScopeServiceAccount, secrets.ScopeUser}
	for _, m := range mounts {
		for _, sc := range scopes {
			in := secrets.Secret{ID: "id-1", Name: "NAME_1", Scope: sc, Session: "s", Source: "o", SourceRef: "r", Mount: m}
			// Through JSON too, as the server sends it.
			b, err := json.Marshal(SpecSecret(in))
			if err != nil {
				t.Fatal(err)
			}
			var w EnvironmentSpecSecret
			if err := json.Unmarshal(b, &w); err != nil {
				t.Fatal(err)
			}
			out, err := w.Secret()
			if err != nil || !reflect.DeepEqual(out, in) {
				t.Errorf("round trip of %+v via %s = %+v, %v", in, b, out, err)
			}
		}
	}
	if got := WireScope(secrets.ScopeUnspecified); got != "" {
		t.Errorf("WireScope(unspecified) = %q, want it left out as proto3 JSON does", got)
	}
}

func TestEncodeValueRoundTrip(t *testing.T) {
	for _, v := range [][]byte{nil, []byte("plain text\n"), {0xff, 0xfe, 0}, []byte("ünïcode")} {
		value, valueBytes := EncodeValue(v)
		got, err := DecodeValue(value, valueBytes)
		if err != nil || string(got) != string(v) {
			t.Errorf("round trip of %q = %q, %v", v, got, err)
		}
	}
}

func TestCodeOf(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code Code
	}{
		{&Error{Code: CodeNotFound}, CodeNotFound},
		{fmt.Errorf("wrapped: %w", &Error{Code: CodePermissionDenied}), CodePermissionDenied},
		{context.Canceled, CodeCanceled},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), CodeDeadlineExceeded},
		{errors.New("other"), CodeUnknown},
		{nil, CodeUnknown},
	} {
		if got := CodeOf(tc.err); got != tc.code {
			t.Errorf("CodeOf(%v) = %s, want %s", tc.err, got, tc.code)
		}
	}
}
