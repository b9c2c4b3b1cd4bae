package envprofile

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/secrets-agent/secrets-agent/injectors"
	"github.com/secrets-agent/secrets-agent/internal/testutil"
	"github.com/secrets-agent/secrets-agent/secrets"
)

// deltaScripts run the hook, then for each line "<command>|<names>" on stdin
// run the command (the user's), sync once and print
// "S full=<SA_FULL> check=<ok or what differs> NAME=<value or unset>...".
// The check compares what the hook keeps for the next change with what a
// full sync of the current fragment leaves: the list of names, the
// generation, the snapshot (sh: when no variable is untracked, the only
// time the hook uses it), and (sh) that every tracked variable holds the
// value tracked and the untracked ones are counted, (fish) the escaped
// values.
var deltaScripts = map[string]string{
	"sh": `[ -z "${ZSH_VERSION-}" ] || setopt shwordsplit
. "$1"
__sa_check() {
	local l1 l2 n r=ok u=0
	{ IFS= read -r l1; IFS= read -r l2; } <"$SECRETS_AGENT_ENV_DIR/env.sh"
	[ "x${l2#'# secrets-agent vars'}" = "x$__secrets_agent_vars" ] || r=vars
	[ "x$l1" = "x$__secrets_agent_line" ] || r=line
	if [ -n "$__secrets_agent_snapx" ] && [ "${__secrets_agent_untracked-0}" = 0 ]; then
		__secrets_agent_snapshot
		[ "x$__secrets_agent_cur" = "x$__secrets_agent_snap" ] || r=snap
	fi
	for n in $__secrets_agent_vars; do
		if eval "[ -n \"\${__secrets_agent_v_$n+x}\" ]"; then
			eval "[ \"x\$$n\" = \"x\$__secrets_agent_v_$n\" ]" || r=track
		else
			u=$((u + 1))
		fi
	done
	[ "$u" = "${__secrets_agent_untracked-0}" ] || r=untracked
	printf '%s' "$r"
}
while IFS= read -r __l; do
	eval "${__l%%|*}"
	__secrets_agent_sync
	printf 'S full=%s check=%s' "${SA_FULL-no}" "$(__sa_check)"
	unset SA_FULL
	for n in ${__l#*|}; do eval "printf ' %s=%s' $n \"\${$n-unset}\""; done
	echo
done
`,
	"fish": `source $argv[1]
function __sa_check
	set -l r ok
	set -l l1
	set -l l2
	begin
		read l1; and read l2
	end <$SECRETS_AGENT_ENV_DIR/env.fish
	set -l names (string replace -- '# secrets-agent vars' '' "$l2" | string split -n ' ')
	test "$names" = "$__secrets_agent_vars"; or set r vars
	test "$l1" = "$__secrets_agent_line"; or set r line
	test "$(string join \n -- $__secrets_agent_vals)" = "$(__secrets_agent_values $__secrets_agent_vars | string join \n)"; or set r vals
	test "$(string join \x1e -- $$__secrets_agent_vars .)" = "$__secrets_agent_snap"; or set r snap
	echo -n $r
end
while read -l l
	set -l parts (string split -m 1 '|' -- $l)
	eval $parts[1]
	__secrets_agent_sync
	set -l full no
	set -q SA_FULL; and set full $SA_FULL
	printf 'S full=%s check=%s' $full (__sa_check)
	set -e SA_FULL
	for n in (string split -n ' ' -- $parts[2])
		if set -q $n
			printf ' %s=%s' $n "$$n"
		else
			printf ' %s=unset' $n
		end
	end
	echo
end
`,
}

