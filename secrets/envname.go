package secrets

import (
	"fmt"
	"strings"
)

//go:generate go test -run ^TestShellVariablesAreRefused$ -update-shell-variables .

// The name policy for environment-variable secrets.
//
// A secret's variable lands in env.sh (sourced by bash, dash and zsh) and
// env.fish, in every interactive and login shell of the environment's user,
// and from there in the environment of every program those shells start. A
// name is refused when setting it could run code, break the shell that
// sources the fragment, or steer the agent, so that the control plane (or
// whoever can write a secret) gets no more than a string in a variable.
// EnvNameRefusal applies these rules, in this order:
//
//  1. Our own: SECRETS_AGENT_* steers the CLI and the hooks (the env dir,
//     the socket, every config key), and __secrets_agent* (any case) is the
//     hooks' own state.
//  2. The shells' own variables, derived mechanically from the installed
//     shells by TestShellVariablesAreRefused and kept in shellVariables
//     (envname_shells.go, regenerated with `go generate ./secrets`): every
//     variable bash, dash, zsh (with every module it ships loaded) or fish
//     defines when started with an empty environment and no rc files, every
//     variable bash's `help variables` describes, every parameter zsh types
//     as special, tied, integer, read-only, array or association, and every
//     name, from those and from the identifiers in the shells' binaries,
//     that a probe shows is not a plain string in one of the shells: the
//     assignment `export NAME='path[$(...)]'` (fish: `set -gx`) runs the
//     command (an integer variable evaluates it as arithmetic), fails or
//     aborts the sourcing, or leaves a different value behind. The test
//     re-derives the lists and fails when a name is missing here.
//  3. Families no shell marks but that carry code or steer where code comes
//     from, listed in codeVariables and codePrefixes: the prompts and prompt
//     hooks (PROMPT_COMMAND, PS0-PS4, RPROMPT, ...), the start-up files
//     (BASH_ENV, ENV, ZDOTDIR, XDG_CONFIG_HOME, ...), bash's exported
//     functions (BASH_FUNC_*), the dynamic loader (LD_*) and glibc's
//     loadable modules and tunables (GCONV_PATH, GLIBC_TUNABLES), zsh's hook
//     function lists (precmd_functions, ...), TMOUT and STTY, which end or
//     steer every interactive shell, the command and function search paths
//     (PATH, CDPATH, FPATH, ...), word splitting and globbing (IFS,
//     GLOBIGNORE), the shells' option sets (SHELLOPTS, BASHOPTS), fish's own
//     namespace (fish_*, __fish*), and the start-up hooks of interpreters:
//     variables that make every run of perl, python, ruby, node or the JVM
//     load or run code the program did not ask for (PERL5OPT, PERL5LIB,
//     PYTHONSTARTUP, PYTHONPATH, RUBYOPT, NODE_OPTIONS, JAVA_TOOL_OPTIONS,
//     ...).
//  4. Variables that make a program run code it was not asked to run: at
//     its start, for every file it opens, or at every prompt. Shell prompts
//     (git's own prompt script, starship, oh-my-zsh themes) run `git status`
//     at every prompt, so whatever git reads implicitly is code at the
//     prompt: git configuration from the environment (GIT_CONFIG_PARAMETERS,
//     GIT_CONFIG_COUNT with GIT_CONFIG_KEY_n and GIT_CONFIG_VALUE_n,
//     GIT_CONFIG_GLOBAL, GIT_CONFIG_SYSTEM: the whole GIT_CONFIG* family,
//     where core.fsmonitor is a command) and the repository it reads it from
//     (GIT_DIR, GIT_COMMON_DIR), git's program and template directories
//     (GIT_EXEC_PATH, GIT_TEMPLATE_DIR) and its diff command
//     (GIT_EXTERNAL_DIFF); the prompt tools' own configuration
//     (STARSHIP_CONFIG, oh-my-zsh's ZSH_CUSTOM, direnv's DIRENV_*, which
//     decide what they run at every prompt or directory change); less's
//     input filters and start-up commands (LESSOPEN, LESSCLOSE, LESS, which
//     can hold `+!command`), run for any file less shows, man pages and
//     git's pager included; editors' start-up commands and script paths
//     (VIMINIT, EXINIT, GVIMINIT, VIMRUNTIME, EMACSLOADPATH); and OpenSSL's
//     configuration and engine and provider paths (OPENSSL_CONF,
//     OPENSSL_ENGINES, OPENSSL_MODULES), which load shared objects into
//     every program that uses OpenSSL.
//
// Not refused, by judgement: variables whose documented purpose is to name a
// command a tool runs for an operation the user asked for (EDITOR, VISUAL,
// PAGER, MANPAGER, BROWSER, GIT_EDITOR, GIT_PAGER, GIT_SSH, GIT_SSH_COMMAND,
// GIT_ASKPASS: none of them runs for `git status`, and a prompt's output is
// never paged) and tools' own configuration generally. A secret named so is
// ordinary configuration; the user sees it in their environment.
// Names are case-sensitive: PATH is refused, Path is not (zsh's lower-case
// path, fpath, cdpath, manpath, module_path are refused by their own entry).

