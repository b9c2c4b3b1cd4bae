// Package control is the status socket, the one way in to a running agent:
// the wire types it answers with (Status, PassReport, Credential), Serve,
// which answers its routes from a Backend (the agent) to root and the
// environment's user only, and Client, which the control commands use.
package control

import (
	"context"
	"time"

	"github.com/secrets-agent/secrets-agent/injectors"
	"github.com/secrets-agent/secrets-agent/secrets"
)

// State is the agent's overall condition.
type State string

// The states. Starting lasts until the first pass has been applied (or
// failed); Ready means the last pass succeeded and every secret applied;
// Degraded means the last fetch failed or some secret failed, and says why.
const (
	Starting State = "starting"
	Ready    State = "ready"
	Degraded State = "degraded"
)

// Status is what `secrets-agent status --json` prints and the status socket's
// GET /v1/status returns. Its JSON field names are a stable, documented schema
// (docs/status-schema.md): fields may be added, never renamed or re-typed. It
// never holds a secret value.
type Status struct {
	SchemaVersion int    `json:"schemaVersion"` // 1
	State         State  `json:"state"`
	Version       string `json:"version"`
	ControlPlane  string `json:"controlPlane"` // base URL
	EnvironmentID string `json:"environmentId"`
	// FirstApplied is when the first pass was applied; zero until then.
	FirstApplied  time.Time `json:"firstApplied,omitzero"`
	LastSuccess   time.Time `json:"lastSuccess,omitzero"`
	LastError     string    `json:"lastError,omitempty"`
	LastErrorTime time.Time `json:"lastErrorTime,omitzero"`
	// DegradedSince is when the current degraded spell began.
	DegradedSince  time.Time `json:"degradedSince,omitzero"`
	WatchConnected bool      `json:"watchConnected"`
	Passes         int64     `json:"passes"`
	// LastChange is when the last pass that changed an output on disk ended
	// and LastChangeWrites how many writes it made, so that a pass finding
	// nothing to do (the one the watch stream asks for right after the
	// first, say) does not hide what the agent last did.
	LastChange       time.Time `json:"lastChange,omitzero"`
	LastChangeWrites int       `json:"lastChangeWrites,omitempty"`
	// ConfigError is why the last config reload was refused, naming the key
	// and line; the previous configuration stays in force. It is cleared when
	// a good config is loaded; while it is set, State is Degraded.
	ConfigError     string           `json:"configError,omitempty"`
	ConfigErrorTime time.Time        `json:"configErrorTime,omitzero"`
	Injectors       []InjectorStatus `json:"injectors"`
	Secrets         []SecretStatus   `json:"secrets"`
}

// InjectorStatus counts one injector's outcomes in the last pass.
type InjectorStatus struct {
	Name    string `json:"name"`
	Enabled bool   `json:"enabled"`
	Applied int    `json:"applied"` // outcomes that are not failures
	Failed  int    `json:"failed"`
	Writes  int    `json:"writes"` // in the last pass
	Error   string `json:"error,omitempty"`
	// Mode is the docker injector's configured mode (inline, helper or
	// auto); empty for the other injectors.
	Mode string `json:"mode,omitempty"`
}

// SecretStatus is one row of the secrets table: a winner, a rejected secret or
// a skipped one.
type SecretStatus struct {
	ID          string           `json:"id"`
	Name        string           `json:"name"`
	Scope       string           `json:"scope"`               // user | service_account | project | organization | runner | unspecified (ranks lowest)
	Source      string           `json:"source,omitempty"`    // where the control plane says it comes from ("control-plane", "runner")
	SourceRef   string           `json:"sourceRef,omitempty"` // its reference in that source (a secret id)
	Mount       string           `json:"mount"`               // kind: env | file | registry | git_credential | api_only | none
	Target      string           `json:"target"`              // variable, path or host
	Outcome     Outcome          `json:"outcome"`
	Note        string           `json:"note,omitempty"`
	Error       string           `json:"error,omitempty"`
	LastChanged time.Time        `json:"lastChanged,omitzero"`
	LastAction  injectors.Action `json:"lastAction,omitempty"` // what the agent did at LastChanged: created, updated or repaired
	Shadows     []ShadowedSecret `json:"shadows,omitempty"`
}

// Outcome is what happened to a secret in the last pass: the Action its
// injector reports (injectors.Created, ...), or one the agent decides
// before any injector sees the secret.
type Outcome string

// The outcomes the agent decides itself.
const (
	// Rejected: the secret is invalid, or a conflict made it lose.
	Rejected Outcome = "rejected"
	// Skipped: nothing injects it (API only, a mount kind with no enabled
	// injector); the row's Note says why.
	Skipped Outcome = "skipped"
	// Failed: as injectors.Failed, also when the agent fails the secret
	// before its injector sees it (its value could not be had).
	Failed Outcome = Outcome(injectors.Failed)
)

// Applied reports whether o is an outcome of a secret whose output is in
// place: anything but Failed, Rejected and Skipped.
func (o Outcome) Applied() bool { return o != Failed && o != Rejected && o != Skipped }

// ShadowedSecret is a secret a winner hides.
type ShadowedSecret struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Scope string `json:"scope"`
}

// PassReport is the outcome of one reconcile pass, as `secrets-agent sync`
// and `run --once` print it.
type PassReport struct {
	Started  time.Time                   `json:"started"`
	Duration time.Duration               `json:"durationNs"`
	Error    string                      `json:"error,omitempty"` // a failure of the pass as a whole (fetch failed)
	Results  map[string]injectors.Result `json:"-"`
	Status   Status                      `json:"status"`
}

// OK reports whether the pass fetched and every secret applied.
func (r PassReport) OK() bool { return r.Error == "" && r.Status.State == Ready }

// Backend is what the status socket serves. *agent.Agent implements it.
type Backend interface {
	Status() Status
	// Sync returns the report of a full pass that started after the call
	// (joining one waiting to start, never the one in flight), or an error
	// report when ctx ends first.
	Sync(ctx context.Context) PassReport
	// Applied is closed once the first pass has been applied.
	Applied() <-chan struct{}
	// EnvFragment renders the current environment-variable secrets in one
	// of EnvFormats.
	EnvFragment(format string) ([]byte, error)
	// EnvFormats names the formats EnvFragment takes, the default first.
	EnvFormats() []string
	// RegistryCredential returns the user and password for a registry host
	// the agent serves in helper mode; ok is false for a host it does not.
	RegistryCredential(host string) (user, password string, ok bool)
	// RegistryHosts lists the hosts RegistryCredential answers for.
	RegistryHosts() []string
	// Credential returns the user and password for host from the injector
	// of mount kind k that serves credentials (git's); ok is false for a
	// host it does not serve.
	Credential(k secrets.MountKind, host string) (user, password string, ok bool)
}