// TestDeltaSyncEndsWhereAFullSyncDoes drives bash, zsh and fish through a
// series of changes. Where the shell is at the generation before and the
// user touched none of the variables, the hook applies only the delta file
// (the fragment, to which the test appends an assignment of SA_FULL, is not
// sourced); elsewhere (the user changed one, kept one, or the shell missed
// a generation) it falls back to the full fragment. Either way the variables
// end as the full fragment sets them, the user's own stay, and what the hook
// keeps for the next change is what a full sync keeps.
func TestDeltaSyncEndsWhereAFullSyncDoes(t *testing.T) {
	type step struct {
		name  string
		user  map[string]string // shell: command
		apply [][2]string       // one set; two sets are applied one after the other with "then"
		then  [][2]string
		full  bool
		want  map[string]string // "" is unset
	}
	set := func(kv ...string) [][2]string {
		var out [][2]string
		for i := 0; i < len(kv); i += 2 {
			out = append(out, [2]string{kv[i], kv[i+1]})
		}
		return out
	}
	start := set("SA_A", "a1", "SA_B", "b1", "SA_C", "c1", "SA_E", "e1", "SA_PATH", "/a::/b:")
	steps := []step{
		{name: "rotate two, one a list in fish", apply: set("SA_A", "a1", "SA_B", "b2", "SA_C", "c1", "SA_E", "e1", "SA_PATH", "/c:/d"),
			want: map[string]string{"SA_A": "a1", "SA_B": "b2"}},
		{name: "add at the front, middle and end", apply: set("SA_0", "zero", "SA_A", "a1", "SA_B", "b2", "SA_C", "c1",
			"SA_D", "d1", "SA_E", "e1", "SA_Z", "z1", "SA_PATH", "/c:/d"),
			want: map[string]string{"SA_0": "zero", "SA_D": "d1", "SA_Z": "z1", "SA_B": "b2"}},
		{name: "remove two, rotate one", apply: set("SA_0", "zero", "SA_B", "b2", "SA_C", "c2", "SA_E", "e1", "SA_Z", "z1", "SA_PATH", "/c:/d"),
			want: map[string]string{"SA_A": "", "SA_D": "", "SA_C": "c2", "SA_0": "zero", "SA_Z": "z1"}},
		{name: "an added name the user has set stays theirs",
			user:  map[string]string{"sh": "SA_NEW=mine", "fish": "set -g SA_NEW mine"},
			apply: set("SA_0", "zero", "SA_B", "b3", "SA_C", "c2", "SA_E", "e1", "SA_NEW", "theirs", "SA_Z", "z1", "SA_PATH", "/c:/d"),
			want:  map[string]string{"SA_NEW": "mine", "SA_B": "b3"}},
		{name: "while one is the user's, the whole fragment", full: true,
			apply: set("SA_0", "zero", "SA_B", "b3", "SA_C", "c3", "SA_E", "e1", "SA_Z", "z1", "SA_PATH", "/c:/d"),
			want:  map[string]string{"SA_NEW": "mine", "SA_C": "c3"}},
		{name: "the user changed one of ours", full: true,
			user:  map[string]string{"sh": "SA_B=userb", "fish": "set -g SA_B userb"},
			apply: set("SA_0", "zero", "SA_B", "b3", "SA_C", "c4", "SA_E", "e1", "SA_Z", "z1", "SA_PATH", "/c:/d"),
			want:  map[string]string{"SA_B": "userb", "SA_C": "c4"}},
		{name: "the user's stays when removed", full: true,
			apply: set("SA_0", "zero", "SA_C", "c5", "SA_E", "e1", "SA_Z", "z1", "SA_PATH", "/c:/d"),
			want:  map[string]string{"SA_B": "userb", "SA_C": "c5"}},
		{name: "clean again",
			user:  map[string]string{"sh": "unset SA_B SA_NEW", "fish": "set -e SA_B; set -e SA_NEW"},
			apply: set("SA_0", "zero", "SA_C", "c6", "SA_E", "e1", "SA_Z", "z1", "SA_PATH", "/c:/d"),
			want:  map[string]string{"SA_B": "", "SA_C": "c6"}},
		{name: "a missed generation", full: true,
			apply: set("SA_0", "zero", "SA_C", "c6", "SA_E", "e2", "SA_Z", "z1", "SA_PATH", "/c:/d"),
			then:  set("SA_0", "zero", "SA_C", "c6", "SA_E", "e3", "SA_Z", "z1", "SA_PATH", "/c:/d"),
			want:  map[string]string{"SA_E": "e3", "SA_C": "c6"}},
		{name: "a delta after the fallback", apply: set("SA_0", "zero", "SA_C", "c7", "SA_E", "e3", "SA_Z", "z1", "SA_PATH", "/c:/d"),
			want: map[string]string{"SA_C": "c7", "SA_E": "e3"}},
		{name: "all removed", full: true, apply: set(),
			want: map[string]string{"SA_0": "", "SA_C": "", "SA_E": "", "SA_Z": ""}},
	}

	for _, sh := range []string{"bash", "zsh", "fish"} {
		t.Run(sh, func(t *testing.T) {
			t.Parallel()
			kind := "sh"
			if sh == "fish" {
				kind = "fish"
			}
			dir := filepath.Join(t.TempDir(), "env")
			in, _ := New(Options{Dir: dir, StateDir: t.TempDir(), Owner: injectors.Owner{UID: -1, GID: -1}})
			apply := func(kv [][2]string, mark bool) {
				t.Helper()
				var env []secrets.Secret
				for _, p := range kv {
					env = append(env, envSecret(p[0], p[0], []byte(p[1])))
				}
				if res := in.Apply(context.Background(), env); res.Err != nil || len(res.Failed()) > 0 {
					t.Fatalf("apply: %v %v", res.Err, res.Failed())
				}
				if mark {
					markFull(t, dir)
				}
			}
			apply(start, false)

			ask := startDeltaShell(t, sh, dir)
			for _, st := range steps {
				apply(st.apply, true)
				if st.then != nil {
					apply(st.then, true)
				}
				var names []string
				for n := range st.want {
					names = append(names, n)
				}
				sort.Strings(names)
				got := ask(st.user[kind] + "|" + strings.Join(names, " "))
				want := "S full=no check=ok"
				if st.full {
					want = "S full=yes check=ok"
				}
				for _, n := range names {
					v := st.want[n]
					if v == "" {
						v = "unset"
					}
					want += fmt.Sprintf(" %s=%s", n, v)
				}
				if got != want {
					t.Errorf("%s:\n got %s\nwant %s", st.name, got, want)
				}
			}
		})
	}
}

