package main

import (
	"context"
	"errors"
	"time"

	"github.com/spf13/cobra"

	"github.com/secrets-agent/secrets-agent/control"
)

// waitRetry is how often wait tries again while no agent answers yet.
const waitRetry = 200 * time.Millisecond

func newWaitCmd() *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "wait",
		Short: "Block until the agent has applied its first pass",
		Long: `Block until the running agent has applied its first pass, so that a task that
needs secrets can start after it (for example in a container entrypoint:
"secrets-agent run & secrets-agent wait && exec my-task"). An agent that is
still starting up, with no socket yet, is waited for within the same timeout.

Exit codes: 0 the first pass has been applied; 1 the timeout passed first;
2 no agent answered within the timeout (or it refused this user).`,
		Args: cobra.NoArgs,
	}
	sock := addSocketFlags(cmd)
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "how long to wait")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		c, err := sock.client()
		if err != nil {
			return err
		}
		return waitApplied(cmd.Context(), sock, c, timeout)
	}
	return cmd
}

// waitApplied asks c (found by sock) to wait for the first pass, retrying while no agent
// answers, until timeout. It returns nil once applied, else an exit error:
// exitNotReady on a timeout, exitUnreachable when no agent ever answered.
func waitApplied(ctx context.Context, sock *socketFlags, c *control.Client, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	ctx, cancel := context.WithDeadline(ctx, deadline.Add(clientTimeout))
	defer cancel()
	for {
		left := time.Until(deadline)
		if left < 0 {
			left = 0
		}
		err := c.Wait(ctx, left)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, control.ErrWaitTimeout):
			return exitWith(exitNotReady, "timed out after "+timeout.String()+" waiting for the first pass")
		case !errors.Is(err, control.ErrUnreachable):
			return sock.clientExit(c, err)
		case !time.Now().Before(deadline):
			return sock.clientExit(c, err)
		}
		t := time.NewTimer(min(waitRetry, time.Until(deadline)))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return sock.clientExit(c, err)
		}
	}
}
