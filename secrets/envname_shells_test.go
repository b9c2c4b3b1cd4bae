package secrets

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"go/format"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/secrets-agent/secrets-agent/internal/testutil"
)

var updateShellVariables = flag.Bool("update-shell-variables", false,
	"rewrite envname_shells.go from the installed shells (go generate ./secrets)")

// derivedShell is one shell the name policy is derived from: how to list the
// variables it knows itself, and how to probe a name.
type derivedShell struct {
	id   shellID
	prog string
	// list returns the variables the shell reports itself, with their kind.
	list func(t *testing.T, prog string) map[string]varKind
	// probe runs the probe script over names; see probeNames.
	probe func(names []string, marker string) string
}

var derivedShells = []derivedShell{
	{inBash, "bash", listBash, probePOSIX},
	{inDash, "dash", listDash, probePOSIX},
	{inZsh, "zsh", listZsh, probePOSIX},
	{inFish, "fish", listFish, probeFish},
}

// TestShellVariablesAreRefused derives, from the installed shells, every
// variable they define, type or treat specially (rule 2 of EnvNameRefusal)
// and fails when one of them is not refused. With -update-shell-variables
// (go generate ./secrets) it rewrites envname_shells.go instead, which
// needs all four shells.
func TestShellVariablesAreRefused(t *testing.T) {
	if testing.Short() && !*updateShellVariables {
		t.Skip("skipping in -short: probes thousands of names in four shells")
	}
	progs := map[shellID]string{}
	for _, sh := range derivedShells {
		if *updateShellVariables {
			p, err := exec.LookPath(sh.prog)
			if err != nil {
				t.Fatalf("-update-shell-variables needs every shell: %v", err)
			}
			progs[sh.id] = p
			continue
		}
		t.Run(sh.prog+"/installed", func(t *testing.T) { progs[sh.id] = testutil.NeedTool(t, sh.prog) })
	}

	// (1) What each shell says about itself.
	listed := map[shellID]map[string]varKind{}
	candidates := map[string]bool{}
	for _, sh := range derivedShells {
		if progs[sh.id] == "" {
			continue
		}
		listed[sh.id] = sh.list(t, progs[sh.id])
		for n := range listed[sh.id] {
			candidates[n] = true
		}
		for _, n := range binaryIdentifiers(t, sh.id, progs[sh.id]) {
			candidates[n] = true
		}
	}
	names := make([]string, 0, len(candidates))
	for n := range candidates {
		names = append(names, n)
	}
	sort.Strings(names)

	// (2) What each shell does with an assignment to each candidate.
	derived := map[string]shellUses{}
	for _, sh := range derivedShells {
		if progs[sh.id] == "" {
			continue
		}
		kinds := listed[sh.id]
		for n, k := range probeNames(t, sh, progs[sh.id], names) {
			if old, ok := kinds[n]; !ok || k < old {
				kinds[n] = k
			}
		}
		for n, k := range kinds {
			derived[n] = append(derived[n], shellUse{sh.id, k})
		}
		t.Logf("%s: %d variables of its own among %d candidates", sh.prog, len(kinds), len(names))
	}

	if *updateShellVariables {
		writeShellVariables(t, derived)
		return
	}
	var missing []string
	for n, uses := range derived {
		if !ValidEnvName(n) {
			continue
		}
		if EnvNameRefusal(n) == "" {
			missing = append(missing, fmt.Sprintf("%s (%s)", n, uses.worst().reason()))
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("%d shell variables are not refused; run `go generate ./secrets`:\n%s",
			len(missing), strings.Join(missing, "\n"))
	}
}

// runShell runs prog with args in an empty environment (HOME a fresh dir)
// and returns its standard output; standard error is discarded, as the
// interactive shells complain about having no terminal.
func runShell(t *testing.T, prog string, stdin string, args ...string) string {
	t.Helper()
	out, err := tryShell(t, prog, stdin, args...)
	if err != nil && len(out) == 0 {
		t.Fatalf("%s %s: %v", prog, strings.Join(args, " "), err)
	}
	return out
}

// tryShell is runShell that returns the error rather than failing.
func tryShell(t *testing.T, prog string, stdin string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, prog, args...)
	cmd.Env = []string{"HOME=" + t.TempDir()}
	cmd.Dir = t.TempDir()
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.Output()
	return string(out), err
}

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// firstWords returns the first word of each line that is an identifier.
func firstWords(out string) []string {
	var ns []string
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) > 0 && identRE.MatchString(f[0]) {
			ns = append(ns, f[0])
		}
	}
	return ns
}