// TestDeltaFilesFollowTheFragments: a change writes beside env.sh and
// env.fish a delta from the generation before, recorded in the manifest;
// a restarted agent keeps it as it is, a deleted one is put back, and one
// too large to be worth it, or any delta once no variable is left (a
// purge), is removed. A delta names only what changed.
func TestDeltaFilesFollowTheFragments(t *testing.T) {
	dir, state := filepath.Join(t.TempDir(), "env"), t.TempDir()
	opts := Options{Dir: dir, StateDir: state, Owner: injectors.Owner{UID: -1, GID: -1}}
	in, _ := New(opts)
	ctx := context.Background()
	var env []secrets.Secret
	for i := range 40 {
		name := fmt.Sprintf("SA_%02d", i)
		env = append(env, envSecret(name, name, []byte("v1")))
	}
	deltas := func() map[string]string {
		m := map[string]string{}
		for _, f := range Formats {
			if f.DeltaName() == "" {
				continue
			}
			if data, err := os.ReadFile(filepath.Join(dir, f.DeltaName())); err == nil {
				m[f.DeltaName()] = string(data)
			}
		}
		return m
	}
	if res := in.Apply(ctx, env); res.Err != nil || len(deltas()) != 0 {
		t.Fatalf("first apply: %v, deltas %v", res.Err, deltas())
	}
	gen0 := currentGenOf(t, dir)

	env[3].Value = []byte("v2")
	res := in.Apply(ctx, env[1:]) // SA_00 removed, SA_03 rotated
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	gen1 := currentGenOf(t, dir)
	d := deltas()
	if len(d) != 2 {
		t.Fatalf("deltas after a change: %v", d)
	}
	for name, text := range d {
		if first := strings.SplitN(text, "\n", 2)[0]; first != deltaPrefix+gen0+" "+gen1 {
			t.Errorf("%s starts %q, want the generations %s %s", name, first, gen0, gen1)
		}
		for _, want := range []string{"__secrets_agent_d_SA_03", "__secrets_agent_dunset", "SA_00"} {
			if !strings.Contains(text, want) {
				t.Errorf("%s lacks %s:\n%s", name, want, text)
			}
		}
		if strings.Contains(text, "__secrets_agent_d_SA_04") {
			t.Errorf("%s sets an unchanged variable:\n%s", name, text)
		}
	}
	if !slices.Contains(res.Paths, filepath.Join(dir, "env.sh.delta")) {
		t.Errorf("paths %v lack the delta files (drift repair would not watch them)", res.Paths)
	}
	man, _ := os.ReadFile(filepath.Join(state, manifestName))
	var m manifest
	if err := json.Unmarshal(man, &m); err != nil || m.Delta == nil || m.Delta.To != gen1 || m.Delta.From != gen0 {
		t.Errorf("the manifest does not record the delta:\n%s", man)
	}

	restarted, _ := New(opts)
	if res := restarted.Apply(ctx, env[1:]); res.Writes != 0 || !maps.Equal(deltas(), d) {
		t.Errorf("a restarted agent wrote %d times; deltas %v, want %v", res.Writes, deltas(), d)
	}
	os.Remove(filepath.Join(dir, "env.fish.delta"))
	if res := restarted.Apply(ctx, env[1:]); res.Writes != 1 || !maps.Equal(deltas(), d) {
		t.Errorf("a deleted delta: %d writes; deltas %v, want %v", res.Writes, deltas(), d)
	}

	for i := range env {
		env[i].Value = []byte("v3") // 39 changes of 39 variables: past the bound
	}
	if res := restarted.Apply(ctx, env[1:]); res.Err != nil || len(deltas()) != 0 {
		t.Errorf("a change of every variable: %v, deltas %v", res.Err, deltas())
	}
	env[5].Value = []byte("v4")
	if res := restarted.Apply(ctx, env[1:]); res.Err != nil || len(deltas()) != 2 {
		t.Errorf("one change again: %v, deltas %v", res.Err, deltas())
	}
	if res := restarted.Apply(ctx, nil); res.Err != nil || len(deltas()) != 0 {
		t.Errorf("purge: %v, deltas left %v", res.Err, deltas())
	}
}

