// Package injectors defines how the agent hands resolved secrets to the parts
// that put them on disk. Each injector lives in a sub-package and imports this
// one; the agent depends only on the Injector interface.
package injectors

import (
	"context"

	"github.com/secrets-agent/secrets-agent/secrets"
)

// Injector makes one kind of output on disk match the desired secrets.
//
// Apply is given every winning secret of the mount kind the injector serves
// (values fetched and validated) and makes its outputs match exactly that set:
// it creates and updates what is desired and removes what it wrote earlier for
// secrets that are no longer desired. It owns only what it wrote, and records
// that in a manifest under the agent's state dir, so that a restart after a
// crash converges. One bad secret never stops the others: its failure is in
// its Outcome. Apply with nothing changed performs no write.
//
// Apply is called from one goroutine at a time.
type Injector interface {
	Name() string
	// Kind is the mount kind whose secrets this injector is given.
	Kind() secrets.MountKind
	Apply(ctx context.Context, desired []secrets.Secret) Result
}

// Incremental is implemented by an injector with one output per secret that
// can bring some of its outputs in line without looking at the others, so
// that a change of one secret among thousands costs one output's work. The
// agent calls Apply once per injector it builds (and again after a failure
// as a whole), and ApplyOnly after that, for what it knows may differ.
type Incremental interface {
	// ApplyOnly is Apply for a desired set that, the caller vouches, differs
	// from what the injector's outputs held after its last Apply or
	// ApplyOnly only at the targets in touched: secrets new or changed there,
	// outputs no longer desired there, or outputs changed on disk by someone
	// else. It examines and writes only those targets (removing the ones no
	// longer desired), and its Outcomes cover only them; Paths is still
	// every path it manages. Before the injector's first Apply it is Apply.
	ApplyOnly(ctx context.Context, desired []secrets.Secret, touched []string) Result
}

// CredentialServer is an injector whose credentials a program asks the
// agent for over the status socket (git's credential helper) instead of
// reading them from disk. The agent calls Credential with a secret it last
// handed to Apply, from any goroutine.
type CredentialServer interface {
	// Credential returns the user and password s grants, or ok false when
	// the injector does not serve s (e.g. its value is unusable).
	Credential(s secrets.Secret) (user, password string, ok bool)
}

// EnvRenderer renders environment-variable secrets as the injector of env
// mounts writes them (envprofile's fragments), for the agent's env route.
type EnvRenderer interface {
	// Formats names every format Render takes; the first is the default.
	Formats() []string
	// Render renders env in format; an unknown format is an error.
	Render(format string, env []secrets.Secret) ([]byte, error)
}

// Action is what Apply did for one secret.
type Action string

// The actions.
const (
	Unchanged Action = "unchanged" // already as desired; nothing written
	Created   Action = "created"
	Updated   Action = "updated"  // content, mode or owner changed
	Repaired  Action = "repaired" // put back after someone else changed or removed it
	Removed   Action = "removed"  // the secret went away and so did its output
	Restored  Action = "restored" // the secret went away and the file it had kept aside is back
	Failed    Action = "failed"
)

// Outcome is what happened to one secret. Err never holds a value.
type Outcome struct {
	Secret secrets.Ref
	// Target is where the output is: a path, a registry host or a variable.
	Target string
	Action Action
	// Note says something the user should know although it is no failure,
	// e.g. "rewritten in place: target is a mount point".
	Note string
	Err  error
}

// Result is the outcome of one Apply.
type Result struct {
	// Outcomes has one entry per desired secret and one per removed output.
	Outcomes []Outcome
	// Writes counts the files created, rewritten, renamed, chmod'ed, chowned
	// or removed. It is 0 when nothing changed.
	Writes int
	// Paths are the files this injector now manages, for drift watching.
	Paths []string
	// Err is a failure of the injector as a whole (e.g. its directory cannot
	// be opened); the outcomes still say what happened to each secret.
	Err error
}

// Failed returns the outcomes that failed.
func (r Result) Failed() []Outcome {
	var out []Outcome
	for _, o := range r.Outcomes {
		if o.Action == Failed {
			out = append(out, o)
		}
	}
	return out
}

// Owner is the user whose outputs these are: every file an injector creates
// is owned by UID and GID, and "~" means Home. UID or GID -1 means "do not
// chown" (the agent runs as that user).
type Owner struct {
	UID  int
	GID  int
	Home string
}

// Fail returns a Failed outcome for s with err.
func Fail(s secrets.Secret, target string, err error) Outcome {
	return Outcome{Secret: s.Ref(), Target: target, Action: Failed, Err: err}
}

// Reserved is a path that the agent itself or one of its injectors writes:
// no file secret may target it, anything below it, or a directory path that
// holds it.
type Reserved struct {
	// Path is absolute and clean.
	Path string
	// What names whose path it is, for the refusal: "the agent's token file".
	What string
}

// Reserver is implemented by an injector whose outputs are at paths fixed by
// its configuration (not by its secrets), so that no other injector may
// write there: two writers of one file undo each other's work for ever.
type Reserver interface {
	// Reserved returns the paths of the injector's outputs.
	Reserved() []Reserved
}

// Avoider is implemented by an injector whose targets come from the secrets
// themselves. The agent calls Avoid once, before the first Apply, with every
// reserved path (its own files and every Reserver's); Apply then fails each
// secret that targets one, with an error naming it.
type Avoider interface {
	Avoid(reserved []Reserved)
}

// Builder is one injector the agent may run, as its configuration describes
// it. Whoever starts the agent (cmd/secrets-agent, through the builtin
// package) makes the list from the config and hands it to the agent, which
// asks for it again when a reload changes the config: the agent knows no
// concrete injector.
type Builder struct {
	Name string
	Kind secrets.MountKind
	// Enabled is false when the configuration turns the injector off: its
	// secrets are skipped, saying so.
	Enabled bool
	// Build makes the injector, its outputs owned by owner. It is called
	// only when Enabled.
	Build func(owner Owner) (Injector, error)
	// Reserved are paths of this injector's that no file secret may target
	// whether or not it is enabled (what install-hooks writes for it).
	Reserved []Reserved
	// Mode, when set, is the configured mode the injector's status row
	// shows (dockercfg's inline, helper or auto).
	Mode string
}

// Site is what an injector's config section needs of the agent's config,
// beyond its own keys, to make its Builder (injectors/builtin).
type Site struct {
	// StateDir is the agent's state dir, where manifests are kept.
	StateDir string
	// Home is the home of the user the outputs are for.
	Home string
	// Socket is the agent's status socket, which credential helpers ask.
	Socket string
}
