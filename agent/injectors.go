package agent

import (
	"github.com/secrets-agent/secrets-agent/config"
	"github.com/secrets-agent/secrets-agent/injectors"
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
var builtins = []builtin{}
