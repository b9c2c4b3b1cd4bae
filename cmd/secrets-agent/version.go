package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// TODO(owner): replace this placeholder.
func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:  "version",
		RunE: func(*cobra.Command, []string) error { return errors.New("version: not built yet") },
	}
}
