package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/secrets-agent/secrets-agent/config"
	"github.com/secrets-agent/secrets-agent/control"
	"github.com/secrets-agent/secrets-agent/internal/safeopen"
	"github.com/secrets-agent/secrets-agent/internal/tilde"
)

// socketEnv names the status socket for every client command.
const socketEnv = "SECRETS_AGENT_SOCKET"

// socketFlags are the flags every client command (status, sync, wait, env,
// docker-credential) uses to find the agent's status socket.
type socketFlags struct {
	socket string
	config string
}

// addSocketFlags registers --socket and --config on cmd.
func addSocketFlags(cmd *cobra.Command) *socketFlags {
	f := &socketFlags{}
	cmd.Flags().StringVar(&f.socket, "socket", "",
		"the agent's status socket (default: $"+socketEnv+", else the config file's socket, else "+config.SystemSocket+
			" as root and $XDG_RUNTIME_DIR/secrets-agent.sock otherwise, falling back to "+config.SystemSocket+" when only that exists)")
	cmd.Flags().StringVar(&f.config, "config", "",
		"config file to read the socket path from (default: "+config.SystemPath+", and for a non-root user first ~/.config/secrets-agent/config.yaml)")
	return f
}

// client returns a client of the socket path finds.
func (f *socketFlags) client() (*control.Client, error) {
	p, err := f.path()
	if err != nil {
		return nil, err
	}
	return control.NewClient(p), nil
}

// from says where path found the socket, for the message of an agent that
// is not reachable.
func (f *socketFlags) from() string {
	switch {
	case f.socket != "":
		return "--socket"
	case os.Getenv(socketEnv) != "":
		return "$" + socketEnv
	case f.config != "":
		return "--config " + f.config
	}
	return "the default"
}

// path finds the status socket, first match wins:
//  1. --socket;
//  2. $SECRETS_AGENT_SOCKET;
//  3. the `socket:` key of the config file: --config when given (an
//     unreadable file is then an error), else the first readable of the
//     user's own config file (config.DefaultPath) and config.SystemPath;
//  4. the agent's default (config.Default): the system socket as root,
//     $XDG_RUNTIME_DIR/secrets-agent.sock otherwise — except that a non-root
//     user whose own socket does not exist but the system socket does gets the
//     system socket, since that is the agent serving their environment.
//
// Only the socket key is read from the file, not the whole config through
// config.Load: a client must find the agent even when the rest of the file
// does not validate for it (no token, another user's paths), and the file's
// other keys are none of its business.
func (f *socketFlags) path() (string, error) {
	if f.socket != "" {
		return f.socket, nil
	}
	if p := os.Getenv(socketEnv); p != "" {
		return p, nil
	}
	if f.config != "" {
		p, err := socketFromConfig(f.config)
		if err != nil {
			return "", err
		}
		if p != "" {
			return p, nil
		}
	} else {
		for _, file := range []string{config.DefaultPath(), config.SystemPath} {
			if p, err := socketFromConfig(file); err == nil && p != "" {
				return p, nil
			}
		}
	}
	p := config.Default().Socket
	if os.Geteuid() != 0 && !exists(p) && exists(config.SystemSocket) {
		return config.SystemSocket, nil
	}
	return p, nil
}

// socketFromConfig returns the socket key of the YAML config file at path
// ("" when it has none), with a leading "~" expanded to $HOME.
func socketFromConfig(path string) (string, error) {
	path, err := expandTilde(path)
	if err != nil {
		return "", err
	}
	data, err := safeopen.ReadPath(path, 1<<20)
	if err != nil {
		return "", fmt.Errorf("read config %s: %w", path, err)
	}
	var doc struct {
		Socket string `yaml:"socket"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return "", fmt.Errorf("config %s: %w", path, err)
	}
	if doc.Socket == "" {
		return "", nil
	}
	return expandTilde(doc.Socket)
}

// expandTilde expands a leading "~" in p to the home of the user running
// the command.
func expandTilde(p string) (string, error) {
	home, _ := os.UserHomeDir()
	return tilde.Expand(p, home)
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// clientExit turns a client error into the exit codes every client command
// shares: 2 when the agent is unreachable or refuses us (exitUnreachable),
// else 1. The message of an unreachable agent names the socket tried, where
// that path came from, and how to point at another.
func (f *socketFlags) clientExit(c *control.Client, err error) error {
	if errors.Is(err, control.ErrUnreachable) || errors.Is(err, control.ErrRefused) {
		return exitWith(exitUnreachable, f.message(c, err))
	}
	return exitWith(1, err.Error())
}

// message is what a client command prints for err from c: for an agent that
// is unreachable or refuses this user, a sentence that names the socket
// (main puts the program name before it, so it is not repeated here).
func (f *socketFlags) message(c *control.Client, err error) string {
	switch {
	case errors.Is(err, control.ErrUnreachable):
		return unreachable(c.Path(), f.from(), err)
	case errors.Is(err, control.ErrRefused):
		why := strings.TrimPrefix(err.Error(), control.ErrRefused.Error()+": ")
		return fmt.Sprintf("the agent at %s does not serve uid %d (it serves root and its environment's user): %s", c.Path(), os.Getuid(), why)
	}
	return err.Error()
}

// unreachable is the message for no agent answering at path (found from
// from): why, in the system's words, and the three ways to name another.
func unreachable(path, from string, err error) string {
	why := err.Error()
	var errno syscall.Errno
	if errors.As(err, &errno) {
		why = errno.Error()
	}
	return fmt.Sprintf("the agent is not reachable at %s (%s): %s\n"+
		"  point at the agent you mean with --config FILE (the socket key of the config it runs with), --socket PATH, or %s=PATH",
		path, from, why, socketEnv)
}

// The exit codes of the client commands.
const (
	exitNotReady    = 1 // degraded or starting; a failed sync; a wait that timed out
	exitUnreachable = 2 // no agent answered on the socket, or it refused this user
)
