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
	"github.com/secrets-agent/secrets-agent/injectors/envprofile"
	"github.com/secrets-agent/secrets-agent/internal/testutil"
)

// hostileNames are environment-variable names a secret must not set, by
// class, with what the refusal must say. Each is sent with a value that runs
// a command if a shell ever evaluates it, or, for a class with its own value,
// with a value that runs one where the class's program reads it (value gets
// the marker to create and a directory of the test's own to plant files in).
var hostileNames = []struct {
	class, why string
	names      []string
	value      func(t *testing.T, dir, marker string) string
}{
	{"bash integer variable", "arithmetic",
		[]string{"RANDOM", "SRANDOM", "OPTIND", "HISTCMD", "UID", "EUID", "PPID", "BASHPID", "MAILCHECK"}, nil},
	{"zsh integer variable", "zsh",
		[]string{"HISTSIZE", "SAVEHIST", "COLUMNS", "LINES", "SECONDS", "FUNCNEST", "KEYTIMEOUT", "LISTMAX",
			"TRY_BLOCK_ERROR", "TRY_BLOCK_INTERRUPT", "TTYIDLE", "EGID", "GID", "ERRNO", "ZLE_RPROMPT_INDENT", "LOGCHECK"}, nil},
	{"dynamic or special variable", "",
		[]string{"LINENO", "EPOCHSECONDS", "EPOCHREALTIME", "BASH_COMMAND", "BASH_SUBSHELL", "_", "PWD", "OLDPWD",
			"SHLVL", "HOME", "OPTARG", "OPTERR", "HISTFILESIZE", "IGNOREEOF", "TMPPREFIX", "WORDCHARS"}, nil},
	{"zsh special array or association", "zsh",
		[]string{"path", "fpath", "cdpath", "manpath", "module_path", "mailpath", "psvar", "fignore", "argv",
			"pipestatus", "options", "functions", "aliases", "parameters", "signals", "watch", "zsh_eval_context",
			"ZSH_EVAL_CONTEXT", "dirstack", "history", "commands", "jobstates", "nameddirs"}, nil},
	{"read-only variable", "",
		[]string{"SHELLOPTS", "BASHOPTS", "BASH_VERSINFO", "BASH_ARGV0", "GROUPS", "FUNCNAME", "status", "fish_pid",
			"hostname", "version", "FISH_VERSION", "CMD_DURATION", "umask", "ZSH_SUBSHELL", "ARGC"}, nil},
	{"code-carrying variable", "",
		[]string{"PROMPT_COMMAND", "PS0", "PS1", "PS2", "PS3", "PS4", "PROMPT", "PROMPT2", "RPROMPT", "RPS1",
			"SPROMPT", "BASH_ENV", "ENV", "ZDOTDIR", "BASH_FUNC_ls", "BASH_FUNC_cd", "INPUTRC", "HISTFILE",
			"TIMEFORMAT", "TIMEFMT", "NULLCMD", "READNULLCMD", "fish_function_path", "fish_user_paths",
			"fish_greeting", "__fish_config_dir", "PROMPT_EOL_MARK", "precmd_functions", "preexec_functions",
			"chpwd_functions", "TMOUT", "STTY"}, nil},
	{"loader or interpreter start-up variable", "",
		[]string{"LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "LD_BIND_NOW", "GCONV_PATH", "PERL5OPT", "PERL5LIB",
			"PYTHONSTARTUP", "PYTHONPATH", "RUBYOPT", "NODE_OPTIONS", "JAVA_TOOL_OPTIONS", "LUA_INIT", "GLIBC_TUNABLES"}, nil},
	{"search path, splitting or options", "",
		[]string{"PATH", "CDPATH", "FPATH", "MANPATH", "IFS", "GLOBIGNORE", "POSIXLY_CORRECT", "BASH_XTRACEFD",
			"XDG_CONFIG_HOME", "XDG_DATA_DIRS"}, nil},
	{"git configuration, run by a prompt's git status", "git configuration",
		[]string{"GIT_CONFIG_PARAMETERS"},
		func(_ *testing.T, _, marker string) string { return "'core.fsmonitor'='touch " + marker + "; false'" }},
	{"git configuration file, run by a prompt's git status", "git configuration",
		[]string{"GIT_CONFIG_GLOBAL", "GIT_CONFIG_SYSTEM", "GIT_CONFIG"},
		func(t *testing.T, dir, marker string) string { return fsmonitorConfig(t, dir, marker) }},
	{"git configuration by number, run by a prompt's git status", "git configuration",
		[]string{"GIT_CONFIG_COUNT", "GIT_CONFIG_KEY_0", "GIT_CONFIG_VALUE_0"},
		func(_ *testing.T, _, marker string) string {
			switch filepath.Base(marker) {
			case "GIT_CONFIG_COUNT":
				return "1"
			case "GIT_CONFIG_KEY_0":
				return "core.fsmonitor"
			}
			return "touch " + marker + "; false"
		}},
	{"another repository, whose configuration a prompt's git status runs", "another repository",
		[]string{"GIT_DIR", "GIT_COMMON_DIR"},
		func(t *testing.T, dir, marker string) string {
			repo := filepath.Join(dir, "planted-"+filepath.Base(marker))
			gitInit(t, repo)
			b, err := os.ReadFile(fsmonitorConfig(t, dir, marker))
			must(t, err)
			f, err := os.OpenFile(filepath.Join(repo, ".git", "config"), os.O_APPEND|os.O_WRONLY, 0)
			must(t, err)
			_, err = f.Write(b)
			must(t, err)
			must(t, f.Close())
			return filepath.Join(repo, ".git")
		}},
	{"programs git runs unasked", "git run programs",
		[]string{"GIT_EXEC_PATH", "GIT_TEMPLATE_DIR", "GIT_EXTERNAL_DIFF"}, nil},
	{"prompt tools' configuration, less, editors and OpenSSL", "",
		[]string{"STARSHIP_CONFIG", "ZSH_CUSTOM", "DIRENV_CONFIG", "LESSOPEN", "LESSCLOSE", "LESS", "VIMINIT",
			"EXINIT", "VIMRUNTIME", "OPENSSL_CONF", "OPENSSL_ENGINES", "OPENSSL_MODULES"}, nil},
	{"the agent's own", "agent's own",
		[]string{"SECRETS_AGENT_SOCKET", "SECRETS_AGENT_ENV_DIR", "SECRETS_AGENT_CONTROLPLANE_URL",
			"SECRETS_AGENT_CONTROLPLANE_TOKEN_FILE", "SECRETS_AGENT_X"}, nil},
	{"the hooks' own", "hooks' own",
		[]string{"__SECRETS_AGENT_VARS", "__SECRETS_AGENT_GEN", "__SECRETS_AGENT_SNAP", "__secrets_agent_line",
			"__secrets_agent_vars", "__secrets_agent_v_GOOD_0", "__Secrets_Agent_Sync"}, nil},
}

