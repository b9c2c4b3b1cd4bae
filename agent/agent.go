// Package agent is the daemon: it keeps an environment's secrets on disk in
// step with the control plane. A reconcile pass (reconcile.go) fetches the
// spec, resolves precedence, fetches changed values and hands each injector
// its secrets; Run (loop.go) triggers passes from the watch stream, a poll
// floor, retries, drift on disk (watch.go) and reloads. *Agent is the Backend
// the status socket serves.
package agent

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"sort"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/secrets-agent/secrets-agent/config"
	"github.com/secrets-agent/secrets-agent/controlplane"
	"github.com/secrets-agent/secrets-agent/injectors"
	"github.com/secrets-agent/secrets-agent/proxy"
	"github.com/secrets-agent/secrets-agent/secrets"
)

// ControlPlane is the part of the control-plane client the agent uses; tests
// fake it to make faults the real server cannot.
type ControlPlane interface {
	GetEnvironment(ctx context.Context, envID string) (*controlplane.Environment, error)
	GetSecretValue(ctx context.Context, secretID string) ([]byte, error)
	WatchEvents(ctx context.Context, envID string) (EventStream, error)
	// ReloadToken re-reads the token file.
	ReloadToken() error
}

// EventStream is an open WatchEvents stream. Next blocks until an event
// arrives or the stream ends; Close ends it and makes a blocked Next return.
type EventStream interface {
	Next() (controlplane.Event, error)
	Close() error
}

// Option changes how New builds an Agent.
type Option func(*options)

type options struct {
	cp         ControlPlane
	injectors  []injectors.Injector
	configPath string
	load       func(path string) (*config.Config, error)
	version    string
	timing     timing
	notify     sdNotifier
	// noFileWatch and noSocket: see options_sim.go.
	noFileWatch bool
	noSocket    bool
}

// WithControlPlane makes the agent use cp instead of a client built from the
// config (and keep using it across reloads).
func WithControlPlane(cp ControlPlane) Option { return func(o *options) { o.cp = cp } }

// WithInjectors makes the agent use exactly these injectors instead of the
// built-in ones (and keep them across reloads).
func WithInjectors(inj ...injectors.Injector) Option {
	return func(o *options) { o.injectors = inj }
}

// WithConfigFile names the file the config was loaded from: Run watches it,
// and Reload re-reads it with load (config.Load when nil).
func WithConfigFile(path string, load func(string) (*config.Config, error)) Option {
	return func(o *options) { o.configPath, o.load = path, load }
}

// WithVersion sets the version Status reports.
func WithVersion(v string) Option { return func(o *options) { o.version = v } }

// withTiming replaces the loop's intervals (tests).
func withTiming(t timing) Option { return func(o *options) { o.timing = t } }

// withNotifier replaces the systemd notifier (tests).
func withNotifier(n sdNotifier) Option { return func(o *options) { o.notify = n } }

// cachedValue is a fetched value and the session it belongs to. Values live
// in memory only.
type cachedValue struct {
	session string
	value   secrets.Value
}

// slot is one injector in the agent's list: its name and kind always, the
// injector only when it is enabled and was built.
type slot struct {
	name     string
	kind     secrets.MountKind
	enabled  bool
	inj      injectors.Injector
	buildErr error
}

// Agent keeps one environment's secrets applied. Build it with New; it is
// safe for concurrent use.
type Agent struct {
	log    *zap.Logger
	opts   options
	notify sdNotifier

	// runMu guards the pass runner's state (runner.go): the pass waiting to
	// start, whether one is in flight, the passes' parent context, and the
	// spacing of sync-requested passes.
	runMu        sync.Mutex
	nextRun      *passRun
	running      bool
	runningSince time.Time
	passParent   context.Context
	lastSync     time.Time // when the last pass only syncs asked for started
	syncQuiet    int       // such passes in a row that found the spec unchanged

	// passMu serializes passes and guards the pass state below it.
	passMu      sync.Mutex
	lastSpec    [sha256.Size]byte                    // fingerprint of the last spec fetched
	cache       map[string]cachedValue               // secret id -> last fetched value
	lastApplied map[string]map[string]secrets.Secret // injector name -> mount key -> what its output holds
	lastPlan    *plan                                // what the last full pass decided, for repairs
	lastChanged map[string]change                    // secret id -> when and how its output last changed
	proxy       *proxy.Service                       // the credential proxy; nil when proxy.enabled is false

	// watchMu guards paths, which passes write and watchFiles reads, and
	// serializes installing the watch set. It is not passMu, so that Run
	// can start watching while a pass holds passMu (a `sync` that came in
	// first, waiting on a control plane that does not answer).
	watchMu sync.Mutex
	paths   map[string][]string // injector name -> paths it manages

	// handedMu guards handed, which passes write (holding passMu too) and
	// the socket's env and credential routes read without waiting for a
	// pass in flight: docker asking the credential helper must not stall
	// behind a slow control plane.
	handedMu sync.Mutex
	handed   map[string][]secrets.Secret // injector name -> last desired set applied

	// mu guards the fields below it.
	mu       sync.Mutex
	cfg      *config.Config
	cp       ControlPlane
	slots    []slot
	status   Status
	fetchErr error          // the last full pass's spec fetch failure; nil after a success
	waiting  error          // why the control plane cannot be reached yet (waiting.go); nil when it can
	tokenErr error          // the last failure to re-read the token file; nil after a success
	watching func([]string) // set by Run: tells the path watcher what to watch

	applied     chan struct{}
	appliedOnce sync.Once
	trigger     chan struct{} // a full pass is wanted; size 1, so bursts coalesce
	repair      chan struct{} // a repair pass is wanted; size 1
	reload      chan struct{} // a reload is wanted; size 1
	watchMoved  chan struct{} // the watch stream came up or went down; size 1
	streamWake  chan struct{} // the control plane answered: reconnect the stream now; size 1
}

