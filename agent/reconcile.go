package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/secrets-agent/secrets-agent/control"
	"github.com/secrets-agent/secrets-agent/controlplane"
	"github.com/secrets-agent/secrets-agent/injectors"
	"github.com/secrets-agent/secrets-agent/secrets"
)

// plan is the status rows a full pass made (the desired sets it decided are
// in the slots) and what a later pass needs to bring it up to date (replan). Every
// pass fills the rows in place (fill); a repair pass records its outcomes
// in the last plan's rows.
type plan struct {
	rows  []*control.SecretStatus
	rowOf map[string]*control.SecretStatus // id of a secret handed to an injector -> its row
	// transient is set when a value could not be fetched: a retry may help.
	transient bool

	spec    []controlplane.EnvironmentSpecSecret // the spec it was made from, or last brought up to date with
	slots   []*slot                              // the slots it was made for
	pending map[string]pending                   // secret id -> the winner it delivers
	rowByID map[string]*control.SecretStatus     // secret id -> its row (a shadow has none)
	// reusable: every winner's value was had, no slot was held, no id
	// repeats: replan may bring it up to date.
	reusable bool
	proxied  bool // a winner it delivers is meant for the credential proxy

	open     map[string]openRow      // rows the injectors' outcomes fill, by secret id
	filled   bool                    // fill has run once
	fresh    []*control.SecretStatus // rows the last fill gave an outcome other than Unchanged
	unfilled []*control.SecretStatus // rows replan added since the last fill
}

// openRow is a row an injector's outcome fills, and the slot of the
// injector.
type openRow struct {
	row  *control.SecretStatus
	slot *slot
}

// pass is one full reconcile pass (Sync schedules them); retry reports that
// it failed in a way a retry may fix (a fetch failed), changed that the spec
// was not the one the last pass fetched (or could not be fetched).
//
// The steps:
//
//	(1) Fetch the environment's spec. When that fails, nothing is applied
//	    and nothing removed: status turns degraded with the error (and since
//	    when) and the report carries it.
//	(2) Plan (makePlan): convert each spec secret to the domain form,
//	    rejecting one that does not convert; resolve precedence into
//	    winners, rejected and skipped (API-only and unknown mount kinds);
//	    take each winner's value from the cache when its session is
//	    unchanged, else fetch it (values); validate it. A winner whose value
//	    cannot be had keeps what its mount holds (keepOrHold).
//	(3) Hand each enabled injector that is not held its desired set, in
//	    the order of the slots; one failing never stops the next. An
//	    injector does only what differs from what its outputs hold
//	    (changes.go).
//	(4) Watch what the injectors now manage, then record per-secret
//	    outcomes, shadows and injector counts in Status, and close Applied
//	    after the first applied pass.
func (a *Agent) pass(ctx context.Context) (rep control.PassReport, retry, changed bool) {
	a.passMu.Lock()
	defer a.passMu.Unlock()
	rep.Started = time.Now()
	cfg, cp := a.config(), a.controlPlane()
	if why := a.waitingFor(); why != nil {
		return a.waitPass(why), false, true
	}

	env, err := cp.GetEnvironment(ctx, cfg.ControlPlane.EnvironmentID) // (1)
	if err != nil {
		rep.Error, rep.Status = a.specFailed(cp, fmt.Errorf("get environment %s: %w", cfg.ControlPlane.EnvironmentID, err))
		rep.Duration = time.Since(rep.Started)
		return rep, true, true
	}
	var d specDiff
	if a.lastPlan != nil {
		d = diffSpecs(a.lastPlan.spec, env.Spec.Secrets)
	}
	changed = a.lastPlan == nil || !d.same()
	p, why := a.replan(ctx, cp, env, d) // (2)
	a.wakeStream()                      // the control plane answered: a stream waiting to reconnect need not wait
	if why != "" {
		a.log.Info("making a new plan", zap.String("why", why))
		p = a.makePlan(ctx, cp, env)
	}
	a.lastPlan = p

	rep.Results = map[string]injectors.Result{} // (3)
	held := false
	for _, sl := range a.slots {
		switch {
		case sl.inj == nil || sl.desired == nil:
		case sl.held != "":
			held = true
			a.log.Warn("injector held back", zap.String("injector", sl.name), zap.String("reason", sl.held))
		default:
			rep.Results[sl.name] = a.apply(ctx, sl, sl.desired, nil, false)
		}
	}

	a.watchFiles() // (4)
	rep.Status = a.record(p, rep.Results, nil)
	rep.Duration = time.Since(rep.Started)
	a.log.Info("pass done", zap.String("state", string(rep.Status.State)),
		zap.Int("secrets", len(rep.Status.Secrets)), zap.Int("delivered", len(p.rowOf)), zap.Int("writes", writes(rep.Results)),
		zap.Duration("took", rep.Duration))
	a.appliedOnce.Do(func() { close(a.applied) })
	return rep, p.transient || held, changed
}

