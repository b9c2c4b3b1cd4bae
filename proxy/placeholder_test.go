package proxy

import (
	"encoding/json"
	"testing"
)

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

func TestPlaceholderIsRotatedWhenTheSessionChanges(t *testing.T) {
	var p Placeholders
	a1 := p.For("a", "s1")
	if !IsPlaceholder(a1) {
		t.Fatalf("%q is not a placeholder", a1)
	}
	if p.For("a", "s1") != a1 {
		t.Error("same session, new placeholder: want it kept")
	}
	b := p.For("b", "s1")
	if b == a1 {
		t.Error("two secrets share a placeholder")
	}
	a2 := p.For("a", "s2")
	if a2 == a1 {
		t.Error("new session kept the placeholder: want a new one")
	}
	p.Retain([]string{"b"})
	if p.For("b", "s1") != b {
		t.Error("Retain dropped a kept secret's placeholder")
	}
	if p.For("a", "s2") == a2 {
		t.Error("Retain kept a dropped secret's placeholder")
	}
}

func TestIsPlaceholder(t *testing.T) {
	for s, want := range map[string]bool{
		NewPlaceholder(): true,
		Prefix:           false,
		Prefix + "0123456789abcdef0123456789abcdeF":     false,
		Prefix + "0123456789abcdef0123456789abcdef":     true,
		Prefix + "0123456789abcdef0123456789abcdef00":   false,
		"x" + Prefix + "0123456789abcdef0123456789abcd": false,
	} {
		if IsPlaceholder(s) != want {
			t.Errorf("IsPlaceholder(%q) = %v, want %v", s, !want, want)
		}
	}
}
