package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// TODO(owner): replace this placeholder.
func newSyncCmd() *cobra.Command {
	return &cobra.Command{
		Use:  "sync",
		RunE: func(*cobra.Command, []string) error { return errors.New("sync: not built yet") },
	}
}