// startDeltaShell starts shell sh running its deltaScripts loop with the
// user hook over the fragments in dir, once it has sourced them, and returns
// a function that sends one line and returns the shell's answer.
func startDeltaShell(t *testing.T, sh, dir string) func(line string) string {
	t.Helper()
	kind := "sh"
	if sh == "fish" {
		kind = "fish"
	}
	bin := testutil.NeedTool(t, sh)
	text, _ := HookScript(kind, HookUser)
	tmp := t.TempDir()
	hook, script := filepath.Join(tmp, "hook"), filepath.Join(tmp, "loop")
	os.WriteFile(hook, text, 0o600)
	os.WriteFile(script, []byte(deltaScripts[kind]), 0o600)
	args := map[string][]string{"bash": {"--norc", "--noprofile"}, "zsh": {"-f"}, "fish": {"--no-config"}}[sh]
	cmd := exec.Command(bin, append(args, script, hook)...)
	cmd.Env = []string{"HOME=" + tmp, "PATH=/usr/bin:/bin", "SECRETS_AGENT_ENV_DIR=" + dir, "LC_ALL=C.UTF-8"}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Wait()
		if stderr.Len() > 0 {
			t.Errorf("%s wrote to stderr:\n%s", sh, stderr.String())
		}
	})
	lines := make(chan string)
	go func() {
		out := bufio.NewScanner(stdout)
		for out.Scan() {
			lines <- out.Text()
		}
		close(lines)
	}()
	ask := func(line string) string {
		t.Helper()
		io.WriteString(stdin, line+"\n")
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("the shell exited: %s", stderr.String())
			}
			return l
		case <-time.After(30 * time.Second):
			t.Fatalf("no answer to %q", line)
		}
		return ""
	}
	ask("|") // the shell has sourced the hook once it answers
	return ask
}

