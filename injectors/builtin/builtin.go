// Package builtin lists the injectors secrets-agent ships with and builds
// each from the agent's config. cmd/secrets-agent hands the list to the
// agent, which depends only on the injectors interface. Adding an injector
// is one package plus one line in Builders.
package builtin

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/secrets-agent/secrets-agent/config"
	"github.com/secrets-agent/secrets-agent/injectors"
	"github.com/secrets-agent/secrets-agent/injectors/dockercfg"
	"github.com/secrets-agent/secrets-agent/injectors/envprofile"
	"github.com/secrets-agent/secrets-agent/injectors/gitcred"
	"github.com/secrets-agent/secrets-agent/injectors/secretfile"
	"github.com/secrets-agent/secrets-agent/secrets"
)

// HelperName is the credential helper dockercfg names in helper mode: this
// program, run as docker-credential-secrets-agent.
const HelperName = "secrets-agent"

// Builders returns the injectors cfg describes, in the order a pass applies
// them.
func Builders(cfg *config.Config) []injectors.Builder {
	ep, sf, dc, gc := cfg.Injectors.EnvProfile, cfg.Injectors.SecretFile, cfg.Injectors.DockerCfg, cfg.Injectors.GitCred
	return []injectors.Builder{
		{Name: "envprofile", Kind: secrets.MountEnv, Enabled: ep.Enabled, Build: func(o injectors.Owner) (injectors.Injector, error) {
			return envprofile.New(envprofile.Options{Dir: ep.Dir, Owner: o, StateDir: cfg.StateDir})
		}, Reserved: hookFiles(cfg.Home)},
		{Name: "secretfile", Kind: secrets.MountFile, Enabled: sf.Enabled, Build: func(o injectors.Owner) (injectors.Injector, error) {
			return secretfile.New(secretfile.Options{AllowedRoots: sf.AllowedRoots, Mode: sf.Mode.Perm(), Owner: o, StateDir: cfg.StateDir})
		}},
		{Name: "dockercfg", Kind: secrets.MountRegistry, Enabled: dc.Enabled, Build: func(o injectors.Owner) (injectors.Injector, error) {
			return dockercfg.New(dockercfg.Options{ConfigDir: dc.ConfigDir, Mode: dockercfg.Mode(dc.Mode),
				HelperName: HelperName, Owner: o, StateDir: cfg.StateDir})
		}},
		{Name: "gitcred", Kind: secrets.MountGitCredential, Enabled: gc.Enabled, Build: func(o injectors.Owner) (injectors.Injector, error) {
			return buildGitCred(gc.Username, cfg.Socket, o)
		}, Reserved: gitFiles(cfg.Home)},
	}
}

// hookFiles are the files install-hooks writes the shell hooks into, for
// the user whose home is home.
func hookFiles(home string) []injectors.Reserved {
	var out []injectors.Reserved
	for _, p := range envprofile.HookFiles(home) {
		out = append(out, injectors.Reserved{Path: p, What: "a file install-hooks writes"})
	}
	return out
}

// gitFiles are the git configs install-hooks adds gitcred's include to and
// gitcred's own file, which the include names even with gitcred disabled.
func gitFiles(home string) []injectors.Reserved {
	sysGit, _ := gitcred.Include(true, home, "")
	out := []injectors.Reserved{{Path: sysGit, What: "a file install-hooks writes"}}
	if home != "" {
		userGit, _ := gitcred.Include(false, home, "")
		out = append(out, injectors.Reserved{Path: userGit, What: "a file install-hooks writes"},
			injectors.Reserved{Path: filepath.Join(home, gitcred.File), What: "the git credential helpers file gitcred manages"})
	}
	return out
}

// buildGitCred's helper is this program's git-credential command on the
// agent's socket.
func buildGitCred(username, socket string, owner injectors.Owner) (injectors.Injector, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("gitcred: the agent's own path, for git's credential helper: %w", err)
	}
	return gitcred.New(gitcred.Options{Username: username, Owner: owner,
		Helper: []string{exe, "git-credential", "--socket", socket}})
}

// RenderEnv renders environment-variable secrets in a named format as the
// envprofile injector writes them (the agent's env route).
func RenderEnv(format string, env []secrets.Secret) ([]byte, error) {
	f, err := envprofile.ParseFormat(format)
	if err != nil {
		return nil, err
	}
	return envprofile.Render(f, env)
}
