package test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/secrets-agent/secrets-agent/control"
	"github.com/secrets-agent/secrets-agent/internal/testutil"
)

// targetsConfig writes an agent config for the hostile control plane whose
// allowed roots are the whole test dir, so that the agent's own files (config,
// token, state dir, socket, env fragments) lie inside an allowed root and only
// the target rules keep secrets off them.
func targetsConfig(t testing.TB, dir, url string, c testutil.AgentConfig) string {
	t.Helper()
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("hostile-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	off := false
	c.URL, c.EnvironmentID, c.TokenFile, c.PollInterval, c.Watch = url, "env-hostile", token, "0", &off
	if c.AllowedRoots == nil {
		c.AllowedRoots = []string{dir}
	}
	return testutil.WriteAgentConfig(t, dir, c)
}

// daemonStatus waits for the daemon's first pass and returns status --json.
func daemonStatus(t *testing.T, socket string) (control.Status, string) {
	t.Helper()
	var st control.Status
	var out string
	testutil.Eventually(t, deadline, "the daemon has made a pass", func() bool {
		out, _, _ = testutil.RunAgent(t, nil, "status", "--json", "--socket", socket)
		return json.Unmarshal([]byte(out), &st) == nil && st.Passes > 0 && st.State != control.Starting
	})
	return st, out
}

// TestAgentsOwnFilesAreNotTargets sends file secrets at every file the agent
// itself or another injector writes, spelled directly, below, above and
// through a planted symlink. The real daemon refuses each (status --json
// names whose path it is), leaves those files as they were, applies the good
// secrets beside them, and the docker config is not fought over.
func TestAgentsOwnFilesAreNotTargets(t *testing.T) {
	testutil.NeedTool(t, "bash")
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	must(t, os.MkdirAll(filepath.Join(home, ".docker"), 0o700))
	must(t, os.Symlink(".docker", filepath.Join(home, "dlink")))
	cp := startHostileCP(t)
	cfg := targetsConfig(t, dir, cp.srv.URL, testutil.AgentConfig{})
	cfgBefore, _ := os.ReadFile(cfg)
	rows := []struct{ id, target, errHas string }{
		{"t-config", cfg, "the agent's config file"},
		{"t-token", filepath.Join(dir, "token"), "the agent's token file"},
		{"t-state", filepath.Join(dir, "state"), "the agent's state dir"},
		{"t-manifest", filepath.Join(dir, "state", "secretfile.json"), "the agent's state dir"},
		{"t-socket", filepath.Join(dir, "agent.sock"), "the agent's status socket"},
		{"t-envsh", filepath.Join(dir, "envdir", "env.sh"), "env fragment dir"},
		{"t-envdir", filepath.Join(dir, "envdir"), "env fragment dir"},
		{"t-docker", filepath.Join(home, ".docker", "config.json"), "the docker config dockercfg manages"},
		{"t-dockerdir", filepath.Join(home, ".docker"), "holds " + filepath.Join(home, ".docker", "config.json")},
		{"t-dlink", filepath.Join(home, "dlink", "config.json"), "reached through a symlink"},
		{"t-orig", filepath.Join(home, "x.secrets-agent-orig"), "keeps a file aside"},
	}
	specs := []string{
		spec("good-env", "GOOD_ENV", envMount("GOOD_ENV")),
		spec("good-file", "GOOD_FILE", fileMount(filepath.Join(home, "good", "file"))),
		spec("good-reg", "GOOD_REG", regMount("reg.good.test")),
	}
	values := map[string]string{
		"good-env":  valueBody([]byte("good env value")),
		"good-file": valueBody([]byte("good file value")),
		"good-reg":  valueBody(b64("bot:good-password")),
	}
	for _, r := range rows {
		specs = append(specs, spec(r.id, strings.ToUpper(strings.ReplaceAll(r.id, "-", "_")), fileMount(r.target)))
		values[r.id] = valueBody([]byte(`{"auths":{}} sekret-` + r.id))
	}
	cp.set(specs, values)

	a := testutil.StartAgent(t, cfg)
	st, out := daemonStatus(t, filepath.Join(dir, "agent.sock"))
	for _, r := range rows {
		got, ok := findRow(st, r.id, strings.ToUpper(strings.ReplaceAll(r.id, "-", "_")))
		switch {
		case !ok:
			t.Errorf("%s: no status row", r.id)
		case got.Outcome != "failed" || !strings.Contains(got.Error, r.errHas):
			t.Errorf("%s (%s): outcome %q error %q; want failed naming %q", r.id, r.target, got.Outcome, got.Error, r.errHas)
		}
	}
	for _, id := range []string{"good-env", "good-file", "good-reg"} {
		if got, ok := findRow(st, id, strings.ToUpper(strings.ReplaceAll(id, "-", "_"))); !ok || (got.Outcome != "created" && got.Outcome != "unchanged") {
			t.Errorf("%s: %+v; want it applied beside the refused ones", id, got)
		}
	}
	if strings.Contains(out, "sekret-") {
		t.Errorf("a value shows in status:\n%s", out)
	}
	if b, _ := os.ReadFile(cfg); string(b) != string(cfgBefore) {
		t.Errorf("the agent's config was rewritten:\n%s", b)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "token")); string(b) != "hostile-token" {
		t.Errorf("the token file was rewritten: %q", b)
	}
	wantFile(t, filepath.Join(home, "good", "file"), "good file value")
	for _, p := range []string{filepath.Join(dir, "envdir", "env.sh"), filepath.Join(home, ".docker", "config.json"), filepath.Join(dir, "state", "secretfile.json")} {
		if b, _ := os.ReadFile(p); strings.Contains(string(b), "sekret-") {
			t.Errorf("%s holds a refused secret's value", p)
		}
	}
	wantAbsent(t, filepath.Join(home, "x.secrets-agent-orig"))
	docker := filepath.Join(home, ".docker", "config.json")
	if b, _ := os.ReadFile(docker); !strings.Contains(string(b), string(b64("bot:good-password"))) {
		t.Errorf("docker config lacks the good login:\n%s", b)
	}
	// Nothing fights over the docker config: it stays as it is.
	before, _ := os.Stat(docker)
	time.Sleep(time.Second)
	if after, _ := os.Stat(docker); !os.SameFile(before, after) || !before.ModTime().Equal(after.ModTime()) {
		t.Errorf("the docker config keeps being rewritten")
	}
	if n := strings.Count(a.Log(), "drift repaired"); n > 3 {
		t.Errorf("%d drift repairs logged with nothing changed by anyone", n)
	}
	if strings.Contains(a.Log(), "sekret-") {
		t.Errorf("a value shows in the log")
	}
	stopWithin(t, a, time.Second)
}

