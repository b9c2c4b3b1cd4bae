package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// TODO(owner): replace this placeholder.
func newWaitCmd() *cobra.Command {
	return &cobra.Command{
		Use:  "wait",
		RunE: func(*cobra.Command, []string) error { return errors.New("wait: not built yet") },
	}
}
