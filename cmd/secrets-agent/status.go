package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// TODO(owner): replace this placeholder.
func newStatusCmd() *cobra.Command {
	return &cobra.Command{
		Use:  "status",
		RunE: func(*cobra.Command, []string) error { return errors.New("status: not built yet") },
	}
}
