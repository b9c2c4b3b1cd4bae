package envprofile

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/secrets-agent/secrets-agent/secrets"
)

// Format is a fragment's language.
type Format string

// The formats. Each is one file in the injector's directory.
const (
	// FormatSh is POSIX sh, sourced by bash, dash and zsh (file env.sh).
	FormatSh Format = "sh"
	// FormatFish is fish (file env.fish).
	FormatFish Format = "fish"
	// FormatDotenv is the dotenv dialect described at quoteDotenv (file env).
	FormatDotenv Format = "dotenv"
)

// Formats lists every format, in the order Apply writes them.
var Formats = []Format{FormatSh, FormatFish, FormatDotenv}

// FileName returns the name of f's file in the injector's directory.
func (f Format) FileName() string {
	switch f {
	case FormatSh:
		return "env.sh"
	case FormatFish:
		return "env.fish"
	default:
		return "env"
	}
}

// DeltaName returns the name of f's delta file in the injector's directory
// (env.sh.delta, env.fish.delta; see renderDelta), or "" for the dotenv
// format, which no hook sources.
func (f Format) DeltaName() string {
	if f == FormatDotenv {
		return ""
	}
	return f.FileName() + ".delta"
}

// ParseFormat parses "sh", "fish" or "dotenv"; anything else is an error.
func ParseFormat(s string) (Format, error) {
	for _, f := range Formats {
		if string(f) == s {
			return f, nil
		}
	}
	return "", fmt.Errorf("unknown format %q: want sh, fish or dotenv", s)
}

// Renderer is the injectors.EnvRenderer of this injector's formats.
type Renderer struct{}

// Formats names every format in Formats, FormatSh first.
func (Renderer) Formats() []string {
	out := make([]string, len(Formats))
	for i, f := range Formats {
		out[i] = string(f)
	}
	return out
}

// Render renders env in the format named format (see ParseFormat).
func (Renderer) Render(format string, env []secrets.Secret) ([]byte, error) {
	f, err := ParseFormat(format)
	if err != nil {
		return nil, err
	}
	return Render(f, env)
}

// The first two lines of every fragment. The shell hooks read them with the
// read builtin: the generation tells them whether anything changed since they
// last sourced the file, the vars line which names the fragment sets.
const (
	genPrefix  = "# secrets-agent generation "
	varsPrefix = "# secrets-agent vars"
)

// snapSep ends each value in env.sh's __SECRETS_AGENT_SNAPV, as the hook's
// printf '%s\037' does (hook.sh).
const snapSep = 0x1f

// fishSnapSep ends each value in the snapshot hook.fish keeps and an
// env.fish.delta's __SECRETS_AGENT_SNAPV, as its string join \x1e does.
const fishSnapSep = 0x1e

// checkVar returns why s cannot be an environment variable in a fragment, or
// nil. The error names the secret and never holds its value.
func checkVar(s secrets.Secret) error {
	name := s.Mount.Target
	bad := func(reason string) error {
		return &secrets.Error{ID: s.ID, Name: s.Name, Field: "environmentVariable", Reason: reason}
	}
	switch {
	case s.Mount.Kind != secrets.MountEnv:
		return &secrets.Error{ID: s.ID, Name: s.Name, Field: "mount", Reason: "is not an environment variable"}
	case !secrets.ValidEnvName(name):
		return bad("is not a POSIX variable name ([A-Za-z_][A-Za-z0-9_]*)")
	case secrets.EnvNameRefusal(name) != "": // the name policy, as Resolve applies it
		return bad(name + " " + secrets.EnvNameRefusal(name))
	case bytes.IndexByte(s.Value, 0) >= 0:
		return &secrets.Error{ID: s.ID, Name: s.Name, Field: "value", Reason: "contains a NUL byte, which no environment variable can hold"}
	}
	return nil
}

// variable is one line of a fragment.
type variable struct {
	name  string
	value []byte
	// r is the variable as each format writes it: made by lines when first
	// needed, or handed over by Apply from the pass before when the value
	// is the same, so that a pass renders only the variables that changed.
	r *rendered
}

