package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/secrets-agent/secrets-agent/control"
	"github.com/secrets-agent/secrets-agent/injectors/gitcred"
)

// The git credential-helper actions.
const (
	gitGet   = "get"
	gitStore = "store"
	gitErase = "erase"
)

func newGitCredentialCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "git-credential <get|store|erase>",
		Short: "Be git's credential helper for the git hosts the agent serves",
		Long: `Speak git's credential-helper protocol (key=value lines on stdin, ended by a
blank line), answering from the running agent over its status socket, so that
no token is written to disk. git runs it for each host with a git-credential
secret, as the helper the gitcred injector configures in
~/.config/secrets-agent/gitconfig (see install-hooks).

  get    for protocol=https and a host the agent serves, print username= (the
         injector's configured user name) and password= (the token); for any
         other request print nothing, so that git asks its next helper. A URL
         that names another user than the configured one gets nothing too.
  store  does nothing: the control plane owns these tokens.
  erase  does nothing; for a host the agent serves it says so on stderr (git
         erases after the server refused a token: rotate it in the control plane).

Any other action is ignored, as the protocol asks. Problems (the agent not
reachable, a malformed request) are said on stderr with exit code 0, so that
git goes on to its next helper.`,
		Args: cobra.ExactArgs(1),
	}
	sock := addSocketFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		var err error
		switch args[0] {
		case gitGet:
			err = gitGetCredential(cmd.Context(), sock, cmd.InOrStdin(), cmd.OutOrStdout())
		case gitStore:
			_, err = gitcred.ReadRequest(cmd.InOrStdin())
		case gitErase:
			err = gitEraseCredential(cmd.Context(), sock, cmd.InOrStdin(), cmd.ErrOrStderr())
		default:
			return nil
		}
		if err != nil {
			// git shows a helper's stderr and goes on to the next helper,
			// whatever the exit code; 0 keeps its own messages quiet.
			return exitWith(0, "git-credential: "+err.Error())
		}
		return nil
	}
	return cmd
}

// gitGetCredential answers a get: the user name and token for an https host
// the agent serves, nothing otherwise.
func gitGetCredential(ctx context.Context, sock *socketFlags, in io.Reader, out io.Writer) error {
	req, err := gitcred.ReadRequest(in)
	if err != nil || req.Quit || req.Protocol != "https" || req.Host == "" {
		return err
	}
	user, token, err := askGit(ctx, sock, req.Host)
	if err != nil || token == "" {
		return err
	}
	if req.Username != "" && req.Username != user {
		return nil // the URL asks for another user: theirs to answer
	}
	return gitcred.WriteAnswer(out, user, token)
}

// gitEraseCredential answers an erase: nothing is erased, and for a host the
// agent serves stderr says why.
func gitEraseCredential(ctx context.Context, sock *socketFlags, in io.Reader, errOut io.Writer) error {
	req, err := gitcred.ReadRequest(in)
	if err != nil || req.Protocol != "https" || req.Host == "" {
		return err
	}
	if _, token, err := askGit(ctx, sock, req.Host); err != nil || token == "" {
		return err
	}
	_, err = fmt.Fprintf(errOut, "secrets-agent: not erasing the token for %s: it comes from the control plane; "+
		"if the server refused it, rotate or delete the secret there\n", req.Host)
	return err
}

// askGit asks the agent for host's credential: an empty token and no error
// when it serves no such host.
func askGit(ctx context.Context, sock *socketFlags, host string) (user, token string, err error) {
	c, err := sock.client()
	if err != nil {
		return "", "", err
	}
	ctx, cancel := context.WithTimeout(ctx, clientTimeout)
	defer cancel()
	user, token, err = c.GitCredential(ctx, host)
	var nf *control.NotFoundError
	switch {
	case errors.As(err, &nf):
		return "", "", nil
	case errors.Is(err, control.ErrUnreachable) || errors.Is(err, control.ErrRefused):
		return "", "", errors.New(sock.message(c, err))
	}
	return user, token, err
}
