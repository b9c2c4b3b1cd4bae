package agent

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/secrets-agent/secrets-agent/control"
	"github.com/secrets-agent/secrets-agent/controlplane"
	"github.com/secrets-agent/secrets-agent/secrets"
)

// A pass brings the last plan up to date rather than make a new one when it
// can (replan): a new plan converts, resolves, and makes a row for every
// secret of the spec, which with thousands of secrets costs more than the
// rest of the pass. What the last plan decided depends on no session, and
// on nothing outside the mounts a change reaches, so:
//
//   - a spec that differs in sessions alone (a rotated value: the usual
//     change) keeps the whole plan; only the winners whose session moved
//     are fetched and put in their slot's set;
//   - a spec in which a few entries were replaced (secrets added, deleted,
//     moved to another mount or scope; the others may be listed in another
//     order) has the mounts those entries had or have resolved again, from
//     every secret that targets them: their rows are replaced, their
//     winners leave and join their slots' sets, and the rest stands. Rows
//     and sets are kept in an order of their own (by mount), so the order
//     of the spec does not matter.
//
// Each slot is then told exactly which of its secrets changed and which
// targets it no longer holds (slot.exact, slot.changed, slot.dropped).
// Anything else makes a new plan: a last plan that is not clean
// (plan.reusable), other injectors (a reload), more than maxPatch entries
// replaced, an entry that does not convert, a repeated id, a secret
// the credential proxy serves (prepareProxied changes the sets), and a value
// that cannot be had or is invalid (the new plan then keeps or holds what it
// must: keepOrHold).

// maxPatch is how many entries (removed plus added) a plan is patched for;
// past it, a new plan costs about as much.
const maxPatch = 64

// specDiff is how a spec differs from the one the last plan was made from:
// the entries of prev at old were replaced by those of next at new; every
// other entry of next is an entry of prev but for its session, and moved
// lists the indexes in next of those whose session differs. tooMany: more
// than maxPatch entries were replaced (old and new are then not filled).
type specDiff struct {
	old, new, moved []int
	tooMany         bool
}

// same reports whether the spec did not change at all.
func (d specDiff) same() bool {
	return len(d.old) == 0 && len(d.new) == 0 && len(d.moved) == 0 && !d.tooMany
}

// diffSpecs compares next with prev: first from both ends, which finds the
// one window where they differ (an entry edited, added or removed) at a cost
// of a few nanoseconds per entry, since the decoder reuses an entry that did
// not change (controlplane) and its strings compare by pointer. A window
// larger than maxPatch is matched by id, so that a control plane that lists
// the secrets in another order costs a map, not a new plan.
func diffSpecs(prev, next []controlplane.EnvironmentSpecSecret) specDiff {
	lo := 0
	for lo < len(prev) && lo < len(next) && sameEntry(prev[lo], next[lo]) {
		lo++
	}
	hp, hn := len(prev), len(next)
	for hp > lo && hn > lo && sameEntry(prev[hp-1], next[hn-1]) {
		hp, hn = hp-1, hn-1
	}
	var d specDiff
	for i := range lo {
		if prev[i].Session != next[i].Session {
			d.moved = append(d.moved, i)
		}
	}
	for i := hn; i < len(next); i++ {
		if prev[i-hn+hp].Session != next[i].Session {
			d.moved = append(d.moved, i)
		}
	}
	if hp-lo+hn-lo <= maxPatch {
		for j := lo; j < hp; j++ {
			d.old = append(d.old, j)
		}
		for i := lo; i < hn; i++ {
			d.new = append(d.new, i)
		}
		return d
	}
	d.tooMany = !d.matchByID(prev, next, lo, hp, hn)
	return d
}

// matchByID fills in d for the windows prev[lo:hp] and next[lo:hn] by
// matching their entries by id. It reports false when more than maxPatch
// entries differ or an id repeats in prev's window.
func (d *specDiff) matchByID(prev, next []controlplane.EnvironmentSpecSecret, lo, hp, hn int) bool {
	at := make(map[string]int, hp-lo)
	for j := lo; j < hp; j++ {
		if _, dup := at[prev[j].ID]; dup {
			return false
		}
		at[prev[j].ID] = j
	}
	matched := make([]bool, hp-lo)
	for i := lo; i < hn; i++ {
		j, ok := at[next[i].ID]
		if ok && !matched[j-lo] && sameEntry(prev[j], next[i]) {
			matched[j-lo] = true
			if prev[j].Session != next[i].Session {
				d.moved = append(d.moved, i)
			}
			continue
		}
		if d.new = append(d.new, i); len(d.new) > maxPatch {
			return false
		}
	}
	for j, m := range matched {
		if !m {
			d.old = append(d.old, lo+j)
		}
	}
	return len(d.old)+len(d.new) <= maxPatch
}

