// Command secrets-devserver is the reference control plane for local use,
// demos and tests.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "secrets-devserver: not built yet")
	os.Exit(1)
}