// specFailed records a failed spec fetch: the agent turns degraded and
// nothing is applied or removed. unauthenticated re-reads the token file
// first. It returns the report's error and status.
func (a *Agent) specFailed(cp ControlPlane, err error) (string, control.Status) {
	a.log.Warn("pass failed: nothing applied, nothing removed", zap.Error(err))
	if controlplane.CodeOf(err) == controlplane.CodeUnauthenticated {
		if rerr := a.reloadToken(cp); rerr != nil {
			a.log.Warn("re-read token file", zap.Error(rerr))
		}
	}
	return err.Error(), a.recordFailure(err)
}

// repairPass applies the last applied desired sets again, asking the control
// plane nothing, to put back outputs someone else changed: only the
// injectors managing a path reported changed since the last repair pass
// (Agent.dirty) are called, for those paths. Before the first applied pass
// it does nothing and returns false, leaving the paths to the next one.
func (a *Agent) repairPass(ctx context.Context) bool {
	a.passMu.Lock()
	defer a.passMu.Unlock()
	if a.lastPlan == nil {
		return false
	}
	a.mu.Lock()
	fetchErr, dirty := a.fetchErr, a.dirty
	a.dirty = map[string]bool{}
	a.mu.Unlock()
	results := map[string]injectors.Result{}
	for _, sl := range a.slots {
		if sl.inj != nil && sl.handed != nil {
			results[sl.name] = a.apply(ctx, sl, sl.handed, dirty, true)
		}
	}
	a.watchFiles() // before it reports: as a full pass does
	a.record(a.lastPlan, results, fetchErr)
	return true
}

// makePlan turns env's spec into status rows and a desired set for every
// built injector (slot.desired), fetching the values it needs; a slot whose
// secrets cannot all be had safely is held (slot.held). The caller holds
// passMu.
func (a *Agent) makePlan(ctx context.Context, cp ControlPlane, env *controlplane.Environment) *plan {
	n := len(env.Spec.Secrets) // sized once: a large spec grows nothing
	p := &plan{rowOf: make(map[string]*control.SecretStatus, n), rows: make([]*control.SecretStatus, 0, n),
		spec: env.Spec.Secrets, slots: a.slots}
	for _, sl := range a.slots {
		sl.desired, sl.held, sl.exact, sl.changed, sl.dropped = nil, "", false, nil, nil
		if sl.inj != nil {
			sl.desired = []secrets.Secret{}
		}
	}
	all := make([]secrets.Secret, 0, n)
	live := make(map[string]bool, n)
	unique := true // no id repeats, counting the entries that do not convert
	for _, w := range env.Spec.Secrets {
		unique = unique && !live[w.ID]
		live[w.ID] = true
		s, err := w.Secret()
		if err != nil {
			a.log.Warn("secret rejected", secretFields(s, err)...)
			p.add(row(s, control.Rejected, err))
			continue
		}
		all = append(all, s)
	}
	todo := a.sortResolved(p, secrets.Resolve(all))
	got := a.values(ctx, cp, todo)
	for i, t := range todo {
		s := t.s
		v, err := got[i].value, got[i].err
		if err == nil {
			s.Value = v
			err = secrets.ValidateValue(s, secrets.Limits{})
		}
		if err != nil {
			a.keepOrHold(p, t, err)
			continue
		}
		t.slot.desired = append(t.slot.desired, s)
		p.rowOf[s.ID] = t.row
	}
	if a.proxy != nil {
		a.prepareProxied(p)
	}
	for _, t := range todo {
		if t.slot.held != "" && t.row.Outcome == "" {
			t.row.Outcome, t.row.Error = control.Failed, t.slot.held
		}
	}
	for id := range a.cache {
		if !live[id] {
			delete(a.cache, id)
		}
	}
	for id := range a.lastChanged {
		if !live[id] {
			delete(a.lastChanged, id)
		}
	}
	p.index(todo, unique)
	return p
}