// rendered is one variable's part of each fragment and delta file.
type rendered struct {
	// value is what was rendered: the secret's own bytes, not a copy (a
	// secret's value is never changed in place; a new value is a new slice).
	value []byte
	// sh, fish and dotenv are its assignment lines, newline included.
	sh, fish, dotenv []byte
	dotenvLast       bool // dotenvLast(value)
	// snapSh is 'x', the value and snapSep as they stand inside the single
	// quotes of env.sh's __SECRETS_AGENT_SNAPV (quoteSh, quotes left off);
	// snapFish the value (colons as fishSnapSep in a PATH variable) and
	// fishSnapSep inside those of a fish delta's (quoteFish).
	snapSh, snapFish []byte
	// mac is the value's MAC under the manifest's key, once Apply needs it.
	mac string
}

// lines returns v rendered, rendering it on first use.
func (v *variable) lines() *rendered {
	if v.r == nil {
		v.r = renderVar(v.name, v.value)
	}
	return v.r
}

// renderVar renders the variable name set to value in every format.
func renderVar(name string, value []byte) *rendered {
	r := &rendered{value: value, dotenvLast: dotenvLast(value)}
	r.sh = append(append([]byte("export "+name+"="), quoteSh(value)...), '\n')
	r.fish = append(append([]byte("set -gx "+name+" "), quoteFish(value)...), '\n')
	r.dotenv = append(append([]byte(name+"="), quoteDotenv(value)...), '\n')
	snap := append(append([]byte{'x'}, value...), snapSep)
	r.snapSh = unquoted(quoteSh(snap))
	fsnap := value
	if strings.HasSuffix(name, "PATH") {
		// fish makes a variable whose name ends in PATH a list, split at
		// each colon, and the join puts the separator between its elements.
		fsnap = bytes.ReplaceAll(value, []byte(":"), []byte{fishSnapSep})
	}
	r.snapFish = unquoted(quoteFish(append(slices.Clip(fsnap), fishSnapSep)))
	return r
}

// unquoted is q without the single quotes quoteSh or quoteFish put around
// it: what the value is between them, so that values quoted one by one can
// be put between one pair of quotes.
func unquoted(q []byte) []byte { return q[1 : len(q)-1] }

// split sorts the secrets that can go into a fragment by variable name and
// returns them with one error per secret that cannot (in input order), keyed
// by the secret's index in env. A second secret for a variable already taken
// is an error too: the resolver never sends one. So is a secret past
// execve's bounds (secrets.OverEnvBudget says which).
func split(env []secrets.Secret) (vars []variable, idx []int, errs map[int]error) {
	errs = map[int]error{}
	seen := map[string]bool{}
	var ok []int
	for i, s := range env {
		err := checkVar(s)
		if err == nil && seen[s.Mount.Target] {
			err = &secrets.Error{ID: s.ID, Name: s.Name, Field: "environmentVariable", Reason: "another secret already sets " + s.Mount.Target}
		}
		if err != nil {
			errs[i] = err
			continue
		}
		seen[s.Mount.Target] = true
		ok = append(ok, i)
	}
	fit := env // when every secret passed, as usual: no copy
	if len(ok) < len(env) {
		fit = make([]secrets.Secret, len(ok))
		for k, i := range ok {
			fit[k] = env[i]
		}
	}
	over := secrets.OverEnvBudget(fit)
	for k, i := range ok {
		if err := over[k]; err != nil {
			errs[i] = err
			continue
		}
		vars = append(vars, variable{name: env[i].Mount.Target, value: env[i].Value})
		idx = append(idx, i)
	}
	order := make([]int, len(vars))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(vars[a].name, vars[b].name) })
	sv, si := make([]variable, len(vars)), make([]int, len(vars))
	for k, o := range order {
		sv[k], si[k] = vars[o], idx[o]
	}
	return sv, si, errs
}

// Render returns the fragment in format f that sets every variable of env.
//
// The fragment holds every secret that can be a variable; err joins one
// *secrets.Error per secret that cannot (not an environment-variable mount,
// a name the policy refuses, a NUL byte in the value, a variable already
// set by an earlier secret, past execve's bounds), naming the secret, never
// its value. With no
// secrets it returns a fragment that sets nothing. The generation line of a
// rendered fragment is "-": only Apply's files carry a real generation.
func Render(f Format, env []secrets.Secret) ([]byte, error) {
	if _, err := ParseFormat(string(f)); err != nil {
		return nil, err
	}
	vars, _, errs := split(env)
	var all []error
	for i := range env {
		if err := errs[i]; err != nil {
			all = append(all, err)
		}
	}
	return render(f, vars, "-"), errors.Join(all...)
}