// TestHookSourcesOnlyADeltaThisUserOwns: a delta file that another user
// owns (and so could have written) is not sourced; the hook sources the
// whole fragment, which this user owns, instead.
func TestHookSourcesOnlyADeltaThisUserOwns(t *testing.T) {
	testutil.NeedRoot(t, "own the delta file by another user than the shell's")
	uid, gid := testutil.Nobody(t)
	for _, sh := range []string{"bash", "zsh", "fish"} {
		t.Run(sh, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "env")
			in, _ := New(Options{Dir: dir, Owner: injectors.Owner{UID: -1, GID: -1}})
			a := envSecret("a", "SA_A", []byte("one"))
			if res := in.Apply(context.Background(), []secrets.Secret{a}); res.Err != nil {
				t.Fatal(res.Err)
			}
			ask := startDeltaShell(t, sh, dir)
			a.Value = []byte("two")
			if res := in.Apply(context.Background(), []secrets.Secret{a}); res.Err != nil {
				t.Fatal(res.Err)
			}
			for _, name := range []string{"env.sh.delta", "env.fish.delta"} {
				p := filepath.Join(dir, name)
				data, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				mark := "SA_DELTA=sourced\n"
				if name == "env.fish.delta" {
					mark = "set -g SA_DELTA sourced\n"
				}
				if err := os.WriteFile(p, append([]byte(mark), data...), 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Chown(p, uid, gid); err != nil {
					t.Fatal(err)
				}
			}
			if got, want := ask("|SA_A SA_DELTA"), "S full=no check=ok SA_A=two SA_DELTA=unset"; got != want {
				t.Errorf("got  %s\nwant %s", got, want)
			}
		})
	}
}

// markFull appends to env.sh and env.fish in dir an assignment SA_FULL=yes:
// a shell has it only if its hook sourced the whole fragment.
func markFull(t *testing.T, dir string) {
	t.Helper()
	for f, line := range map[string]string{"env.sh": "SA_FULL=yes\n", "env.fish": "set -g SA_FULL yes\n"} {
		fh, err := os.OpenFile(filepath.Join(dir, f), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		_, err = fh.WriteString(line)
		fh.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestDeltaCarriesEveryValueExactly: every value of the corpus, brought to
// bash, zsh and fish by delta files (a few at a time, as deltas are), reads
// back byte for byte, as a shell variable and in the exported environment.
func TestDeltaCarriesEveryValueExactly(t *testing.T) {
	envTool := testutil.NeedTool(t, "env")
	for _, sh := range []string{"bash", "zsh", "fish"} {
		t.Run(sh, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "env")
			in, _ := New(Options{Dir: dir, Owner: injectors.Owner{UID: -1, GID: -1}})
			want := corpusSecrets()
			env := corpusSecrets()
			for i := range env {
				env[i].Value = []byte("before")
			}
			if res := in.Apply(context.Background(), env); res.Err != nil {
				t.Fatal(res.Err)
			}
			ask := startDeltaShell(t, sh, dir)
			for i := 0; i < len(env); i += minDeltaCap {
				for k := i; k < min(i+minDeltaCap, len(env)); k++ {
					env[k].Value = want[k].Value
				}
				if res := in.Apply(context.Background(), env); res.Err != nil || len(res.Failed()) > 0 {
					t.Fatalf("apply: %v %v", res.Err, res.Failed())
				}
				markFull(t, dir)
				if got := ask("|"); got != "S full=no check=ok" {
					t.Fatalf("values %d and on: %s", i, got)
				}
			}
			out := t.TempDir()
			var dump strings.Builder
			for _, s := range want { // the same in sh and fish
				fmt.Fprintf(&dump, `printf '%%s' "$%s" >%s/%s; `, s.Mount.Target, out, s.Mount.Target)
			}
			fmt.Fprintf(&dump, "%s -0 >%s/ENV0", envTool, out)
			ask(dump.String() + "|")
			exported, err := os.ReadFile(filepath.Join(out, "ENV0"))
			if err != nil {
				t.Fatal(err)
			}
			envm := parseEnv0(exported)
			for _, s := range want {
				got, err := os.ReadFile(filepath.Join(out, s.Mount.Target))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, s.Value) {
					t.Errorf("%s reads back as %q, want %q", s.Mount.Target, trunc(got), trunc(s.Value))
				}
				if e, ok := envm[s.Mount.Target]; !ok || e != string(s.Value) {
					t.Errorf("%s exported as %q (present %v)", s.Mount.Target, trunc([]byte(e)), ok)
				}
			}
		})
	}
}

