package agent

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/secrets-agent/secrets-agent/controlplane"
	"github.com/secrets-agent/secrets-agent/injectors"
	"github.com/secrets-agent/secrets-agent/secrets"
)

// plan is what a full pass decided: the desired set of each injector that is
// applied this pass, and the status rows. A repair pass applies the sets
// again without asking the control plane.
type plan struct {
	rows    []SecretStatus
	rowOf   map[string]int              // id of a secret handed to an injector -> its row
	desired map[string][]secrets.Secret // injector name -> desired set; absent: not applied
	held    map[string]string           // injector name -> why it is not applied this pass
	// transient is set when a value could not be fetched: a retry may help.
	transient bool
}

// RunOnce returns the report of one full reconcile pass that started after
// the call, as Sync does. Passes never overlap, and concurrent callers share
// them (schedulePass).
//
// The steps:
//
//	(1) Fetch the environment's spec. When that fails, nothing is applied
//	    and nothing removed: status turns degraded with the error (and since
//	    when) and the report carries it.
//	(2) Convert each spec secret to the domain form; one that does not
//	    convert is rejected.
//	(3) Resolve precedence: winners, rejected, skipped (API-only and unknown
//	    mount kinds, logged with the reason).
//	(4) For each winner whose kind has an enabled injector, take the value
//	    from the in-memory cache when its session is unchanged (and not
//	    empty), else fetch it (up to `fetchers` at once, so a cold start
//	    with many secrets costs a few round trips, not one per secret);
//	    then ValidateValue. An answer over the
//	    client's response cap is a value over the size cap: invalid.
//	(5) A winner whose value cannot be had (fetch failed or invalid) fails,
//	    but its mount keeps what is there: the secret last applied at that
//	    mount is handed to the injector again, old value and all. With
//	    nothing applied there before, an invalid value or a secret the
//	    control plane denies (not_found, permission_denied) is left out;
//	    any other fetch failure holds its injector for this pass, since
//	    leaving the secret out would make the injector delete an output an
//	    earlier run may have made.
//	(6) Hand each enabled injector that is not held its desired set, in
//	    the order of builtins; one failing never stops the next.
//	(7) Record per-secret outcomes, shadows and injector counts in Status,
//	    note what each mount now holds, and close Applied after the first
//	    applied pass.
func (a *Agent) RunOnce(ctx context.Context) PassReport {
	return a.await(ctx, a.schedulePass())
}

// fullPass is one pass of RunOnce; retry reports that the pass failed in a
// way a retry may fix (a fetch failed), changed that the spec was not the
// one the last pass fetched (or could not be fetched).
func (a *Agent) fullPass(ctx context.Context) (rep PassReport, retry, changed bool) {
	a.passMu.Lock()
	defer a.passMu.Unlock()
	rep.Started = time.Now()
	cfg, cp := a.config(), a.controlPlane()
	if why := a.waitingFor(); why != nil {
		return a.waitPass(why), false, true
	}

	env, err := cp.GetEnvironment(ctx, cfg.ControlPlane.EnvironmentID) // (1)
	if err != nil {
		err = fmt.Errorf("get environment %s: %w", cfg.ControlPlane.EnvironmentID, err)
		a.log.Warn("pass failed: nothing applied, nothing removed", zap.Error(err))
		if controlplane.CodeOf(err) == controlplane.CodeUnauthenticated {
			if rerr := a.reloadToken(cp); rerr != nil {
				a.log.Warn("re-read token file", zap.Error(rerr))
			}
		}
		rep.Error = err.Error()
		rep.Status = a.recordFailure(err)
		rep.Duration = time.Since(rep.Started)
		return rep, true, true
	}
	changed = a.noteSpec(env)
	a.wakeStream() // the control plane answered: a stream waiting to reconnect need not wait
	p := a.makePlan(ctx, cp, env)
	a.lastPlan = p
	rep.Results = a.apply(ctx, p.desired, p.held, false)
	rep.Status = a.record(p, rep.Results, nil)
	a.watchFiles()
	rep.Duration = time.Since(rep.Started)
	a.log.Info("pass done", zap.String("state", string(rep.Status.State)),
		zap.Int("secrets", len(rep.Status.Secrets)), zap.Int("delivered", len(p.rowOf)), zap.Int("writes", writes(rep.Results)),
		zap.Duration("took", rep.Duration))
	a.appliedOnce.Do(func() { close(a.applied) })
	return rep, p.transient || len(p.held) > 0, changed
}

