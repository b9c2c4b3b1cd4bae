// Package agent is the daemon: it keeps an environment's secrets on disk in
// step with the control plane. A reconcile pass (reconcile.go) fetches the
// spec, resolves precedence, fetches changed values and hands each injector
// its secrets; Run (loop.go) triggers passes from the watch stream, a poll
// floor, retries, drift on disk (watch.go) and reloads. *Agent is the Backend
// the status socket serves.
package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/secrets-agent/secrets-agent/config"
	"github.com/secrets-agent/secrets-agent/control"
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
	WatchEvents(ctx context.Context, envID string) (controlplane.Events, error)
	// ReloadToken re-reads the token file.
	ReloadToken() error
}

// Option changes how New builds an Agent.
type Option func(*options)

type options struct {
	cp         ControlPlane
	injectors  []injectors.Injector
	builders   func(cfg *config.Config) []injectors.Builder
	renderEnv  injectors.EnvRenderer
	configPath string
	load       func(path string) (*config.Config, error)
	version    string
	timing     timing
	noReuse    bool // every pass makes a new plan (tests: withoutPlanReuse)
	notify     sdNotifier
	// noFileWatch and noSocket: see options_sim.go.
	noFileWatch bool
	noSocket    bool
}

// WithControlPlane makes the agent use cp instead of a client built from the
// config (and keep using it across reloads).
func WithControlPlane(cp ControlPlane) Option { return func(o *options) { o.cp = cp } }

// WithBuilders makes the agent build its injectors with builders, from the
// config at start and again when a reload changes it (cmd/secrets-agent
// passes builtin.Builders). Without it, or WithInjectors, the agent has no
// injector.
func WithBuilders(builders func(cfg *config.Config) []injectors.Builder) Option {
	return func(o *options) { o.builders = builders }
}

// WithInjectors makes the agent use exactly these injectors, all enabled,
// instead of building them (and keep them across reloads).
func WithInjectors(inj ...injectors.Injector) Option {
	return func(o *options) { o.injectors = inj }
}

// WithEnvRenderer makes EnvFragment render with render
// (builtin.EnvRenderer). Without it EnvFragment fails and EnvFormats is nil.
func WithEnvRenderer(render injectors.EnvRenderer) Option {
	return func(o *options) { o.renderEnv = render }
}

// WithConfigFile names the file the config was loaded from: Run watches it,
// and Reload re-reads it with load (builtin.Load or builtin.LoadUnconfigured,
// which know the injectors' sections; config.Load with none when nil).
func WithConfigFile(path string, load func(string) (*config.Config, error)) Option {
	return func(o *options) { o.configPath, o.load = path, load }
}

// WithVersion sets the version Status reports.
func WithVersion(v string) Option { return func(o *options) { o.version = v } }

// withoutPlanReuse makes every pass make a new plan (tests compare the two).
func withoutPlanReuse() Option { return func(o *options) { o.noReuse = true } }

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

