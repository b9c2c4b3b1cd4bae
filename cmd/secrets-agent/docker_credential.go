package main

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/docker/docker-credential-helpers/credentials"
	"github.com/spf13/cobra"

	"github.com/secrets-agent/secrets-agent/control"
	"github.com/secrets-agent/secrets-agent/injectors/dockercfg"
)

// errManaged is the answer to store and erase.
var errManaged = errors.New("secrets-agent manages these credentials; change them in the control plane")

func newDockerCredentialCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "docker-credential <get|list|store|erase|version>",
		Short: "Be docker's credential helper for the registries the agent serves",
		Long: `Speak the docker-credential-helpers protocol, answering from the running agent
over its status socket, so that no registry password is written to disk.
Docker runs this as docker-credential-secrets-agent (a symlink to this binary)
for each registry listed as "credHelpers": {"<host>": "secrets-agent"} in its
config.json, which the dockercfg injector writes in helper mode.

  get      read a registry's server URL on stdin, print
           {"ServerURL","Username","Secret"}; for a registry the agent does not
           serve print "` + credentials.NewErrCredentialsNotFound().Error() + `" and exit 1 (when the agent is
           in inline mode, and so serves no registry, it says that instead)
  list     print {"<host>": "<username>"} for every registry the agent serves
  store    refused: the control plane owns these credentials
  erase    refused, likewise
  version  print the version

Errors are printed on stdout, as the protocol has it, with exit code 1.`,
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{credentials.ActionGet, credentials.ActionList, credentials.ActionStore, credentials.ActionErase, credentials.ActionVersion},
	}
	sock := addSocketFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		credentials.Name = helperName // the library's messages start with it
		out := cmd.OutOrStdout()
		action := args[0]
		var err error
		switch action {
		case credentials.ActionVersion:
			v, _ := buildVersion()
			_, err = fmt.Fprintf(out, "%s %s\n", helperName, v)
		case credentials.ActionStore, credentials.ActionErase:
			err = errManaged // before reading stdin or the socket: nothing to ask
		default:
			var c *control.Client
			if c, err = sock.client(); err == nil {
				h := &dockerHelper{ctx: cmd.Context(), c: c}
				err = credentials.HandleCommand(h, action, cmd.InOrStdin(), out)
				if errors.Is(err, control.ErrUnreachable) || errors.Is(err, control.ErrRefused) {
					err = errors.New(sock.message(c, err))
				}
			}
		}
		if err != nil {
			// The protocol: the message on stdout (docker reads only stdout
			// and matches the not-found text), exit code 1.
			fmt.Fprintln(out, err)
			return exitWith(1, "")
		}
		return nil
	}
	return cmd
}

// dockerHelper is a credentials.Helper backed by the running agent.
type dockerHelper struct {
	ctx context.Context
	c   *control.Client
}

// Get answers serverURL's user and password; for a registry the agent does
// not serve, the protocol's not-found error so docker goes on without.
func (h *dockerHelper) Get(serverURL string) (string, string, error) {
	ctx, cancel := context.WithTimeout(h.ctx, clientTimeout)
	defer cancel()
	u, p, err := h.c.Credential(ctx, serverURL)
	var nf *control.NotFoundError
	if errors.As(err, &nf) {
		if ierr := h.inlineMode(ctx); ierr != nil {
			return "", "", ierr
		}
		return "", "", credentials.NewErrCredentialsNotFound()
	}
	return u, p, err
}

// errInline is the helper's answer when the agent keeps registry logins in
// config.json itself (dockercfg mode inline) and so serves none.
var errInline = errors.New("secrets-agent is in inline mode: it writes registry logins into config.json's auths and serves none " +
	"through this helper; set injectors.dockercfg.mode to helper (or auto) to use it, or remove the credHelpers entry")

// inlineMode returns errInline when the agent's docker injector is in inline
// mode, and nil otherwise (or when the status cannot tell).
func (h *dockerHelper) inlineMode(ctx context.Context) error {
	st, err := h.c.Status(ctx)
	if err != nil {
		return nil
	}
	for _, in := range st.Injectors {
		if in.Mode == string(dockercfg.Inline) {
			return errInline
		}
	}
	return nil
}

// List maps every registry host the agent serves to its user name.
func (h *dockerHelper) List() (map[string]string, error) {
	ctx, cancel := context.WithTimeout(h.ctx, clientTimeout)
	defer cancel()
	hosts, err := h.c.Hosts(ctx)
	if err != nil {
		return nil, err
	}
	if len(hosts) == 0 {
		if ierr := h.inlineMode(ctx); ierr != nil {
			return nil, ierr
		}
	}
	sort.Strings(hosts)
	out := make(map[string]string, len(hosts))
	for _, host := range hosts {
		u, _, err := h.c.Credential(ctx, host)
		var nf *control.NotFoundError
		if errors.As(err, &nf) {
			continue // removed since Hosts answered
		}
		if err != nil {
			return nil, err
		}
		out[host] = u
	}
	return out, nil
}

// Add refuses: the control plane owns these credentials.
func (h *dockerHelper) Add(*credentials.Credentials) error { return errManaged }

// Delete refuses: the control plane owns these credentials.
func (h *dockerHelper) Delete(string) error { return errManaged }