// asUser runs script with sh as the user uid:gid, as that user would at
// their own prompt, and fails the test if it fails.
func asUser(t *testing.T, uid, gid int, dir, script string) {
	t.Helper()
	cmd := exec.Command("sh", "-ec", script)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("as uid %d: %s: %v\n%s", uid, script, err, out)
	}
}

// TestUsersOwnSymlinksLeadNoFileSecretAstray runs the real daemon as root
// for the real user nobody, who plants symlinks in their home and in a
// directory they own outside it before the agent starts: an allowed root
// (~/sub, and srv/secrets outside the home) replaced by a link to a system
// directory, an allowed root (~/st) linked to the agent's state dir, ~/cfg
// linked to ~/.config (to reach the hook install-hooks writes), and ~/b
// linked to ~/a so that two secrets name one file. Each such secret fails
// with its reason in status --json; nothing lands in the system directory,
// the state dir or a start-up file; the two secrets do not rewrite each
// other's file; the good secret is applied and the agent stops within 1 s.
func TestUsersOwnSymlinksLeadNoFileSecretAstray(t *testing.T) {
	testutil.NeedRoot(t, "run the agent for another user")
	testutil.NeedTool(t, "sh")
	uid, gid := testutil.Nobody(t)
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		must(t, os.Chmod(d, 0o711)) // nobody reaches their home below it
	}
	home := filepath.Join(dir, "home")
	sys := filepath.Join(dir, "profile.d") // stands for /etc/profile.d
	srv := filepath.Join(dir, "srv")       // nobody's, outside the home
	state := filepath.Join(home, ".local", "state", "secrets-agent")
	must(t, os.MkdirAll(state, 0o700))
	for _, d := range []string{home, srv} {
		must(t, os.MkdirAll(d, 0o755))
		must(t, os.Chown(d, uid, gid))
	}
	must(t, os.Mkdir(sys, 0o755))
	asUser(t, uid, gid, home, `ln -s `+sys+` sub; ln -s .local/state/secrets-agent st; mkdir .config; ln -s .config cfg; mkdir a; ln -s a b;
ln -s `+sys+` `+srv+`/secrets`)

	cp := startHostileCP(t)
	rows := []struct{ id, target, errHas string }{
		{"via-sub", filepath.Join(home, "sub", "evil.sh"), "open allowed root " + filepath.Join(home, "sub")},
		{"via-srv", filepath.Join(srv, "secrets", "evil.sh"), filepath.Join(srv, "secrets") + " is a symlink"},
		{"via-st", filepath.Join(home, "st", "envprofile.json"), "the agent's state dir"},
		{"via-cfg", filepath.Join(home, "cfg", "secrets-agent", "hook.sh"), "a file install-hooks writes (reached through a symlink"},
		{"bashrc", filepath.Join(home, ".bashrc"), "a file install-hooks writes"},
		{"keys", filepath.Join(home, ".ssh", "authorized_keys"), "keys that may log in"},
		{"via-b", filepath.Join(home, "b", "x"), "the same file as " + filepath.Join(home, "a", "x")},
	}
	specs := []string{spec("good", "GOOD", fileMount(filepath.Join(home, "good"))), spec("via-a", "VIA_A", fileMount(filepath.Join(home, "a", "x")))}
	values := map[string]string{"good": valueBody([]byte("good value")), "via-a": valueBody([]byte("a value"))}
	for _, r := range rows {
		name := strings.ToUpper(strings.ReplaceAll(r.id, "-", "_"))
		specs = append(specs, spec(r.id, name, fileMount(r.target)))
		values[r.id] = valueBody([]byte("touch " + filepath.Join(dir, "pwned-"+r.id)))
	}
	cp.set(specs, values)
	cfg := targetsConfig(t, dir, cp.srv.URL, testutil.AgentConfig{User: "nobody", StateDir: state,
		AllowedRoots: []string{"~", "~/sub", "~/st", filepath.Join(srv, "secrets")}})
	a := testutil.StartAgent(t, cfg)
	st, out := daemonStatus(t, filepath.Join(dir, "agent.sock"))
	for _, r := range rows {
		got, ok := findRow(st, r.id, strings.ToUpper(strings.ReplaceAll(r.id, "-", "_")))
		if !ok || got.Outcome != "failed" || !strings.Contains(got.Error, r.errHas) {
			t.Errorf("%s (%s): %+v; want failed naming %q", r.id, r.target, got, r.errHas)
		}
	}
	for _, id := range []string{"good", "via-a"} {
		if got, ok := findRow(st, id, strings.ToUpper(strings.ReplaceAll(id, "-", "_"))); !ok || (got.Outcome != "created" && got.Outcome != "unchanged") {
			t.Errorf("%s: %+v; want it applied beside the refused ones", id, got)
		}
	}
	if strings.Contains(out, "touch ") {
		t.Errorf("a value shows in status:\n%s", out)
	}
	if ents, _ := os.ReadDir(sys); len(ents) != 0 {
		t.Errorf("written through nobody's symlink into the system dir: %v", ents)
	}
	for _, p := range []string{filepath.Join(state, "envprofile.json"), filepath.Join(state, "secretfile.json")} {
		if b, _ := os.ReadFile(p); strings.Contains(string(b), "touch ") {
			t.Errorf("%s holds a refused secret's value", p)
		}
	}
	wantAbsent(t, filepath.Join(home, ".config", "secrets-agent", "hook.sh"))
	wantAbsent(t, filepath.Join(home, ".bashrc"))
	wantAbsent(t, filepath.Join(home, ".ssh", "authorized_keys"))
	wantFile(t, filepath.Join(home, "good"), "good value")
	shared := filepath.Join(home, "a", "x")
	wantFile(t, shared, "a value")
	// The two secrets do not take turns on the shared file.
	before, _ := os.Stat(shared)
	time.Sleep(1500 * time.Millisecond)
	if after, _ := os.Stat(shared); !os.SameFile(before, after) || !before.ModTime().Equal(after.ModTime()) {
		t.Errorf("%s keeps being rewritten", shared)
	}
	if n := strings.Count(a.Log(), "drift repaired"); n > 3 {
		t.Errorf("%d drift repairs logged with nothing changed by anyone", n)
	}
	if strings.Contains(a.Log(), "touch ") {
		t.Errorf("a value shows in the log")
	}
	stopWithin(t, a, time.Second)
}

