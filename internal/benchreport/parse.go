package main

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Run is one `make bench` run: the key: value configuration lines (Go's
// benchmark format, extended by scripts/bench.sh with date, commit, machine
// and load) and every benchmark's result, in the order they appeared.
type Run struct {
	Config     []KV
	Benchmarks []Benchmark
}

// KV is one configuration line.
type KV struct{ Key, Value string }

// Get returns the value of key, "" when the run has none.
func (r Run) Get(key string) string {
	for _, kv := range r.Config {
		if kv.Key == key {
			return kv.Value
		}
	}
	return ""
}

// Benchmark is one benchmark's result.
type Benchmark struct {
	Name       string // without the -GOMAXPROCS suffix, e.g. BenchmarkIdle
	Procs      int    // GOMAXPROCS it ran with; 0 when not printed
	Iterations int
	Metrics    []Metric
	Outcome    string   // "ok", "FAIL" or "SKIP"
	Notes      []string // the benchmark's log lines, file:line prefix removed
	// Date and Commit are the configuration of the run that measured it
	// (a file may hold several runs: scripts/bench.sh appends a partial
	// one).
	Date, Commit string
}

// Metric is one "value unit" pair of a result line.
type Metric struct {
	Value float64
	Unit  string
}

var (
	configLine = regexp.MustCompile(`^([a-z][A-Za-z0-9_-]*): (.*)$`)
	procsSufx  = regexp.MustCompile(`^(.*)-(\d+)$`)
	logLine    = regexp.MustCompile(`^    [^ ]+\.go:\d+: (.*)$`)
	headerLine = regexp.MustCompile(`^--- (BENCH|FAIL|SKIP): (Benchmark\S*)`)
)

// Parse reads the output of one or more `go test -bench` runs.
//
// The steps, line by line:
//
//	(1) "key: value" lines are configuration; a later line for a key
//	    replaces the earlier value but keeps its position (several go test
//	    runs print goos, pkg and cpu each).
//	(2) A line starting with "Benchmark" that has an iteration count and
//	    "value unit" pairs is a result, of the run whose date and commit
//	    were read last; one of a later run replaces the earlier whole. A
//	    name alone (a benchmark that failed or was skipped before
//	    reporting) starts an entry with no metrics.
//	(3) "--- BENCH:", "--- FAIL:" or "--- SKIP:" names the benchmark the
//	    indented log lines below it belong to, and sets its outcome.
//	(4) An indented "file.go:N: text" line is a note of that benchmark; a
//	    more deeply indented line continues the note before it.
//
// Everything else (PASS, ok, FAIL, build output) is ignored. A benchmark's
// outcome stays "ok" unless a FAIL or SKIP header names it.
func Parse(r io.Reader) (Run, error) {
	var run Run
	index := map[string]int{} // config key -> position in run.Config
	current := -1             // the benchmark notes are attached to
	find := func(name string) int {
		for i := len(run.Benchmarks) - 1; i >= 0; i-- {
			if run.Benchmarks[i].Name == name {
				return i
			}
		}
		run.Benchmarks = append(run.Benchmarks, Benchmark{Name: name, Outcome: "ok"})
		return len(run.Benchmarks) - 1
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), " \t\r")
		switch {
		case configLine.MatchString(line): // (1)
			m := configLine.FindStringSubmatch(line)
			if i, ok := index[m[1]]; ok {
				run.Config[i].Value = m[2]
			} else {
				index[m[1]] = len(run.Config)
				run.Config = append(run.Config, KV{m[1], m[2]})
			}
			current = -1
		case strings.HasPrefix(line, "Benchmark"): // (2)
			b, err := parseResult(line)
			if err != nil {
				return Run{}, err
			}
			i := find(b.Name)
			b.Date, b.Commit = run.Get("date"), run.Get("commit")
			if prev := run.Benchmarks[i]; prev.Date != b.Date && prev.Iterations > 0 {
				// A later run measured it again: its notes and outcome
				// are those of that run.
				run.Benchmarks[i] = Benchmark{Name: b.Name, Outcome: "ok", Date: b.Date, Commit: b.Commit}
			}
			if b.Iterations > 0 || run.Benchmarks[i].Iterations == 0 {
				b.Outcome, b.Notes = run.Benchmarks[i].Outcome, run.Benchmarks[i].Notes
				run.Benchmarks[i] = b
			}
			current = -1
		case headerLine.MatchString(line): // (3)
			m := headerLine.FindStringSubmatch(line)
			name, _ := splitProcs(m[2])
			current = find(name)
			if m[1] != "BENCH" {
				run.Benchmarks[current].Outcome = m[1]
			}
		case current >= 0 && logLine.MatchString(line): // (4)
			b := &run.Benchmarks[current]
			b.Notes = append(b.Notes, logLine.FindStringSubmatch(line)[1])
		case current >= 0 && strings.HasPrefix(line, "        ") && len(run.Benchmarks[current].Notes) > 0:
			b := &run.Benchmarks[current]
			b.Notes[len(b.Notes)-1] += "\n" + strings.TrimPrefix(line, "        ")
		default:
			current = -1
		}
	}
	if err := sc.Err(); err != nil {
		return Run{}, fmt.Errorf("read benchmark output: %w", err)
	}
	// A benchmark that a later run measured as sub-benchmarks (A became
	// A/n=1, A/n=2) no longer runs as it was: its figures are dropped.
	run.Benchmarks = slices.DeleteFunc(run.Benchmarks, func(b Benchmark) bool {
		return slices.ContainsFunc(run.Benchmarks, func(o Benchmark) bool {
			return strings.HasPrefix(o.Name, b.Name+"/") && o.Date > b.Date
		})
	})
	return run, nil
}

// parseResult parses "BenchmarkName-2  N  v1 unit1  v2 unit2 ...", or a
// name alone.
func parseResult(line string) (Benchmark, error) {
	f := strings.Fields(line)
	b := Benchmark{Outcome: "ok"}
	b.Name, b.Procs = splitProcs(f[0])
	if len(f) == 1 {
		return b, nil
	}
	n, err := strconv.Atoi(f[1])
	if err != nil {
		// Not a result line (e.g. a benchmark's name followed by its own
		// output): keep the name only.
		return b, nil
	}
	b.Iterations = n
	rest := f[2:]
	if len(rest)%2 != 0 {
		return Benchmark{}, fmt.Errorf("benchmark line %q: metrics are not value-unit pairs", line)
	}
	for i := 0; i < len(rest); i += 2 {
		v, err := strconv.ParseFloat(rest[i], 64)
		if err != nil {
			return Benchmark{}, fmt.Errorf("benchmark line %q: value %q: %w", line, rest[i], err)
		}
		b.Metrics = append(b.Metrics, Metric{Value: v, Unit: rest[i+1]})
	}
	return b, nil
}

// splitProcs splits "BenchmarkX-2" into "BenchmarkX" and 2; a name without
// the suffix comes back whole with 0.
func splitProcs(s string) (string, int) {
	if m := procsSufx.FindStringSubmatch(s); m != nil {
		n, _ := strconv.Atoi(m[2])
		return m[1], n
	}
	return s, 0
}
