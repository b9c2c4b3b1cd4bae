package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/secrets-agent/secrets-agent/control"
)

func newSyncCmd() *cobra.Command {
	var (
		asJSON  bool
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "sync",
		Short: "Run a pass now and print its outcome",
		Long: `Ask the running agent to fetch the environment's secrets and apply them now,
then print what the pass did. The pass starts after the request: syncs that
arrive together share one pass, and one that arrives while a pass runs gets the
next pass, which every sync arriving meanwhile shares.

Exit codes: 0 the pass fetched and every secret applied; 1 it did not (the
reasons are printed); 2 the agent could not be reached (or refused this user).`,
		Args: cobra.NoArgs,
	}
	sock := addSocketFlags(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the pass report as JSON (docs/status-schema.md)")
	cmd.Flags().DurationVar(&timeout, "timeout", 2*time.Minute, "how long to wait for the pass")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		c, err := sock.client()
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
		defer cancel()
		rep, err := c.Sync(ctx)
		if err != nil {
			return sock.clientExit(c, err)
		}
		out := cmd.OutOrStdout()
		if asJSON {
			if err := printJSON(out, rep); err != nil {
				return err
			}
		} else {
			printReport(out, rep)
		}
		if !rep.OK() {
			return exitWith(exitNotReady, "")
		}
		return nil
	}
	return cmd
}

// printReport writes one pass's outcome: a verdict line, what each injector
// did, and every secret that failed or was rejected with why.
func printReport(w io.Writer, rep control.PassReport) {
	st := rep.Status
	verdict := "ok"
	switch {
	case rep.Error != "":
		verdict = "failed: " + clean(rep.Error)
	case !rep.OK():
		verdict = string(st.State)
	}
	if rep.Error != "" {
		// The pass stopped at the fetch: it applied and removed nothing, and
		// st's counts are an earlier pass's. Say so rather than print them.
		fmt.Fprintf(w, "sync %s (%s)\n  nothing applied or removed: every output keeps what the last good pass put there\n",
			verdict, rep.Duration.Round(time.Millisecond))
		return
	}
	fmt.Fprintf(w, "sync %s (%d secrets, %s)\n", verdict, len(st.Secrets), rep.Duration.Round(time.Millisecond))
	for _, in := range st.Injectors {
		if !in.Enabled {
			continue
		}
		line := fmt.Sprintf("  %s: %d applied, %d failed, %d writes", clean(in.Name), in.Applied, in.Failed, in.Writes)
		if in.Error != "" {
			line += ": " + clean(in.Error)
		}
		fmt.Fprintln(w, line)
	}
	for _, s := range st.Secrets {
		if s.Error != "" {
			fmt.Fprintf(w, "  %s %s (%s, %s %s): %s\n", clean(string(s.Outcome)), clean(s.Name), clean(s.Scope), clean(s.Mount), clean(s.Target), clean(s.Error))
		}
	}
}
