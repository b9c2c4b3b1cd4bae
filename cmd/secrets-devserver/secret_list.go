package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/secrets-agent/secrets-agent/controlplane/devserver"
	"github.com/secrets-agent/secrets-agent/secrets"
)

func newSecretListCmd() *cobra.Command {
	var (
		dir    string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "list --data DIR [--json]",
		Short: "List every secret, never a value",
		Long: `list prints every secret with its id, name, scope, owner, mount and session,
sorted by scope, owner and name; with --json, the ListSecrets answer
({"secrets": [...]}). Values are never shown.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := devserver.DialDir(dir)
			if err != nil {
				return err
			}
			list, err := c.ListSecrets(cmd.Context(), nil)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(devserver.ListSecretsResponse{Secrets: list})
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tSCOPE\tOWNER\tMOUNT\tSESSION\tUPDATED")
			for _, s := range list {
				rec, err := s.Record()
				if err != nil {
					return fmt.Errorf("secret %s: %w", s.ID, err)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, secrets.Label(s.Name), rec.Scope, rec.Owner, rec.Mount, s.Session, s.UpdatedAt.Format(time.RFC3339))
			}
			return tw.Flush()
		},
	}
	addDataFlag(cmd, &dir)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
