package agent

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

const module = "github.com/secrets-agent/secrets-agent"

// TestDependenciesPointOneWay pins the direction of the module's imports,
// read from `go list`: cmd -> agent -> {injectors/*, controlplane, config, proxy,
// control} -> secrets, where control (the status socket, which cmd's clients
// use too) imports neither agent nor controlplane. The agent imports no concrete injector (cmd hands it the list,
// built by injectors/builtin); no library package imports agent or a
// command; injectors never import config except builtin, which builds them
// from it; secrets imports nothing of ours.
func TestDependenciesPointOneWay(t *testing.T) {
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		if goBin, err = exec.LookPath("go"); err != nil {
			t.Skip("needs the go command: not found")
		}
	}
	out, err := exec.Command(goBin, "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	imports := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		pkg := strings.TrimPrefix(f[0], module+"/")
		for _, imp := range f[1:] {
			if rest, ok := strings.CutPrefix(imp, module+"/"); ok {
				imports[pkg] = append(imports[pkg], rest)
			}
		}
	}
	if len(imports["agent"]) == 0 {
		t.Fatalf("go list named no import of agent; output:\n%s", out)
	}
	under := func(p, dir string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }
	for pkg, deps := range imports {
		for _, d := range deps {
			var why string
			switch {
			case pkg == "secrets":
				why = "secrets imports nothing of ours"
			case under(d, "cmd"):
				why = "nothing imports a command"
			case d == "agent" && !under(pkg, "cmd") && pkg != "test" && !under(pkg, "internal/testutil"):
				why = "only cmd (and the tests' harness) imports agent"
			case pkg == "agent" && under(d, "injectors") && d != "injectors":
				why = "agent depends only on the injectors interface, never a concrete injector"
			case under(pkg, "injectors") && pkg != "injectors/builtin" && d == "config":
				why = "an injector is built from its options; only injectors/builtin reads the config"
			case pkg == "control" && under(d, "controlplane"):
				why = "the status socket serves a Backend; it never talks to the control plane"
			case (under(pkg, "injectors") || under(pkg, "controlplane") || pkg == "config" || pkg == "proxy" || pkg == "control") && d == "agent":
				why = "the layer below agent never imports it"
			}
			if why != "" {
				t.Errorf("%s imports %s: %s", pkg, d, why)
			}
		}
	}
}

// TestNoFunctionOver80Lines keeps the agent's functions short enough to read
// at once: a longer one is split into steps with names.
func TestNoFunctionOver80Lines(t *testing.T) {
	fset := token.NewFileSet()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			fd, ok := n.(*ast.FuncDecl)
			if !ok {
				return true
			}
			if lines := fset.Position(fd.End()).Line - fset.Position(fd.Pos()).Line + 1; lines > 80 {
				t.Errorf("%s: %s is %d lines long; split it (at most 80)", fset.Position(fd.Pos()), fd.Name.Name, lines)
			}
			return false
		})
	}
}
