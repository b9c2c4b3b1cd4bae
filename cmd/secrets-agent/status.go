package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/secrets-agent/secrets-agent/control"
)

// clientTimeout bounds a client command's talk with the agent (not wait's).
const clientTimeout = 10 * time.Second

func newStatusCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the running agent's state and its secrets (never a value)",
		Long: `Show the running agent's state: starting, ready or degraded; the control
plane and environment; the last successful pass and the last error, with
times; whether the watch stream is connected; per-injector counts; and a table
of the environment's secrets (name, scope, mount, target, outcome, last change,
and what each shadows). Never a secret value.

--json prints the status object documented in docs/status-schema.md.

Exit codes, so that it works as a health check:
  0  ready
  1  degraded or still starting
  2  the agent could not be reached (or refused this user)`,
		Args: cobra.NoArgs,
	}
	sock := addSocketFlags(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the status as JSON (docs/status-schema.md)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		c, err := sock.client()
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), clientTimeout)
		defer cancel()
		st, err := c.Status(ctx)
		if err != nil {
			return sock.clientExit(c, err)
		}
		out := cmd.OutOrStdout()
		if asJSON {
			if err := printJSON(out, st); err != nil {
				return err
			}
		} else {
			printStatus(out, st, time.Now())
		}
		if st.State != control.Ready {
			return exitWith(exitNotReady, "")
		}
		return nil
	}
	return cmd
}

// printStatus writes the human summary of st: a block of facts, the
// injectors and the table of secrets.
func printStatus(w io.Writer, st control.Status, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	state := string(st.State)
	if !st.DegradedSince.IsZero() && st.State == control.Degraded {
		state += " since " + when(st.DegradedSince, now)
	}
	fmt.Fprintf(tw, "State:\t%s\n", clean(state))
	fmt.Fprintf(tw, "Control plane:\t%s\n", clean(st.ControlPlane))
	fmt.Fprintf(tw, "Environment:\t%s\n", clean(st.EnvironmentID))
	fmt.Fprintf(tw, "Agent version:\t%s\n", clean(st.Version))
	fmt.Fprintf(tw, "First applied:\t%s\n", when(st.FirstApplied, now))
	fmt.Fprintf(tw, "Last success:\t%s\n", when(st.LastSuccess, now))
	if st.LastError != "" {
		fmt.Fprintf(tw, "Last error:\t%s (at %s)\n", clean(st.LastError), when(st.LastErrorTime, now))
	} else {
		fmt.Fprintf(tw, "Last error:\tnone\n")
	}
	watch := "not connected (changes arrive by polling)"
	if st.WatchConnected {
		watch = "connected"
	}
	fmt.Fprintf(tw, "Watch stream:\t%s\n", watch)
	fmt.Fprintf(tw, "Passes:\t%d\n", st.Passes)
	if !st.LastChange.IsZero() {
		fmt.Fprintf(tw, "Last change:\t%s, %d writes (the counts below are the last pass's)\n", when(st.LastChange, now), st.LastChangeWrites)
	} else {
		fmt.Fprintf(tw, "Last change:\tnever\n")
	}
	if st.ConfigError != "" {
		fmt.Fprintf(tw, "Config:\treload refused at %s, the previous config stays in force: %s\n", when(st.ConfigErrorTime, now), clean(st.ConfigError))
	}
	tw.Flush()

	if len(st.Injectors) > 0 {
		fmt.Fprintln(w, "\nInjectors:")
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  NAME\tENABLED\tAPPLIED\tFAILED\tWRITES\tERROR")
		for _, in := range st.Injectors {
			fmt.Fprintf(tw, "  %s\t%s\t%d\t%d\t%d\t%s\n", clean(in.Name), yesNo(in.Enabled), in.Applied, in.Failed, in.Writes, clean(in.Error))
		}
		tw.Flush()
	}

	fmt.Fprintf(w, "\nSecrets (%s):\n", secretCounts(st.Secrets))
	if len(st.Secrets) == 0 {
		fmt.Fprintln(w, "  none")
		return
	}
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  NAME\tSCOPE\tMOUNT\tTARGET\tOUTCOME\tLAST CHANGE\tSHADOWS")
	for _, s := range st.Secrets {
		outcome := string(s.Outcome)
		if s.Error != "" {
			outcome += ": " + s.Error
		} else if s.Note != "" {
			outcome += " (" + s.Note + ")"
		}
		var shadows []string
		for _, sh := range s.Shadows {
			shadows = append(shadows, sh.Scope+"/"+sh.Name)
		}
		last := "-"
		if !s.LastChanged.IsZero() {
			last = strings.TrimSpace(string(s.LastAction) + " " + ago(s.LastChanged, now))
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\n", clean(s.Name), clean(s.Scope), clean(s.Mount),
			clean(dash(s.Target)), clean(outcome), last, clean(dash(strings.Join(shadows, ", "))))
	}
	tw.Flush()
}

// secretCounts is the header count of the secrets table: how many rows, and
// how many of them ended each way in the last pass ("8: 7 unchanged, 1
// skipped"), in the order the outcomes first appear.
func secretCounts(rows []control.SecretStatus) string {
	if len(rows) == 0 {
		return "0"
	}
	n := map[control.Outcome]int{}
	var order []control.Outcome
	for _, r := range rows {
		if n[r.Outcome] == 0 {
			order = append(order, r.Outcome)
		}
		n[r.Outcome]++
	}
	parts := make([]string, 0, len(order))
	for _, o := range order {
		parts = append(parts, fmt.Sprintf("%d %s", n[o], clean(string(o))))
	}
	return fmt.Sprintf("%d: %s", len(rows), strings.Join(parts, ", "))
}

// when formats t as local time with how long ago it was; "never" for zero.
func when(t time.Time, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.Local().Format("2006-01-02 15:04:05 MST") + ", " + ago(t, now)
}

// ago says how long before now t was, to the second under an hour, to the
// minute under two days, else in days.
func ago(t time.Time, now time.Time) string {
	d := max(now.Sub(t), 0)
	switch {
	case d < time.Hour:
		return d.Round(time.Second).String() + " ago"
	case d < 48*time.Hour:
		return strings.TrimSuffix(d.Round(time.Minute).String(), "0s") + " ago"
	}
	return fmt.Sprintf("%d days ago", int(d/(24*time.Hour)))
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// clean replaces control characters (terminal escapes, tabs, newlines) in
// text from the agent, so that a name or message cannot rewrite the terminal
// or break the table.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return '?'
		}
		return r
	}, s)
}

// printJSON writes v as indented JSON, as status --json and sync --json print
// the documented schema (docs/status-schema.md).
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
