package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// TODO(owner): replace this placeholder.
func newDockerCredentialCmd() *cobra.Command {
	return &cobra.Command{
		Use:  "docker-credential",
		RunE: func(*cobra.Command, []string) error { return errors.New("docker-credential: not built yet") },
	}
}