// listBash: the attributes of `declare -p`, the variables bash sets itself
// (compgen -v) and those `help variables` describes, in an interactive bash
// with no rc files and an empty environment.
func listBash(t *testing.T, prog string) map[string]varKind {
	out := runShell(t, prog, "", "--norc", "--noprofile", "-i", "-c",
		`declare -p; echo @@; compgen -v; echo @@; help variables`)
	parts := strings.SplitN(out, "@@\n", 3)
	if len(parts) != 3 {
		t.Fatalf("bash: unexpected output %q", out)
	}
	kinds := map[string]varKind{}
	for _, n := range firstWords(parts[1]) {
		kinds[n] = kindSpecial
	}
	helpRE := regexp.MustCompile(`(?m)^    ([A-Za-z_][A-Za-z0-9_]*)\t`) // "    NAME<tab>what it is"
	for _, m := range helpRE.FindAllStringSubmatch(parts[2], -1) {
		kinds[m[1]] = kindSpecial
	}
	declRE := regexp.MustCompile(`(?m)^declare -([A-Za-z-]+) ([A-Za-z_][A-Za-z0-9_]*)`)
	for _, m := range declRE.FindAllStringSubmatch(parts[0], -1) {
		flags, n := m[1], m[2]
		k := kindSpecial
		switch {
		case strings.Contains(flags, "i"):
			k = kindInteger
		case strings.Contains(flags, "r"):
			k = kindReadOnly
		case strings.ContainsAny(flags, "aA"):
			k = kindArray
		}
		kinds[n] = k
	}
	return kinds
}

// listDash: what `set` shows in an interactive dash with an empty
// environment (dash has no attributes to list beyond read-only, which
// the probe finds).
func listDash(t *testing.T, prog string) map[string]varKind {
	out := runShell(t, prog, "", "-i", "-c", "set")
	kinds := map[string]varKind{}
	for _, l := range strings.Split(out, "\n") {
		if n, _, ok := strings.Cut(l, "="); ok && identRE.MatchString(n) {
			kinds[n] = kindSpecial
		}
	}
	return kinds
}

// listZsh: every parameter of an interactive zsh with no rc files, every
// module it ships loaded (but zsh/newuser, which would run the new-user
// wizard), with its type from $parameters.
func listZsh(t *testing.T, prog string) map[string]varKind {
	out := runShell(t, prog, "", "-f", "-i", "-c", `
() {
  local d f m k v
  for d in $module_path; do
    for f in $d/zsh/**/*.so(N); do
      m=${f#$d/}; m=${m%.so}
      [[ $m == zsh/newuser ]] || zmodload $m >/dev/null 2>&1
    done
  done
  zmodload zsh/parameter
  print @@
  for k v in ${(kv)parameters}; do [[ $k == (d|f|m|k|v) ]] || print -r -- "$k $v"; done
}`)
	_, out, _ = strings.Cut(out, "@@\n")
	kinds := map[string]varKind{}
	for _, l := range strings.Split(out, "\n") {
		n, typ, ok := strings.Cut(l, " ")
		if !ok || !identRE.MatchString(n) {
			continue
		}
		k := kindSpecial
		switch {
		case strings.Contains(typ, "integer") || strings.Contains(typ, "float"):
			k = kindInteger
		case strings.Contains(typ, "readonly"):
			k = kindReadOnly
		case strings.HasPrefix(typ, "array") || strings.HasPrefix(typ, "association"):
			k = kindArray
		}
		kinds[n] = k
	}
	return kinds
}

