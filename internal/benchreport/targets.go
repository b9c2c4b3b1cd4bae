package main

import (
	"fmt"
	"regexp"
	"strconv"
)

// Target is a goal for one metric: the value must be Op Value ("<", "<=",
// ">" or ">=").
type Target struct {
	Op    string
	Value float64
}

// Met reports whether v meets t.
func (t Target) Met(v float64) bool {
	switch t.Op {
	case "<":
		return v < t.Value
	case "<=":
		return v <= t.Value
	case ">":
		return v > t.Value
	case ">=":
		return v >= t.Value
	}
	return false
}

func (t Target) String() string { return t.Op + " " + formatValue(t.Value) }

// targets are the goals the issues set, keyed by benchmark name and unit.
// A benchmark can also state its own with a log line "target: UNIT OP VALUE"
// (see targetNote), which wins over this map.
var targets = map[string]map[string]Target{
	"BenchmarkColdApply1000":     {"median-ms": {"<", 300}},
	"BenchmarkPropagationStream": {"p50-ms": {"<", 50}, "p99-ms": {"<", 250}},
	"BenchmarkIdle":              {"cpu-%": {"<", 0.1}, "rss-MB": {"<", 25}, "req/min": {"<=", 2}},
}

// descriptions say what the report's units mean, for any benchmark.
var descriptions = map[string]string{
	"median-ms":        "median wall time, ms",
	"min-ms":           "fastest, ms",
	"max-ms":           "slowest, ms",
	"p50-ms":           "median latency, ms",
	"p99-ms":           "99th percentile latency, ms",
	"cpu-%":            "CPU time (user+system) as a percentage of one core",
	"cpu-s":            "CPU seconds (user+system) over the window",
	"rss-MB":           "peak resident set size (VmHWM), MiB",
	"req/min":          "control-plane requests per minute (the long-lived stream excluded)",
	"updates":          "updates timed",
	"applies":          "cold applies timed",
	"spec-fetch-ms":    "one GetEnvironment alone, ms",
	"value-fetches-ms": "every GetSecretValue of a cold pass alone, one after another, ms",

	// BenchmarkProxyLatency
	"direct-p50-ms":        "median latency of a request straight to the server, ms",
	"proxied-p50-ms":       "median latency of the same request through the credential proxy, ms",
	"added-p50-ms":         "what the credential proxy adds to the median latency, ms",
	"added-p99-ms":         "what the credential proxy adds to the 99th percentile latency, ms",
	"added-newconn-p50-ms": "what the credential proxy adds to the median latency with a new connection per request, ms",
	"added-cpu-us/req":     "CPU the credential proxy adds per request, µs",
}

// benchmarkDescriptions introduce a benchmark's section; one without an
// entry gets none (its notes still show).
var benchmarkDescriptions = map[string]string{
	"BenchmarkColdApply1000": "Cold apply of 1,000 secrets (700 env, 250 files, 50 registries) from a devserver on loopback " +
		"to disk, by an in-process agent (`agent.New` + `Sync` with the real control-plane client and injectors) " +
		"into an emptied home, env dir and state dir. Issue 3.",
	"BenchmarkPropagationStream": "Propagation with the watch stream: from `UpdateSecretValue` returning to the new bytes " +
		"readable at the file path, real agent binary against a real devserver. Issue 4.",
	"BenchmarkPropagationPoll": "Propagation with polling only (watch off, poll_interval 1 s): the same measurement as " +
		"above; the latency is governed by the interval, about half of it on average. Issue 4.",
	"BenchmarkIdle": "The real agent with 100 secrets applied, idle for 60 s with the stream on and the default " +
		"poll_interval (30 s). Issue 4.",
}

var targetLine = regexp.MustCompile(`^target: (\S+) (<=|>=|<|>) (\S+)$`)

// targetNote parses a benchmark's "target: UNIT OP VALUE" log line; ok is
// false for any other line.
func targetNote(note string) (unit string, t Target, ok bool) {
	m := targetLine.FindStringSubmatch(note)
	if m == nil {
		return "", Target{}, false
	}
	v, err := strconv.ParseFloat(m[3], 64)
	if err != nil {
		return "", Target{}, false
	}
	return m[1], Target{Op: m[2], Value: v}, true
}

// targetsOf returns b's targets: the map's, overridden by b's target notes.
func targetsOf(b Benchmark) map[string]Target {
	out := map[string]Target{}
	for u, t := range targets[b.Name] {
		out[u] = t
	}
	for _, n := range b.Notes {
		if u, t, ok := targetNote(n); ok {
			out[u] = t
		}
	}
	return out
}

// formatValue prints v with three significant digits below 100 and as a
// whole number from 100 on, without exponent notation.
func formatValue(v float64) string {
	if v >= 100 || v <= -100 || v == float64(int64(v)) {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	s, _ := strconv.ParseFloat(fmt.Sprintf("%.3g", v), 64)
	return strconv.FormatFloat(s, 'f', -1, 64)
}
