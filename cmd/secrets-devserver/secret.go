package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
)

func newSecretCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "secret",
		Short: "Manage secrets in the running server",
	}
	cmd.AddCommand(newSecretCreateCmd(), newSecretUpdateCmd(), newSecretDeleteCmd(), newSecretListCmd())
	return cmd
}

// maxStdinValue bounds what --value-stdin reads: the server refuses values
// over 1 MiB anyway, and says so.
const maxStdinValue = 4 << 20

// valueFlags are --value and --value-stdin.
type valueFlags struct {
	value string
	stdin bool
}

func (v *valueFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&v.value, "value", "", "the value (visible to other users in the process list: prefer --value-stdin)")
	cmd.Flags().BoolVar(&v.stdin, "value-stdin", false, "read the value from stdin, byte for byte (a trailing newline is kept)")
	cmd.MarkFlagsMutuallyExclusive("value", "value-stdin")
}

// read returns the value: stdin's bytes exactly, or --value's.
func (v *valueFlags) read(stdin io.Reader) ([]byte, error) {
	if !v.stdin {
		return []byte(v.value), nil
	}
	b, err := io.ReadAll(io.LimitReader(stdin, maxStdinValue+1))
	if err != nil {
		return nil, fmt.Errorf("read value from stdin: %w", err)
	}
	if len(b) > maxStdinValue {
		return nil, errors.New("value on stdin is over 4 MiB")
	}
	return b, nil
}

// stdin is where --value-stdin reads; a variable so that nothing else in the
// command touches os.Stdin.
var stdin io.Reader = os.Stdin