// listFish: every variable an interactive fish with no config and an empty
// environment has, read-only ones from `set --show`.
func listFish(t *testing.T, prog string) map[string]varKind {
	out := runShell(t, prog, "", "--no-config", "-i", "-c", `set -n; echo @@; set --show`)
	names, show, ok := strings.Cut(out, "@@\n")
	if !ok {
		t.Fatalf("fish: unexpected output %q", out)
	}
	kinds := map[string]varKind{}
	for _, n := range firstWords(names) {
		kinds[n] = kindSpecial
	}
	roRE := regexp.MustCompile(`(?m)^\$([A-Za-z_][A-Za-z0-9_]*): .*\(read-only\)`)
	for _, m := range roRE.FindAllStringSubmatch(show, -1) {
		kinds[m[1]] = kindReadOnly
	}
	return kinds
}

// binaryIdentifiers returns the upper-case identifiers (two characters or
// more, like `strings -n 2`) in the shell's executable and, for zsh, its
// modules: the names it may treat specially without listing them, which
// the probe then tries.
func binaryIdentifiers(t *testing.T, id shellID, prog string) []string {
	files := []string{prog}
	if id == inZsh {
		for _, d := range strings.Fields(runShell(t, prog, "", "-f", "-c", `print -r -- $module_path`)) {
			_ = filepath.WalkDir(d, func(p string, e os.DirEntry, err error) error {
				if err == nil && strings.HasSuffix(p, ".so") {
					files = append(files, p)
				}
				return nil
			})
		}
	}
	seen := map[string]bool{}
	var out []string
	upperRE := regexp.MustCompile(`^[A-Z_][A-Z0-9_]+$`)
	for _, f := range files {
		real, err := filepath.EvalSymlinks(f)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(real)
		if err != nil {
			t.Fatal(err)
		}
		for _, run := range bytes.FieldsFunc(b, func(r rune) bool { return r < 0x20 || r >= 0x7f }) {
			s := string(run)
			if upperRE.MatchString(s) && !seen[s] {
				seen[s] = true
				out = append(out, s)
			}
		}
	}
	return out
}

// probeValue is what the probe assigns to name: an arithmetic array
// subscript whose command substitution appends the name to marker. The
// array is path, which zsh always has: zsh expands the subscript of an
// existing array only (bash of any name).
func probeValue(name, marker string) string {
	return "path[$(echo " + name + " >>" + marker + ")]"
}

// probePOSIX is the probe in sh: each name in its own subshell, assigned
// exactly as env.sh does, then compared; "ok NAME" when it held.
func probePOSIX(names []string, marker string) string {
	var b strings.Builder
	b.WriteString("exec 2>/dev/null\n")
	for _, n := range names {
		v := probeValue(n, marker)
		fmt.Fprintf(&b, "( export %s='%s' && [ \"${%s-}\" = '%s' ] && echo 'ok %s' )\n", n, v, n, v, n)
	}
	return b.String()
}

// probeFish is the probe in fish, assigned as env.fish does; fish goes on
// after a failed set, so one process serves every name.
func probeFish(names []string, marker string) string {
	var b strings.Builder
	for _, n := range names {
		v := probeValue(n, marker)
		fmt.Fprintf(&b, "set -gx %s '%s' 2>/dev/null; and test \"$%s\" = '%s'; and echo 'ok %s'\n", n, v, n, v, n)
	}
	return b.String()
}

