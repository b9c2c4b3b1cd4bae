package main

import (
	"github.com/spf13/cobra"

	"github.com/secrets-agent/secrets-agent/controlplane/devserver"
)

func newSecretDeleteCmd() *cobra.Command {
	var dir, id string
	cmd := &cobra.Command{
		Use:   "delete --data DIR --id ID",
		Short: "Delete a secret",
		Long:  `delete removes secret ID; every environment that saw it gets a watch event.`,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := devserver.DialDir(dir)
			if err != nil {
				return err
			}
			return c.DeleteSecret(cmd.Context(), id)
		},
	}
	addDataFlag(cmd, &dir)
	cmd.Flags().StringVar(&id, "id", "", "the secret's id (required)")
	_ = cmd.MarkFlagRequired("id")
	return cmd
}
