package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/secrets-agent/secrets-agent/injectors/envprofile"
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
	var names []string
	for _, f := range envprofile.Formats {
		names = append(names, string(f))
	}
	cmd.Flags().StringVar(&format, "format", string(envprofile.FormatSh), strings.Join(names, ", "))
	_ = cmd.RegisterFlagCompletionFunc("format", cobra.FixedCompletions(names, cobra.ShellCompDirectiveNoFileComp))
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if _, err := envprofile.ParseFormat(format); err != nil {
			return fmt.Errorf("--format: %w", err)
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
