// Command testsummary runs `go test -json` with the arguments it is given,
// prints what plain `go test` prints (each package's closing ok/FAIL line,
// and the output of every test that failed), and ends with the list of tests
// that skipped because a tool they drive is missing — which plain `go test`
// shows only with -v. It exits with go test's exit code.
//
//	go run ./internal/testsummary -race -count=1 ./...
//
// `make test` runs the suite through it.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
)

func main() {
	code, err := run(os.Args[1:], os.Stdout, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testsummary:", err)
	}
	os.Exit(code)
}

// run runs go test -json args, writes the summary to stdout and returns go
// test's exit code (1 with an error when go test could not be run at all).
func run(args []string, stdout, stderr io.Writer) (int, error) {
	gobin := os.Getenv("GO")
	if gobin == "" {
		gobin = "go"
	}
	cmd := exec.Command(gobin, append([]string{"test", "-json"}, args...)...)
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 1, err
	}
	if err := cmd.Start(); err != nil {
		return 1, fmt.Errorf("start %s test: %w", gobin, err)
	}
	s := newSummary(stdout)
	readErr := s.read(out)
	werr := cmd.Wait()
	s.printSkips()
	var ee *exec.ExitError
	switch {
	case errors.As(werr, &ee):
		return ee.ExitCode(), nil
	case werr != nil:
		return 1, werr
	case readErr != nil:
		return 1, fmt.Errorf("read go test -json: %w", readErr)
	}
	return 0, nil
}