// envPrefixOwn is the prefix of the agent's own variables.
const envPrefixOwn = "SECRETS_AGENT_"

// codeVariables are the names of rules 3 and 4, each with why it is refused.
var codeVariables = map[string]string{}

// codePrefixes are the prefixes of rules 3 and 4, each with why it is refused.
var codePrefixes = []struct{ prefix, why string }{
	{"LD_", "configures the dynamic loader, which can load code into every program"},
	{"BASH_FUNC_", "is how bash exports functions: a child bash defines it as code"},
	{"fish_", "is fish's own namespace (prompts, key bindings, function and completion paths)"},
	{"__fish", "is fish's own namespace"},
	{"GIT_CONFIG", "gives git configuration (core.fsmonitor is a command; a prompt's `git status` runs it at every prompt)"},
	{"DIRENV_", "is direnv's configuration and state, which decide what .envrc code direnv runs at every prompt"},
}

func init() {
	add := func(why, names string) {
		for _, n := range strings.Fields(names) {
			codeVariables[n] = why
		}
	}
	add("is a prompt or prompt hook: the shell expands or runs it at every prompt",
		"PROMPT_COMMAND PS0 PS1 PS2 PS3 PS4 PROMPT PROMPT2 PROMPT3 PROMPT4 RPROMPT RPROMPT2 RPS1 RPS2 SPROMPT "+
			"POSTEDIT PROMPT_EOL_MARK TIMEFORMAT TIMEFMT WATCHFMT")
	add("lists functions zsh calls at its hooks (prompt, command, directory change, exit)",
		"precmd_functions preexec_functions chpwd_functions periodic_functions zshaddhistory_functions "+
			"zshexit_functions zsh_directory_name_functions")
	add("changes how an interactive shell runs: it exits idle shells or runs stty before each command",
		"TMOUT STTY")
	add("names a start-up file or directory that a shell reads code from",
		"BASH_ENV ENV ZDOTDIR INPUTRC XDG_CONFIG_HOME XDG_CONFIG_DIRS XDG_DATA_HOME XDG_DATA_DIRS HISTFILE")
	add("is a search path for commands, functions or directories",
		"PATH CDPATH FPATH MODULE_PATH MANPATH BASH_LOADABLES_PATH EXECIGNORE")
	add("changes how every command line is split or globbed",
		"IFS GLOBIGNORE FIGNORE")
	add("sets shell options",
		"SHELLOPTS BASHOPTS POSIXLY_CORRECT BASH_COMPAT BASH_XTRACEFD")
	add("makes the C library load code or change how it runs (iconv modules, locales, tunables)",
		"GCONV_PATH LOCPATH NLSPATH GLIBC_TUNABLES")
	add("is an interpreter start-up hook: every run of that interpreter loads or runs code from it",
		"PERL5OPT PERL5LIB PERLLIB PERL5DB PERL5SHELL PYTHONSTARTUP PYTHONPATH PYTHONHOME PYTHONUSERBASE PYTHONEXECUTABLE "+
			"RUBYOPT RUBYLIB NODE_OPTIONS NODE_PATH JAVA_TOOL_OPTIONS JDK_JAVA_OPTIONS _JAVA_OPTIONS CLASSPATH "+
			"LUA_INIT LUA_PATH LUA_CPATH TCLLIBPATH PHPRC PHP_INI_SCAN_DIR")
	add("makes git read another repository's configuration (core.fsmonitor is a command; a prompt's `git status` runs it at every prompt)",
		"GIT_DIR GIT_COMMON_DIR")
	add("makes git run programs it was not asked to (a prompt's `git status` runs git at every prompt)",
		"GIT_EXEC_PATH GIT_TEMPLATE_DIR GIT_EXTERNAL_DIFF")
	add("configures what a prompt tool runs at every prompt",
		"STARSHIP_CONFIG ZSH_CUSTOM")
	add("makes less run a command for every file it shows (man pages and git's pager included)",
		"LESSOPEN LESSCLOSE LESS")
	add("is an editor's start-up commands or script path: every start of the editor runs code from it",
		"VIMINIT EXINIT GVIMINIT VIMRUNTIME EMACSLOADPATH")
	add("makes OpenSSL load a configuration, engine or provider (shared objects) into every program that uses it",
		"OPENSSL_CONF OPENSSL_ENGINES OPENSSL_MODULES")
}

