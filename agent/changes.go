package agent

import (
	"bytes"
	"context"
	"slices"

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
// When the last plan can be brought up to date (replan.go), each slot is
// told exactly which of its secrets changed and which mounts it no longer
// holds (slot.exact, slot.changed, slot.dropped), so that (2) and (3) look
// at those and at the ones that failed last time, not at the whole set.
// Status rows are filled in place (fill): only the rows an injector
// reported on, or reported on last time, and rows new in the plan are
// looked at.
//
// Drift stays event-driven: a file someone else changes is reported by the
// path watcher (watch.go) and a repair pass hands that path, as touched, to
// the injector that manages it.

// touched returns the targets of want whose output may differ from what it
// holds. With sl.exact (a plan brought up to date), that is the targets of
// sl.changed and sl.dropped and of the secrets whose last outcome failed.
// Otherwise it compares the whole set: a secret new at its mount key or
// different from the one its output holds (sameOutput), one whose last
// outcome failed or is unknown, an output no longer desired. dirty is nil
// in a full pass; in a repair pass it is not, want is the set last handed,
// and only dirty paths and failures are looked for. all is true when the
// injector needs a whole Apply (step (1)).
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
	if dirty != nil || sl.exact {
		for _, t := range sl.failing {
			add(t)
		}
	}
	switch {
	case dirty != nil:
		// A repair pass (the only caller with dirty paths) hands the set
		// last handed: only the paths reported changed and the failures
		// are new work.
		for _, s := range want {
			if dirty[s.Mount.Target] {
				add(s.Mount.Target)
			}
		}
		for _, p := range sl.paths {
			if dirty[p] {
				add(p)
			}
		}
	case sl.exact:
		for _, m := range sl.dropped {
			add(m.Target)
		}
		for _, s := range sl.changed {
			add(s.Mount.Target)
		}
	default:
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

// How applyChanged called an injector.
type call int

const (
	notCalled   call = iota // its outputs hold what they held
	changedOnly             // handed sl.changed and sl.dropped alone (a plan brought up to date, nothing failing)
	calledOther             // any other call
)

// applyChanged is steps (1) to (3) for sl and want. It returns what the
// injector did (the outcomes it reported) and how it was called, and
// records the outcomes (note).
func (sl *slot) applyChanged(ctx context.Context, want []secrets.Secret, dirty map[string]bool) (did injectors.Result, how call) {
	targets, whole := sl.touched(want, dirty)
	inc, incremental := sl.inj.(injectors.Incremental)
	how = calledOther
	switch {
	case whole || (len(targets) > 0 && !incremental):
		did = sl.inj.Apply(ctx, want)
		whole = true
	case len(targets) == 0:
		if dirty == nil && !sl.exact {
			sl.note(want, nil, true) // secrets that left the set leave its records
		}
		return injectors.Result{Paths: sl.paths}, notCalled
	default:
		if dirty == nil && sl.exact && len(sl.failing) == 0 {
			how = changedOnly
		}
		did = inc.ApplyOnly(ctx, want, targets)
	}
	sl.synced = (sl.synced || whole) && did.Err == nil && !failedRemoval(want, did)
	sl.note(want, did.Outcomes, whole || (dirty == nil && !sl.exact))
	return did, how
}

// note records fresh outcomes as each secret's last one (slot.outcomes)
// and keeps slot.failing, the secrets whose last outcome failed. With
// prune (want is a whole new set), the records of secrets no longer in
// want are dropped.
func (sl *slot) note(want []secrets.Secret, fresh []injectors.Outcome, prune bool) {
	if sl.outcomes == nil || prune {
		keep := make(map[string]injectors.Outcome, len(want))
		for _, s := range want {
			if o, ok := sl.outcomes[s.ID]; ok {
				keep[s.ID] = o
			}
		}
		sl.outcomes = keep
		failing := map[string]string{}
		for id, t := range sl.failing {
			if _, ok := keep[id]; ok {
				failing[id] = t
			}
		}
		sl.failing = failing
	}
	var targetOf map[string]string // built at the first failure: failures are rare
	for _, o := range fresh {
		if o.Action == injectors.Removed || o.Action == injectors.Restored {
			continue
		}
		sl.outcomes[o.Secret.ID] = o
		if o.Action != injectors.Failed {
			delete(sl.failing, o.Secret.ID)
			continue
		}
		if targetOf == nil {
			targetOf = make(map[string]string, len(want))
			for _, s := range want {
				targetOf[s.ID] = s.Mount.Target
			}
		}
		if t, ok := targetOf[o.Secret.ID]; ok {
			sl.failing[o.Secret.ID] = t
		}
	}
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
