package tilde

import "testing"

func TestExpandOnlyALeadingTildeToHome(t *testing.T) {
	for _, c := range []struct{ in, home, want string }{
		{"~", "/home/a", "/home/a"},
		{"~/", "/home/a", "/home/a"},
		{"~/x/../y", "/home/a", "/home/a/y"},
		{"/srv/~/x", "/home/a", "/srv/~/x"},
		{"/srv//x/", "", "/srv/x"},
		{"rel/x", "/home/a", "rel/x"},
	} {
		if got, err := Expand(c.in, c.home); err != nil || got != c.want {
			t.Errorf("Expand(%q, %q) = %q, %v; want %q", c.in, c.home, got, err, c.want)
		}
	}
	for _, c := range []struct{ in, home string }{{"~bob/x", "/home/a"}, {"~", ""}, {"~/x", ""}} {
		if got, err := Expand(c.in, c.home); err == nil {
			t.Errorf("Expand(%q, %q) = %q, want an error", c.in, c.home, got)
		}
	}
}