// noteSpec records a fingerprint of env's spec and reports whether it
// differs from the last one. The caller holds passMu.
func (a *Agent) noteSpec(env *controlplane.Environment) bool {
	b, err := json.Marshal(env.Spec)
	if err != nil {
		return true
	}
	sum := sha256.Sum256(b)
	changed := sum != a.lastSpec
	a.lastSpec = sum
	return changed
}

// repairPass applies the last applied desired sets again, asking the control
// plane nothing, to put back outputs someone else changed. Before the first
// applied pass it does nothing and returns false.
func (a *Agent) repairPass(ctx context.Context) bool {
	a.passMu.Lock()
	defer a.passMu.Unlock()
	if a.lastPlan == nil {
		return false
	}
	results := a.apply(ctx, a.handed, nil, true)
	a.mu.Lock()
	fetchErr := a.fetchErr
	a.mu.Unlock()
	a.record(a.lastPlan, results, fetchErr)
	a.watchFiles()
	return true
}

// makePlan is steps (2) to (5).
func (a *Agent) makePlan(ctx context.Context, cp ControlPlane, env *controlplane.Environment) *plan {
	p := &plan{rowOf: map[string]int{}, desired: map[string][]secrets.Secret{}, held: map[string]string{}}
	slots := a.injectorSlots()
	for _, sl := range slots {
		if sl.inj != nil {
			p.desired[sl.name] = []secrets.Secret{}
		}
	}

	var all []secrets.Secret
	live := map[string]bool{}
	for _, w := range env.Spec.Secrets { // (2)
		s, err := w.Secret()
		if err != nil {
			a.log.Warn("secret rejected", secretFields(s, err)...)
			p.rows = append(p.rows, row(s, "rejected", err))
			continue
		}
		all = append(all, s)
		live[s.ID] = true
	}

	res := secrets.Resolve(all) // (3)
	for _, r := range res.Rejected {
		a.log.Warn("secret rejected", secretFields(r.Secret, r.Err)...)
		p.rows = append(p.rows, row(r.Secret, "rejected", r.Err))
	}
	for _, s := range res.Skipped {
		reason := "API only: never injected"
		if s.Mount.Kind != secrets.MountAPIOnly {
			reason = "mount kind not known to this agent"
		}
		a.log.Debug("secret skipped", zap.String("secret", secrets.Label(s.Name)), zap.String("scope", s.Scope.String()),
			zap.String("id", s.ID), zap.String("reason", reason))
		r := row(s, "skipped", nil)
		r.Note = reason
		p.rows = append(p.rows, r)
	}

	rowSlot := map[int]string{}
	var todo []pending
	for _, w := range res.Winners { // (4)
		s := w.Secret
		r := row(s, "", nil)
		for _, sh := range w.Shadows {
			r.Shadows = append(r.Shadows, ShadowedSecret{ID: sh.ID, Name: secrets.Label(sh.Name), Scope: sh.Scope.String()})
		}
		idx := len(p.rows)
		sl, ok := slotFor(slots, s.Mount.Kind)
		switch {
		case s.CredentialProxy != nil && a.proxy == nil:
			// Its value must never be written into the environment, and
			// the proxy is off: it is not even fetched. It still shadows
			// what it would have shadowed.
			r.Outcome, r.Note = "skipped", "credential proxy: the value is meant for the proxy, which is off (proxy.enabled); not materialised"
			a.log.Info("secret not materialised: it is for a credential proxy", zap.String("secret", secrets.Label(s.Name)),
				zap.String("id", s.ID), zap.String("mount", s.Mount.String()))
			p.rows = append(p.rows, r)
			continue
		case !ok:
			r.Outcome, r.Note = "skipped", "no injector for mount kind "+s.Mount.Kind.String()
			a.log.Debug("secret skipped", zap.String("secret", secrets.Label(s.Name)), zap.String("id", s.ID), zap.String("reason", r.Note))
			p.rows = append(p.rows, r)
			continue
		case !sl.enabled:
			r.Outcome, r.Note = "skipped", "injector "+sl.name+" is disabled"
			p.rows = append(p.rows, r)
			continue
		case sl.inj == nil:
			r.Outcome, r.Error = string(injectors.Failed), fmt.Sprintf("injector %s not available: %v", sl.name, sl.buildErr)
			p.rows = append(p.rows, r)
			continue
		}
		p.rows = append(p.rows, r)
		rowSlot[idx] = sl.name
		todo = append(todo, pending{s: s, idx: idx, slot: sl.name})
	}
	got := a.values(ctx, cp, todo)
	for i, t := range todo {
		s, idx, slot := t.s, t.idx, t.slot
		v, err := got[i].value, got[i].err
		if err == nil {
			s.Value = v
			err = secrets.ValidateValue(s, secrets.Limits{})
		}
		if err == nil {
			p.desired[slot] = append(p.desired[slot], s)
			p.rowOf[s.ID] = idx
			continue
		}
		// (5)
		var invalid *secrets.Error
		isInvalid := errors.As(err, &invalid)
		p.transient = p.transient || !isInvalid
		p.rows[idx].Outcome, p.rows[idx].Error = string(injectors.Failed), err.Error()
		key, _ := s.Mount.Key()
		prev, had := a.lastApplied[slot][key]
		code := controlplane.CodeOf(err)
		switch {
		case had:
			p.rows[idx].Note = "last applied value kept"
			p.desired[slot] = append(p.desired[slot], prev)
			p.rowOf[prev.ID] = idx
		case isInvalid || code == controlplane.CodeNotFound || code == controlplane.CodePermissionDenied:
			p.rows[idx].Note = "not applied"
		default:
			p.held[slot] = fmt.Sprintf("%s could not be fetched and nothing applied at %s can be kept; injector %s held back", s, s.Mount, slot)
		}
		a.log.Warn("secret not applied", append(secretFields(s, err), zap.String("note", p.rows[idx].Note))...)
	}
	if a.proxy != nil {
		// Proxied secrets' values go to the proxy; their mounts get
		// placeholders, and the env fragment the proxy's variables.
		envSlot, _ := slotFor(slots, secrets.MountEnv)
		for id, err := range a.proxy.Prepare(p.desired, envSlot.name) {
			if idx, ok := p.rowOf[id]; ok {
				p.rows[idx].Outcome, p.rows[idx].Error, p.rows[idx].Note = string(injectors.Failed), err.Error(), "not applied"
				delete(p.rowOf, id)
			}
		}
	}
	for idx, name := range rowSlot {
		if why, ok := p.held[name]; ok && p.rows[idx].Outcome == "" {
			p.rows[idx].Outcome, p.rows[idx].Error = string(injectors.Failed), why
		}
	}
	for id := range a.cache {
		if !live[id] {
			delete(a.cache, id)
		}
	}
	return p
}