// index makes what replan and fill need of a new plan: the winners it
// delivers and every row by id, in order (rowOrder), and the rows the
// injectors fill. The plan is reusable when unique (no id repeats in the
// spec) and nothing failed or was held while it was made.
func (p *plan) index(todo []pending, unique bool) {
	slices.SortStableFunc(p.rows, rowOrder)
	p.reusable = unique && !p.transient
	p.pending = make(map[string]pending, len(todo))
	p.open = make(map[string]openRow, len(todo))
	p.rowByID = make(map[string]*control.SecretStatus, len(p.rows))
	for _, r := range p.rows {
		p.rowByID[r.ID] = r
	}
	for _, t := range todo {
		p.pending[t.s.ID] = t
		p.proxied = p.proxied || t.s.CredentialProxy != nil
		if p.rowOf[t.s.ID] == t.row && t.row.Outcome == "" {
			p.open[t.s.ID] = openRow{row: t.row, slot: t.slot}
		} else {
			p.reusable = false // its value could not be had, or the proxy refused it
		}
		if t.slot.held != "" {
			p.reusable = false
		}
	}
}

// prepareProxied hands the proxy every desired set: proxied secrets' values
// go to it and their mounts get placeholders, and the env injector's set the
// proxy's variables. A secret the proxy cannot serve fails and is taken out.
func (a *Agent) prepareProxied(p *plan) {
	sets := map[string][]secrets.Secret{}
	var envSet string
	for _, sl := range a.slots {
		if sl.desired != nil {
			sets[sl.name] = sl.desired
		}
		if sl.kind == secrets.MountEnv && envSet == "" {
			envSet = sl.name
		}
	}
	errs := a.proxy.Prepare(sets, envSet)
	for _, sl := range a.slots {
		if sl.desired != nil {
			sl.desired = sets[sl.name]
		}
	}
	for id, err := range errs {
		if r, ok := p.rowOf[id]; ok {
			r.Outcome, r.Error, r.Note = control.Failed, err.Error(), "not applied"
			delete(p.rowOf, id)
		}
	}
}

// add appends r to the plan's rows and returns it, to be filled in.
func (p *plan) add(r control.SecretStatus) *control.SecretStatus {
	p.rows = append(p.rows, &r)
	return &r
}

// sortResolved makes a row for every resolved secret: rejected and skipped
// ones are final; a winner whose kind has a built injector is returned, to
// have its value fetched.
func (a *Agent) sortResolved(p *plan, res secrets.Resolution) []pending {
	for _, r := range res.Rejected {
		a.log.Warn("secret rejected", secretFields(r.Secret, r.Err)...)
		p.add(row(r.Secret, control.Rejected, r.Err))
	}
	for _, s := range res.Skipped {
		reason := "API only: never injected"
		if s.Mount.Kind != secrets.MountAPIOnly {
			reason = "mount kind not known to this agent"
		}
		a.log.Debug("secret skipped", zap.String("secret", secrets.Label(s.Name)), zap.String("scope", s.Scope.String()),
			zap.String("id", s.ID), zap.String("reason", reason))
		p.add(row(s, control.Skipped, nil)).Note = reason
	}
	var todo []pending
	for _, w := range res.Winners {
		s := w.Secret
		r := p.add(row(s, "", nil))
		for _, sh := range w.Shadows {
			r.Shadows = append(r.Shadows, control.ShadowedSecret{ID: sh.ID, Name: secrets.Label(sh.Name), Scope: sh.Scope.String()})
		}
		sl := slotFor(a.slots, s.Mount.Kind)
		switch {
		case s.CredentialProxy != nil && a.proxy == nil:
			// Its value must never be written into the environment, and
			// the proxy is off: it is not even fetched. It still shadows
			// what it would have shadowed.
			r.Outcome, r.Note = control.Skipped, "credential proxy: the value is meant for the proxy, which is off (proxy.enabled); not materialised"
			a.log.Info("secret not materialised: it is for a credential proxy", zap.String("secret", secrets.Label(s.Name)),
				zap.String("id", s.ID), zap.String("mount", s.Mount.String()))
		case sl == nil:
			r.Outcome, r.Note = control.Skipped, "no injector for mount kind "+s.Mount.Kind.String()
			a.log.Debug("secret skipped", zap.String("secret", secrets.Label(s.Name)), zap.String("id", s.ID), zap.String("reason", r.Note))
		case !sl.enabled:
			r.Outcome, r.Note = control.Skipped, "injector "+sl.name+" is disabled"
		case sl.inj == nil:
			r.Outcome, r.Error = control.Failed, fmt.Sprintf("injector %s not available: %v", sl.name, sl.buildErr)
		default:
			todo = append(todo, pending{s: s, row: r, slot: sl})
		}
	}
	return todo
}

