package dockercfg

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/secrets-agent/secrets-agent/injectors"
	"github.com/secrets-agent/secrets-agent/internal/testutil"
	"github.com/secrets-agent/secrets-agent/secrets"
)

// nobodyFixture is an injector, run as root, for the real user nobody with
// a home nobody owns.
func nobodyFixture(t *testing.T) (f *fixture, uid, gid int) {
	t.Helper()
	testutil.NeedRoot(t, "write config.json for another user")
	uid, gid = testutil.Nobody(t)
	base := t.TempDir()
	for _, d := range []string{filepath.Dir(base), base} { // so that nobody can reach the home
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	home := filepath.Join(base, "home")
	f = &fixture{cfgDir: filepath.Join(home, ".docker"), stateDir: filepath.Join(base, "state")}
	for _, d := range []string{home, f.cfgDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(d, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	in, err := New(Options{ConfigDir: "~/.docker", Mode: Inline, Owner: injectors.Owner{UID: uid, GID: gid, Home: home}, StateDir: f.stateDir})
	if err != nil {
		t.Fatal(err)
	}
	f.in = in
	return f, uid, gid
}

// readAs reads p as uid:gid with the real cat.
func readAs(t *testing.T, p string, uid, gid int) (string, error) {
	t.Helper()
	cmd := exec.Command(testutil.NeedTool(t, "cat"), p)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	out, err := cmd.Output()
	return string(out), err
}

// TestForeignConfigWithoutCredentialsIsTakenOver: root's 0644 config.json in
// the user's home, holding no credentials, ends up the user's, 0600, with the
// user's login in it, readable by the user (a real second user).
func TestForeignConfigWithoutCredentialsIsTakenOver(t *testing.T) {
	f, uid, gid := nobodyFixture(t)
	f.write(t, `{"auths": {"old.example": {"email": "x@example.com"}}, "psFormat": "table"}`)
	if err := os.Chmod(f.path(), 0o644); err != nil {
		t.Fatal(err)
	}
	res := f.apply(t, registrySecret("s", "r.example.com", "u", "p"))
	if o := outcomeFor(t, res, "r.example.com"); o.Action != injectors.Created || !strings.Contains(o.Note, "took over config.json from uid 0") {
		t.Errorf("outcome %+v, want created with a note on the take-over", o)
	}
	st := stat(t, f.path())
	if int(st.Uid) != uid || int(st.Gid) != gid || st.Mode&0o777 != 0o600 {
		t.Errorf("config.json %d:%d %o, want %d:%d 0600", st.Uid, st.Gid, st.Mode&0o777, uid, gid)
	}
	out, err := readAs(t, f.path(), uid, gid)
	if err != nil || !strings.Contains(out, b64("u:p")) || !strings.Contains(out, "psFormat") {
		t.Errorf("the user reads %q (%v); want their login and the keys kept", out, err)
	}
}

// TestForeignConfigWithCredentialsIsRefused: a config.json owned by root or
// by a third user that holds that owner's credentials is left exactly as it
// is: the user's secret fails naming both owners, no one's credentials move.
func TestForeignConfigWithCredentialsIsRefused(t *testing.T) {
	for _, owner := range []int{0, 4321} {
		t.Run("owner "+strconv.Itoa(owner), func(t *testing.T) {
			f, uid, _ := nobodyFixture(t)
			content := `{"auths": {"root.example": {"auth": "` + b64("root:rootpw") + `"}}}`
			f.write(t, content)
			if err := os.Chown(f.path(), owner, owner); err != nil {
				t.Fatal(err)
			}
			before := stat(t, f.path())
			res := f.in.Apply(context.Background(), []secrets.Secret{registrySecret("s", "r.example.com", "u", "p")})
			o := outcomeFor(t, res, "r.example.com")
			if o.Action != injectors.Failed || o.Err == nil || !strings.Contains(o.Err.Error(), "holds credentials of its own") ||
				!strings.Contains(o.Err.Error(), "uid "+strconv.Itoa(uid)) {
				t.Errorf("outcome %+v (%v), want a refusal naming the owners", o, o.Err)
			}
			if got := string(f.read(t)); got != content {
				t.Errorf("config.json changed: %s", got)
			}
			after := stat(t, f.path())
			if after.Ino != before.Ino || after.Uid != before.Uid || after.Mode != before.Mode {
				t.Errorf("config.json replaced or re-owned")
			}
		})
	}
}

func stat(t *testing.T, p string) *syscall.Stat_t {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t)
}

// TestRootOwnedDockerDirIsGivenToTheUser: `sudo docker ...` leaves a
// root-owned 0700 ~/.docker; the agent gives the dir to the user, so the
// user (a real second user) can read the config.json it writes for them.
func TestRootOwnedDockerDirIsGivenToTheUser(t *testing.T) {
	f, uid, gid := nobodyFixture(t)
	if err := os.Chown(f.cfgDir, 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(f.cfgDir, 0o700); err != nil {
		t.Fatal(err)
	}
	f.apply(t, registrySecret("s", "r.example.com", "u", "p"))
	if st := stat(t, f.cfgDir); int(st.Uid) != uid || int(st.Gid) != gid {
		t.Errorf("~/.docker owned by %d:%d, want %d:%d", st.Uid, st.Gid, uid, gid)
	}
	if out, err := readAs(t, f.path(), uid, gid); err != nil || !strings.Contains(out, b64("u:p")) {
		t.Errorf("the user reads %q (%v); want their login", out, err)
	}
}

// TestForeignConfigIsHandedOverOnlyWithNothingTheUserCouldNotRead: root's
// config.json that the user (a real second user) cannot read is taken over
// only when it holds harmless keys alone. Credentials and settings that may
// carry them — in any case, as docker reads keys case-insensitively — make
// the pass fail and leave the file root's and unreadable to the user; a file
// the user could read already is taken over when it holds no auths
// credential.
func TestForeignConfigIsHandedOverOnlyWithNothingTheUserCouldNotRead(t *testing.T) {
	for _, c := range []struct {
		name, doc string
		mode      os.FileMode
		takenOver bool
		errHas    string
	}{
		{"auth field in another case", `{"auths": {"root.example": {"Auth": "` + b64("root:rootpw") + `"}}}`, 0o600, false, "credentials of its own"},
		{"auths in another case", `{"AUTHS": {"root.example": {"auth": "` + b64("root:rootpw") + `"}}}`, 0o644, false, "credentials of its own"},
		{"password field in another case", `{"auths": {"root.example": {"PassWord": "rootpw"}}}`, 0o600, false, "credentials of its own"},
		{"http headers", `{"HttpHeaders": {"Authorization": "Bearer ROOT-TOKEN"}, "auths": {}}`, 0o600, false, `"HttpHeaders"`},
		{"proxies", `{"proxies": {"default": {"httpProxy": "http://root:rootpw@proxy:3128"}}}`, 0o600, false, `"proxies"`},
		{"credential store", `{"credsStore": "pass"}`, 0o600, false, `"credsStore"`},
		{"credential helpers", `{"credHelpers": {"root.example": "pass"}}`, 0o600, false, "credHelpers[root.example]"},
		{"unknown key", `{"someTool": {"token": "x"}}`, 0o600, false, `"someTool"`},
		{"harmless keys only", `{"psFormat": "table", "DetachKeys": "ctrl-x", "auths": {}}`, 0o600, true, ""},
		{"http headers the user could read", `{"HttpHeaders": {"X-Meta": "y"}}`, 0o644, true, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			f, uid, gid := nobodyFixture(t)
			f.write(t, c.doc)
			if err := os.Chmod(f.path(), c.mode); err != nil {
				t.Fatal(err)
			}
			res := f.in.Apply(context.Background(), []secrets.Secret{registrySecret("s", "r.example.com", "u", "p")})
			o := outcomeFor(t, res, "r.example.com")
			st := stat(t, f.path())
			if c.takenOver {
				if o.Action != injectors.Created || int(st.Uid) != uid {
					t.Errorf("outcome %+v (%v), owner %d: want it taken over", o, o.Err, st.Uid)
				}
				return
			}
			if o.Action != injectors.Failed || o.Err == nil || !strings.Contains(o.Err.Error(), c.errHas) {
				t.Errorf("outcome %+v (%v), want a refusal saying %q", o, o.Err, c.errHas)
			}
			if got := string(f.read(t)); got != c.doc || st.Uid != 0 || os.FileMode(st.Mode&0o777) != c.mode {
				t.Errorf("config.json now %o uid %d: %s; want it left as it was", st.Mode&0o777, st.Uid, got)
			}
			if c.mode&0o004 == 0 {
				if out, err := readAs(t, f.path(), uid, gid); err == nil {
					t.Errorf("the user reads root's file: %s", out)
				}
			}
		})
	}
}