// Agent keeps one environment's secrets applied. Build it with New; it is
// safe for concurrent use.
//
// The lock rule. runMu guards only the pass runner (runner.go) and is never
// held with the others. passMu is held by a pass (full, repair or purge) and
// by a reload for the whole of it, so they never overlap. mu is held only
// for short copies, never across a call to the control plane, an injector or
// the filesystem. watchMu guards only each slot's paths (and installing the
// watch set), so watching never waits for a pass; it may be held while
// taking mu, never the other way. Each field below says which it needs:
//
//   - pass: touched only with passMu held;
//   - mu: touched only with mu held;
//   - pass+mu: written with both held (passMu first), read with either, so
//     a pass reads it freely and the socket's routes and Status never wait
//     for a pass in flight.
type Agent struct {
	log    *zap.Logger
	opts   options
	notify sdNotifier

	runMu        sync.Mutex
	nextRun      *passRun        // runMu: the pass waiting to start
	running      bool            // runMu: a pass is in flight
	runningSince time.Time       // runMu
	passParent   context.Context // runMu: the passes' parent context
	lastSync     time.Time       // runMu: when the last pass only syncs asked for started
	syncQuiet    int             // runMu: such passes in a row that found the spec unchanged

	passMu      sync.Mutex
	cache       map[string]cachedValue // pass: secret id -> last fetched value
	lastPlan    *plan                  // pass: the last full pass's rows, for repairs
	lastChanged map[string]change      // pass: secret id -> when and how its output last changed
	proxy       *proxy.Service         // the credential proxy (safe for concurrent use); nil when proxy.enabled is false

	// watchMu guards each slot's paths, which passes write and watchFiles
	// reads, and serializes installing the watch set. It is not passMu, so
	// that Run can start watching while a pass holds passMu (a `sync` that
	// came in first, waiting on a control plane that does not answer).
	watchMu sync.Mutex

	mu       sync.Mutex
	slots    []*slot        // pass+mu: the injectors, in the order a pass applies them
	cfg      *config.Config // pass+mu
	cp       ControlPlane   // mu
	status   control.Status // mu
	fetchErr error          // mu: the last full pass's spec fetch failure; nil after a success
	waiting  error          // mu: why the control plane cannot be reached yet (waiting.go); nil when it can
	tokenErr error          // mu: the last failure to re-read the token file; nil after a success
	watching func([]string) // mu: set by Run: tells the path watcher what to watch

	dirty   map[string]bool // mu: managed paths changed on disk since the last repair pass took them
	watched map[string]bool // watchMu: the managed paths the path watcher was last told to watch
	// watchedOwn: watchMu: the config and token file it was told to watch with them.
	watchedOwn [2]string

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
// agent waits for them (waiting.go). An injector that cannot be built is
// reported in Status and its secrets fail, but the others work.
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
		lastChanged: map[string]change{},
		dirty:       map[string]bool{},
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
	a.slots = a.buildSlots(cfg, nil)
	if cfg.Proxy.Enabled {
		o := proxy.ServiceOptions{StateDir: cfg.StateDir, Listen: cfg.Proxy.Listen, Log: log.Named("proxy")}
		if cfg.Proxy.SystemTrust && os.Geteuid() == 0 {
			o.Trust = &proxy.SystemTrust
		}
		a.proxy = proxy.NewService(o)
	}
	a.status = control.Status{
		SchemaVersion: 1,
		State:         control.Starting,
		Version:       a.opts.version,
		ControlPlane:  cfg.ControlPlane.URL,
		EnvironmentID: cfg.ControlPlane.EnvironmentID,
		Injectors:     injectorStatuses(a.slots, nil),
		Secrets:       []control.SecretStatus{},
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

// change is when the agent last changed a secret's output, and how.
type change struct {
	at     time.Time
	action injectors.Action
}

// Status returns a copy of the agent's current status. While a pass is
// stuck past the pass timeout it is degraded, saying so, whatever the last
// pass recorded.
func (a *Agent) Status() control.Status { return a.snapshot(a.stuckFor()) }

// snapshot copies the status, taking mu; it is the one place a Status is
// made from the agent's state. A refused config reload makes a ready agent
// degraded (since the refusal) until a good config is loaded; stuck, when
// not 0, is how long the pass in flight has run past the pass timeout; each
// injector's row carries its configured mode (Builder.Mode).
func (a *Agent) snapshot(stuck time.Duration) control.Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.status
	s.Injectors = append([]control.InjectorStatus(nil), s.Injectors...)
	// s.Secrets is shared: record replaces the slice, never its rows.
	if s.ConfigError != "" && s.State != control.Degraded {
		s.State, s.DegradedSince = control.Degraded, s.ConfigErrorTime
	}
	if stuck > 0 {
		if s.State != control.Degraded {
			s.DegradedSince = time.Now().Add(a.opts.timing.passTimeout - stuck)
		}
		s.State, s.LastError = control.Degraded, fmt.Sprintf("a pass has run for %s, past the pass timeout of %s: something it waits on does not answer",
			stuck.Round(time.Second), a.opts.timing.passTimeout)
	}
	for i, sl := range a.slots {
		if i < len(s.Injectors) && s.Injectors[i].Name == sl.name {
			s.Injectors[i].Mode = sl.mode
		}
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
func (a *Agent) Sync(ctx context.Context) control.PassReport { return a.await(ctx, a.scheduleSync()) }

// Applied is closed once a pass has fetched the spec and run every injector
// (individual secrets may still have failed; Status says which).
func (a *Agent) Applied() <-chan struct{} { return a.applied }

// EnvFragment renders the environment-variable secrets last handed to the
// injectors of env mounts in format (WithEnvRenderer). Before the first pass
// it renders an empty set.
func (a *Agent) EnvFragment(format string) ([]byte, error) {
	if a.opts.renderEnv == nil {
		return nil, errors.New("this agent renders no env fragment")
	}
	return a.opts.renderEnv.Render(format, a.handedOfKind(secrets.MountEnv))
}

// EnvFormats names the formats EnvFragment takes, the default first; nil
// without a renderer.
func (a *Agent) EnvFormats() []string {
	if a.opts.renderEnv == nil {
		return nil
	}
	return a.opts.renderEnv.Formats()
}

// RegistryCredential returns the user and password of the registry secret for
// host, when the registry injector serves it (dockercfg in helper or auto
// mode) and such a secret is applied. host may be any of docker's
// spellings (RegistryKey).
func (a *Agent) RegistryCredential(host string) (user, password string, ok bool) {
	return a.Credential(secrets.MountRegistry, host)
}

// RegistryHosts lists the hosts RegistryCredential answers for, sorted; nil
// when none is served (dockercfg in inline mode).
func (a *Agent) RegistryHosts() []string {
	var hosts []string
	for _, s := range a.handedOfKind(secrets.MountRegistry) {
		if _, _, ok := a.RegistryCredential(s.Mount.Target); ok {
			hosts = append(hosts, s.Mount.Target)
		}
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
	var cs injectors.CredentialServer
	var found secrets.Secret
	a.mu.Lock()
	for _, sl := range a.slots {
		if c, serves := sl.inj.(injectors.CredentialServer); serves && sl.kind == k {
			for _, s := range sl.handed {
				if key, _ := s.Mount.Key(); key == want && cs == nil {
					cs, found = c, s
				}
			}
		}
	}
	a.mu.Unlock()
	if cs == nil {
		return "", "", false
	}
	return cs.Credential(found) // outside mu: a call into an injector
}

// handedOfKind returns a new slice of the secrets last handed to the
// injectors of kind k.
func (a *Agent) handedOfKind(k secrets.MountKind) []secrets.Secret {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []secrets.Secret
	for _, s := range a.slots {
		if s.kind == k {
			out = append(out, s.handed...)
		}
	}
	return out
}

var _ control.Backend = (*Agent)(nil)
