package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
)

func newEnvCmd() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "env",
		Short: "Print the environment-variable secrets as a shell fragment",
		Long: `Print the current environment-variable secrets as a fragment to source or
load: sh (POSIX sh, bash, zsh), fish, or dotenv. For example:

  eval "$(secrets-agent env)"
  secrets-agent env --format fish | source

This prints secret values: the agent answers only root and the environment's
user. Exit code 2 when the agent could not be reached (or refused this user).`,
		Args: cobra.NoArgs,
	}
	sock := addSocketFlags(cmd)
	cmd.Flags().StringVar(&format, "format", "sh", "sh, fish or dotenv")
	_ = cmd.RegisterFlagCompletionFunc("format", cobra.FixedCompletions([]string{"sh", "fish", "dotenv"}, cobra.ShellCompDirectiveNoFileComp))
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		switch format {
		case "sh", "fish", "dotenv":
		default:
			return fmt.Errorf("--format %q: want sh, fish or dotenv", format)
		}
		c, err := sock.client()
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), clientTimeout)
		defer cancel()
		frag, err := c.Env(ctx, format)
		if err != nil {
			return sock.clientExit(c, err)
		}
		_, err = cmd.OutOrStdout().Write(frag)
		return err
	}
	return cmd
}