// keepOrHold handles a winner whose value cannot be had (err: the fetch
// failed or the value is invalid): it fails, but its mount keeps what is
// there, since the secret last applied at that mount is handed to the
// injector again, old value and all. With nothing applied there before, an
// invalid value or a secret the control plane denies (not_found,
// permission_denied) is left out; any other fetch failure holds its
// injector for this pass, since leaving the secret out would make the
// injector delete an output an earlier run may have made.
func (a *Agent) keepOrHold(p *plan, t pending, err error) {
	s, r, sl := t.s, t.row, t.slot
	var invalid *secrets.Error
	isInvalid := errors.As(err, &invalid)
	p.transient = p.transient || !isInvalid
	r.Outcome, r.Error = control.Failed, err.Error()
	key, _ := s.Mount.Key()
	prev, had := sl.applied[key]
	code := controlplane.CodeOf(err)
	switch {
	case had:
		r.Note = "last applied value kept"
		sl.desired = append(sl.desired, prev)
		p.rowOf[prev.ID] = r
	case isInvalid || code == controlplane.CodeNotFound || code == controlplane.CodePermissionDenied:
		r.Note = "not applied"
	default:
		sl.held = fmt.Sprintf("%s could not be fetched and nothing applied at %s can be kept; injector %s held back", s, s.Mount, sl.name)
	}
	a.log.Warn("secret not applied", append(secretFields(s, err), zap.String("note", r.Note))...)
}