// render writes the fragment: the generation line, the vars line, a comment,
// one assignment per variable, and (sh, fish) the list of names and the
// generation as shell variables for the hook (sh: and the lines that let hook.sh
// compare every variable at once).
func render(f Format, vars []variable, gen string) []byte {
	var b bytes.Buffer
	size := 256 + 2*len(gen)
	for i := range vars {
		r, n := vars[i].lines(), len(vars[i].name)
		switch f {
		case FormatSh:
			size += 2*(n+1) + len(r.sh) + 2*n + 8 + len(r.snapSh)
		case FormatFish:
			size += 2*(n+1) + len(r.fish)
		case FormatDotenv:
			size += n + 1 + len(r.dotenv)
		}
	}
	b.Grow(size)
	b.WriteString(genPrefix + gen + "\n")
	b.WriteString(varsPrefix)
	for _, v := range vars {
		b.WriteByte(' ')
		b.WriteString(v.name)
	}
	b.WriteString("\n# Environment variables from secrets-agent. Generated; do not edit.\n")
	switch f {
	case FormatSh:
		for _, v := range vars {
			b.Write(v.r.sh)
		}
		b.WriteString("__SECRETS_AGENT_VARS='")
		writeNames(&b, vars)
		b.WriteString("'\n")
		// For the hook (hook.sh): at the next change, one printf over SNAP
		// in the shell, compared with SNAPV (what that printf gives right
		// after this fragment is sourced), tells whether the user changed
		// any of the variables since.
		writeSnap(&b, true, vars)
		b.WriteString("__SECRETS_AGENT_GEN='" + gen + "'\n")
	case FormatFish:
		for _, v := range vars {
			b.Write(v.r.fish)
		}
		b.WriteString("set -g __SECRETS_AGENT_VARS ")
		writeNames(&b, vars)
		b.WriteString("\nset -g __SECRETS_AGENT_GEN '" + gen + "'\n")
	case FormatDotenv:
		for _, last := range []bool{false, true} {
			for _, v := range vars {
				if v.r.dotenvLast == last {
					b.Write(v.r.dotenv)
				}
			}
		}
	}
	return b.Bytes()
}

// writeNames writes the names of vars separated by spaces.
func writeNames(b *bytes.Buffer, vars []variable) {
	for i, v := range vars {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(v.name)
	}
}

// writeSnap writes env.sh's lines for the hook's snapshot (hook.sh): if
// names, __SECRETS_AGENT_SNAP, the words (one per variable) that hook.sh's
// printf turns into every value at once, and then __SECRETS_AGENT_SNAPV,
// what that printf gives right after vars are set. Names are [A-Za-z0-9_],
// so SNAP needs no quoting beyond the single quotes.
func writeSnap(b *bytes.Buffer, names bool, vars []variable) {
	if names {
		b.WriteString("__SECRETS_AGENT_SNAP='")
		for i, v := range vars {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(`"${`)
			b.WriteString(v.name)
			b.WriteString(`+x$`)
			b.WriteString(v.name)
			b.WriteString(`}"`)
		}
		b.WriteString("'\n")
	}
	b.WriteString("__SECRETS_AGENT_SNAPV='")
	for i := range vars {
		b.Write(vars[i].lines().snapSh)
	}
	b.WriteString("'\n")
}

// deltaPrefix starts the first line of a delta file, followed by the
// generations it goes from and to.
const deltaPrefix = "# secrets-agent delta "