// TestManifestWithoutItsKeyGivesNoDelta: a manifest whose key is lost has
// lost what the variables were, so the next change writes no delta (one
// would take every variable for new).
func TestManifestWithoutItsKeyGivesNoDelta(t *testing.T) {
	dir, state := filepath.Join(t.TempDir(), "env"), t.TempDir()
	opts := Options{Dir: dir, StateDir: state, Owner: injectors.Owner{UID: -1, GID: -1}}
	in, _ := New(opts)
	a := envSecret("a", "SA_A", []byte("one"))
	if res := in.Apply(context.Background(), []secrets.Secret{a}); res.Err != nil {
		t.Fatal(res.Err)
	}
	p := filepath.Join(state, manifestName)
	data, _ := os.ReadFile(p)
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil || m["gen"] == nil {
		t.Fatalf("manifest %s: %v", data, err)
	}
	m["key"] = "lost"
	data, _ = json.Marshal(m)
	os.WriteFile(p, data, 0o600)

	restarted, _ := New(opts)
	a.Value = []byte("two")
	if res := restarted.Apply(context.Background(), []secrets.Secret{a}); res.Err != nil {
		t.Fatal(res.Err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "env.sh.delta")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a delta from a manifest without its key: %v", err)
	}
}

// TestADeltaThatCannotBeWrittenFailsNoSecret: a FIFO the user put where a
// delta file goes is not opened; the change is still written and every
// secret applied, the result says what failed, and the next pass removes
// the FIFO.
func TestADeltaThatCannotBeWrittenFailsNoSecret(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "env")
	in, _ := New(Options{Dir: dir, Owner: injectors.Owner{UID: -1, GID: -1}})
	ctx := context.Background()
	a := envSecret("a", "SA_A", []byte("one"))
	if res := in.Apply(ctx, []secrets.Secret{a}); res.Err != nil {
		t.Fatal(res.Err)
	}
	fifo := filepath.Join(dir, "env.sh.delta")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	a.Value = []byte("two")
	res := in.Apply(ctx, []secrets.Secret{a})
	if res.Err == nil || !strings.Contains(res.Err.Error(), "env.sh.delta") || len(res.Failed()) != 0 {
		t.Fatalf("err %v, failed %v: want the delta's error and no secret failed", res.Err, res.Failed())
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "env.sh")); !strings.Contains(string(data), "SA_A='two'") {
		t.Errorf("env.sh was not written:\n%s", data)
	}
	if res := in.Apply(ctx, []secrets.Secret{a}); res.Err != nil {
		t.Fatalf("next pass: %v", res.Err)
	}
	if _, err := os.Lstat(fifo); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the FIFO is still there: %v", err)
	}
}