// pending is a winner whose value step (4) needs: its row and its injector.
type pending struct {
	s    secrets.Secret
	idx  int
	slot string
}

// fetched is a value, or why it could not be had.
type fetched struct {
	value secrets.Value
	err   error
}

// fetchers bounds how many values are fetched at once: a cold start with
// hundreds of secrets costs a few round trips' time, not hundreds.
const fetchers = 8

// values returns the value of each pending secret, in order: from the cache
// when the secret's session is the one cached (an empty session is never
// trusted), else fetched — up to fetchers at once — and then cached.
func (a *Agent) values(ctx context.Context, cp ControlPlane, todo []pending) []fetched {
	out := make([]fetched, len(todo))
	var need []int
	for i, t := range todo {
		if c, ok := a.cache[t.s.ID]; ok && t.s.Session != "" && c.session == t.s.Session {
			out[i].value = c.value
			continue
		}
		need = append(need, i)
	}
	sem := make(chan struct{}, fetchers)
	var wg sync.WaitGroup
	for _, i := range need {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			out[i].value, out[i].err = a.fetch(ctx, cp, todo[i].s)
		})
	}
	wg.Wait()
	for _, i := range need {
		if out[i].err == nil {
			a.cache[todo[i].s.ID] = cachedValue{session: todo[i].s.Session, value: out[i].value}
		}
	}
	return out
}

// fetch asks the control plane for s's value. It is safe to call from
// several goroutines at once.
func (a *Agent) fetch(ctx context.Context, cp ControlPlane, s secrets.Secret) (secrets.Value, error) {
	a.log.Debug("fetching value", zap.String("secret", secrets.Label(s.Name)), zap.String("id", s.ID), zap.String("session", s.Session))
	v, err := cp.GetSecretValue(ctx, s.ID)
	var ce *controlplane.Error
	if errors.As(err, &ce) && ce.Code == controlplane.CodeResourceExhausted && ce.HTTPStatus == http.StatusOK {
		// A 200 answer over the client's response cap holds a value far
		// over the value size cap: the value is invalid, as ValidateValue
		// would say, not a fetch a retry could fix.
		return nil, &secrets.Error{ID: s.ID, Name: s.Name, Field: "value",
			Reason: fmt.Sprintf("is over the limit of %d bytes (%s)", secrets.DefaultMaxValueSize, ce.Message)}
	}
	if err != nil {
		return nil, fmt.Errorf("fetch value of %s: %w", s, err)
	}
	return v, nil
}