// sameEntry reports whether a and b are the same spec secret but for the
// session. A field added to controlplane.EnvironmentSpecSecret must be added
// here (TestSameEntryCoversEveryField).
func sameEntry(a, b controlplane.EnvironmentSpecSecret) bool {
	return a.ID == b.ID && a.Name == b.Name && a.Scope == b.Scope && a.Source == b.Source && a.SourceRef == b.SourceRef &&
		sameString(a.EnvironmentVariable, b.EnvironmentVariable) && sameString(a.FilePath, b.FilePath) &&
		sameString(a.ContainerRegistryBasicAuthHost, b.ContainerRegistryBasicAuthHost) &&
		sameString(a.GitCredentialHost, b.GitCredentialHost) && a.APIOnly == b.APIOnly && sameProxy(a.CredentialProxy, b.CredentialProxy)
}

func sameString(a, b *string) bool { return a == b || (a != nil && b != nil && *a == *b) }

func sameProxy(a, b *controlplane.CredentialProxy) bool {
	return a == b || (a != nil && b != nil && a.Header == b.Header && slices.Equal(a.TargetHosts, b.TargetHosts))
}

// replan returns the last plan brought up to date with env (see above), or
// why a new one must be made. It changes nothing until it knows it can: a
// refusal leaves the last plan and the slots as they were (the value cache
// may have gained values).
func (a *Agent) replan(ctx context.Context, cp ControlPlane, env *controlplane.Environment, d specDiff) (*plan, string) {
	p := a.lastPlan
	next := env.Spec.Secrets
	switch {
	case p == nil:
		return nil, "first pass"
	case !p.reusable:
		return nil, "the last plan is not clean (a value not had, an injector held back or an id repeated)"
	case !slices.Equal(p.slots, a.slots):
		return nil, "the injectors were built again"
	case a.opts.noReuse:
		return nil, "plan reuse is off"
	case a.proxy != nil && p.proxied:
		return nil, "a secret is served by the credential proxy" // it changes the sets: see prepareProxied
	case d.tooMany:
		return nil, fmt.Sprintf("more than %d spec entries replaced", maxPatch)
	}
	ch, ok := p.affected(next, d)
	if !ok {
		return nil, "a replaced entry does not convert or repeats an id"
	}
	tmp := &plan{rowOf: map[string]*control.SecretStatus{}}
	todo := a.sortResolved(tmp, secrets.Resolve(ch.members))
	for _, i := range d.moved {
		if t, ok := p.pending[next[i].ID]; ok && !ch.regrouped[next[i].ID] {
			t.s.Session = next[i].Session
			todo = append(todo, t)
		}
	}
	got := a.values(ctx, cp, todo)
	for i := range todo {
		todo[i].s.Value = got[i].value
		if got[i].err != nil || secrets.ValidateValue(todo[i].s, secrets.Limits{}) != nil {
			return nil, "a value could not be had or is invalid"
		}
		if a.proxy != nil && todo[i].s.CredentialProxy != nil {
			return nil, "a secret is served by the credential proxy"
		}
	}
	p.commit(ch, tmp.rows, todo)
	for _, id := range ch.removed {
		delete(a.cache, id)
		delete(a.lastChanged, id)
	}
	p.spec = next
	return p, ""
}

// reach is what a patch reaches: the secrets resolved again (members:
// every secret of next that targets a mount the replaced entries had or
// have, and the replacing entries), their ids (regrouped), the ids of the
// rows they replace (old: those and the replaced entries'), and the ids no
// longer in the spec (removed).
type reach struct {
	members   []secrets.Secret
	regrouped map[string]bool
	old       []string
	removed   []string
}

// affected works out what replacing the entries of the last spec at d.old
// by those of next at d.new reaches. false when one of them does not convert
// or an id would repeat.
func (p *plan) affected(next []controlplane.EnvironmentSpecSecret, d specDiff) (reach, bool) {
	ch := reach{regrouped: map[string]bool{}}
	if len(d.old) == 0 && len(d.new) == 0 {
		return ch, true
	}
	mounts := map[secrets.Mount]bool{}
	added := map[string]bool{}
	isNew := make(map[int]bool, len(d.new))
	for k, i := range slices.Concat(d.old, d.new) {
		var w controlplane.EnvironmentSpecSecret
		if k < len(d.old) {
			w = p.spec[i]
		} else {
			w = next[i]
		}
		s, err := w.Secret()
		if err != nil {
			return ch, false
		}
		if m, ok := s.Mount.Canonical(); ok {
			mounts[m] = true
		}
		switch {
		case k < len(d.old):
			ch.old = append(ch.old, w.ID)
		case added[w.ID]:
			return ch, false
		default:
			added[w.ID], isNew[i] = true, true
			ch.regrouped[w.ID] = true
			ch.members = append(ch.members, s)
		}
	}
	for i, w := range next {
		if !isNew[i] && added[w.ID] {
			return ch, false // the id would repeat
		}
		m, n := w.Mount()
		if isNew[i] || n != 1 {
			continue
		}
		if c, ok := m.Canonical(); ok && mounts[c] {
			s, err := w.Secret()
			if err != nil {
				continue
			}
			ch.members = append(ch.members, s)
			ch.regrouped[w.ID] = true
			ch.old = append(ch.old, w.ID)
		}
	}
	for _, id := range ch.old {
		if !ch.regrouped[id] {
			ch.removed = append(ch.removed, id)
		}
	}
	return ch, true
}

