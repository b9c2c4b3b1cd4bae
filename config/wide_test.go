package config

import (
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestHomesThatOpenTheWholeFilesystemAreRefused: a home of / (however
// spelled, or through a symlink), a home the user does not own or that is no
// directory are load errors naming home; the agent does not start with
// them. (Allowed roots: injectors/builtin's
// TestRootsThatOpenTheWholeFilesystemAreRefused.)
func TestHomesThatOpenTheWholeFilesystemAreRefused(t *testing.T) {
	dir := t.TempDir()
	toRoot := filepath.Join(dir, "to-root")
	if err := os.Symlink("/", toRoot); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct{ name, yaml, want string }{
		{"home /", minimal + "home: /\n", `home: "/" is (or leads to) /`},
		{"home //", minimal + "home: //\n", `home: "/" is (or leads to) /`},
		{"home /tmp/..", minimal + "home: /tmp/..\n", `home: "/" is (or leads to) /`},
		{"home through a symlink to /", minimal + "home: " + toRoot + "\n", "is (or leads to) /"},
		{"home is a file", minimal + "home: " + file + "\n", "home: \"" + file + "\" is not a directory"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cleanEnv(t)
			if err := loadErr(t, tc.yaml); !strings.Contains(err, tc.want) {
				t.Errorf("error %q\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

// TestHomeOwnedBySomeoneElseIsRefused: a home that exists but is not the
// configured user's is an error naming home and both owners; a home that
// does not exist yet is accepted.
func TestHomeOwnedBySomeoneElseIsRefused(t *testing.T) {
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("skipping: no user nobody on this machine")
	}
	me := strconv.Itoa(os.Geteuid())
	if me == nobody.Uid {
		t.Skip("skipping: running as nobody")
	}
	mine := t.TempDir() // owned by the user running the test, not nobody
	cleanEnv(t)
	err2 := loadErr(t, minimal+"user: nobody\nhome: "+mine+"\n")
	if !strings.Contains(err2, `home: "`+mine+`" is owned by uid `+me+", not by user nobody") {
		t.Errorf("error %q does not refuse a home nobody does not own", err2)
	}
	c := mustLoad(t, minimal+"user: nobody\nhome: "+filepath.Join(mine, "not-yet")+"\n")
	if c.Home != filepath.Join(mine, "not-yet") {
		t.Errorf("home %q", c.Home)
	}
}