// apply is step (6): it hands each injector with a desired set (and not
// held) that set, and notes what every mount now holds. repair only changes
// how outcomes are logged.
func (a *Agent) apply(ctx context.Context, desired map[string][]secrets.Secret, held map[string]string, repair bool) map[string]injectors.Result {
	results := map[string]injectors.Result{}
	for _, sl := range a.injectorSlots() {
		want, ok := desired[sl.name]
		if sl.inj == nil || !ok {
			continue
		}
		if why, ok := held[sl.name]; ok {
			a.log.Warn("injector held back", zap.String("injector", sl.name), zap.String("reason", why))
			continue
		}
		r := sl.inj.Apply(ctx, want)
		results[sl.name] = r
		if r.Err != nil {
			a.log.Error("injector failed", zap.String("injector", sl.name), zap.Error(r.Err))
		}
		a.logOutcomes(sl.name, r, repair)
		if r.Err != nil && len(r.Paths) == 0 {
			// A failure as a whole says nothing about what is managed: keep
			// watching what was, so drift repair still notices it.
		} else {
			a.watchMu.Lock()
			a.paths[sl.name] = r.Paths
			a.watchMu.Unlock()
		}
		a.handedMu.Lock()
		a.handed[sl.name] = want
		a.handedMu.Unlock()
		a.noteApplied(sl.name, want, r)
	}
	return results
}

// noteApplied records, per mount key, the secret the injector's output now
// holds: the one handed, unless its outcome failed, in which case whatever
// was there before stays.
func (a *Agent) noteApplied(name string, want []secrets.Secret, r injectors.Result) {
	failed := map[string]bool{}
	for _, o := range r.Failed() {
		failed[o.Secret.ID] = true
	}
	old := a.lastApplied[name]
	now := map[string]secrets.Secret{}
	for _, s := range want {
		key, _ := s.Mount.Key()
		if !failed[s.ID] {
			now[key] = s
		} else if prev, ok := old[key]; ok {
			now[key] = prev
		}
	}
	a.lastApplied[name] = now
}

func (a *Agent) logOutcomes(injector string, r injectors.Result, repair bool) {
	for _, o := range r.Outcomes {
		fields := []zap.Field{zap.String("injector", injector), zap.String("secret", secrets.Label(o.Secret.Name)),
			zap.String("scope", o.Secret.Scope), zap.String("id", o.Secret.ID), zap.String("target", o.Target),
			zap.String("action", string(o.Action))}
		if o.Note != "" {
			fields = append(fields, zap.String("note", o.Note))
		}
		switch {
		case o.Action == injectors.Failed:
			a.log.Warn("secret failed", append(fields, zap.Error(o.Err))...)
		case o.Action == injectors.Unchanged:
			a.log.Debug("secret unchanged", fields...)
		case repair || o.Action == injectors.Repaired:
			a.log.Info("drift repaired", fields...)
		default:
			a.log.Info("secret applied", fields...)
		}
	}
}

// recordFailure marks the agent degraded by a failed spec fetch; rows stay
// as the last pass left them.
func (a *Agent) recordFailure(err error) Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.fetchErr = err
	now := time.Now()
	s := &a.status
	s.Passes++
	if s.State != Degraded {
		s.DegradedSince = now
	}
	s.State, s.LastError, s.LastErrorTime = Degraded, err.Error(), now
	return a.statusLocked()
}

