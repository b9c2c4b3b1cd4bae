package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action  string // start, run, pause, cont, pass, fail, skip, output, bench, build-output, build-fail
	Package string
	Test    string
	Output  string
}

// missingTool marks the skip message of testutil.NeedTool.
const missingTool = "is not installed"

// skipped is a test that skipped, and why (its "skipping: ..." line).
type skipped struct {
	pkg, test, why string
}

// summary turns the event stream into plain go test output. It holds each
// running test's output until the test ends: a failure prints it, a pass
// drops it, a skip keeps its reason.
type summary struct {
	w       io.Writer
	running map[string][]string // package + "\x00" + test -> its output so far
	skips   []skipped
}

func newSummary(w io.Writer) *summary {
	return &summary{w: w, running: map[string][]string{}}
}

// read consumes events from r until EOF. A line that is not JSON (go test
// prints a few, such as a build failure's) is passed through.
func (s *summary) read(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.Action == "" {
			fmt.Fprintln(s.w, sc.Text())
			continue
		}
		s.handle(e)
	}
	return sc.Err()
}

func (s *summary) handle(e event) {
	key := e.Package + "\x00" + e.Test
	switch {
	case e.Action == "build-output":
		io.WriteString(s.w, e.Output)
	case e.Test == "" && e.Action == "output":
		// Package-level lines: the closing ok/FAIL line, a panic, and the
		// bare PASS/FAIL that -v adds and plain go test does not print.
		if o := strings.TrimSpace(e.Output); o != "PASS" && o != "FAIL" {
			io.WriteString(s.w, e.Output)
		}
	case e.Test == "" && e.Action == "fail":
		// The package failed (a panic or a timeout, say): print what its
		// unfinished tests said.
		for k, out := range s.running {
			if strings.HasPrefix(k, e.Package+"\x00") {
				s.print(out)
				delete(s.running, k)
			}
		}
	case e.Test == "":
	case e.Action == "output":
		if !isProgressLine(e.Output) {
			s.running[key] = append(s.running[key], e.Output)
		}
	case e.Action == "fail":
		s.print(s.running[key])
		delete(s.running, key)
	case e.Action == "skip":
		s.skips = append(s.skips, skipped{pkg: e.Package, test: e.Test, why: skipReason(s.running[key])})
		delete(s.running, key)
	case e.Action == "pass":
		delete(s.running, key)
	}
}

func (s *summary) print(lines []string) {
	for _, l := range lines {
		io.WriteString(s.w, l)
	}
}

// isProgressLine reports whether o is one of the lines -v adds to a test's
// output that plain go test does not print.
func isProgressLine(o string) bool {
	t := strings.TrimSpace(o)
	for _, p := range []string{"=== RUN", "=== PAUSE", "=== CONT", "=== NAME"} {
		if strings.HasPrefix(t, p) {
			return true
		}
	}
	return false
}

// skipReason is the "skipping: ..." text among a skipped test's output
// lines, else its last line that is not the --- SKIP line.
func skipReason(lines []string) string {
	why := ""
	for _, l := range lines {
		t := strings.TrimSpace(l)
		if i := strings.Index(t, "skipping: "); i >= 0 {
			return t[i+len("skipping: "):]
		}
		if t != "" && !strings.HasPrefix(t, "--- SKIP") {
			why = t
		}
	}
	return why
}

// printSkips writes, at the end, the tests skipped for a missing tool (each
// with the tool), then how many skipped for other reasons.
func (s *summary) printSkips() {
	var tool []skipped
	other := 0
	for _, k := range s.skips {
		if strings.Contains(k.why, missingTool) {
			tool = append(tool, k)
		} else {
			other++
		}
	}
	if len(tool) == 0 {
		fmt.Fprintf(s.w, "\nno test skipped for a missing tool (%d skipped for other reasons; go test -v shows them)\n", other)
		return
	}
	sort.Slice(tool, func(i, j int) bool {
		if tool[i].pkg != tool[j].pkg {
			return tool[i].pkg < tool[j].pkg
		}
		return tool[i].test < tool[j].test
	})
	fmt.Fprintf(s.w, "\n%d tests skipped for a missing tool (install it to run them; %d more skipped for other reasons):\n", len(tool), other)
	for _, k := range tool {
		fmt.Fprintf(s.w, "  %s %s: %s\n", k.pkg, k.test, k.why)
	}
}