// TestTooWideHomesAndRootsRefuseToStart: a home of / (or one the user does
// not own) and an allowed root of / are config errors naming the key; the
// daemon exits at once and writes nothing.
func TestTooWideHomesAndRootsRefuseToStart(t *testing.T) {
	cases := []struct {
		name   string
		c      testutil.AgentConfig
		errHas string
		root   bool
	}{
		{"home /", testutil.AgentConfig{Home: "/"}, `home: "/" is (or leads to) /`, false},
		{"allowed root /", testutil.AgentConfig{AllowedRoots: []string{"~", "/"}}, `injectors.secretfile.allowed_roots[1]: "/"`, false},
		{"home nobody does not own", testutil.AgentConfig{User: "nobody"}, "is owned by uid 0, not by user nobody", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.root {
				testutil.NeedRoot(t, "configure another user than the one running")
				testutil.Nobody(t)
			}
			dir := t.TempDir()
			cp := startHostileCP(t)
			cp.set([]string{spec("f", "F", fileMount("/sekret-file"))}, map[string]string{"f": valueBody([]byte("x"))})
			cfg := targetsConfig(t, dir, cp.srv.URL, tc.c)
			for _, args := range [][]string{{"run", "--once", "--config", cfg}, {"run", "--config", cfg}} {
				_, stderr, code := testutil.RunAgent(t, nil, args...)
				if code == 0 || !strings.Contains(stderr, tc.errHas) {
					t.Errorf("%v: exit %d, stderr %q; want a refusal saying %q", args, code, stderr, tc.errHas)
				}
			}
			wantAbsent(t, "/sekret-file")
			wantAbsent(t, filepath.Join(dir, "state"))
		})
	}
}