// New builds an agent for cfg. It fails when no control-plane client can be
// built from cfg, but not for want of an environment_id or a token: then the
// agent waits for them (waiting.go). An injector that cannot be built is reported in Status and
// its secrets fail, but the others work.
func New(cfg *config.Config, log *zap.Logger, opts ...Option) (*Agent, error) {
	if cfg == nil {
		return nil, errors.New("agent: no config")
	}
	if log == nil {
		log = zap.NewNop()
	}
	a := &Agent{
		log:         log,
		cfg:         cfg,
		passParent:  context.Background(),
		cache:       map[string]cachedValue{},
		lastApplied: map[string]map[string]secrets.Secret{},
		lastChanged: map[string]change{},
		paths:       map[string][]string{},
		handed:      map[string][]secrets.Secret{},
		applied:     make(chan struct{}),
		trigger:     make(chan struct{}, 1),
		repair:      make(chan struct{}, 1),
		reload:      make(chan struct{}, 1),
		watchMoved:  make(chan struct{}, 1),
		streamWake:  make(chan struct{}, 1),
	}
	for _, o := range opts {
		o(&a.opts)
	}
	a.opts.timing = a.opts.timing.withDefaults()
	if a.opts.load == nil {
		a.opts.load = loadConfig
	}
	a.notify = a.opts.notify
	if a.notify == nil {
		a.notify = defaultNotifier(log)
	}
	cp, waiting, err := a.connect(cfg)
	if err != nil {
		return nil, err
	}
	a.cp = cp
	a.setWaiting(waiting)
	a.slots = a.buildSlots(cfg)
	if cfg.Proxy.Enabled {
		o := proxy.ServiceOptions{StateDir: cfg.StateDir, Listen: cfg.Proxy.Listen, Log: log.Named("proxy")}
		if cfg.Proxy.SystemTrust && os.Geteuid() == 0 {
			o.Trust = &proxy.SystemTrust
		}
		a.proxy = proxy.NewService(o)
	}
	a.status = Status{
		SchemaVersion: 1,
		State:         Starting,
		Version:       a.opts.version,
		ControlPlane:  cfg.ControlPlane.URL,
		EnvironmentID: cfg.ControlPlane.EnvironmentID,
		Injectors:     injectorStatuses(a.slots, nil),
		Secrets:       []SecretStatus{},
	}
	return a, nil
}

func (a *Agent) buildControlPlane(cfg *config.Config) (ControlPlane, error) {
	if a.opts.cp != nil {
		return a.opts.cp, nil
	}
	cp, err := newControlPlane(cfg)
	if err != nil {
		return nil, fmt.Errorf("control plane %s: %w", cfg.ControlPlane.URL, err)
	}
	return cp, nil
}

// buildSlots makes the injector list: the ones given with WithInjectors, or
// the built-ins enabled by cfg; then it tells each injector the paths it may
// not write (avoidReserved).
func (a *Agent) buildSlots(cfg *config.Config) []slot {
	if a.opts.injectors != nil {
		var out []slot
		for _, inj := range a.opts.injectors {
			out = append(out, slot{name: inj.Name(), kind: inj.Kind(), enabled: true, inj: inj})
		}
		avoidReserved(out, ownPaths(cfg, a.opts.configPath))
		return out
	}
	owner, ownerErr := ownerOf(cfg)
	var out []slot
	for _, b := range builtins {
		s := slot{name: b.name, kind: b.kind, enabled: b.enabled(cfg)}
		switch {
		case !s.enabled:
		case ownerErr != nil:
			s.buildErr = ownerErr
		default:
			s.inj, s.buildErr = b.build(cfg, owner)
			if s.buildErr != nil {
				s.inj = nil // not a typed nil in the interface: a pass skips it
			}
		}
		if s.buildErr != nil {
			a.log.Error("injector not available", zap.String("injector", s.name), zap.Error(s.buildErr))
		}
		out = append(out, s)
	}
	avoidReserved(out, ownPaths(cfg, a.opts.configPath))
	return out
}