// pending is a winner whose value a pass needs, the row it fills in and the
// injector it goes to.
type pending struct {
	s    secrets.Secret
	row  *control.SecretStatus
	slot *slot
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

// apply hands sl the set want, doing only what may differ from what its
// outputs hold or what dirty names as changed on disk (changes.go), and
// notes what they now hold. It returns the outcome of every secret of want.
// The caller holds passMu; repair only changes how outcomes are logged.
func (a *Agent) apply(ctx context.Context, sl *slot, want []secrets.Secret, dirty map[string]bool, repair bool) injectors.Result {
	r, how := sl.applyChanged(ctx, want, dirty)
	if r.Err != nil {
		a.log.Error("injector failed", zap.String("injector", sl.name), zap.Error(r.Err))
	}
	a.logOutcomes(sl.name, r, repair)
	if r.Err == nil || len(r.Paths) > 0 {
		// A failure as a whole says nothing about what is managed: then
		// keep watching what was, so drift repair still notices it.
		a.watchMu.Lock()
		sl.paths = r.Paths
		a.watchMu.Unlock()
	}
	a.mu.Lock()
	sl.handed = want
	a.mu.Unlock()
	switch {
	case how == notCalled: // its outputs hold what they held
	case how == changedOnly:
		for _, m := range sl.dropped {
			key, _ := m.Key()
			delete(sl.applied, key)
		}
		sl.applied = appliedFrom(sl.applied, sl.changed, r)
	case dirty != nil:
		sl.applied = appliedFrom(sl.applied, want, r)
	default:
		sl.applied = appliedNow(sl.applied, want, r)
	}
	return r
}

// appliedFrom updates old, in place, for a set that differs from the one
// last handed only in set (a repair pass: the set last handed itself; a
// plan brought up to date: the secrets that changed, once the mounts
// dropped are deleted): each secret of set that r reports on, and not as
// failed, is what its mount key holds now; for the others their output
// holds what it held.
func appliedFrom(old map[string]secrets.Secret, set []secrets.Secret, r injectors.Result) map[string]secrets.Secret {
	ok := map[string]bool{}
	for _, o := range r.Outcomes {
		if o.Action != injectors.Failed && o.Action != injectors.Removed && o.Action != injectors.Restored {
			ok[o.Secret.ID] = true
		}
	}
	if len(ok) == 0 {
		return old
	}
	for _, s := range set {
		if ok[s.ID] {
			key, _ := s.Mount.Key()
			old[key] = s
		}
	}
	return old
}

// appliedNow returns, per mount key, the secret an injector's output holds
// after it was handed want with result r: the one handed, unless its
// outcome failed, in which case whatever old says was there stays.
func appliedNow(old map[string]secrets.Secret, want []secrets.Secret, r injectors.Result) map[string]secrets.Secret {
	failed := map[string]bool{}
	for _, o := range r.Failed() {
		failed[o.Secret.ID] = true
	}
	now := map[string]secrets.Secret{}
	for _, s := range want {
		key, _ := s.Mount.Key()
		if !failed[s.ID] {
			now[key] = s
		} else if prev, ok := old[key]; ok {
			now[key] = prev
		}
	}
	return now
}

func (a *Agent) logOutcomes(injector string, r injectors.Result, repair bool) {
	debug := a.log.Core().Enabled(zap.DebugLevel)
	for _, o := range r.Outcomes {
		if o.Action == injectors.Unchanged && !debug {
			continue // a whole Apply reports every secret: spare building fields nobody logs
		}
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
func (a *Agent) recordFailure(err error) control.Status {
	a.mu.Lock()
	a.fetchErr = err
	now := time.Now()
	s := &a.status
	s.Passes++
	if s.State != control.Degraded {
		s.DegradedSince = now
	}
	s.State, s.LastError, s.LastErrorTime = control.Degraded, err.Error(), now
	a.mu.Unlock()
	return a.snapshot(0)
}

// record puts a pass's outcomes in Status and returns it: every row of p
// with its injector's outcome and when its output last changed (fill), the
// injector counts, and the agent's state. fetchErr, when set, keeps the
// agent degraded (a repair pass while the control plane is unreachable).
func (a *Agent) record(p *plan, results map[string]injectors.Result, fetchErr error) control.Status {
	now := time.Now()
	moved := a.fill(p, results, now)
	inj := injectorStatuses(a.slots, results)
	a.mu.Lock()
	s := &a.status
	if moved || len(s.Secrets) != len(p.rows) {
		// A new slice: Status hands the old one out without copying it.
		rows := make([]control.SecretStatus, len(p.rows))
		for i, r := range p.rows {
			rows[i] = *r
		}
		s.Secrets = rows
	}
	failed, firstErr := failures(s.Secrets)
	for i, sl := range a.slots {
		if sl.held != "" && inj[i].Error == "" {
			inj[i].Error = sl.held
		}
		if inj[i].Error != "" && firstErr == "" {
			firstErr = "injector " + inj[i].Name + ": " + inj[i].Error
		}
	}
	s.Passes++
	s.Injectors = inj
	if w := writes(results); w > 0 {
		s.LastChange, s.LastChangeWrites = now, w
	}
	var problem string
	switch {
	case fetchErr != nil:
		problem = fetchErr.Error()
	case failed > 0:
		problem = fmt.Sprintf("%d of %d secrets not applied; first: %s", failed, len(s.Secrets), firstErr)
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
		if s.State != control.Degraded {
			s.DegradedSince = now
		}
		s.State, s.LastError, s.LastErrorTime = control.Degraded, problem, now
	} else {
		s.State, s.DegradedSince = control.Ready, time.Time{}
	}
	a.mu.Unlock()
	return a.snapshot(0)
}

// fill gives p's open rows their injectors' outcomes, in place: the fresh
// one in results, else the secret's last outcome as Unchanged (Note kept,
// Error cleared), and notes (in lastChanged and the row) when an output
// changed. The first fill of a plan looks at every row; a later one only
// at the rows results reports on and those the last fill gave an outcome
// other than Unchanged. It reports whether it changed a row.
func (a *Agent) fill(p *plan, results map[string]injectors.Result, now time.Time) (moved bool) {
	reported := map[*control.SecretStatus]bool{}
	var fresh []*control.SecretStatus
	for _, r := range results {
		for _, o := range r.Outcomes {
			if o.Action == injectors.Removed || o.Action == injectors.Restored {
				continue
			}
			switch o.Action {
			case injectors.Created, injectors.Updated, injectors.Repaired:
				c := change{at: now, action: o.Action}
				a.lastChanged[o.Secret.ID] = c
				if row := p.rowOf[o.Secret.ID]; row != nil {
					row.LastChanged, row.LastAction, moved = c.at, c.action, true
				}
			}
			or, ok := p.open[o.Secret.ID]
			if !ok {
				continue // not delivered, or its value could not be had and the old one was kept
			}
			or.row.Outcome, or.row.Note, or.row.Error = control.Outcome(o.Action), o.Note, ""
			if o.Err != nil {
				or.row.Error = o.Err.Error()
			}
			reported[or.row], moved = true, true
			if o.Action != injectors.Unchanged {
				fresh = append(fresh, or.row)
			}
		}
	}
	if !p.filled {
		p.filled, moved = true, true
		a.fillUnreported(p, reported, p.rows)
	} else if len(p.unfilled) > 0 {
		moved = true
		a.fillUnreported(p, reported, p.unfilled)
	}
	p.unfilled = nil
	for _, row := range p.fresh {
		if !reported[row] {
			row.Outcome, row.Error, moved = control.Outcome(injectors.Unchanged), "", true
		}
	}
	p.fresh = fresh
	return moved
}

// fillUnreported is the first fill of rows (all of a new plan's, or those
// replan added): an open row no injector reported on in this pass gets its
// secret's last outcome as Unchanged, or a failure when there is none; and
// every row its output's last change.
func (a *Agent) fillUnreported(p *plan, reported map[*control.SecretStatus]bool, rows []*control.SecretStatus) {
	for _, r := range rows {
		if or, ok := p.open[r.ID]; ok && or.row == r && !reported[r] {
			if o, ok := or.slot.outcomes[r.ID]; ok {
				r.Outcome, r.Note, r.Error = control.Outcome(injectors.Unchanged), o.Note, ""
			} else {
				r.Outcome, r.Error = control.Failed, "no outcome reported by its injector"
			}
		}
		if c, ok := a.lastChanged[r.ID]; ok {
			r.LastChanged, r.LastAction = c.at, c.action
		}
	}
}

// failures counts the rows that failed or were rejected, and returns the
// first one's error.
func failures(rows []control.SecretStatus) (failed int, firstErr string) {
	for i := range rows {
		if r := &rows[i]; r.Outcome == control.Failed || r.Outcome == control.Rejected {
			failed++
			if firstErr == "" {
				firstErr = r.Error
			}
		}
	}
	return failed, firstErr
}

// injectorStatuses is each slot's status: its counts from what it last
// reported on each of its secrets (slot.outcomes, slot.failing), and from
// results what it wrote and whether it failed as a whole in this pass.
func injectorStatuses(slots []*slot, results map[string]injectors.Result) []control.InjectorStatus {
	out := make([]control.InjectorStatus, 0, len(slots))
	for _, sl := range slots {
		is := control.InjectorStatus{Name: sl.name, Enabled: sl.enabled}
		if sl.buildErr != nil {
			is.Error = sl.buildErr.Error()
		}
		if r, ok := results[sl.name]; ok {
			is.Writes = r.Writes
			is.Failed = len(sl.failing)
			is.Applied = len(sl.outcomes) - is.Failed
			if r.Err != nil {
				is.Error = r.Err.Error()
			}
		}
		out = append(out, is)
	}
	return out
}

// row is a status row for s (never its value); the name as secrets.Label
// shows it.
func row(s secrets.Secret, outcome control.Outcome, err error) control.SecretStatus {
	r := control.SecretStatus{ID: s.ID, Name: secrets.Label(s.Name), Scope: s.Scope.String(), Mount: s.Mount.Kind.String(),
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