// renderDelta writes the delta file of format f (sh or fish) that takes a
// shell which sourced the fragments of generation d.From to what those of
// d.To set, given vars, the variables of d.To. Sourced, it changes nothing
// unless the shell's hook is at d.From (its __secrets_agent_line says so);
// then it sets, for the hook to apply (hook.sh, hook.fish):
//
//	__secrets_agent_dgen     d.To
//	__secrets_agent_dset     the names of d.Set (value changed)
//	__secrets_agent_dadd     the names of d.Add (new to the set)
//	__secrets_agent_dunset   the names of d.Unset (gone from the set)
//	__secrets_agent_d_NAME   the new value of each name of Set and Add
//
// and, if the set of names changed, __secrets_agent_dnames=1 with the new
// __SECRETS_AGENT_VARS (and, sh, __SECRETS_AGENT_SNAP) as d.To's fragment
// has them; and __SECRETS_AGENT_SNAPV, the snapshot of every value that the
// hook would otherwise take again after the change (sh: as d.To's fragment
// has it; fish: what hook.fish's string join gives). fish also gets where
// each name is, so that its hook need search no list (1 is the first):
// __secrets_agent_dseti and __secrets_agent_dunseti in d.From's list of
// names, __secrets_agent_daddi in d.To's. Values are quoted as in the
// fragment.
func renderDelta(f Format, d *delta, vars []variable) []byte {
	value := func(name string) []byte {
		i, _ := slices.BinarySearchFunc(vars, name, func(v variable, n string) int { return strings.Compare(v.name, n) })
		return vars[i].value // d's Set and Add are names of vars
	}
	var b bytes.Buffer
	size := 1024
	for i := range vars {
		r := vars[i].lines()
		size += max(len(r.snapSh), len(r.snapFish))
		if d.namesChanged() {
			size += 3*len(vars[i].name) + 10
		}
	}
	b.Grow(size) // the values of Set and Add grow it, if need be
	b.WriteString(deltaPrefix + d.From + " " + d.To + "\n")
	b.WriteString("# What changed from generation " + d.From + " to " + d.To + " of " + f.FileName() +
		", for the hook. Generated; do not edit.\n")
	list := func(ns []string) string { return strings.Join(ns, " ") }
	from := genPrefix + d.From
	switch f {
	case FormatSh:
		b.WriteString("[ \"x${__secrets_agent_line-}\" = 'x" + from + "' ] || return 0\n")
		b.WriteString("__secrets_agent_dset='" + list(d.Set) + "'\n")
		b.WriteString("__secrets_agent_dadd='" + list(d.Add) + "'\n")
		b.WriteString("__secrets_agent_dunset='" + list(d.Unset) + "'\n")
		for _, n := range append(append([]string(nil), d.Set...), d.Add...) {
			b.WriteString("__secrets_agent_d_" + n + "=")
			b.Write(quoteSh(value(n)))
			b.WriteByte('\n')
		}
		if d.namesChanged() { // else SNAP is as it was
			b.WriteString("__secrets_agent_dnames=1\n")
			b.WriteString("__SECRETS_AGENT_VARS='")
			writeNames(&b, vars)
			b.WriteString("'\n")
		}
		writeSnap(&b, d.namesChanged(), vars)
		b.WriteString("__secrets_agent_dgen='" + d.To + "'\n")
	case FormatFish:
		b.WriteString("if test \"$__secrets_agent_line\" = '" + from + "'\n")
		b.WriteString("set -g __secrets_agent_dset " + list(d.Set) + "\n")
		b.WriteString("set -g __secrets_agent_dadd " + list(d.Add) + "\n")
		b.WriteString("set -g __secrets_agent_dunset " + list(d.Unset) + "\n")
		for _, l := range []struct {
			name  string
			names []string
			at    func(string) int
		}{{"dseti", d.Set, d.fromAt(vars)}, {"dunseti", d.Unset, d.fromAt(vars)}, {"daddi", d.Add, toAt(vars)}} {
			b.WriteString("set -g __secrets_agent_" + l.name)
			for _, n := range l.names {
				b.WriteString(" " + strconv.Itoa(l.at(n)))
			}
			b.WriteByte('\n')
		}
		for _, n := range append(append([]string(nil), d.Set...), d.Add...) {
			b.WriteString("set -g __secrets_agent_d_" + n + " ")
			b.Write(quoteFish(value(n)))
			b.WriteByte('\n')
		}
		if d.namesChanged() {
			b.WriteString("set -g __secrets_agent_dnames 1\n")
			b.WriteString("set -g __SECRETS_AGENT_VARS ")
			writeNames(&b, vars)
			b.WriteByte('\n')
		}
		b.WriteString("set -g __SECRETS_AGENT_SNAPV '")
		for i := range vars {
			b.Write(vars[i].lines().snapFish)
		}
		b.WriteString(".'\n")
		b.WriteString("set -g __secrets_agent_dgen '" + d.To + "'\nend\n")
	}
	return b.Bytes()
}

