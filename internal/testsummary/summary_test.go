package main

import (
	"bytes"
	"strings"
	"testing"
)

// A trimmed `go test -json` run: one package passes with a test skipped for
// a missing tool and one for another reason, one package fails.
const stream = `{"Action":"start","Package":"ex/a"}
{"Action":"run","Package":"ex/a","Test":"TestShell"}
{"Action":"output","Package":"ex/a","Test":"TestShell","Output":"=== RUN   TestShell\n"}
{"Action":"output","Package":"ex/a","Test":"TestShell","Output":"    tools.go:24: skipping: fish is not installed (CI installs it)\n"}
{"Action":"output","Package":"ex/a","Test":"TestShell","Output":"--- SKIP: TestShell (0.00s)\n"}
{"Action":"skip","Package":"ex/a","Test":"TestShell"}
{"Action":"run","Package":"ex/a","Test":"TestRoot"}
{"Action":"output","Package":"ex/a","Test":"TestRoot","Output":"    tools.go:35: skipping: needs root to chown\n"}
{"Action":"skip","Package":"ex/a","Test":"TestRoot"}
{"Action":"run","Package":"ex/a","Test":"TestFine"}
{"Action":"output","Package":"ex/a","Test":"TestFine","Output":"--- PASS: TestFine (0.00s)\n"}
{"Action":"pass","Package":"ex/a","Test":"TestFine"}
{"Action":"output","Package":"ex/a","Output":"PASS\n"}
{"Action":"output","Package":"ex/a","Output":"ok  \tex/a\t0.010s\n"}
{"Action":"pass","Package":"ex/a"}
{"Action":"run","Package":"ex/b","Test":"TestBroken"}
{"Action":"output","Package":"ex/b","Test":"TestBroken","Output":"=== RUN   TestBroken\n"}
{"Action":"output","Package":"ex/b","Test":"TestBroken","Output":"    b_test.go:9: want 1, got 2\n"}
{"Action":"output","Package":"ex/b","Test":"TestBroken","Output":"--- FAIL: TestBroken (0.00s)\n"}
{"Action":"fail","Package":"ex/b","Test":"TestBroken"}
{"Action":"output","Package":"ex/b","Output":"FAIL\n"}
{"Action":"output","Package":"ex/b","Output":"FAIL\tex/b\t0.020s\n"}
{"Action":"fail","Package":"ex/b"}
`

func TestSummaryKeepsClosingLinesAndFailuresAndListsMissingTools(t *testing.T) {
	var out bytes.Buffer
	s := newSummary(&out)
	if err := s.read(strings.NewReader(stream)); err != nil {
		t.Fatal(err)
	}
	s.printSkips()
	got := out.String()
	for _, want := range []string{
		"ok  \tex/a\t0.010s\n",
		"    b_test.go:9: want 1, got 2\n--- FAIL: TestBroken (0.00s)\n",
		"FAIL\tex/b\t0.020s\n",
		"1 tests skipped for a missing tool (install it to run them; 1 more skipped for other reasons):\n  ex/a TestShell: fish is not installed (CI installs it)\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("summary lacks %q:\n%s", want, got)
		}
	}
	for _, unwanted := range []string{"=== RUN", "--- PASS", "TestRoot", "PASS\n\n"} {
		if strings.Contains(got, unwanted) {
			t.Errorf("summary holds %q, which plain go test does not print:\n%s", unwanted, got)
		}
	}
}

func TestSummarySaysWhenNoToolWasMissing(t *testing.T) {
	var out bytes.Buffer
	s := newSummary(&out)
	s.printSkips()
	if !strings.Contains(out.String(), "no test skipped for a missing tool") {
		t.Errorf("got %q", out.String())
	}
}
