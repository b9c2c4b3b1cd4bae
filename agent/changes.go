package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"slices"

	"github.com/secrets-agent/secrets-agent/controlplane"
	"github.com/secrets-agent/secrets-agent/injectors"
	"github.com/secrets-agent/secrets-agent/secrets"
)

// A pass costs what changed. The agent remembers, per injector, the secret
// each output holds (slot.applied) and each secret's last outcome
// (slot.outcomes); from these it works out which targets a new desired set
// touches (slot.touched), and:
//
//	(1) an injector that has not had a whole Apply that succeeded since it
//	    was built (slot.synced false) gets one: the first pass, after a
//	    reload, after it failed as a whole or failed to remove an output;
//	(2) an injector whose targets are all untouched is not called at all:
//	    no render, no read, no stat; its secrets keep their last outcomes,
//	    as Unchanged;
//	(3) otherwise an injectors.Incremental injector is handed the touched
//	    targets alone (ApplyOnly), any other gets the whole set (Apply).
//
// Drift stays event-driven: a file someone else changes is reported by the
// path watcher (watch.go) and a repair pass hands that path, as touched, to
// the injector that manages it.

// touched returns the targets of want whose output may differ from what it
// holds: a secret new at its mount key or different from the one its output
// holds (sameOutput), one whose last outcome failed or is unknown, an
// output no longer desired, and a managed path in dirty (changed on disk).
// dirty is nil in a full pass; in a repair pass it is not, and want is the
// set last handed, so only dirty paths and failures are looked for. all is
// true when the injector needs a whole Apply (step (1)).
func (sl *slot) touched(want []secrets.Secret, dirty map[string]bool) (targets []string, all bool) {
	if !sl.synced {
		return nil, true
	}
	added := map[string]bool{}
	add := func(t string) {
		if !added[t] {
			added[t] = true
			targets = append(targets, t)
		}
	}
	if dirty != nil {
		// A repair pass (the only caller with dirty paths) hands the set
		// last handed: only the paths reported changed and the failures
		// are new work.
		for _, s := range want {
			if o := sl.outcomes[s.ID]; dirty[s.Mount.Target] || o.Action == injectors.Failed || o.Action == "" {
				add(s.Mount.Target)
			}
		}
		for _, p := range sl.paths {
			if dirty[p] {
				add(p)
			}
		}
		return targets, false
	}
	seen := make(map[string]bool, len(want))
	for _, s := range want {
		key, _ := s.Mount.Key()
		seen[key] = true
		prev, ok := sl.applied[key]
		o, known := sl.outcomes[s.ID]
		if !ok || !sameOutput(prev, s) || !known || o.Action == injectors.Failed {
			add(s.Mount.Target)
		}
	}
	for key, prev := range sl.applied {
		if !seen[key] {
			add(prev.Mount.Target)
		}
	}
	return targets, false
}

// sameOutput reports whether an output that holds a holds b as well: the
// same secret, session, mount and value, and the same name, scope and
// source (which manifests and status show).
func sameOutput(a, b secrets.Secret) bool {
	return a.ID == b.ID && a.Session == b.Session && a.Session != "" && a.Mount == b.Mount && a.Name == b.Name &&
		a.Scope == b.Scope && a.Source == b.Source && a.SourceRef == b.SourceRef && bytes.Equal(a.Value, b.Value)
}

// applyChanged is steps (1) to (3) for sl and want. It returns what the
// injector did (for logging), the outcome of every secret of want (for
// status: those it did not look at keep their last outcome, as Unchanged),
// and whether the injector was called at all.
func (sl *slot) applyChanged(ctx context.Context, want []secrets.Secret, dirty map[string]bool) (did, all injectors.Result, called bool) {
	targets, whole := sl.touched(want, dirty)
	inc, incremental := sl.inj.(injectors.Incremental)
	switch {
	case whole || (len(targets) > 0 && !incremental):
		did = sl.inj.Apply(ctx, want)
		whole = true
	case len(targets) == 0:
		return injectors.Result{Paths: sl.paths}, injectors.Result{Outcomes: sl.merged(want, nil), Paths: sl.paths}, false
	default:
		did = inc.ApplyOnly(ctx, want, targets)
	}
	all = did
	if !whole {
		all.Outcomes = sl.merged(want, did.Outcomes)
	}
	sl.synced = (sl.synced || whole) && did.Err == nil && !failedRemoval(want, did)
	sl.outcomes = make(map[string]injectors.Outcome, len(want))
	for _, o := range all.Outcomes {
		if o.Action != injectors.Removed && o.Action != injectors.Restored {
			sl.outcomes[o.Secret.ID] = o
		}
	}
	return did, all, true
}

// merged is the outcome of every secret of want: the one in fresh when the
// injector just reported it, else the last one, as Unchanged.
func (sl *slot) merged(want []secrets.Secret, fresh []injectors.Outcome) []injectors.Outcome {
	now := make(map[string]bool, len(fresh))
	for _, o := range fresh {
		now[o.Secret.ID] = true
	}
	out := make([]injectors.Outcome, 0, len(want)+len(fresh))
	for _, s := range want {
		if now[s.ID] {
			continue
		}
		o := sl.outcomes[s.ID]
		o.Action, o.Err = injectors.Unchanged, nil
		out = append(out, o)
	}
	return append(out, fresh...)
}

// failedRemoval reports whether r failed for a secret not in want: an
// output the injector could not remove, which only a whole Apply retries.
func failedRemoval(want []secrets.Secret, r injectors.Result) bool {
	for _, o := range r.Failed() {
		if !slices.ContainsFunc(want, func(s secrets.Secret) bool { return s.ID == o.Secret.ID }) {
			return true
		}
	}
	return false
}

// specFingerprint is a SHA-256 over every field of every secret of spec,
// each length-prefixed, without encoding the spec (which cost a pass as
// much as decoding it). A field added to controlplane.EnvironmentSpecSecret
// must be added here (TestSpecFingerprintCoversEveryField).
func specFingerprint(spec controlplane.EnvironmentSpec) [sha256.Size]byte {
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	str := func(s string) {
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(s)))])
		h.Write([]byte(s))
	}
	ptr := func(p *string) {
		if p == nil {
			h.Write([]byte{0})
			return
		}
		h.Write([]byte{1})
		str(*p)
	}
	for _, w := range spec.Secrets {
		str(w.ID)
		str(w.Name)
		str(w.Scope)
		str(w.Session)
		str(w.Source)
		str(w.SourceRef)
		ptr(w.EnvironmentVariable)
		ptr(w.FilePath)
		ptr(w.ContainerRegistryBasicAuthHost)
		ptr(w.GitCredentialHost)
		if w.APIOnly {
			h.Write([]byte{1})
		} else {
			h.Write([]byte{0})
		}
		if p := w.CredentialProxy; p == nil {
			h.Write([]byte{0})
		} else {
			h.Write([]byte{1})
			str(p.Header)
			h.Write(n[:binary.PutUvarint(n[:], uint64(len(p.TargetHosts)))])
			for _, t := range p.TargetHosts {
				str(t)
			}
		}
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}
