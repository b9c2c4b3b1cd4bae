package devserver

import (
	"encoding/json"
	"sync"

	"github.com/secrets-agent/secrets-agent/controlplane"
	"github.com/secrets-agent/secrets-agent/secrets"
)

// A view is what one environment sees between changes: its visible
// secrets as GetEnvironment lists them and what it may read by value.
// Building one reads every visible record from the store and resolves
// precedence over them, so a large environment's view is built once and
// then kept current:
//
//	(1) a change reaches only the views of the environments that see the
//	    changed secret (Store.EnvironmentsSeeing); the others stay;
//	(2) a new value (new session) is written into those views in place:
//	    precedence depends on names, mounts and scopes, not on values, so
//	    their access stays;
//	(3) a secret added or removed drops those views, to be built again on
//	    the next read;
//	(4) every change to an environment bumps its generation, and a view
//	    built from a store read made before the change is not kept.
//
// A view also keeps each secret as GetEnvironment lists it, JSON-encoded,
// so answering GetEnvironment copies bytes instead of encoding the whole
// spec; step (2) encodes only the changed secret again.

// change says how a secret changed, for views.update.
type change int

const (
	secretAdded   change = iota // created
	valueChanged                // a new value and session; nothing else
	secretRemoved               // deleted
)

// access is what an environment may read by value: the secrets that win in
// its resolution and its API-only secrets; and, for a shadowed secret, the
// winner that hides it.
type access struct {
	readable   map[string]bool
	shadowedBy map[string]string
}

// view is one environment's cached view; never modified once published
// (update publishes a new one).
type view struct {
	recs   []Record       // visible secrets, sorted as Server.visible sorts them
	spec   [][]byte       // recs[i] as GetEnvironment lists it (specJSON)
	pos    map[string]int // record id -> index in recs
	access access
}

// views caches a view per environment id.
type views struct {
	mu   sync.Mutex
	byID map[string]*view  // mu
	gens map[string]uint64 // mu: environment id -> changes seen; missing is 0
	// epoch is bumped by dropAll, which does not know which environments
	// changed: a view built across it is not kept either.
	epoch uint64 // mu
}

// view returns env's view, building it from the store when none is cached
// (steps (1) and (4)).
func (s *Server) view(env Environment) (*view, error) {
	vs := &s.views
	vs.mu.Lock()
	v, gen, epoch := vs.byID[env.ID], vs.gens[env.ID], vs.epoch
	vs.mu.Unlock()
	if v != nil {
		return v, nil
	}
	rs, err := s.visible(env)
	if err != nil {
		return nil, err
	}
	v = newView(rs)
	vs.mu.Lock()
	if vs.gens[env.ID] == gen && vs.epoch == epoch {
		if vs.byID == nil {
			vs.byID = map[string]*view{}
		}
		vs.byID[env.ID] = v
	}
	vs.mu.Unlock()
	return v, nil
}

// newView indexes rs and resolves precedence over them.
func newView(rs []Record) *view {
	v := &view{recs: rs, spec: make([][]byte, len(rs)), pos: make(map[string]int, len(rs)),
		access: access{readable: map[string]bool{}, shadowedBy: map[string]string{}}}
	all := make([]secrets.Secret, len(rs))
	for i, rec := range rs {
		v.pos[rec.ID] = i
		v.spec[i] = specJSON(rec)
		all[i] = rec.Secret()
	}
	res := secrets.Resolve(all)
	for _, w := range res.Winners {
		v.access.readable[w.Secret.ID] = true
		for _, sh := range w.Shadows {
			v.access.shadowedBy[sh.ID] = w.Secret.ID
		}
	}
	for _, sk := range res.Skipped {
		if sk.Mount.Kind == secrets.MountAPIOnly {
			v.access.readable[sk.ID] = true
		}
	}
	return v
}

// specJSON encodes rec as an entry of GetEnvironment's spec.secrets, as
// json.Marshal encodes a controlplane.EnvironmentSpecSecret.
func specJSON(rec Record) []byte {
	sec := rec.Secret()
	sec.Source, sec.SourceRef = SourceControlPlane, rec.ID
	b, err := json.Marshal(controlplane.SpecSecret(sec))
	if err != nil {
		// Strings, string pointers, a bool and a string slice always encode.
		panic("devserver: encode a spec secret: " + err.Error())
	}
	return b
}

// update applies a change of rec to the views of envs: steps (2) to (4).
func (vs *views) update(envs []string, rec Record, how change) {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	if vs.gens == nil {
		vs.gens = map[string]uint64{}
	}
	for _, id := range envs {
		vs.gens[id]++
		v := vs.byID[id]
		if v == nil {
			continue
		}
		i, ok := v.pos[rec.ID]
		if how != valueChanged || !ok {
			delete(vs.byID, id)
			continue
		}
		nv := *v
		nv.recs = append([]Record(nil), v.recs...)
		nv.recs[i] = rec
		nv.spec = append([][]byte(nil), v.spec...)
		nv.spec[i] = specJSON(rec)
		vs.byID[id] = &nv
	}
}

// dropAll forgets every view.
func (vs *views) dropAll() {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	vs.byID = nil
	vs.epoch++
}