// record is step (7). fetchErr, when set, keeps the agent degraded (a repair
// pass while the control plane is unreachable).
func (a *Agent) record(p *plan, results map[string]injectors.Result, fetchErr error) Status {
	now := time.Now()
	rows := append([]SecretStatus(nil), p.rows...)
	for _, r := range results {
		for _, o := range r.Outcomes {
			idx, ok := p.rowOf[o.Secret.ID]
			if !ok || o.Action == injectors.Removed || o.Action == injectors.Restored {
				continue
			}
			switch o.Action {
			case injectors.Created, injectors.Updated, injectors.Repaired:
				a.lastChanged[rows[idx].ID] = change{at: now, action: o.Action}
			}
			if rows[idx].Outcome == string(injectors.Failed) {
				continue // step (5) already failed it; its old value was kept
			}
			rows[idx].Outcome, rows[idx].Note = string(o.Action), o.Note
			if o.Err != nil {
				rows[idx].Error = o.Err.Error()
			}
		}
	}
	var firstErr string
	failed := 0
	for i := range rows {
		if c, ok := a.lastChanged[rows[i].ID]; ok {
			rows[i].LastChanged, rows[i].LastAction = c.at, string(c.action)
		}
		if rows[i].Outcome == "" {
			rows[i].Outcome, rows[i].Error = string(injectors.Failed), "no outcome reported by its injector"
		}
		if rows[i].Outcome == string(injectors.Failed) || rows[i].Outcome == "rejected" {
			failed++
			if firstErr == "" {
				firstErr = rows[i].Error
			}
		}
	}
	slots := a.injectorSlots()
	inj := injectorStatuses(slots, results)
	for i := range inj {
		if why, ok := p.held[inj[i].Name]; ok && inj[i].Error == "" {
			inj[i].Error = why
		}
		if inj[i].Error != "" && firstErr == "" {
			firstErr = "injector " + inj[i].Name + ": " + inj[i].Error
		}
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	s := &a.status
	s.Passes++
	s.Secrets, s.Injectors = rows, inj
	if w := writes(results); w > 0 {
		s.LastChange, s.LastChangeWrites = now, w
	}
	var problem string
	switch {
	case fetchErr != nil:
		problem = fetchErr.Error()
	case failed > 0:
		problem = fmt.Sprintf("%d of %d secrets not applied; first: %s", failed, len(rows), firstErr)
	case firstErr != "":
		problem = firstErr
	case a.tokenErr != nil:
		problem = a.tokenErr.Error() + "; the token read before stays in use"
	}
	if fetchErr == nil {
		a.fetchErr = nil
		s.LastSuccess = now
		if s.FirstApplied.IsZero() {
			s.FirstApplied = now
		}
	}
	if problem != "" {
		if s.State != Degraded {
			s.DegradedSince = now
		}
		s.State, s.LastError, s.LastErrorTime = Degraded, problem, now
	} else {
		s.State, s.DegradedSince = Ready, time.Time{}
	}
	return a.statusLocked()
}

// statusLocked copies the status; the caller holds mu. A refused config
// reload makes a ready agent degraded (since the refusal) until a good
// config is loaded, and the docker injector's row carries its mode.
func (a *Agent) statusLocked() Status {
	s := a.status
	s.Injectors = append([]InjectorStatus(nil), s.Injectors...)
	s.Secrets = append([]SecretStatus(nil), s.Secrets...)
	if s.ConfigError != "" && s.State != Degraded {
		s.State, s.DegradedSince = Degraded, s.ConfigErrorTime
	}
	for i, sl := range a.slots {
		if i < len(s.Injectors) && sl.kind == secrets.MountRegistry && s.Injectors[i].Name == sl.name {
			s.Injectors[i].Mode = a.cfg.Injectors.DockerCfg.Mode
		}
	}
	return s
}

// injectorStatuses counts each slot's outcomes in results.
func injectorStatuses(slots []slot, results map[string]injectors.Result) []InjectorStatus {
	out := make([]InjectorStatus, 0, len(slots))
	for _, sl := range slots {
		is := InjectorStatus{Name: sl.name, Enabled: sl.enabled}
		if sl.buildErr != nil {
			is.Error = sl.buildErr.Error()
		}
		if r, ok := results[sl.name]; ok {
			is.Writes = r.Writes
			for _, o := range r.Outcomes {
				if o.Action == injectors.Failed {
					is.Failed++
				} else {
					is.Applied++
				}
			}
			if r.Err != nil {
				is.Error = r.Err.Error()
			}
		}
		out = append(out, is)
	}
	return out
}

func slotFor(slots []slot, k secrets.MountKind) (slot, bool) {
	for _, s := range slots {
		if s.kind == k {
			return s, true
		}
	}
	return slot{}, false
}

// row is a status row for s (never its value); the name as secrets.Label
// shows it.
func row(s secrets.Secret, outcome string, err error) SecretStatus {
	r := SecretStatus{ID: s.ID, Name: secrets.Label(s.Name), Scope: s.Scope.String(), Mount: s.Mount.Kind.String(),
		Target: s.Mount.Target, Outcome: outcome, Source: s.Source, SourceRef: s.SourceRef}
	if err != nil {
		r.Error = err.Error()
	}
	return r
}

// secretFields are the log fields naming s and err; never its value.
func secretFields(s secrets.Secret, err error) []zap.Field {
	return []zap.Field{zap.String("secret", secrets.Label(s.Name)), zap.String("scope", s.Scope.String()), zap.String("id", s.ID),
		zap.String("mount", s.Mount.String()), zap.Error(err)}
}

func writes(results map[string]injectors.Result) int {
	n := 0
	for _, r := range results {
		n += r.Writes
	}
	return n
}