// EnvNameRefusal returns why name may not be set by a secret, as a phrase
// to follow the name ("is a bash integer variable: ..."), or "" when it may.
// It assumes name is a valid POSIX variable name (ValidEnvName).
func EnvNameRefusal(name string) string {
	if strings.HasPrefix(name, envPrefixOwn) {
		return "is the agent's own: SECRETS_AGENT_* variables steer its CLI and shell hooks"
	}
	const hooks = "__secrets_agent" // EqualFold: ToLower would copy every name
	if len(name) >= len(hooks) && strings.EqualFold(name[:len(hooks)], hooks) {
		return "is the shell hooks' own: names starting with __secrets_agent (any case) are reserved"
	}
	// A hand-written reason says more than "is set by bash itself".
	uses, derived := shellVariables[name]
	if derived && uses.worst().kind < kindUnstable {
		return uses.worst().reason()
	}
	if why, ok := codeVariables[name]; ok {
		return why
	}
	if derived {
		return uses.worst().reason()
	}
	for _, p := range codePrefixes {
		if strings.HasPrefix(name, p.prefix) {
			return fmt.Sprintf("starts with %s, which %s", p.prefix, p.why)
		}
	}
	return ""
}

// shellID is a shell the fragments are written for.
type shellID uint8

// The shells whose variables are derived.
const (
	inBash shellID = iota + 1
	inDash
	inZsh
	inFish
)

func (s shellID) String() string {
	switch s {
	case inBash:
		return "bash"
	case inDash:
		return "dash"
	case inZsh:
		return "zsh"
	case inFish:
		return "fish"
	}
	return fmt.Sprintf("shell(%d)", int(s))
}

// varKind is what a shell makes of a variable, most harmful first: the
// reason given is that of the most harmful.
type varKind uint8

// The kinds, most harmful first.
const (
	// kindRuns: the probe's assignment ran its command substitution.
	kindRuns varKind = iota + 1
	// kindInteger: the shell evaluates an assignment as arithmetic, where an
	// array subscript runs $(...).
	kindInteger
	// kindAborts: the probe's assignment failed or stopped the sourcing.
	kindAborts
	// kindReadOnly: the shell marks it read-only.
	kindReadOnly
	// kindArray: the shell keeps it as an array or association of its own.
	kindArray
	// kindUnstable: the probe read back another value than it assigned.
	kindUnstable
	// kindSpecial: the shell sets it itself, documents it or types it special.
	kindSpecial
)

// shellUse is one shell's kind of a variable.
type shellUse struct {
	shell shellID
	kind  varKind
}

func (u shellUse) reason() string {
	sh := u.shell.String()
	switch u.kind {
	case kindRuns:
		return "runs code when assigned in " + sh + ": " + sh + " evaluates assignments to it as arithmetic, where an array subscript runs $(...)"
	case kindInteger:
		return "is a " + sh + " integer variable: assignments are evaluated as arithmetic, where an array subscript runs $(...)"
	case kindAborts:
		return "cannot be assigned in " + sh + ": the assignment fails and can stop the fragment from being sourced"
	case kindReadOnly:
		return "is read-only in " + sh
	case kindArray:
		return "is a special array of " + sh
	case kindUnstable:
		return sh + " does not keep the value assigned to it"
	}
	return "is set or used by " + sh + " itself"
}

// shellUses is every shell's use of one variable.
type shellUses []shellUse

// worst returns the most harmful use.
func (us shellUses) worst() shellUse {
	best := us[0]
	for _, u := range us[1:] {
		if u.kind < best.kind {
			best = u
		}
	}
	return best
}
