package main

import (
	"fmt"
	"os"
	"sort"

	"github.com/spf13/cobra"

	"github.com/secrets-agent/secrets-agent/agent"
	"github.com/secrets-agent/secrets-agent/config"
	"github.com/secrets-agent/secrets-agent/injectors/builtin"
)

func newPurgeCmd() *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "purge",
		Short: "Remove every secret the agent delivered: shell fragments, secret files, docker logins, git helper entries",
		Long: `purge removes what the agent wrote for the config's user, as recorded in the
manifests in its state directory: the shell fragments' variables, the secret
files (a file that was there before the agent is put back), the docker
logins (every other entry of config.json stays) and the git credential
helpers file. Stop the agent first, or it
puts them back. It asks the control plane nothing; install.sh --uninstall
--purge runs it. Exit 1 when something could not be removed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.LoadUnconfigured(configPath)
			if err != nil {
				return err
			}
			log, err := newLogger(cfg.Log, os.Stderr)
			if err != nil {
				return err
			}
			a, err := agent.New(cfg, log, agent.WithBuilders(builtin.Builders))
			if err != nil {
				return err
			}
			results := a.Purge(cmd.Context())
			names := make([]string, 0, len(results))
			for name := range results {
				names = append(names, name)
			}
			sort.Strings(names)
			failed := false
			for _, name := range names {
				r := results[name]
				removed := 0
				for _, o := range r.Outcomes {
					if o.Err != nil {
						failed = true
						fmt.Fprintf(os.Stderr, "%s: %s: %v\n", name, clean(o.Target), o.Err)
					} else {
						removed++
					}
				}
				if r.Err != nil {
					failed = true
					fmt.Fprintf(os.Stderr, "%s: %v\n", name, r.Err)
				}
				fmt.Printf("%s: %d outputs removed or restored\n", name, removed)
			}
			if failed {
				return exitWith(exitNotReady, "")
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "config file (default: "+config.SystemPath+
		" as root, else ~/.config/secrets-agent/config.yaml)")
	return cmd
}
