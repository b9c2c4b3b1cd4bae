package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/secrets-agent/secrets-agent/injectors/envprofile"
	"github.com/secrets-agent/secrets-agent/injectors/gitcred"
	"github.com/spf13/cobra"
)

// newInstallHooksCmd is `secrets-agent install-hooks`: it adds (or with
// --uninstall removes) the shell hooks that source the env fragments. The
// hooks and the file list live in injectors/envprofile.
func newInstallHooksCmd() *cobra.Command {
	var system, user, uninstall bool
	var root string
	cmd := &cobra.Command{
		Use:   "install-hooks [--system | --user] [--uninstall] [--root DIR]",
		Short: "Make login and interactive shells load the secrets' environment variables (refreshed at each prompt), and git use the agent's credential helpers",
		Long: `install-hooks adds clearly marked blocks (` + envprofile.BlockStart + ` ... ` + envprofile.BlockEnd + `)
to the bash and zsh rc files and a fish conf.d file, so that bash, dash, zsh and fish source the
environment fragments secrets-agent writes, and re-source them at the next prompt when they change.
Running it twice changes nothing; --uninstall removes exactly what it added.

--system (the default as root): /etc/profile.d/secrets-agent.sh, /etc/bash.bashrc (or /etc/bashrc),
/etc/zsh/zshrc (or /etc/zshrc), /etc/fish/conf.d/secrets-agent.fish; fragments are read from
/run/secrets-agent/$USER.
--user (the default otherwise): ~/.config/secrets-agent/hook.sh sourced from ~/.profile, ~/.bashrc
and ~/.zshrc, and ~/.config/fish/conf.d/secrets-agent.fish; fragments are read from
$XDG_RUNTIME_DIR/secrets-agent.
In both, SECRETS_AGENT_ENV_DIR overrides the fragment directory.

It also wires git to the git credential helpers the agent keeps in
~/.config/secrets-agent/gitconfig, with an [include] block in /etc/gitconfig (--system) or in
$XDG_CONFIG_HOME/git/config, default ~/.config/git/config (--user). Both are read before
~/.gitconfig, which is never touched.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if system && user {
				return errors.New("install-hooks: --system and --user exclude each other")
			}
			o := envprofile.HookOptions{Mode: envprofile.HookUser, Root: root}
			if system || (!user && os.Geteuid() == 0) {
				o.Mode = envprofile.HookSystem
			}
			if o.Mode == envprofile.HookUser {
				home, err := os.UserHomeDir()
				if err != nil {
					return fmt.Errorf("install-hooks: %w", err)
				}
				o.Home = home
			}
			gitFile, gitText := gitcred.Include(o.Mode == envprofile.HookSystem, o.Home, os.Getenv("XDG_CONFIG_HOME"))
			o.Blocks = append(o.Blocks, envprofile.Block{Path: gitFile, Text: gitText})
			do := envprofile.InstallHooks
			if uninstall {
				do = envprofile.UninstallHooks
			} else if root != "" {
				// A packaging prefix is usually a fresh, empty tree: make it
				// (and the home inside it, for --user) rather than fail.
				dir := filepath.Join(root, o.Home)
				if err := os.MkdirAll(dir, 0o755); err != nil {
					return fmt.Errorf("install-hooks: --root: %w", err)
				}
			}
			changes, err := do(o)
			if uninstall && o.Mode == envprofile.HookUser {
				// The helpers file the agent keeps: inert once the include
				// is gone, but no trace stays.
				removed, rerr := gitcred.RemoveFile(filepath.Join(root, o.Home))
				if removed {
					changes = append(changes, envprofile.HookChange{Path: filepath.Join(o.Home, gitcred.File), Action: "removed"})
				}
				err = errors.Join(err, rerr)
			}
			for _, c := range changes {
				fmt.Fprintf(cmd.OutOrStdout(), "%-9s %s\n", c.Action, c.Path)
			}
			if err != nil {
				return fmt.Errorf("install-hooks: %w", err)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&system, "system", false, "install for every user (the default when run as root)")
	f.BoolVar(&user, "user", false, "install for the invoking user (the default otherwise)")
	f.BoolVar(&uninstall, "uninstall", false, "remove the hooks, leaving the rest of every file as it was")
	f.StringVar(&root, "root", "", "prefix every path with `DIR` (for tests and packaging), created when missing")
	return cmd
}
