package secrets

import (
	"errors"
	"strings"
	"testing"
)

func TestEnvNamePolicyRefusesEveryClassWithItsRule(t *testing.T) {
	for _, c := range []struct{ name, why string }{
		// The shells' integer variables: assignments are arithmetic.
		{"RANDOM", "runs code when assigned in bash"},
		{"SRANDOM", "runs code when assigned in bash"},
		{"OPTIND", "runs code when assigned in bash"},
		{"HISTSIZE", "zsh"},
		{"SAVEHIST", "runs code when assigned in zsh"},
		{"COLUMNS", "zsh"},
		{"LINES", "zsh"},
		{"SECONDS", "zsh"},
		{"FUNCNEST", "zsh"},
		{"KEYTIMEOUT", "zsh"},
		{"MAILCHECK", "arithmetic"},
		{"TRY_BLOCK_ERROR", "zsh"},
		// Read-only, special and array variables.
		{"UID", ""},
		{"EUID", ""},
		{"PPID", ""},
		{"BASH_VERSINFO", "bash"},
		{"SHELLOPTS", "bash"},
		{"ZSH_EVAL_CONTEXT", "zsh"},
		{"path", "zsh"},
		{"fpath", "zsh"},
		{"cdpath", "zsh"},
		{"manpath", "zsh"},
		{"module_path", "zsh"},
		{"mailpath", "zsh"},
		{"status", ""},
		{"pipestatus", ""},
		{"PWD", ""},
		{"fish_pid", ""},
		{"_", ""},
		// Code-carrying, start-up and loader variables.
		{"PROMPT_COMMAND", "prompt"},
		{"PS0", "prompt"},
		{"PS1", "prompt"},
		{"PS4", "prompt"},
		{"RPROMPT", "prompt"},
		{"BASH_ENV", "start-up file"},
		{"ENV", "start-up file"},
		{"ZDOTDIR", "start-up file"},
		{"BASH_FUNC_ls", "exports functions"},
		{"LD_PRELOAD", "dynamic loader"},
		{"LD_LIBRARY_PATH", "dynamic loader"},
		{"LD_AUDIT", "dynamic loader"},
		{"IFS", ""},
		{"PATH", "search path"},
		{"CDPATH", "search path"},
		{"GLOBIGNORE", "globbed"},
		{"BASHOPTS", ""},
		{"GCONV_PATH", "C library"},
		{"PERL5OPT", "interpreter start-up hook"},
		{"PYTHONSTARTUP", "interpreter start-up hook"},
		{"NODE_OPTIONS", "interpreter start-up hook"},
		{"JAVA_TOOL_OPTIONS", "interpreter start-up hook"},
		{"fish_user_paths", "fish's own"},
		{"TMOUT", "exits idle shells"},
		{"STTY", "stty"},
		{"precmd_functions", "zsh calls"},
		{"PROMPT_EOL_MARK", "prompt"},
		{"GLIBC_TUNABLES", "C library"},
		// Code at the prompt (a prompt runs git status) and start-up hooks
		// of everyday tools.
		{"GIT_CONFIG_PARAMETERS", "git configuration"},
		{"GIT_CONFIG_COUNT", "git configuration"},
		{"GIT_CONFIG_KEY_0", "git configuration"},
		{"GIT_CONFIG_VALUE_0", "git configuration"},
		{"GIT_CONFIG_GLOBAL", "git configuration"},
		{"GIT_CONFIG_SYSTEM", "git configuration"},
		{"GIT_CONFIG", "git configuration"},
		{"GIT_DIR", "another repository"},
		{"GIT_COMMON_DIR", "another repository"},
		{"GIT_EXEC_PATH", "git run programs"},
		{"GIT_TEMPLATE_DIR", "git run programs"},
		{"GIT_EXTERNAL_DIFF", "git run programs"},
		{"STARSHIP_CONFIG", "every prompt"},
		{"ZSH_CUSTOM", "every prompt"},
		{"DIRENV_CONFIG", "direnv"},
		{"LESSOPEN", "less"},
		{"LESSCLOSE", "less"},
		{"LESS", "less"},
		{"VIMINIT", "editor"},
		{"EXINIT", "editor"},
		{"VIMRUNTIME", "editor"},
		{"EMACSLOADPATH", "editor"},
		{"OPENSSL_CONF", "OpenSSL"},
		{"OPENSSL_ENGINES", "OpenSSL"},
		{"OPENSSL_MODULES", "OpenSSL"},
		// Our own.
		{"SECRETS_AGENT_SOCKET", "agent's own"},
		{"SECRETS_AGENT_ENV_DIR", "agent's own"},
		{"SECRETS_AGENT_CONTROLPLANE_URL", "agent's own"},
		{"__SECRETS_AGENT_VARS", "hooks' own"},
		{"__secrets_agent_line", "hooks' own"},
	} {
		why := EnvNameRefusal(c.name)
		if why == "" {
			t.Errorf("%s is accepted, want it refused", c.name)
			continue
		}
		if !strings.Contains(why, c.why) {
			t.Errorf("%s: reason %q, want it to mention %q", c.name, why, c.why)
		}
	}
}

func TestEnvNamePolicyAcceptsOrdinaryNames(t *testing.T) {
	for _, n := range []string{
		"GITHUB_TOKEN", "DATABASE_URL", "AWS_SECRET_ACCESS_KEY", "NPM_TOKEN", "api_key",
		"Path", "Random", "EDITOR", "PAGER", "GIT_SSH_COMMAND", "SECRETS_AGENT", "LD", "MY_PS1",
		"GIT_PAGER", "GIT_EDITOR", "GIT_ASKPASS", "GIT_SSH", "GIT_AUTHOR_NAME", "MANPAGER", "BROWSER", "LESSHISTFILE_X",
	} {
		if why := EnvNameRefusal(n); why != "" {
			t.Errorf("%s is refused (%s), want it accepted", n, why)
		}
	}
}

func TestRefusedVariableIsAnErrorOnTheEnvironmentVariableField(t *testing.T) {
	s := Secret{ID: "id1", Name: "SEED", Scope: ScopeUser, Mount: Mount{Kind: MountEnv, Target: "RANDOM"}}
	err := ValidateMeta(s)
	var se *Error
	if !errors.As(err, &se) {
		t.Fatalf("ValidateMeta = %v, want a *Error", err)
	}
	if se.Field != "environmentVariable" || !strings.HasPrefix(se.Reason, "RANDOM ") || !strings.Contains(se.Reason, "bash") {
		t.Errorf("error %+v, want field environmentVariable and a reason naming RANDOM and the shell", se)
	}
	res := Resolve([]Secret{s, {ID: "id2", Name: "FINE", Scope: ScopeUser, Mount: Mount{Kind: MountEnv, Target: "FINE"}}})
	if len(res.Winners) != 1 || res.Winners[0].Secret.ID != "id2" || len(res.Rejected) != 1 {
		t.Errorf("resolution %v, want FINE applied and RANDOM rejected", res)
	}
}
