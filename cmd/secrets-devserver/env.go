package main

import (
	"encoding/json"
	"os"

	"github.com/spf13/cobra"

	"github.com/secrets-agent/secrets-agent/controlplane/devserver"
)

func newEnvCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "env",
		Short: "Manage environments in the running server",
	}
	cmd.AddCommand(newEnvCreateCmd())
	return cmd
}

func newEnvCreateCmd() *cobra.Command {
	var dir, org, project, user string
	cmd := &cobra.Command{
		Use:   "create --data DIR --org O [--project P] --user U",
		Short: "Create an environment and print its id and token as JSON",
		Long: `create makes an environment of organization O, project P and user U: it sees
the secrets those three own. It prints {"environmentId": "...", "token": "..."};
the token is what the environment's agent reads from its token file.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := devserver.DialDir(dir)
			if err != nil {
				return err
			}
			resp, err := c.CreateEnvironment(cmd.Context(), org, project, user)
			if err != nil {
				return err
			}
			enc := json.NewEncoder(os.Stdout)
			return enc.Encode(resp)
		},
	}
	addDataFlag(cmd, &dir)
	cmd.Flags().StringVar(&org, "org", "", "organization id (required)")
	cmd.Flags().StringVar(&project, "project", "", "project id")
	cmd.Flags().StringVar(&user, "user", "", "user id (required)")
	_ = cmd.MarkFlagRequired("org")
	_ = cmd.MarkFlagRequired("user")
	return cmd
}
