package main

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func parseFile(t *testing.T, name string) Run {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestParseReadsResultsNotesOutcomesAndConfig(t *testing.T) {
	r := parseFile(t, "raw.txt")
	var names []string
	for _, b := range r.Benchmarks {
		names = append(names, b.Name+":"+b.Outcome)
	}
	want := []string{"BenchmarkColdApply1000:ok", "BenchmarkPropagationStream:ok", "BenchmarkFleet1000:FAIL", "BenchmarkCustom:ok"}
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("benchmarks %v, want %v", names, want)
	}
	cold := r.Benchmarks[0]
	if cold.Iterations != 10 || cold.Procs != 2 {
		t.Errorf("cold apply: %d iterations, procs %d; want 10 and 2", cold.Iterations, cold.Procs)
	}
	wantMetrics := []Metric{{10, "applies"}, {412.5, "median-ms"}, {21.52, "spec-fetch-ms"}}
	if !reflect.DeepEqual(cold.Metrics, wantMetrics) {
		t.Errorf("metrics %v, want %v", cold.Metrics, wantMetrics)
	}
	if !reflect.DeepEqual(cold.Notes, []string{"note: 1000 secrets, seeded in 5s", "note: 1000 secrets, seeded in 5s"}) {
		t.Errorf("notes %q", cold.Notes)
	}
	stream := r.Benchmarks[1]
	if len(stream.Notes) != 2 || stream.Notes[1] != "reconnects per second:\n0s  ####\n1s  ##" {
		t.Errorf("a multi-line log is one note: %q", stream.Notes)
	}
	// A repeated key keeps its first position and takes the last value.
	for key, want := range map[string]string{"date": "2026-01-02T03:04:05Z", "cpu": "Intel(R) Xeon(R) Processor", "loadavg-end": "1.50 1.40 1.30 2/100 43"} {
		if got := r.Get(key); got != want {
			t.Errorf("config %s = %q, want %q", key, got, want)
		}
	}
	if r.Get("nope") != "" {
		t.Error("an absent key has a value")
	}
}

func TestParseRejectsAResultWithAnUnpairedMetric(t *testing.T) {
	_, err := Parse(strings.NewReader("BenchmarkX-2 1 12.0 ms 3\n"))
	if err == nil {
		t.Fatal("no error for an odd value/unit list")
	}
}

func TestRenderShowsEveryMetricTargetsAndNotes(t *testing.T) {
	var buf bytes.Buffer
	if err := Render(&buf, parseFile(t, "raw.txt"), ""); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"| git commit | 0123abc |",
		"| load average at end (1, 5, 15 min) | 1.50 1.40 1.30 2/100 43 |",
		"| ColdApply1000 | median-ms | 412 | < 300 | **no** |", // a missed target says so
		"| PropagationStream | p50-ms | 13.7 | < 50 | yes |",
		"| PropagationStream | p99-ms | 78.7 | < 250 | yes |",
		"| Fleet1000 | — | FAIL | | |",
		"| Custom | errors | 7 | <= 0 | **no** |", // a target from the benchmark's own log line
		"| widgets/s | 0.0123 |  |  |  |",         // a metric nobody described still shows
		"| spec-fetch-ms | 21.5 |  |  | one GetEnvironment alone, ms |",
		"- 1000 secrets, seeded in 5s",
		"```\nreconnects per second:\n0s  ####\n1s  ##\n```",
		"## BenchmarkFleet1000",
		"**FAIL** — no figures from this run.",
		"- fleet could not start",
		"## How to reproduce",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "- 1000 secrets, seeded in 5s"); n != 1 {
		t.Errorf("a note logged by both runs of a benchmark shows %d times, want once", n)
	}
	if strings.Contains(out, "target: errors") {
		t.Error("a target line is shown as a note")
	}
}

func TestFormatValue(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 7: "7", 412.5: "412", 13.68: "13.7", 0.01234: "0.0123", 1.0 / 3: "0.333", 12875: "12875"} {
		if got := formatValue(v); got != want {
			t.Errorf("formatValue(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestTargetComparisons(t *testing.T) {
	for _, c := range []struct {
		t    Target
		v    float64
		want bool
	}{{Target{"<", 1}, 1, false}, {Target{"<=", 1}, 1, true}, {Target{">", 1}, 2, true}, {Target{">=", 1}, 0, false}, {Target{"?", 1}, 0, false}} {
		if got := c.t.Met(c.v); got != c.want {
			t.Errorf("%v met by %v = %v, want %v", c.t, c.v, got, c.want)
		}
	}
}

func TestRunFailsWithoutBenchmarks(t *testing.T) {
	in := filepath.Join(t.TempDir(), "raw.txt")
	if err := os.WriteFile(in, []byte("goos: linux\nFAIL\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := run([]string{"-in", in, "-out", filepath.Join(t.TempDir(), "out.md")}); err == nil {
		t.Fatal("no error for a run without benchmarks")
	}
}

func TestALaterPartialRunReplacesOnlyWhatItMeasured(t *testing.T) {
	raw := `date: 2026-01-01T00:00:00Z
commit: aaa
BenchmarkA-2   	1	  10.0 p50-ms
--- BENCH: BenchmarkA-2
    bench_test.go:1: note: first run
BenchmarkB-2   	1	  20.0 p50-ms
date: 2026-01-02T00:00:00Z
commit: bbb
BenchmarkA-2   	1	  5.0 p50-ms
--- BENCH: BenchmarkA-2
    bench_test.go:1: note: second run
`
	r, err := Parse(strings.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Benchmarks) != 2 {
		t.Fatalf("%d benchmarks, want 2", len(r.Benchmarks))
	}
	a, b := r.Benchmarks[0], r.Benchmarks[1]
	if a.Metrics[0].Value != 5 || a.Commit != "bbb" || !reflect.DeepEqual(a.Notes, []string{"note: second run"}) {
		t.Errorf("A re-measured: %+v", a)
	}
	if b.Metrics[0].Value != 20 || b.Commit != "aaa" {
		t.Errorf("B kept from the first run: %+v", b)
	}
	var out strings.Builder
	if err := Render(&out, r, "## Profile\n\nwhere the time goes\n"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Measured in the run of 2026-01-02T00:00:00Z (commit bbb)", "Measured in the run of 2026-01-01T00:00:00Z (commit aaa)", "## Profile\n\nwhere the time goes\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q", want)
		}
	}
}

func TestABenchmarkThatBecameSubBenchmarksIsDropped(t *testing.T) {
	raw := `date: 2026-01-01T00:00:00Z
BenchmarkA-2   	1	  10.0 p50-ms
BenchmarkAB-2   	1	  10.0 p50-ms
date: 2026-01-02T00:00:00Z
BenchmarkA/n=1-2   	1	  5.0 p50-ms
BenchmarkA/n=2-2   	1	  6.0 p50-ms
`
	r, err := Parse(strings.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, b := range r.Benchmarks {
		names = append(names, b.Name)
	}
	if want := []string{"BenchmarkAB", "BenchmarkA/n=1", "BenchmarkA/n=2"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("benchmarks %v, want %v", names, want)
	}
}