// quoteSh quotes v as one POSIX shell word: inside single quotes every byte
// but ' stands for itself (newline, CR, backslash, $, `, invalid UTF-8
// included), and ' is written as close quote, escaped quote, reopen:
//
//	'\''
//
// bash, dash and zsh read it back byte for byte whatever their options.
func quoteSh(v []byte) []byte {
	out := make([]byte, 0, len(v)+2)
	out = append(out, '\'')
	for _, c := range v {
		if c == '\'' {
			out = append(out, `'\''`...)
			continue
		}
		out = append(out, c)
	}
	return append(out, '\'')
}

// quoteFish quotes v as one fish word. In fish's single quotes only \\ and
// \' are escapes; every other byte, including newline, CR and bytes that are
// not UTF-8 (fish keeps them as private-use code points and writes the
// original bytes back out), stands for itself.
func quoteFish(v []byte) []byte {
	out := make([]byte, 0, len(v)+2)
	out = append(out, '\'')
	for _, c := range v {
		if c == '\'' || c == '\\' {
			out = append(out, '\\')
		}
		out = append(out, c)
	}
	return append(out, '\'')
}

// quoteDotenv quotes v for the env file. The dialect:
//
//   - A line is NAME=VALUE; lines starting with # are comments.
//   - A value holding none of ', \ and carriage return is single-quoted
//     and literal: every byte between the quotes, newlines included, is
//     the value.
//   - A value that ends in a backslash, is printable ASCII without spaces
//     and starts with neither ' nor " is written bare: the rest of the line
//     is the value. (python-dotenv cannot read such a value quoted; see
//     below.)
//   - Any other value is double-quoted with exactly these escapes: \\ for
//     \, \" for ", \n for newline, \r for carriage return; every other
//     byte, $ and ' included, stands for itself.
//
// What the readers of such files make of it (TestDotenvReadersReadBack runs
// the first two):
//
//   - python-dotenv (dotenv_values, load_dotenv; Debian's 0.21 and 1.x)
//     with interpolate=False reads every value that is UTF-8 back exactly,
//     but for one that ends in a backslash and cannot be written bare (it
//     holds a space or a newline, say): its pattern for a quoted value takes the escaped
//     backslash before the closing quote for an escaped quote and reads on,
//     so that value and the ones after it come out wrong; such values are
//     written after all the others.
//     With its default interpolate=True it also replaces ${NAME} and
//     ${NAME:-default} anywhere in a value, single-quoted or not, and no
//     escape prevents that. It reads the file as text in the locale's
//     encoding (pass encoding="utf-8"), so a value that is not valid in
//     that encoding fails the whole file; it turns a raw carriage return
//     into a newline, which is why carriage returns are escaped.
//   - docker run --env-file (docker/cli pkg/kvfile) does no unquoting: the
//     value is the rest of the line, quotes included, and each further line
//     of a multi-line value is a line of its own (one without = names a
//     variable docker copies from the caller's environment). It reads only
//     bare values exactly, so it cannot read this file; pass variables with
//     -e or use env.sh.
//   - docker compose (env_file, --env-file) has a parser of its own, not
//     run here; by its documentation a single-quoted value is literal and a
//     double-quoted one has its $ expanded.
//
// Bytes that are not UTF-8 are written as they are.
func quoteDotenv(v []byte) []byte {
	if dotenvBare(v) {
		return append([]byte(nil), v...)
	}
	if !bytes.ContainsAny(v, "'\\\r") {
		out := make([]byte, 0, len(v)+2)
		out = append(out, '\'')
		out = append(out, v...)
		return append(out, '\'')
	}
	out := make([]byte, 0, len(v)+8)
	out = append(out, '"')
	for _, c := range v {
		switch c {
		case '\\', '"':
			out = append(out, '\\', c)
		case '\n':
			out = append(out, `\n`...)
		case '\r':
			out = append(out, `\r`...)
		default:
			out = append(out, c)
		}
	}
	return append(out, '"')
}

// dotenvBare reports whether v is written bare in the env file: see
// quoteDotenv.
func dotenvBare(v []byte) bool {
	if len(v) == 0 || v[len(v)-1] != '\\' || v[0] == '\'' || v[0] == '"' {
		return false
	}
	for _, c := range v {
		if c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// dotenvLast reports whether v goes after the other values in the env file:
// a value python-dotenv misreads together with what follows it (see
// quoteDotenv).
func dotenvLast(v []byte) bool {
	return len(v) > 0 && v[len(v)-1] == '\\' && !dotenvBare(v)
}
