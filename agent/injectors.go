package agent

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

// builtin is one injector the agent ships with: whether cfg enables it and
// how to build it. Adding an injector is one package plus one line in
// builtins.
type builtin struct {
	name    string
	kind    secrets.MountKind
	enabled func(cfg *config.Config) bool
	build   func(cfg *config.Config, owner injectors.Owner) (injectors.Injector, error)
}

// builtins lists the injectors, in the order a pass applies them.
var builtins = []builtin{
	{"envprofile", secrets.MountEnv, func(c *config.Config) bool { return c.Injectors.EnvProfile.Enabled }, buildEnvProfile},
	{"secretfile", secrets.MountFile, func(c *config.Config) bool { return c.Injectors.SecretFile.Enabled }, buildSecretFile},
	{"dockercfg", secrets.MountRegistry, func(c *config.Config) bool { return c.Injectors.DockerCfg.Enabled }, buildDockerCfg},
	{"gitcred", secrets.MountGitCredential, func(c *config.Config) bool { return c.Injectors.GitCred.Enabled }, buildGitCred},
}

func buildEnvProfile(cfg *config.Config, owner injectors.Owner) (injectors.Injector, error) {
	return envprofile.New(envprofile.Options{Dir: cfg.Injectors.EnvProfile.Dir, Owner: owner, StateDir: cfg.StateDir})
}

func buildSecretFile(cfg *config.Config, owner injectors.Owner) (injectors.Injector, error) {
	return secretfile.New(secretfile.Options{AllowedRoots: cfg.Injectors.SecretFile.AllowedRoots,
		Mode: cfg.Injectors.SecretFile.Mode.Perm(), Owner: owner, StateDir: cfg.StateDir})
}

func buildDockerCfg(cfg *config.Config, owner injectors.Owner) (injectors.Injector, error) {
	return dockercfg.New(dockercfg.Options{ConfigDir: cfg.Injectors.DockerCfg.ConfigDir,
		Mode: dockercfg.Mode(cfg.Injectors.DockerCfg.Mode), HelperName: "secrets-agent", Owner: owner, StateDir: cfg.StateDir})
}

// buildGitCred's helper is this program's git-credential command on cfg's socket.
func buildGitCred(cfg *config.Config, owner injectors.Owner) (injectors.Injector, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("gitcred: the agent's own path, for git's credential helper: %w", err)
	}
	return gitcred.New(gitcred.Options{Username: cfg.Injectors.GitCred.Username, Owner: owner,
		Helper: []string{exe, "git-credential", "--socket", cfg.Socket}})
}

// ownPaths are the agent's own files, which no secret may target: the config
// file (configPath, "" when there is none) and the default one, which the
// next start would read; the token file, the state dir, the status socket,
// the env fragment dir (reserved even with envprofile disabled: the shell
// hooks still source what is there), and what `install-hooks` writes in
// either mode (the hooks, the rc files it adds them to, the git configs it
// adds gitcred's include to, and gitcred's file, even with gitcred
// disabled: the include still names it).
func ownPaths(cfg *config.Config, configPath string) []injectors.Reserved {
	own := []injectors.Reserved{
		{Path: configPath, What: "the agent's config file"},
		{Path: config.DefaultFile(), What: "the agent's default config file"},
		{Path: cfg.ControlPlane.TokenFile, What: "the agent's token file"},
		{Path: cfg.StateDir, What: "the agent's state dir"},
		{Path: cfg.Socket, What: "the agent's status socket"},
		{Path: cfg.Injectors.EnvProfile.Dir, What: "the env fragment dir"},
	}
	for _, p := range envprofile.HookFiles(cfg.Home) {
		own = append(own, injectors.Reserved{Path: p, What: "a file install-hooks writes"})
	}
	sysGit, _ := gitcred.Include(true, cfg.Home, "")
	own = append(own, injectors.Reserved{Path: sysGit, What: "a file install-hooks writes"})
	if cfg.Home != "" {
		userGit, _ := gitcred.Include(false, cfg.Home, "")
		own = append(own, injectors.Reserved{Path: userGit, What: "a file install-hooks writes"},
			injectors.Reserved{Path: filepath.Join(cfg.Home, gitcred.File), What: "the git credential helpers file gitcred manages"})
	}
	var out []injectors.Reserved
	for _, r := range own {
		if r.Path == "" {
			continue
		}
		if abs, err := filepath.Abs(r.Path); err == nil {
			r.Path = abs
			out = append(out, r)
		}
	}
	return out
}

// avoidReserved gives every injector that takes its targets from its
// secrets (an injectors.Avoider) the reserved paths: own plus the outputs
// of every built injector that reports them (an injectors.Reserver).
func avoidReserved(slots []slot, own []injectors.Reserved) {
	reserved := own
	for _, s := range slots {
		if r, ok := s.inj.(injectors.Reserver); ok {
			reserved = append(reserved, r.Reserved()...)
		}
	}
	for _, s := range slots {
		if av, ok := s.inj.(injectors.Avoider); ok {
			av.Avoid(reserved)
		}
	}
}
