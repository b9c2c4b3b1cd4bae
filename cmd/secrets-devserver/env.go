package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

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
	var dir, org, project, user, writeConfig string
	cmd := &cobra.Command{
		Use:   "create --data DIR --org O [--project P] --user U [--write-config DIR]",
		Short: "Create an environment and print its id and token as JSON",
		Long: `create makes an environment of organization O, project P and user U: it sees
the secrets those three own. It prints {"environmentId": "...", "token": "..."};
the token is what the environment's agent reads from its token file.

--write-config DIR also writes DIR/config.yaml (this server's URL, the
environment id, token_file DIR/token, and state_dir, socket and the env
fragment dir under DIR) and DIR/token, both 0600, so that
'secrets-agent run --config DIR/config.yaml' needs nothing else.`,
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
			if err := json.NewEncoder(os.Stdout).Encode(resp); err != nil {
				return err
			}
			if writeConfig == "" {
				return nil
			}
			path, err := writeAgentConfig(writeConfig, strings.TrimSuffix(c.BaseURL, "/")+"/api", resp.EnvironmentID, resp.Token)
			if err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "wrote %s and its token file (0600); start the agent with:\n  secrets-agent run --config %s\n", path, path)
			return nil
		},
	}
	addDataFlag(cmd, &dir)
	cmd.Flags().StringVar(&org, "org", "", "organization id (required)")
	cmd.Flags().StringVar(&project, "project", "", "project id")
	cmd.Flags().StringVar(&user, "user", "", "user id (required)")
	cmd.Flags().StringVar(&writeConfig, "write-config", "", "also write an agent config and the token into `DIR` (0600)")
	_ = cmd.MarkFlagRequired("org")
	_ = cmd.MarkFlagRequired("user")
	return cmd
}
