// Command secrets-agent delivers an environment's secrets as shell variables,
// files and docker registry logins, and keeps them current. Invoked as
// docker-credential-secrets-agent it is docker's credential helper.
package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
)

// helperName is the name docker runs the credential helper by.
const helperName = "docker-credential-secrets-agent"

func main() {
	args := os.Args[1:]
	if filepath.Base(os.Args[0]) == helperName {
		args = append([]string{"docker-credential"}, args...)
	}
	root := newRootCmd()
	root.SetArgs(args)
	if err := root.Execute(); err != nil {
		var ee *exitError
		if errors.As(err, &ee) {
			if msg := err.Error(); msg != "" {
				fmt.Fprintln(os.Stderr, "secrets-agent:", msg)
			}
			os.Exit(ee.code)
		}
		fmt.Fprintln(os.Stderr, "secrets-agent:", err)
		os.Exit(1)
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "secrets-agent",
		Short:         "Deliver an environment's secrets as env vars, files and docker logins, and keep them current",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(
		newRunCmd(),
		newStatusCmd(),
		newSyncCmd(),
		newWaitCmd(),
		newEnvCmd(),
		newVersionCmd(),
		newInstallHooksCmd(),
		newDockerCredentialCmd(),
		newGitCredentialCmd(),
		newExecCmd(),
		newPurgeCmd(),
	)
	return root
}