// editLoop is a user editing ~/.docker/config.json in place, n times, the
// three ways people do: json.dump(open(p, "w")), sh's `cat new > p`, and an
// editor that truncates, pauses and writes. Each edit reads the file, adds a
// key of its own and writes it back.
const editLoop = `
import json, random, subprocess, sys, time
p, n, scratch = sys.argv[1], int(sys.argv[2]), sys.argv[3]
random.seed(9)
def load():
    for _ in range(400):
        try:
            with open(p) as f:
                return json.load(f)
        except ValueError:
            time.sleep(0.005)
    sys.exit("config.json stayed unreadable")
for i in range(n):
    d = load()
    d["user%03d" % i] = i
    way = i % 3
    if way == 0:
        json.dump(d, open(p, "w"))
    elif way == 1:
        with open(scratch, "w") as f:
            json.dump(d, f)
        subprocess.run(["sh", "-c", 'cat "$1" > "$2"', "_", scratch, p], check=True)
    else:
        with open(p, "w") as f:
            time.sleep(random.uniform(0.005, 0.05))
            json.dump(d, f)
    time.sleep(random.uniform(0, 0.02))
`

// TestInPlaceDockerConfigEditsAreNeverLost runs the real daemon with a
// registry secret while a real process edits config.json in place 210 times
// (editLoop): every key the user wrote is there once the agent settles, and
// so is the agent's login.
func TestInPlaceDockerConfigEditsAreNeverLost(t *testing.T) {
	python := testutil.NeedTool(t, "python3")
	testutil.NeedTool(t, "sh")
	const edits = 210
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	docker := filepath.Join(home, ".docker", "config.json")
	cp := startHostileCP(t)
	cp.set([]string{spec("reg", "REG", regMount("reg.edit.test"))}, map[string]string{"reg": valueBody(b64("bot:edit-password"))})
	cfg := targetsConfig(t, dir, cp.srv.URL, testutil.AgentConfig{AllowedRoots: []string{"~"}})
	a := testutil.StartAgent(t, cfg)
	daemonStatus(t, filepath.Join(dir, "agent.sock"))
	auth := string(b64("bot:edit-password"))
	testutil.Eventually(t, deadline, "the agent's login is in config.json", func() bool {
		b, _ := os.ReadFile(docker)
		return strings.Contains(string(b), auth)
	})

	out, err := exec.Command(python, "-c", editLoop, docker, fmt.Sprint(edits), filepath.Join(dir, "scratch.json")).CombinedOutput()
	if err != nil {
		t.Fatalf("edit loop: %v\n%s", err, out)
	}
	var doc map[string]any
	var missing []string
	settled := func() bool {
		b, err := os.ReadFile(docker)
		if err != nil || json.Unmarshal(b, &doc) != nil {
			return false
		}
		missing = missing[:0]
		for i := range edits {
			if _, ok := doc[fmt.Sprintf("user%03d", i)]; !ok {
				missing = append(missing, fmt.Sprintf("user%03d", i))
			}
		}
		return strings.Contains(string(b), auth)
	}
	testutil.Eventually(t, deadline, "the agent's login is back in config.json", settled)
	if len(missing) > 0 {
		t.Errorf("%d of %d in-place edits lost: %v", len(missing), edits, missing)
	}
	if fi, err := os.Stat(docker); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("config.json mode %v (%v), want 0600", fi.Mode(), err)
	}
	if _, _, code := testutil.RunAgent(t, nil, "status", "--socket", filepath.Join(dir, "agent.sock")); code != 0 {
		t.Errorf("status exits %d after the edits, want 0 (ready)", code)
	}
	stopWithin(t, a, time.Second)
}

