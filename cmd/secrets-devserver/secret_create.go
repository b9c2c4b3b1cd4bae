package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/secrets-agent/secrets-agent/controlplane"
	"github.com/secrets-agent/secrets-agent/controlplane/devserver"
	"github.com/secrets-agent/secrets-agent/secrets"
)

func newSecretCreateCmd() *cobra.Command {
	var (
		dir, scope, owner, name string
		m                       devserver.SecretMount
		val                     valueFlags
		proxyHeader             string
		proxyHosts              []string
	)
	cmd := &cobra.Command{
		Use:   "create --data DIR --scope organization|project|user|service_account --owner ID --name N (--env | --file PATH | --registry HOST | --git-host HOST | --api-only) [--proxy-header H --proxy-host HOST...] [--value V | --value-stdin]",
		Short: "Create a secret and print its id",
		Long: `create stores a secret of an organization, project, user or service account
(--scope and --owner, the owner's id) with exactly one mount:

  --env            an environment variable named N
  --file PATH      a file at the absolute PATH
  --registry HOST  a docker registry login for HOST; the value is base64(user:password)
  --git-host HOST  git over HTTPS to HOST (host[:port]) authenticates with it; the value is the token
  --api-only       never injected; readable through GetSecretValue only

With --proxy-header H and --proxy-host HOST (repeatable) the secret is for a
credential proxy: environments mount a placeholder, and the agent's proxy
puts the value into header H of requests to each HOST.

Without --value or --value-stdin the value is empty. Every environment that
sees the secret gets a watch event (no devserver environment runs as a
service account, so none sees a service account's secrets). The name is a
label, any text; with --env it is also the variable's name. Prints the new
secret's id.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sc, err := secrets.ParseScope(scope)
			if err != nil {
				return fmt.Errorf("--scope: %w", err)
			}
			ws := devserver.ScopeOf(sc, owner)
			if ws == (devserver.SecretScope{}) {
				return fmt.Errorf("--scope: must be organization, project, user or service_account")
			}
			value, err := val.read(stdin)
			if err != nil {
				return err
			}
			c, err := devserver.DialDir(dir)
			if err != nil {
				return err
			}
			req := devserver.CreateSecretRequest{Name: name, Scope: ws, SecretMount: m}
			if proxyHeader != "" || len(proxyHosts) > 0 {
				if proxyHeader == "" || len(proxyHosts) == 0 {
					return fmt.Errorf("--proxy-header and --proxy-host go together")
				}
				req.CredentialProxy = &controlplane.CredentialProxy{Header: proxyHeader, TargetHosts: proxyHosts}
			}
			req.Value, req.ValueBytes = controlplane.EncodeValue(value)
			s, err := c.CreateSecret(cmd.Context(), req)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), s.ID)
			return nil
		},
	}
	addDataFlag(cmd, &dir)
	f := cmd.Flags()
	f.StringVar(&scope, "scope", "", "organization, project, user or service_account (required)")
	f.StringVar(&owner, "owner", "", "id of the organization, project, user or service account that owns the secret (required)")
	f.StringVar(&name, "name", "", "the secret's name: a label, any text; with --env, the variable's name (required)")
	f.BoolVar(&m.EnvironmentVariable, "env", false, "mount as the environment variable named --name")
	f.StringVar(&m.FilePath, "file", "", "mount as a file at this absolute path")
	f.StringVar(&m.ContainerRegistryBasicAuthHost, "registry", "", "mount as a docker login for this registry host")
	f.StringVar(&m.GitCredentialHost, "git-host", "", "mount as the git credential (token) for this git host")
	f.BoolVar(&m.APIOnly, "api-only", false, "do not mount; API access only")
	f.StringVar(&proxyHeader, "proxy-header", "", "for a credential proxy: the header that carries the value (e.g. Authorization)")
	f.StringArrayVar(&proxyHosts, "proxy-host", nil, "for a credential proxy: a host whose requests get the value (repeatable)")
	for _, r := range []string{"scope", "owner", "name"} {
		_ = cmd.MarkFlagRequired(r)
	}
	cmd.MarkFlagsOneRequired("env", "file", "registry", "git-host", "api-only")
	cmd.MarkFlagsMutuallyExclusive("env", "file", "registry", "git-host", "api-only")
	val.add(cmd)
	return cmd
}
