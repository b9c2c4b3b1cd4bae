package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/secrets-agent/secrets-agent/control"
	"github.com/secrets-agent/secrets-agent/injectors/envprofile"
	"github.com/secrets-agent/secrets-agent/internal/supervise"
	"github.com/secrets-agent/secrets-agent/secrets"
)

func newExecCmd() *cobra.Command {
	var (
		onChange string
		only     []string
		interval time.Duration
		grace    time.Duration
		wait     time.Duration
	)
	cmd := &cobra.Command{
		Use:   "exec [--on-change restart|signal:NAME|none] [--only NAME,...] -- CMD [ARGS...]",
		Short: "Run a program with the secrets' environment variables, restarting or signalling it when they change",
		Long: `exec runs CMD with your environment overlaid with the environment-variable
secrets, as the running agent serves them to you over its status socket (the
values the shells see), forwards every signal it gets to CMD, and exits with
CMD's exit code (128+n when signal n ended it).

When a variable CMD was given changes or disappears, --on-change says what
happens, exactly once per change (changes arriving together count as one):

  restart       (default) SIGTERM to CMD, --grace to stop, then SIGKILL; start it
                again with the new values
  signal:NAME   send CMD signal NAME (HUP, USR1, ...); it keeps its environment
  none          nothing; the variables are read once

A change of a variable CMD was not given never touches it; neither does a new
variable (list it with --only to have it watched). --only limits what CMD is
given, and watched, to those names.

Before starting CMD, exec waits up to --wait for the agent's first pass (as
secrets-agent wait does), so that CMD does not start without its variables; past
that it starts CMD with what the agent has and says so. It then asks the agent
for the variables every --interval; if the agent cannot be reached then, CMD
keeps running with what it has. On a terminal CMD stays in the
foreground as usual: Ctrl-C, Ctrl-\ and Ctrl-Z reach it from the terminal, once.

Exit codes of exec itself: 125 when the agent cannot be reached at start (the
socket it tried is named) or exec fails otherwise, 126 when CMD cannot be run,
127 when it is not found.`,
		Args: cobra.MinimumNArgs(1),
	}
	cmd.Flags().SetInterspersed(false) // flags after CMD are CMD's
	sock := addSocketFlags(cmd)
	f := cmd.Flags()
	f.StringVar(&onChange, "on-change", string(supervise.Restart), "restart, signal:NAME or none")
	f.StringSliceVar(&only, "only", nil, "give CMD only these `NAME`s (comma-separated or repeated)")
	f.DurationVar(&interval, "interval", time.Second, "how often to ask the agent whether the variables changed")
	f.DurationVar(&grace, "grace", 10*time.Second, "how long a restart waits after SIGTERM before SIGKILL")
	f.DurationVar(&wait, "wait", 30*time.Second, "how long to wait for the agent's first pass before starting CMD anyway")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		oc, err := supervise.ParseOnChange(onChange)
		if err != nil {
			return exitWith(supervise.ExitFailed, "--on-change "+err.Error())
		}
		for _, n := range only {
			if !secrets.ValidEnvName(n) {
				return exitWith(supervise.ExitFailed, fmt.Sprintf("--only: %q is not a variable name", n))
			}
		}
		if interval <= 0 || grace <= 0 || wait < 0 {
			return exitWith(supervise.ExitFailed, "--interval and --grace must be positive, --wait not negative")
		}
		c, err := sock.client()
		if err != nil {
			return exitWith(supervise.ExitFailed, err.Error())
		}
		if err := waitFirstPass(cmd.Context(), c, wait); err != nil {
			if errors.Is(err, control.ErrWaitTimeout) {
				fmt.Fprintf(cmd.ErrOrStderr(), "secrets-agent exec: the agent has not applied its first pass within %s; starting %s with what it has\n", wait, args[0])
			} else {
				return exitWith(supervise.ExitFailed, sock.message(c, err))
			}
		}
		code, err := supervise.Run(cmd.Context(), supervise.Options{
			Argv: args, Base: os.Environ(), Only: only, OnChange: oc, Interval: interval, Grace: grace,
			Fetch: func(ctx context.Context) (map[string]string, error) { return fetchVars(ctx, c) },
			Stdin: cmd.InOrStdin(), Stdout: cmd.OutOrStdout(), Stderr: cmd.ErrOrStderr(), Notes: cmd.ErrOrStderr(),
		})
		if err != nil {
			if errors.Is(err, control.ErrUnreachable) || errors.Is(err, control.ErrRefused) {
				return exitWith(code, sock.message(c, err))
			}
			return exitWith(code, "exec: "+err.Error())
		}
		if code != 0 {
			return exitWith(code, "")
		}
		return nil
	}
	return cmd
}

// waitFirstPass waits up to timeout for the agent's first applied pass.
func waitFirstPass(ctx context.Context, c *control.Client, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout+clientTimeout)
	defer cancel()
	return c.Wait(ctx, timeout)
}

// fetchVars returns the environment-variable secrets the agent serves now,
// by name. It reads the dotenv fragment, which holds every value byte for
// byte.
//
// Why polling this route and not a long-poll or stream: the route answers
// from memory (what the last pass handed the envprofile injector, under a lock
// no pass holds while it waits on the control plane), so one request over the
// local socket per interval costs next to nothing, and it needs nothing new
// in the agent. A change reaches the program within about two intervals
// (one to see it, one to see it settle), a small part of what the change took
// to reach the agent.
func fetchVars(ctx context.Context, c *control.Client) (map[string]string, error) {
	ctx, cancel := context.WithTimeout(ctx, clientTimeout)
	defer cancel()
	frag, err := c.Env(ctx, string(envprofile.FormatDotenv))
	if err != nil {
		return nil, err
	}
	vars, err := envprofile.ParseDotenv(frag)
	if err != nil {
		return nil, fmt.Errorf("read the agent's variables: %w", err)
	}
	out := make(map[string]string, len(vars))
	for _, v := range vars {
		out[v.Name] = string(v.Value)
	}
	return out, nil
}