// TestForeignDockerConfigIsTakenOverOrRefused runs the real daemon as root
// for the real user nobody. A root-owned 0644 config.json in nobody's home
// that holds no credentials becomes nobody's, 0600, with nobody's login; one
// that holds root's credentials is refused (status names both owners) and
// left exactly as it was, while nobody's other secrets are applied.
func TestForeignDockerConfigIsTakenOverOrRefused(t *testing.T) {
	testutil.NeedRoot(t, "run the agent for another user")
	uid, gid := testutil.Nobody(t)
	for _, tc := range []struct {
		name, content, errHas string
	}{
		{"no credentials: taken over", `{"auths": {}, "psFormat": "table"}`, ""},
		{"root's credentials: refused", `{"auths": {"root.example": {"auth": "` + string(b64("root:rootpw")) + `"}}}`, "holds credentials of its own"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			home := filepath.Join(dir, "home")
			must(t, os.MkdirAll(filepath.Join(home, ".docker"), 0o755))
			must(t, os.Chown(home, uid, gid))
			must(t, os.Chown(filepath.Join(home, ".docker"), uid, gid))
			docker := filepath.Join(home, ".docker", "config.json")
			must(t, os.WriteFile(docker, []byte(tc.content), 0o644)) // root's
			cp := startHostileCP(t)
			cp.set([]string{
				spec("reg", "REG", regMount("reg.nobody.test")),
				spec("file", "FILE", fileMount(filepath.Join(home, "key"))),
			}, map[string]string{"reg": valueBody(b64("nobody:nobody-pw")), "file": valueBody([]byte("key"))})
			cfg := targetsConfig(t, dir, cp.srv.URL, testutil.AgentConfig{User: "nobody", AllowedRoots: []string{"~"}})
			testutil.StartAgent(t, cfg)
			st, _ := daemonStatus(t, filepath.Join(dir, "agent.sock"))
			reg, _ := findRow(st, "reg", "REG")
			if file, _ := findRow(st, "file", "FILE"); file.Outcome != "created" && file.Outcome != "unchanged" {
				t.Errorf("the file secret: %+v; want it applied", file)
			}
			b, _ := os.ReadFile(docker)
			fi, err := os.Stat(docker)
			if err != nil {
				t.Fatal(err)
			}
			sys := fi.Sys().(*syscall.Stat_t)
			if tc.errHas != "" {
				if reg.Outcome != "failed" || !strings.Contains(reg.Error, tc.errHas) || !strings.Contains(reg.Error, fmt.Sprintf("uid %d", uid)) {
					t.Errorf("registry row %+v; want failed naming both owners", reg)
				}
				if string(b) != tc.content || sys.Uid != 0 || fi.Mode().Perm() != 0o644 {
					t.Errorf("root's config.json changed: %o %d %s", fi.Mode().Perm(), sys.Uid, b)
				}
				return
			}
			if reg.Outcome != "created" && reg.Outcome != "unchanged" {
				t.Errorf("registry row %+v; want applied", reg)
			}
			if int(sys.Uid) != uid || int(sys.Gid) != gid || fi.Mode().Perm() != 0o600 {
				t.Errorf("config.json %d:%d %o; want nobody's, 0600", sys.Uid, sys.Gid, fi.Mode().Perm())
			}
			if !strings.Contains(string(b), string(b64("nobody:nobody-pw"))) || !strings.Contains(string(b), "psFormat") {
				t.Errorf("config.json lacks nobody's login or the kept keys:\n%s", b)
			}
		})
	}
}
