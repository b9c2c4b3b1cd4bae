// Command benchreport turns the output of `go test -bench` (with the
// key: value lines scripts/bench.sh adds: date, commit, machine, load) into
// the markdown report docs/BENCHMARKS.md. Any benchmark gets a generic table
// of the metrics it reported with b.ReportMetric; targets.go holds the
// optional targets and descriptions per metric.
//
//	go run ./internal/benchreport -in docs/bench-raw.txt -out docs/BENCHMARKS.md
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
}

// run parses the raw output named by -in and writes the report to -out
// (standard output when -out is empty). It fails when -in holds no
// benchmark at all, which means the run did not get as far as benchmarking.
func run(args []string) error {
	fs := flag.NewFlagSet("benchreport", flag.ContinueOnError)
	in := fs.String("in", "docs/bench-raw.txt", "raw `go test -bench` output")
	out := fs.String("out", "", "where to write the markdown report (default standard output)")
	profileFile := fs.String("profile", "", "hand-written markdown (where the time goes) to include; none when empty or missing")
	if err := fs.Parse(args); err != nil {
		return err
	}
	f, err := os.Open(*in)
	if err != nil {
		return err
	}
	defer f.Close()
	r, err := Parse(f)
	if err != nil {
		return fmt.Errorf("%s: %w", *in, err)
	}
	if len(r.Benchmarks) == 0 {
		return errors.New(*in + ": no benchmark results")
	}
	var profile []byte
	if *profileFile != "" {
		if profile, err = os.ReadFile(*profileFile); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	var buf bytes.Buffer
	if err := Render(&buf, r, string(profile)); err != nil {
		return err
	}
	if *out == "" {
		_, err = os.Stdout.Write(buf.Bytes())
		return err
	}
	if err := os.WriteFile(*out, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}
