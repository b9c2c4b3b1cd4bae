package main

import (
	"github.com/spf13/cobra"

	"github.com/secrets-agent/secrets-agent/controlplane/devserver"
)

func newSecretUpdateCmd() *cobra.Command {
	var (
		dir, id string
		val     valueFlags
	)
	cmd := &cobra.Command{
		Use:   "update --data DIR --id ID (--value V | --value-stdin)",
		Short: "Replace a secret's value",
		Long: `update replaces the value of secret ID. When the value differs from the stored
one the secret's session changes and every environment that sees it gets a
watch event; the same value changes nothing. --value-stdin is byte-exact: a
trailing newline is part of the value.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			value, err := val.read(stdin)
			if err != nil {
				return err
			}
			c, err := devserver.DialDir(dir)
			if err != nil {
				return err
			}
			_, err = c.UpdateSecretValue(cmd.Context(), id, value)
			return err
		},
	}
	addDataFlag(cmd, &dir)
	cmd.Flags().StringVar(&id, "id", "", "the secret's id (required)")
	_ = cmd.MarkFlagRequired("id")
	val.add(cmd)
	cmd.MarkFlagsOneRequired("value", "value-stdin")
	return cmd
}