// hostileValues are the forms a value takes to run a command where a shell
// evaluates it: arithmetic subscripts (the array must exist for zsh),
// command substitution, separators, prompt and function syntax.
// fsmonitorConfig writes, below dir, a git configuration file whose
// core.fsmonitor command creates marker, and returns its path.
func fsmonitorConfig(t *testing.T, dir, marker string) string {
	t.Helper()
	p := filepath.Join(dir, "gitconfig-"+filepath.Base(marker))
	must(t, os.WriteFile(p, []byte("[core]\n\tfsmonitor = touch "+marker+"; false\n"), 0o644))
	return p
}

// gitInit makes dir a git repository with one file in its index, so that
// git status reads the index (and asks core.fsmonitor about it).
func gitInit(t *testing.T, dir string) {
	t.Helper()
	must(t, os.MkdirAll(dir, 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "file"), []byte("x\n"), 0o644))
	for _, args := range [][]string{{"init", "-q"}, {"add", "file"}} {
		cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+dir)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v in %s: %v\n%s", args, dir, err, b)
		}
	}
}

func hostileValues(marker string) []string {
	return []string{
		"a[$(touch " + marker + ")]",
		"path[$(touch " + marker + ")]",
		"argv[$(touch " + marker + ")]",
		"$(touch " + marker + ")",
		"`touch " + marker + "`",
		"x; touch " + marker,
		"() { touch " + marker + "; }",
		"-c 'touch " + marker + "'",
		"1+a[$(touch " + marker + ")]",
	}
}

