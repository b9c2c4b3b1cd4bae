package config

import (
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestHomesAndRootsThatOpenTheWholeFilesystemAreRefused: a home of / (however
// spelled, or through a symlink), a home the user does not own or that is no
// directory, and an allowed root of / or of a system directory (/etc and
// below, /home, /tmp, ...) are load errors naming their key; the agent does
// not start with them.
func TestHomesAndRootsThatOpenTheWholeFilesystemAreRefused(t *testing.T) {
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
		{"allowed root /", minimal + "injectors:\n  secretfile:\n    allowed_roots: [\"~\", /]\n",
			`injectors.secretfile.allowed_roots[1]: "/" is (or leads to) /`},
		{"allowed root /./", minimal + "injectors:\n  secretfile:\n    allowed_roots: [/./]\n",
			`injectors.secretfile.allowed_roots[0]: "/" is (or leads to) /`},
		{"allowed root through a symlink to /", minimal + "injectors:\n  secretfile:\n    allowed_roots: [" + toRoot + "]\n",
			"injectors.secretfile.allowed_roots[0]: "},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cleanEnv(t)
			if err := loadErr(t, tc.yaml); !strings.Contains(err, tc.want) {
				t.Errorf("error %q\nwant it to contain %q", err, tc.want)
			}
		})
	}
	t.Run("system directories", func(t *testing.T) {
		toEtc := filepath.Join(dir, "to-etc")
		if err := os.Symlink("/etc", toEtc); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct{ root, want string }{
			{"/etc", "/etc"}, {"/etc/profile.d", "/etc"}, {"/usr/local/bin", "/usr"}, {toEtc + "/cron.d", "/etc"},
			{"/home", "/home"}, {"/tmp", "/tmp"}, {"/var/lib", "/var/lib"}, {"/run", "/run"}, {"/var/tmp", "/var/tmp"},
		} {
			cleanEnv(t)
			err := loadErr(t, minimal+"injectors:\n  secretfile:\n    allowed_roots: [\"~\", "+c.root+"]\n")
			if want := `injectors.secretfile.allowed_roots[1]: "` + c.root + `" is (or leads to) ` + c.want + ": a system directory"; !strings.Contains(err, want) {
				t.Errorf("%s: error %q\nwant it to contain %q", c.root, err, want)
			}
		}
		for _, ok := range []string{"/run/secrets", "/srv/app/secrets", "/var/lib/app/secrets", "/opt/app/secrets", dir} {
			cleanEnv(t)
			if _, err := Load(writeConfig(t, minimal+"injectors:\n  secretfile:\n    allowed_roots: [\"~\", "+ok+"]\n")); err != nil {
				t.Errorf("%s: refused: %v", ok, err)
			}
		}
	})
	t.Run("allowed root from the environment", func(t *testing.T) {
		cleanEnv(t)
		t.Setenv("SECRETS_AGENT_INJECTORS_SECRETFILE_ALLOWED_ROOTS", "~,/")
		if err := loadErr(t, minimal); !strings.Contains(err, "injectors.secretfile.allowed_roots[1]") {
			t.Errorf("error %q does not name allowed_roots[1]", err)
		}
	})
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
