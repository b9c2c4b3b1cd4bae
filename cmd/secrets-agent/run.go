package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/secrets-agent/secrets-agent/agent"
	"github.com/secrets-agent/secrets-agent/config"
	"github.com/secrets-agent/secrets-agent/control"
	"github.com/secrets-agent/secrets-agent/injectors/builtin"
	"github.com/secrets-agent/secrets-agent/internal/dirlock"
)

func newRunCmd() *cobra.Command {
	var configPath string
	var once bool
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the daemon in the foreground: apply the environment's secrets and keep them current",
		Long: `run applies the environment's secrets and keeps them in step with the control
plane until SIGTERM or SIGINT, which leave every output in place. SIGHUP, or a
change of the config file or the token file, reloads them. Without a token file
or a controlplane.environment_id yet, it runs and waits for them, its status
saying "waiting for token" or "not configured".

With --once it runs one pass and exits: 0 when every secret applied, else 1
with a summary of each secret on stderr (names, scopes, targets and errors;
never a value).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runAgent(cmd.Context(), configPath, once, os.Stderr)
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "config file (default: "+config.SystemPath+
		" as root, else ~/.config/secrets-agent/config.yaml)")
	cmd.Flags().BoolVar(&once, "once", false, "run one pass and exit: 0 only if everything applied")
	return cmd
}

// runAgent is `secrets-agent run`. Step by step:
//
//	(1) Harden the process: no core dumps, not dumpable (so no other
//	    process of the same user can ptrace it or read its memory).
//	(2) Take SIGTERM, SIGINT and SIGHUP before anything else, so that a
//	    stop that comes while the agent starts is a clean stop, not a kill.
//	(3) Load the config, build the logger and the agent; warn (once, at
//	    start) when the token file is readable by group or others.
//	(4) --once: holding the state dir's lock, as Run does, one pass; a
//	    summary on stderr and exit 1 unless it all applied.
//	(5) Otherwise run until SIGTERM/SIGINT (exit 0, outputs kept); SIGHUP
//	    asks for a reload.
func runAgent(ctx context.Context, configPath string, once bool, stderr *os.File) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if err := harden(); err != nil { // (1)
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT) // (2)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	cfg, err := builtin.LoadUnconfigured(configPath) // (3): no environment_id yet: the agent waits for one
	if err != nil {
		return err
	}
	log, err := newLogger(cfg.Log, stderr)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	a, err := agent.New(cfg, log, agent.WithBuilders(builtin.Builders), agent.WithEnvRenderer(builtin.EnvRenderer()), agent.WithVersion(version), agent.WithConfigFile(watchedConfig(configPath), builtin.LoadUnconfigured))
	if err != nil {
		return err
	}

	if once { // (4)
		if cfg.StateDir != "" { // as Run does: not beside a running agent
			lock, err := dirlock.Acquire(cfg.StateDir)
			if err != nil {
				return fmt.Errorf("state dir: %w", err)
			}
			defer lock.Release()
		}
		agent.WarnWideToken(log, cfg.ControlPlane.TokenFile)
		rep := a.Sync(ctx)
		if rep.OK() {
			return nil
		}
		printPassSummary(stderr, rep)
		return exitWith(exitNotReady, "")
	}

	go func() { // (5)
		for {
			select {
			case <-hup:
				log.Info("SIGHUP: reloading")
				a.RequestReload()
			case <-ctx.Done():
				return
			}
		}
	}()
	log.Info("secrets-agent running", zap.String("version", version), zap.String("controlplane", cfg.ControlPlane.URL),
		zap.String("environment", cfg.ControlPlane.EnvironmentID))
	agent.WarnWideToken(log, cfg.ControlPlane.TokenFile)
	return a.Run(ctx)
}

// harden disables core dumps (RLIMIT_CORE 0) and marks the process not
// dumpable. Neither affects the status socket's peer check, which reads the
// peer's credentials with SO_PEERCRED and never looks into /proc.
func harden() error {
	if err := unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{Cur: 0, Max: 0}); err != nil {
		return fmt.Errorf("disable core dumps: %w", err)
	}
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_DUMPABLE, 0): %w", err)
	}
	return nil
}

// watchedConfig returns the config file to watch and reload: the one given,
// else the default one if it exists, else "" (nothing to watch).
func watchedConfig(given string) string {
	if given != "" {
		if abs, err := filepath.Abs(given); err == nil {
			return abs
		}
		return given
	}
	p := config.DefaultFile()
	if _, err := os.Stat(p); p == "" || err != nil {
		return ""
	}
	return p
}

// printPassSummary writes what --once did: the verdict, then one line per
// secret with its name, scope, mount, target, outcome and error. It never
// writes a value (Status holds none).
func printPassSummary(w io.Writer, rep control.PassReport) {
	st := rep.Status
	if rep.Error != "" {
		fmt.Fprintf(w, "secrets-agent: pass failed, nothing applied or removed: %s\n", clean(rep.Error))
	} else {
		fmt.Fprintf(w, "secrets-agent: pass %s: %s\n", st.State, clean(st.LastError))
	}
	for _, in := range st.Injectors {
		if in.Enabled && in.Error != "" {
			fmt.Fprintf(w, "  injector %s: %s\n", clean(in.Name), clean(in.Error))
		}
	}
	for _, s := range st.Secrets {
		line := fmt.Sprintf("  %-9s %s (%s) %s %s", clean(string(s.Outcome)), clean(s.Name), clean(s.Scope), clean(s.Mount), clean(s.Target))
		if s.Note != "" {
			line += " [" + clean(s.Note) + "]"
		}
		if s.Error != "" {
			line += ": " + clean(s.Error)
		}
		fmt.Fprintln(w, line)
	}
}
