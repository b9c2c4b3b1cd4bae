package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// TODO(owner): replace this placeholder.
func newInstallHooksCmd() *cobra.Command {
	return &cobra.Command{
		Use:  "install-hooks",
		RunE: func(*cobra.Command, []string) error { return errors.New("install-hooks: not built yet") },
	}
}
