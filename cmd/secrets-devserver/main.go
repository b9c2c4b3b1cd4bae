// Command secrets-devserver is the reference control plane for local use,
// demos and tests: `serve` runs it on a data directory, and the other
// subcommands manage environments and secrets in the running server, finding
// it through the address and admin-token files in that directory.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	if err := newRootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "secrets-devserver:", err)
		os.Exit(1)
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "secrets-devserver",
		Short: "Reference control plane: organization, project and user secrets for environments",
		Long: `secrets-devserver is a small control plane speaking the part of Ona's API an
environment uses (GetEnvironment, GetSecretValue, WatchEvents), plus admin calls
to create environments and secrets. Start it with 'serve --data DIR'; every
other subcommand needs only '--data DIR' to reach the running server.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.AddCommand(newServeCmd(), newEnvCmd(), newSecretCmd())
	return root
}

// addDataFlag adds the required --data flag to cmd.
func addDataFlag(cmd *cobra.Command, dir *string) {
	cmd.Flags().StringVar(dir, "data", "", "the server's data directory (required)")
	_ = cmd.MarkFlagRequired("data")
}
