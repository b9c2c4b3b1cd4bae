package agent

import (
	"os"
	"path/filepath"

	"go.uber.org/zap"

	"github.com/secrets-agent/secrets-agent/config"
	"github.com/secrets-agent/secrets-agent/injectors"
	"github.com/secrets-agent/secrets-agent/secrets"
)

// slot is one injector's record: what it is, fixed when it is built, and
// what the passes did with it (Agent states which lock each field needs).
type slot struct {
	name     string
	kind     secrets.MountKind
	enabled  bool
	mode     string             // Builder.Mode, for status
	inj      injectors.Injector // nil when disabled or not built
	buildErr error

	desired []secrets.Secret          // pass: this full pass's set; nil: not applied this pass
	held    string                    // pass: why the last full pass held it back; "" when it did not
	applied map[string]secrets.Secret // pass: mount key -> the secret its output holds
	paths   []string                  // pass+watchMu: the files it manages, for drift watching
	handed  []secrets.Secret          // pass+mu: the set last handed to it; nil: never applied

	// synced: inj (this instance) had a whole Apply that succeeded and
	// nothing failed as a whole since, so applied is what its outputs hold
	// (changes.go). Never carried to a rebuilt injector.
	synced   bool                         // pass
	outcomes map[string]injectors.Outcome // pass: secret id -> its last outcome
	failing  map[string]string            // pass: secret id -> its target, for those whose last outcome failed

	// exact: desired differs from the set last handed in changed (secrets
	// new or different) and dropped (mounts no longer held) alone: a plan
	// brought up to date (replan); else it may differ anywhere.
	exact   bool             // pass
	changed []secrets.Secret // pass
	dropped []secrets.Mount  // pass
}

// buildSlots makes the injector list for cfg: the ones given with
// WithInjectors, or those WithBuilders makes from cfg. What the passes
// recorded in old (a reload's list) carries over to the slot of the same
// name. Then it tells each injector the paths it may not write
// (avoidReserved).
func (a *Agent) buildSlots(cfg *config.Config, old []*slot) []*slot {
	var out []*slot
	var builders []injectors.Builder
	if a.opts.injectors != nil {
		for _, inj := range a.opts.injectors {
			out = append(out, &slot{name: inj.Name(), kind: inj.Kind(), enabled: true, inj: inj})
		}
	} else if a.opts.builders != nil {
		builders = a.opts.builders(cfg)
		owner, ownerErr := ownerOf(cfg)
		for _, b := range builders {
			out = append(out, a.build(b, owner, ownerErr))
		}
	}
	for _, s := range out {
		for _, o := range old {
			if o.name == s.name {
				s.held, s.applied, s.paths, s.handed = o.held, o.applied, o.paths, o.handed
			}
		}
	}
	avoidReserved(out, ownPaths(cfg, a.opts.configPath, builders))
	return out
}

// build makes b's slot; ownerErr, when set, is why no injector can be built.
func (a *Agent) build(b injectors.Builder, owner injectors.Owner, ownerErr error) *slot {
	s := &slot{name: b.Name, kind: b.Kind, enabled: b.Enabled, mode: b.Mode}
	switch {
	case !s.enabled:
	case ownerErr != nil:
		s.buildErr = ownerErr
	default:
		s.inj, s.buildErr = b.Build(owner)
		if s.buildErr != nil {
			s.inj = nil // not a typed nil in the interface: a pass skips it
		}
	}
	if s.buildErr != nil {
		a.log.Error("injector not available", zap.String("injector", s.name), zap.Error(s.buildErr))
	}
	return s
}

// ownerOf returns who owns the outputs cfg describes. Running as another
// user than root, the agent cannot chown, and need not: UID and GID are -1.
func ownerOf(cfg *config.Config) (injectors.Owner, error) {
	uid, gid, home, err := cfg.Owner()
	if err != nil {
		return injectors.Owner{}, err
	}
	if os.Geteuid() != 0 {
		uid, gid = -1, -1
	}
	return injectors.Owner{UID: uid, GID: gid, Home: home}, nil
}

// slotFor returns the slot serving mount kind k, or nil.
func slotFor(slots []*slot, k secrets.MountKind) *slot {
	for _, s := range slots {
		if s.kind == k {
			return s
		}
	}
	return nil
}

// ownPaths are the agent's own files, which no secret may target: the config
// file (configPath, "" when there is none) and the default one, which the
// next start would read; the token file, the state dir, the status socket,
// and every builder's Reserved (what is its whether or not it is enabled,
// such as what `install-hooks` writes for it).
func ownPaths(cfg *config.Config, configPath string, builders []injectors.Builder) []injectors.Reserved {
	own := []injectors.Reserved{
		{Path: configPath, What: "the agent's config file"},
		{Path: config.DefaultFile(), What: "the agent's default config file"},
		{Path: cfg.ControlPlane.TokenFile, What: "the agent's token file"},
		{Path: cfg.StateDir, What: "the agent's state dir"},
		{Path: cfg.Socket, What: "the agent's status socket"},
	}
	for _, b := range builders {
		own = append(own, b.Reserved...)
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
func avoidReserved(slots []*slot, own []injectors.Reserved) {
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