// TestHostileEnvNamesRunNothingInAnyShell sends, with the real agent
// binary, a secret for each name the policy refuses (each with a value that
// would run a command) and for values past execve's bounds, beside secrets
// with ordinary names and equally hostile values. status --json must name
// each refusal's rule; bash, dash, zsh and fish, sourcing the fragments
// through the installed hooks as interactive shells, must read every
// ordinary secret back exactly, pass it to a program they exec, and run
// nothing: no marker file appears. The agent then stops on SIGTERM within a
// second.
func TestHostileEnvNamesRunNothingInAnyShell(t *testing.T) {
	shells := map[string]string{}
	for _, sh := range []string{"bash", "dash", "zsh", "fish"} {
		shells[sh] = testutil.NeedTool(t, sh)
	}
	testutil.NeedTool(t, "git")
	dir := t.TempDir()
	marks := filepath.Join(dir, "marks")
	must(t, os.MkdirAll(marks, 0o700))
	planted := filepath.Join(dir, "planted") // what the hostile values point at
	must(t, os.MkdirAll(planted, 0o755))
	repo := filepath.Join(dir, "repo") // where the shells run a prompt's git status
	gitInit(t, repo)

	var rows []hostileRow
	n := 0
	for _, c := range hostileNames {
		for _, name := range c.names {
			vals := hostileValues(filepath.Join(marks, name))
			val := vals[n%len(vals)]
			if c.value != nil {
				val = c.value(t, planted, filepath.Join(marks, name))
			}
			id := fmt.Sprintf("bad_%03d", n)
			rows = append(rows, hostileRow{what: c.class + " " + name, id: id, name: "SECRET_" + id,
				spec: spec(id, "SECRET_"+id, envMount(name)), value: valueBody([]byte(val)),
				outcome: "rejected", errHas: "environmentVariable: " + name + " "})
			if c.why != "" {
				rows[len(rows)-1].errHas = c.why
			}
			n++
		}
	}
	good := map[string]string{}
	for i, v := range hostileValues(filepath.Join(marks, "GOOD")) {
		name := fmt.Sprintf("GOOD_%d", i)
		good[name] = v + "\n'\"\\ line two"
		rows = append(rows, hostileRow{what: "ordinary name " + name, id: "good-" + name, name: name,
			spec: spec("good-"+name, name, envMount(name)), value: valueBody([]byte(good[name])), outcome: "created"})
	}
	// execve's bounds: one string over 128 KiB; eleven 100 KiB values, of
	// which the last by name does not fit into the 1 MiB budget.
	rows = append(rows, hostileRow{what: "value over one environment string's limit", id: "huge", name: "HUGE_ONE",
		spec: spec("huge", "HUGE_ONE", envMount("HUGE_ONE")), value: valueBody([]byte(strings.Repeat("h", 128<<10))),
		outcome: "failed", errHas: "execve"})
	for i := range 11 {
		name := fmt.Sprintf("BULK_%02d", i)
		r := hostileRow{what: "bulk " + name, id: "bulk-" + name, name: name, spec: spec("bulk-"+name, name, envMount(name)),
			value: valueBody([]byte(strings.Repeat("b", 100<<10))), outcome: "created"}
		if i == 10 {
			r.outcome, r.errHas = "failed", "does not fit"
		}
		rows = append(rows, r)
	}

	cp := startHostileCP(t)
	var specs []string
	values := map[string]string{}
	for _, r := range rows {
		specs = append(specs, r.spec)
		values[r.id] = r.value
	}
	cp.set(specs, values)
	a := testutil.StartAgent(t, hostileConfig(t, dir, cp.srv.URL))
	socket := filepath.Join(dir, "agent.sock")
	var st control.Status
	testutil.Eventually(t, deadline, "the daemon has made a pass", func() bool {
		out, _, _ := testutil.RunAgent(t, nil, "status", "--json", "--socket", socket)
		return json.Unmarshal([]byte(out), &st) == nil && st.Passes > 0 && st.State != control.Starting
	})
	for _, r := range rows {
		got, ok := findRow(st, r.id, r.name)
		if !ok {
			t.Errorf("%s: no status row for id %q", r.what, r.id)
			continue
		}
		if string(got.Outcome) != r.outcome && !(r.outcome == "created" && got.Outcome == "unchanged") {
			t.Errorf("%s: outcome %q, want %q (error %q)", r.what, got.Outcome, r.outcome, got.Error)
		}
		if r.errHas != "" && !strings.Contains(got.Error, r.errHas) {
			t.Errorf("%s: error %q does not say %q", r.what, got.Error, r.errHas)
		}
		if r.outcome == "rejected" && !strings.Contains(a.Log(), r.name+" (id "+r.id+"): environmentVariable: ") {
			t.Errorf("%s: the log does not name the refusal", r.what)
		}
	}

	// Every shell, interactive, with the hooks as install-hooks --user
	// installs them.
	envDir := filepath.Join(dir, "envdir")
	out := filepath.Join(dir, "out")
	must(t, os.MkdirAll(out, 0o700))
	hookSh, err := envprofile.HookScript("sh", envprofile.HookUser)
	must(t, err)
	hookFish, err := envprofile.HookScript("fish", envprofile.HookUser)
	must(t, err)
	must(t, os.WriteFile(filepath.Join(dir, "hook.sh"), hookSh, 0o600))
	must(t, os.WriteFile(filepath.Join(dir, "hook.fish"), hookFish, 0o600))
	must(t, os.WriteFile(filepath.Join(dir, "bashrc"), []byte(". "+filepath.Join(dir, "hook.sh")+"\n"), 0o600))
	zdot := filepath.Join(dir, "zdot")
	must(t, os.MkdirAll(zdot, 0o700))
	must(t, os.WriteFile(filepath.Join(zdot, ".zshrc"), []byte(". "+filepath.Join(dir, "hook.sh")+"\n"), 0o600))
	for sh, prog := range shells {
		var script strings.Builder
		script.WriteString("true\ntrue\n") // prompts (and their hooks) run between commands
		// What a git-aware prompt runs at every prompt, in a repository.
		fmt.Fprintf(&script, "cd %s\ngit status >/dev/null 2>&1\ngit diff >/dev/null 2>&1\ncd %s\n", repo, dir)
		for name := range good {
			fmt.Fprintf(&script, "printf '%%s' \"$%s\" > %s\n", name, filepath.Join(out, sh+"."+name))
			fmt.Fprintf(&script, "/usr/bin/printenv %s > %s\n", name, filepath.Join(out, sh+".exec."+name))
		}
		script.WriteString("exit\n")
		var args []string
		env := []string{"HOME=" + filepath.Join(dir, "home"), "PATH=/usr/bin:/bin", "TERM=dumb", "SECRETS_AGENT_ENV_DIR=" + envDir}
		switch sh {
		case "bash":
			args = []string{"--noprofile", "--rcfile", filepath.Join(dir, "bashrc"), "-i"}
		case "dash":
			args = []string{"-i"}
			env = append(env, "ENV="+filepath.Join(dir, "hook.sh"))
		case "zsh":
			args = []string{"-i"}
			env = append(env, "ZDOTDIR="+zdot)
		case "fish":
			args = []string{"--no-config", "-i", "-C", "source " + filepath.Join(dir, "hook.fish")}
		}
		cmd := exec.Command(prog, args...)
		cmd.Env = env
		cmd.Dir = dir
		cmd.Stdin = strings.NewReader(script.String())
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Logf("%s exited with %v:\n%s", sh, err, b)
		}
		for name, want := range good {
			if b, err := os.ReadFile(filepath.Join(out, sh+"."+name)); err != nil || string(b) != want {
				t.Errorf("%s reads %s as %q (%v), want %q", sh, name, b, err, want)
			}
			if b, err := os.ReadFile(filepath.Join(out, sh+".exec."+name)); err != nil || string(b) != want+"\n" {
				t.Errorf("a program %s starts sees %s as %q (%v), want %q", sh, name, b, err, want)
			}
		}
	}
	if ents, _ := os.ReadDir(marks); len(ents) != 0 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("a hostile value ran a command: markers %v", names)
	}
	for _, f := range []string{"env.sh", "env.fish", "env"} {
		b, err := os.ReadFile(filepath.Join(envDir, f))
		must(t, err)
		for _, c := range hostileNames {
			for _, name := range c.names {
				text := "\n" + string(b)
				if strings.Contains(text, "\nexport "+name+"=") || strings.Contains(text, "\nset -gx "+name+" ") ||
					(f == "env" && strings.Contains(text, "\n"+name+"=")) {
					t.Errorf("%s sets the refused %s", f, name)
				}
			}
		}
	}

	a.Signal(t, syscall.SIGTERM)
	start := time.Now()
	for {
		if done, _ := a.Exited(); done {
			break
		}
		if time.Since(start) > time.Second {
			t.Fatalf("the agent did not stop within 1 s of SIGTERM")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