// commit puts a patch into p and the slots: the rows of ch.old leave and
// rows join (in order: rowOrder), the winners of ch.old leave their slots'
// sets and those of todo join (or take their place), and every slot learns
// what changed. It cannot fail.
func (p *plan) commit(ch reach, rows []*control.SecretStatus, todo []pending) {
	for _, sl := range p.slots {
		sl.exact, sl.changed, sl.dropped = true, nil, nil
	}
	copied := map[*slot]bool{}
	set := func(sl *slot) []secrets.Secret {
		if !copied[sl] {
			sl.desired, copied[sl] = slices.Clone(sl.desired), true
		}
		return sl.desired
	}
	gone := map[*control.SecretStatus]bool{}
	left := map[string]*slot{} // secret id -> the slot it was delivered to
	for _, id := range ch.old {
		if r := p.rowByID[id]; r != nil {
			gone[r] = true
		}
		delete(p.rowByID, id)
		delete(p.rowOf, id)
		delete(p.open, id)
		if t, ok := p.pending[id]; ok {
			if i, found := desiredIndex(t.slot.desired, t.s.Mount.Target); found {
				t.slot.desired = slices.Delete(set(t.slot), i, i+1)
			}
			t.slot.dropped = append(t.slot.dropped, t.s.Mount)
			left[id] = t.slot
			delete(p.pending, id)
		}
	}
	won := map[*slot]map[string]bool{} // mount keys won again, per slot
	for _, t := range todo {
		i, found := desiredIndex(t.slot.desired, t.s.Mount.Target)
		if found {
			set(t.slot)[i] = t.s
		} else {
			t.slot.desired = slices.Insert(set(t.slot), i, t.s)
		}
		key, _ := t.s.Mount.Key()
		if won[t.slot] == nil {
			won[t.slot] = map[string]bool{}
		}
		won[t.slot][key] = true
		if prev, ok := t.slot.applied[key]; !ok || !sameOutput(prev, t.s) || t.slot.outcomes[t.s.ID].Action == "" {
			t.slot.changed = append(t.slot.changed, t.s) // else its output holds it already, as touched would find
		}
		p.pending[t.s.ID] = t
		p.rowOf[t.s.ID] = t.row
		p.open[t.s.ID] = openRow{row: t.row, slot: t.slot}
	}
	for _, sl := range p.slots {
		sl.dropped = slices.DeleteFunc(sl.dropped, func(m secrets.Mount) bool { key, _ := m.Key(); return won[sl][key] })
	}
	for id, sl := range left {
		if t, ok := p.pending[id]; !ok || t.slot != sl {
			// No longer its secret: its counts (injectorStatuses) and
			// retries (touched) must not include it.
			delete(sl.outcomes, id)
			delete(sl.failing, id)
		}
	}
	if len(ch.old) > 0 {
		p.rows = slices.DeleteFunc(p.rows, func(r *control.SecretStatus) bool { return gone[r] })
	}
	for _, r := range rows {
		p.rowByID[r.ID] = r
		i, _ := slices.BinarySearchFunc(p.rows, r, rowOrder)
		p.rows = slices.Insert(p.rows, i, r)
		p.unfilled = append(p.unfilled, r)
	}
}

// desiredIndex finds target in a slot's set, which is in the order of
// secrets.Resolve's winners: by target.
func desiredIndex(set []secrets.Secret, target string) (int, bool) {
	return slices.BinarySearchFunc(set, target, func(s secrets.Secret, t string) int { return strings.Compare(s.Mount.Target, t) })
}

// rowOrder is the order of a plan's rows: by mount kind, target and id.
func rowOrder(a, b *control.SecretStatus) int {
	if c := strings.Compare(a.Mount, b.Mount); c != 0 {
		return c
	}
	if c := strings.Compare(a.Target, b.Target); c != 0 {
		return c
	}
	return strings.Compare(a.ID, b.ID)
}
