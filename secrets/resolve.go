package secrets

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
)

// Winner is a secret that is applied, with the secrets it shadows: those of
// lower scope that target the same mount, highest scope first.
type Winner struct {
	Secret  Secret
	Shadows []Secret
}

// Rejected is a secret that is not applied, and why.
type Rejected struct {
	Secret Secret
	Err    error
}

// Resolution is the outcome of Resolve.
type Resolution struct {
	// Winners are the secrets to apply, sorted by mount kind and target.
	Winners []Winner
	// Rejected are secrets that failed ValidateMeta, repeat an id, or target
	// the same mount as another secret of the same scope.
	Rejected []Rejected
	// Skipped are valid secrets that are never injected: API-only secrets and
	// mount kinds this agent does not know.
	Skipped []Secret
}

// Resolve decides which of the secrets visible to an environment are applied.
//
// Every secret is first checked with ValidateMeta; a bad one is Rejected and
// takes no part, so it neither wins nor shadows. Among valid secrets that
// share a mount (Mount.Key), the highest scope wins and the others are listed
// as its Shadows. Two at the same scope are a conflict the control plane
// should never send: the one with the smaller id wins (so the outcome is
// deterministic) and the other is Rejected naming it. A repeated id is
// Rejected. Values are not looked at; call ValidateValue once they are
// fetched.
//
// Resolve never fails as a whole: given nothing it returns an empty Resolution.
//
// Its cost is one map entry per secret: a mount that only one secret targets
// (nearly all) wins at once, and only mounts several secrets target are
// sorted.
func Resolve(all []Secret) Resolution {
	res := Resolution{Winners: make([]Winner, 0, len(all))}
	seen := make(map[string]struct{}, len(all))
	// winnerAt holds the index in res.Winners of the first secret seen per
	// mount; shared holds every secret of a mount that more than one targets.
	winnerAt := make(map[mountKey]int, len(all))
	var shared map[int][]Secret
	for _, s := range all {
		if err := ValidateMeta(s); err != nil {
			res.Rejected = append(res.Rejected, Rejected{Secret: s, Err: err})
			continue
		}
		if _, dup := seen[s.ID]; dup {
			res.Rejected = append(res.Rejected, Rejected{Secret: s, Err: invalid(s, "id", "repeats the id of another secret")})
			continue
		}
		seen[s.ID] = struct{}{}
		key, ok := s.Mount.key()
		if !ok {
			res.Skipped = append(res.Skipped, s)
			continue
		}
		i, ok := winnerAt[key]
		if !ok {
			winnerAt[key] = len(res.Winners)
			res.Winners = append(res.Winners, Winner{Secret: s})
			continue
		}
		if shared == nil {
			shared = map[int][]Secret{}
		}
		if shared[i] == nil {
			shared[i] = []Secret{res.Winners[i].Secret}
		}
		shared[i] = append(shared[i], s)
	}
	for _, at := range slices.Sorted(maps.Keys(shared)) { // in order: Rejected is the same from one call to the next
		group := shared[at]
		sort.SliceStable(group, func(i, j int) bool {
			if group[i].Scope != group[j].Scope {
				return group[i].Scope > group[j].Scope
			}
			return group[i].ID < group[j].ID
		})
		w := Winner{Secret: group[0]}
		for _, s := range group[1:] {
			if s.Scope == w.Secret.Scope {
				res.Rejected = append(res.Rejected, Rejected{Secret: s, Err: invalid(s, "mount",
					"%s is also the target of secret %s at the same scope (%s)", s.Mount, w.Secret.Ref().ID, s.Scope)})
				continue
			}
			w.Shadows = append(w.Shadows, s)
		}
		res.Winners[at] = w
	}
	if len(res.Winners) == 0 {
		res.Winners = nil // as documented: nothing resolves to the zero Resolution
	}
	slices.SortFunc(res.Winners, func(a, b Winner) int {
		if c := cmp.Compare(a.Secret.Mount.Kind, b.Secret.Mount.Kind); c != 0 {
			return c
		}
		return strings.Compare(a.Secret.Mount.Target, b.Secret.Mount.Target)
	})
	return res
}

// ByKind returns the winners' secrets whose mount is of kind k, in order.
func (r Resolution) ByKind(k MountKind) []Secret {
	var out []Secret
	for _, w := range r.Winners {
		if w.Secret.Mount.Kind == k {
			out = append(out, w.Secret)
		}
	}
	return out
}

// String summarizes the resolution by counts, for logs.
func (r Resolution) String() string {
	return fmt.Sprintf("%d applied, %d rejected, %d skipped", len(r.Winners), len(r.Rejected), len(r.Skipped))
}
