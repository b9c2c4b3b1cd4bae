package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/secrets-agent/secrets-agent/internal/atomicfile"
)

// agentFiles are the files `env create --write-config DIR` writes in DIR.
const (
	agentConfigFile = "config.yaml"
	agentTokenFile  = "token"
)

// writeAgentConfig writes, in dir (created 0700 when missing), an agent
// config for environment envID of the control plane at baseURL (the
// devserver's /api, the shape of Ona's base URL), and the
// environment's token beside it, both 0600:
//
//	dir/config.yaml  controlplane.url, environment_id and token_file, and
//	                 state_dir, socket and injectors.envprofile.dir under dir
//	dir/token        the token
//
// so that `secrets-agent run --config dir/config.yaml` needs nothing else.
// Every other key keeps the agent's default (config.example.yaml). It returns
// the config file's path. An existing config or token in dir is replaced.
func writeAgentConfig(dir, baseURL, envID, token string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("--write-config: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("--write-config: create %s: %w", dir, err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return "", fmt.Errorf("--write-config: %w", err)
	}
	defer root.Close()
	q := strconv.Quote
	cfg := fmt.Sprintf(`# secrets-agent config written by secrets-devserver env create --write-config.
# Run: secrets-agent run --config %[1]s
# Every other key keeps its default; config.example.yaml lists them all.
controlplane:
  url: %[2]s
  environment_id: %[3]s
  token_file: %[4]s
state_dir: %[5]s
socket: %[6]s
injectors:
  envprofile:
    dir: %[7]s
`, filepath.Join(dir, agentConfigFile), q(baseURL), q(envID), q(filepath.Join(dir, agentTokenFile)),
		q(filepath.Join(dir, "state")), q(filepath.Join(dir, "agent.sock")), q(filepath.Join(dir, "env")))
	own := atomicfile.Options{Mode: 0o600, UID: -1, GID: -1}
	if _, err := atomicfile.Write(root, agentTokenFile, []byte(token), own); err != nil {
		return "", fmt.Errorf("--write-config: write %s: %w", filepath.Join(dir, agentTokenFile), err)
	}
	if _, err := atomicfile.Write(root, agentConfigFile, []byte(cfg), own); err != nil {
		return "", fmt.Errorf("--write-config: write %s: %w", filepath.Join(dir, agentConfigFile), err)
	}
	return filepath.Join(dir, agentConfigFile), nil
}
