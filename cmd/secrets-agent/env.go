package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// TODO(owner): replace this placeholder.
func newEnvCmd() *cobra.Command {
	return &cobra.Command{
		Use:  "env",
		RunE: func(*cobra.Command, []string) error { return errors.New("env: not built yet") },
	}
}