// reloadToken re-reads cp's token file and records the outcome, so that
// status names a token file that cannot be read (a FIFO, say) for as long as
// it cannot, while the token read before stays in use.
func (a *Agent) reloadToken(cp ControlPlane) error {
	err := cp.ReloadToken()
	a.mu.Lock()
	a.tokenErr = err
	a.mu.Unlock()
	return err
}

func (a *Agent) config() *config.Config {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cfg
}

func (a *Agent) controlPlane() ControlPlane {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cp
}

func (a *Agent) injectorSlots() []slot {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]slot(nil), a.slots...)
}

// change is when the agent last changed a secret's output, and how.
type change struct {
	at     time.Time
	action injectors.Action
}

// Status returns a copy of the agent's current status. While a pass is
// stuck past the pass timeout it is degraded, saying so, whatever the last
// pass recorded.
func (a *Agent) Status() Status {
	stuck := a.stuckFor()
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.statusLocked()
	if stuck > 0 {
		if s.State != Degraded {
			s.DegradedSince = time.Now().Add(a.opts.timing.passTimeout - stuck)
		}
		s.State, s.LastError = Degraded, fmt.Sprintf("a pass has run for %s, past the pass timeout of %s: something it waits on does not answer",
			stuck.Round(time.Second), a.opts.timing.passTimeout)
	}
	return s
}

// Sync returns the report of a full pass that started after Sync was
// called, so the report reflects the control plane as it was then.
// Concurrent calls share passes: those that arrive while a pass waits to
// start join it, and a pass in flight is followed by at most one more (see
// schedulePass). Syncs in a loop that keep finding nothing new are spaced
// out, up to one pass every two seconds (scheduleSync). When ctx ends
// first, the report says so (and the pass goes on).
func (a *Agent) Sync(ctx context.Context) PassReport { return a.await(ctx, a.scheduleSync()) }

// Applied is closed once a pass has fetched the spec and run every injector
// (individual secrets may still have failed; Status says which).
func (a *Agent) Applied() <-chan struct{} { return a.applied }

// EnvFragment renders the environment-variable secrets last handed to the
// envprofile injector as "sh", "fish" or "dotenv". Before the first pass it
// renders an empty set.
func (a *Agent) EnvFragment(format string) ([]byte, error) {
	a.handedMu.Lock()
	env := a.handedOfKind(secrets.MountEnv)
	a.handedMu.Unlock()
	return renderEnv(format, env)
}

// RegistryCredential returns the user and password of the registry secret for
// host, when the docker injector is in helper or auto mode and such a secret
// is applied. host may be any of docker's spellings (RegistryKey).
func (a *Agent) RegistryCredential(host string) (user, password string, ok bool) {
	if a.config().Injectors.DockerCfg.Mode == "inline" {
		return "", "", false
	}
	key := secrets.RegistryKey(host)
	a.handedMu.Lock()
	defer a.handedMu.Unlock()
	for _, s := range a.handedOfKind(secrets.MountRegistry) {
		if secrets.RegistryKey(s.Mount.Target) != key {
			continue
		}
		u, p, err := secrets.RegistryAuth(s.Value)
		if err != nil {
			return "", "", false
		}
		return u, p, true
	}
	return "", "", false
}

// RegistryHosts lists the hosts RegistryCredential answers for, sorted; nil
// in inline mode.
func (a *Agent) RegistryHosts() []string {
	if a.config().Injectors.DockerCfg.Mode == "inline" {
		return nil
	}
	a.handedMu.Lock()
	defer a.handedMu.Unlock()
	var hosts []string
	for _, s := range a.handedOfKind(secrets.MountRegistry) {
		hosts = append(hosts, s.Mount.Target)
	}
	sort.Strings(hosts)
	return hosts
}

// Credential returns the user and password for host from the injector of
// mount kind k that serves credentials (an injectors.CredentialServer, such as
// gitcred), out of the secrets last handed to it; host is compared as the
// mount's conflict key (Mount.Key). ok is false when no such injector is
// enabled, no secret of it targets host, or the injector declines.
func (a *Agent) Credential(k secrets.MountKind, host string) (user, password string, ok bool) {
	want, _ := secrets.Mount{Kind: k, Target: host}.Key()
	a.handedMu.Lock()
	defer a.handedMu.Unlock()
	for _, sl := range a.injectorSlots() {
		cs, serves := sl.inj.(injectors.CredentialServer)
		if sl.kind != k || !serves {
			continue
		}
		for _, s := range a.handed[sl.name] {
			if key, _ := s.Mount.Key(); key == want {
				return cs.Credential(s)
			}
		}
	}
	return "", "", false
}

// handedOfKind returns a new slice of the secrets last applied by the
// injectors of kind k. The caller holds handedMu.
func (a *Agent) handedOfKind(k secrets.MountKind) []secrets.Secret {
	var out []secrets.Secret
	for _, s := range a.injectorSlots() {
		if s.kind == k {
			out = append(out, a.handed[s.name]...)
		}
	}
	return out
}

var _ Backend = (*Agent)(nil)