// probeNames assigns the probe value to each name in sh as the fragments
// do, and returns the names that are not plain strings there: the command
// ran (kindRuns), the assignment failed or the value did not hold
// (kindAborts; kindUnstable when the shell went on but the value changed is
// not told apart from a failure in sh, so both are kindAborts).
func probeNames(t *testing.T, sh derivedShell, prog string, names []string) map[string]varKind {
	dir := t.TempDir()
	marker := filepath.Join(dir, "ran")
	script := filepath.Join(dir, "probe")
	kinds := map[string]varKind{}
	// A name whose assignment ends the script (fish stops at some read-only
	// variables) is one that aborts; the probe goes on after it.
	for rest := names; len(rest) > 0; {
		if err := os.WriteFile(script, []byte(sh.probe(rest, marker)), 0o600); err != nil {
			t.Fatal(err)
		}
		args := []string{script}
		if sh.id == inFish {
			args = []string{"--no-config", script}
		}
		out, _ := tryShell(t, prog, "", args...) // a probe may well end the shell
		ok := map[string]bool{}
		for _, l := range strings.Split(out, "\n") {
			if n, found := strings.CutPrefix(l, "ok "); found {
				ok[n] = true
			}
		}
		last := -1
		for i, n := range rest {
			if ok[n] {
				last = i
			}
		}
		for _, n := range rest[:last+1] {
			if !ok[n] {
				kinds[n] = kindAborts
			}
		}
		if last+1 < len(rest) {
			kinds[rest[last+1]] = kindAborts
		}
		rest = rest[min(last+2, len(rest)):]
	}
	ran, _ := os.ReadFile(marker)
	for _, n := range strings.Fields(string(ran)) {
		kinds[n] = kindRuns
	}
	return kinds
}

// writeShellVariables writes envname_shells.go.
func writeShellVariables(t *testing.T, derived map[string]shellUses) {
	names := make([]string, 0, len(derived))
	for n := range derived {
		if ValidEnvName(n) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	var b bytes.Buffer
	b.WriteString("// Code generated by `go generate ./secrets` (TestShellVariablesAreRefused); DO NOT EDIT.\n\n")
	b.WriteString("package secrets\n\n")
	b.WriteString("// shellVariables is rule 2 of the name policy (see EnvNameRefusal): each\n")
	b.WriteString("// variable the installed shells define, type or treat specially, with how.\n")
	fmt.Fprintf(&b, "// Derived from %s.\n", shellVersions(t))
	b.WriteString("var shellVariables = map[string]shellUses{\n")
	shellConst := map[shellID]string{inBash: "inBash", inDash: "inDash", inZsh: "inZsh", inFish: "inFish"}
	kindConst := map[varKind]string{kindRuns: "kindRuns", kindInteger: "kindInteger", kindAborts: "kindAborts",
		kindReadOnly: "kindReadOnly", kindArray: "kindArray", kindUnstable: "kindUnstable", kindSpecial: "kindSpecial"}
	for _, n := range names {
		uses := derived[n]
		sort.Slice(uses, func(i, j int) bool { return uses[i].shell < uses[j].shell })
		fmt.Fprintf(&b, "\t%q: {", n)
		for i, u := range uses {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "{%s, %s}", shellConst[u.shell], kindConst[u.kind])
		}
		b.WriteString("},\n")
	}
	b.WriteString("}\n")
	src, err := format.Source(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("envname_shells.go", src, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote envname_shells.go: %d names", len(names))
}

// shellVersions names the shells' versions, for the generated file.
func shellVersions(t *testing.T) string {
	var vs []string
	for _, c := range [][]string{
		{"bash", "-c", `echo "bash $BASH_VERSION"`},
		{"dash", "-c", `echo "dash $(dpkg-query -W -f '${Version}' dash 2>/dev/null || echo '(version unknown)')"`},
		{"zsh", "-fc", `echo "zsh $ZSH_VERSION"`},
		{"fish", "--no-config", "-c", `echo "fish $version"`},
	} {
		out, err := exec.Command(c[0], c[1:]...).Output()
		if err != nil {
			t.Fatal(err)
		}
		vs = append(vs, strings.TrimSpace(string(out)))
	}
	return strings.Join(vs, ", ")
}
