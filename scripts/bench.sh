#!/usr/bin/env bash
# bench.sh — run the benchmarks and write docs/bench-raw.txt and docs/BENCHMARKS.md.
# `make bench` runs it after `make build`.
#
# How benchmarks work here (add yours without touching this script or the report):
#
#   * A benchmark is a `func BenchmarkXxx(b *testing.B)` in test/ (package test).
#     It runs the real binaries or in-process agents, measures, and reports each
#     figure with b.ReportMetric(value, "unit"); units name what they are:
#     p50-ms, p99-ms, max-ms, median-ms, cpu-%, rss-MB, req/min, ... Call
#     b.ReportMetric(0, "ns/op") to drop Go's per-op time when it means nothing.
#   * It never fails on a number: no timed assertions. It fails (b.Fatal) only
#     when it could not measure (the agent exited, a value never arrived).
#   * Context for the reader goes in log lines: b.Logf("note: ...") is printed
#     under the benchmark's table (multi-line logs as a block). A target can be
#     stated the same way, b.Logf("target: p99-ms < 250"), or added to the map in
#     internal/benchreport/targets.go, beside the units' descriptions.
#   * Every benchmark found by `go test -list` runs in its own `go test`, once
#     (-benchtime 1x) unless benchtime_of below says otherwise.
#
# Environment:
#   BENCH=<regexp>      run only the benchmarks matching it (default: all); the
#                       run is appended to docs/bench-raw.txt, so the report
#                       keeps the others' last figures and says which run
#                       measured each
#   BENCHTIME=<n>x|<d>  one -benchtime for every benchmark (overrides the table)
#   TAGS=<tags>         build tags; default "live" when run as root, which adds
#                       the live benchmarks (a dockerd and registry they start
#                       themselves; they skip, naming it, when a tool is missing)
#
# Output: docs/bench-raw.txt holds the raw `go test -bench` output, preceded and
# followed by key: value lines (date, commit, machine, load) in Go's benchmark
# format, so benchstat reads it too; docs/BENCHMARKS.md is generated from it by
# `go run ./internal/benchreport`, with docs/bench-profile.md (hand-written:
# where the time goes, from profiles) as its Profile section. Exits non-zero
# when a benchmark failed (the report is written anyway and says which).
set -euo pipefail

cd "$(dirname "$0")/.."

# benchtime_of prints the -benchtime of a benchmark.
benchtime_of() {
	if [[ -n "${BENCHTIME:-}" ]]; then
		echo "$BENCHTIME"
		return
	fi
	case "$1" in
	BenchmarkColdApply1000) echo 5x ;; # the median of five cold applies
	BenchmarkLiveRegistryRotation) echo 50x ;; # 50 rotations per mode: a p99 worth the name
	*) echo 1x ;;
	esac
}

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

raw=docs/bench-raw.txt
if [[ -z "${TAGS+set}" ]]; then
	TAGS=$([[ $(id -u) == 0 ]] && echo live || true)
fi
mkdir -p docs
mapfile -t benches < <(go test -tags "$TAGS" ./test/ -list "${BENCH:-.}" | grep '^Benchmark' || true)
if [[ ${#benches[@]} -eq 0 ]]; then
	echo "bench.sh: no benchmark in ./test/ matches '${BENCH:-.}'" >&2
	exit 1
fi

times=()
for b in "${benches[@]}"; do
	times+=("$b $(benchtime_of "$b")")
done

if [[ -n "${BENCH:-}" && -s "$raw" ]]; then
	all=$(mktemp)
	trap 'rm -f "$all"' EXIT
	cp "$raw" "$all" # a partial run: keep the others' figures
fi
{
	echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "commit: $(git describe --always --dirty --abbrev=12 2>/dev/null || echo unknown)"
	echo "cpu: $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
	echo "cores: $(nproc)"
	echo "memory: $(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
	echo "kernel: $(uname -sr)"
	echo "go: $(go env GOVERSION)"
	echo "benchtime: $(IFS=,; echo "${times[*]}" | sed 's/,/, /g')"
	echo "loadavg-start: $(loadavg)"
} >"$raw"

failed=()
for b in "${benches[@]}"; do
	bt=$(benchtime_of "$b")
	echo "== $b (-benchtime $bt)" >&2
	if ! go test -tags "$TAGS" ./test/ -run '^$' -bench "^${b}\$" -benchtime "$bt" -timeout 60m 2>&1 | tee -a "$raw"; then
		failed+=("$b")
	fi
done
echo "loadavg-end: $(loadavg)" >>"$raw"
if [[ -n "${all:-}" ]]; then
	cat "$raw" >>"$all"
	cp "$all" "$raw"
fi

go run ./internal/benchreport -in "$raw" -out docs/BENCHMARKS.md -profile docs/bench-profile.md
echo "bench.sh: wrote $raw and docs/BENCHMARKS.md" >&2
if [[ ${#failed[@]} -gt 0 ]]; then
	echo "bench.sh: failed: ${failed[*]}" >&2
	exit 1
fi
