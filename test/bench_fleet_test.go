package test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/secrets-agent/secrets-agent/agent"
	"github.com/secrets-agent/secrets-agent/control"
	"github.com/secrets-agent/secrets-agent/controlplane"
	"github.com/secrets-agent/secrets-agent/controlplane/devserver"
	"github.com/secrets-agent/secrets-agent/injectors/builtin"
	"github.com/secrets-agent/secrets-agent/injectors/envprofile"
	"github.com/secrets-agent/secrets-agent/internal/testutil"
)

// BenchmarkFleet1000 runs one real secrets-devserver and 1,000 in-process
// agents, each with its own home, state and env dirs, its own
// controlplane.Client (real HTTP on loopback) and its own watch stream, and
// every agent with the same organization secret (an env var) and a user
// secret of its own (a file). The agents run with the default poll interval
// (30 s ±20 %) and without the status socket and the fsnotify drift watcher,
// which a simulated agent does not need and which would take an inotify
// instance each. It measures, in order:
//
//	(1) the update wave: the organization secret is updated once; the time
//	    until each agent has applied it (its status row's lastChanged minus
//	    the moment the update was sent): p50, p99 and max across agents; and
//	    the devserver's CPU (utime+stime from /proc) over the wave;
//	(2) idle: over fleetIdle (60 s) with nothing changing, the control-plane
//	    requests per agent per minute (every HTTP attempt each client sent,
//	    streams included) and the devserver's CPU;
//	(3) a devserver restart (SIGTERM, then the same data dir on the same
//	    port): when each agent's watch stream is open again, as a histogram
//	    (1-second buckets as metrics, ten buckets over the spread in
//	    docs/fleet-reconnects.txt), the time until every agent is back, and
//	    the share that came back in the first second (a thundering herd would
//	    put them all there; full-jitter backoff spreads them).
//
// The whole simulation runs once whatever b.N is; run it with -benchtime 1x.
// FLEET_AGENTS and FLEET_IDLE (a duration) shrink it for a quick try; the
// figures in docs/BENCHMARKS.md come from the defaults.
func BenchmarkFleet1000(b *testing.B) {
	if testing.Short() {
		b.Skip("skipping the fleet simulation in -short mode")
	}
	n := envInt(b, "FLEET_AGENTS", 1000)
	idle := envDuration(b, "FLEET_IDLE", 60*time.Second)
	raiseOpenFiles(b, uint64(4*n+1024))

	f := startFleet(b, n)
	defer f.stop(b)
	b.ReportMetric(float64(n), "agents")
	b.ReportMetric(f.startup.Seconds(), "fleet-start-s")

	wave := f.updateWave(b, []byte("org-v2"))
	b.ReportMetric(millis(percentile(wave.latencies, 50)), "update-p50-ms")
	b.ReportMetric(millis(percentile(wave.latencies, 99)), "update-p99-ms")
	b.ReportMetric(millis(percentile(wave.latencies, 100)), "update-max-ms")
	b.ReportMetric(wave.cpuPct, "update-devserver-cpu-%")
	b.ReportMetric(float64(wave.requests)/float64(n), "update-req/agent")

	quiet := f.idle(b, idle)
	b.ReportMetric(quiet.reqPerAgentMin, "idle-req/agent/min")
	b.ReportMetric(quiet.cpuPct, "idle-devserver-cpu-%")
	b.ReportMetric(quiet.agentCPUms, "idle-agent-cpu-ms/agent/min")

	re := f.restart(b)
	b.ReportMetric(re.down.Seconds(), "restart-down-s")
	b.ReportMetric(re.all.Seconds(), "reconnect-all-s")
	b.ReportMetric(100*float64(re.firstSecond)/float64(n), "reconnect-first-1s-%")
	b.ReportMetric(re.cpuPct, "reconnect-devserver-cpu-%")
	b.ReportMetric(100*float64(re.firstTryInFirstSecond)/float64(n), "reconnect-first-try-1s-%")
	failed := 0
	for msg, c := range re.failures {
		failed += c
		b.Logf("after the restart, %d stream opens failed with: %s", c, msg)
	}
	b.ReportMetric(float64(failed)/float64(n), "reconnect-failed-opens/agent")
	for i, c := range re.perSecond {
		b.ReportMetric(float64(c), fmt.Sprintf("reconnect-%d-%ds", i, i+1))
	}
	b.ReportMetric((re.all - re.down).Seconds(), "reconnect-all-after-up-s")
	b.ReportMetric(0, "ns/op") // the simulation runs once, whatever b.N: no per-op time
	hist := reconnectHistogram(n, re)
	b.Logf("reconnect histogram:\n%s", hist)
	if os.Getenv("FLEET_AGENTS") == "" { // only a full-size run speaks for the docs
		path := filepath.Join(testutil.ModuleRoot(b), "docs", "fleet-reconnects.txt")
		if err := os.WriteFile(path, []byte(hist), 0o644); err != nil {
			b.Errorf("write %s: %v", path, err)
		}
	}
	if re.firstSecond == n && n > 1 {
		b.Errorf("thundering herd: all %d agents reconnected within the first second after the restart", n)
	}
}

// TestSmallFleetFollowsAnUpdateAndARestart runs the benchmark's machinery
// with ten agents, so that make test keeps it working: every agent applies
// an organization secret's update and reconnects after a devserver restart
// on the same port. (It measures nothing; BenchmarkFleet1000 does.)
func TestSmallFleetFollowsAnUpdateAndARestart(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the fleet in -short mode")
	}
	f := startFleet(t, 10)
	defer f.stop(t)
	f.updateWave(t, []byte("org-v2"))
	f.restart(t)
	f.updateWave(t, []byte("org-v3")) // through the new streams
}

// fleetPlane is one agent's control plane: the real client, and a record of
// its watch-stream opens. (WatchEvents is wrapped also because the agent
// wants a controlplane.Events where the client returns *controlplane.Stream.)
type fleetPlane struct {
	*controlplane.Client
	connectedAt atomic.Int64 // unix nanoseconds of the last stream opened; 0 before the first

	mu    sync.Mutex
	opens []streamOpen
}

// streamOpen is one WatchEvents call: when it began and how it failed ("" when
// the stream opened).
type streamOpen struct {
	at  time.Time
	err string
}

func (p *fleetPlane) WatchEvents(ctx context.Context, envID string) (controlplane.Events, error) {
	began := time.Now()
	s, err := p.Client.WatchEvents(ctx, envID)
	o := streamOpen{at: began}
	if err != nil {
		o.err = err.Error()
	} else {
		p.connectedAt.Store(time.Now().UnixNano())
	}
	p.mu.Lock()
	p.opens = append(p.opens, o)
	p.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return s, nil
}

// opensSince returns the stream opens begun after t.
func (p *fleetPlane) opensSince(t time.Time) []streamOpen {
	p.mu.Lock()
	defer p.mu.Unlock()
	i, _ := slices.BinarySearchFunc(p.opens, t, func(o streamOpen, t time.Time) int { return o.at.Compare(t) })
	return slices.Clone(p.opens[i:])
}

// fleetMember is one simulated environment.
type fleetMember struct {
	a      *agent.Agent
	cp     *fleetPlane
	envDir string
	done   chan error // Run's result
}

// fleet is the devserver, its admin client and the running agents.
type fleet struct {
	dev     *testutil.Devserver
	admin   *devserver.AdminClient
	pid     int
	orgID   string // the organization secret every agent has
	members []*fleetMember
	cancel  context.CancelFunc
	startup time.Duration // from the first agent started to all applied and watching
}

// startFleet starts the devserver, creates the secrets and n environments,
// starts one agent for each and waits until every one has applied its first
// pass and holds its watch stream.
func startFleet(b testing.TB, n int) *fleet {
	b.Helper()
	f := &fleet{dev: testutil.StartDevserver(b)}
	var err error
	if f.admin, err = devserver.DialDir(f.dev.Dir); err != nil {
		b.Fatal(err)
	}
	f.pid = devserverPID(b, f.dev.Dir)
	ctx := context.Background()

	f.orgID = f.createSecret(b, "ORG_TOKEN", devserver.SecretScope{OrganizationID: "acme"},
		devserver.SecretMount{EnvironmentVariable: true}, []byte("org-v1"))

	// (a) Environments and user secrets through the admin API, eight calls
	// at a time; (b) each agent's dirs, config and agent, in this goroutine
	// (the testutil helpers fail the benchmark from it).
	root := b.TempDir()
	homes := make([]string, n)
	envs := make([]devserver.CreateEnvironmentResponse, n)
	var (
		mu   sync.Mutex
		errs []error
		next atomic.Int64
		wg   sync.WaitGroup
	)
	for range 8 {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				homes[i] = filepath.Join(root, fmt.Sprintf("a%04d", i), "home")
				var err error
				envs[i], err = f.createEnv(ctx, fmt.Sprintf("user%04d", i), homes[i])
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		b.Fatalf("create the fleet's environments: %v", errors.Join(errs...))
	}
	b.Logf("fleet: %d environments and user secrets created", n)
	f.members = make([]*fleetMember, n)
	for i := range n {
		f.members[i] = f.newMember(b, filepath.Dir(homes[i]), envs[i])
	}

	runCtx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	began := time.Now()
	for i, m := range f.members {
		go func() { m.done <- m.a.Run(runCtx) }()
		if i%50 == 49 {
			time.Sleep(100 * time.Millisecond) // a fleet boots over seconds, not in one instant
		}
	}
	f.await(b, 3*time.Minute, "every agent applied its first pass and holds its watch stream", func(m *fleetMember) bool {
		select {
		case <-m.a.Applied():
			st := m.a.Status()
			return st.WatchConnected && st.State == control.Ready
		default:
			return false
		}
	})
	f.startup = time.Since(began)
	b.Logf("fleet: %d agents applied and watching %v after the first started", n, f.startup.Round(time.Millisecond))
	return f
}

// createEnv creates an environment of user and its user secret, a file in
// home.
func (f *fleet) createEnv(ctx context.Context, user, home string) (devserver.CreateEnvironmentResponse, error) {
	env, err := f.admin.CreateEnvironment(ctx, "acme", "web", user)
	if err != nil {
		return env, fmt.Errorf("create the environment of %s: %w", user, err)
	}
	req := devserver.CreateSecretRequest{Name: "USER_KEY", Scope: devserver.SecretScope{UserID: user},
		SecretMount: devserver.SecretMount{FilePath: filepath.Join(home, ".config/fleet/key")}}
	req.Value, req.ValueBytes = controlplane.EncodeValue([]byte("key-of-" + user))
	if _, err := f.admin.CreateSecret(ctx, req); err != nil {
		return env, fmt.Errorf("create the user secret of %s: %w", user, err)
	}
	return env, nil
}

// newMember writes env's token file and agent config into dir (home is
// dir/home) and builds its agent, not yet running.
func (f *fleet) newMember(b testing.TB, dir string, env devserver.CreateEnvironmentResponse) *fleetMember {
	b.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		b.Fatal(err)
	}
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte(env.Token), 0o600); err != nil {
		b.Fatal(err)
	}
	path := testutil.WriteAgentConfig(b, dir, testutil.AgentConfig{
		URL: f.dev.URL, EnvironmentID: env.EnvironmentID, TokenFile: token, LogLevel: "error",
	})
	cfg, err := builtin.Load(path)
	if err != nil {
		b.Fatalf("load %s: %v", path, err)
	}
	c, err := controlplane.New(controlplane.Options{BaseURL: f.dev.URL, TokenFile: token, UserAgent: "secrets-agent-fleet"})
	if err != nil {
		b.Fatal(err)
	}
	cp := &fleetPlane{Client: c}
	a, err := agent.New(cfg, zap.NewNop(), agent.WithControlPlane(cp), agent.WithBuilders(builtin.Builders), agent.WithoutFileWatch(),
		agent.WithoutStatusSocket(), agent.WithVersion("fleet"))
	if err != nil {
		b.Fatalf("agent in %s: %v", dir, err)
	}
	return &fleetMember{a: a, cp: cp, envDir: cfg.Injectors["envprofile"].(*envprofile.Section).Dir, done: make(chan error, 1)}
}

func (f *fleet) createSecret(b testing.TB, name string, scope devserver.SecretScope, mount devserver.SecretMount, value []byte) string {
	b.Helper()
	req := devserver.CreateSecretRequest{Name: name, Scope: scope, SecretMount: mount}
	req.Value, req.ValueBytes = controlplane.EncodeValue(value)
	s, err := f.admin.CreateSecret(context.Background(), req)
	if err != nil {
		b.Fatalf("create secret %s: %v", name, err)
	}
	return s.ID
}

// await polls every agent (10 times a second, which costs the agents next to
// nothing) until cond holds for all of them, failing after timeout with the
// number still waiting.
func (f *fleet) await(b testing.TB, timeout time.Duration, what string, cond func(*fleetMember) bool) {
	b.Helper()
	deadline := time.Now().Add(timeout)
	pending := slices.Clone(f.members)
	for {
		pending = slices.DeleteFunc(pending, cond)
		if len(pending) == 0 {
			return
		}
		if time.Now().After(deadline) {
			m := pending[0]
			st, opens := m.a.Status(), m.cp.opensSince(time.Time{})
			last := streamOpen{err: "none"}
			if len(opens) > 0 {
				last = opens[len(opens)-1]
			}
			b.Fatalf("after %v, %d of %d agents still wait for: %s (one of them: state %s, last error %q; watch %v, "+
				"%d stream opens, the last at %s: %q)", timeout, len(pending), len(f.members), what,
				st.State, st.LastError, st.WatchConnected, len(opens), last.at.Format(time.TimeOnly), last.err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// requests is how many HTTP requests the whole fleet has sent so far.
func (f *fleet) requests() int64 {
	var sum int64
	for _, m := range f.members {
		sum += m.cp.Requests()
	}
	return sum
}

// stop ends every agent's Run and checks each returned nil.
func (f *fleet) stop(b testing.TB) {
	b.Helper()
	f.cancel()
	timeout := time.After(60 * time.Second)
	for _, m := range f.members {
		select {
		case err := <-m.done:
			if err != nil {
				b.Errorf("agent Run returned %v", err)
			}
		case <-timeout:
			b.Error("agents did not stop within 60s")
			return
		}
	}
}

type waveResult struct {
	latencies []time.Duration // per agent, from the update sent to the value applied
	cpuPct    float64         // devserver CPU from the update until all applied, % of one core
	requests  int64           // requests the fleet sent during the wave
}

// updateWave updates the organization secret to value and waits until every
// agent has applied it: its status row for the secret changed after the
// update was sent. Each agent's env file is then read to check it holds the
// new value.
func (f *fleet) updateWave(b testing.TB, value []byte) waveResult {
	b.Helper()
	reqs0, cpu0 := f.requests(), cpuTime(b, f.pid)
	sent := time.Now()
	if _, err := f.admin.UpdateSecretValue(context.Background(), f.orgID, value); err != nil {
		b.Fatalf("update the organization secret: %v", err)
	}
	changedAt := func(m *fleetMember) time.Time {
		for _, s := range m.a.Status().Secrets {
			if s.ID == f.orgID {
				return s.LastChanged
			}
		}
		return time.Time{}
	}
	f.await(b, 2*time.Minute, "the organization secret's update applied", func(m *fleetMember) bool {
		return changedAt(m).After(sent)
	})
	res := waveResult{
		cpuPct:   100 * (cpuTime(b, f.pid) - cpu0).Seconds() / time.Since(sent).Seconds(),
		requests: f.requests() - reqs0,
	}
	for _, m := range f.members {
		res.latencies = append(res.latencies, changedAt(m).Sub(sent))
	}
	for _, m := range f.members {
		got, err := os.ReadFile(filepath.Join(m.envDir, "env"))
		if err != nil || !strings.Contains(string(got), string(value)) {
			b.Fatalf("%s/env does not hold the updated value after the wave (err %v)", m.envDir, err)
		}
	}
	return res
}

type idleResult struct {
	reqPerAgentMin float64
	cpuPct         float64 // devserver
	agentCPUms     float64 // this process's CPU per agent per minute
}

// idle lets the fleet run for d with nothing changing (after a second for
// the wave's stragglers) and counts requests and CPU.
func (f *fleet) idle(b testing.TB, d time.Duration) idleResult {
	b.Helper()
	time.Sleep(time.Second)
	reqs0, cpu0, self0 := f.requests(), cpuTime(b, f.pid), selfCPU(b)
	began := time.Now()
	time.Sleep(d)
	wall := time.Since(began)
	n, minutes := float64(len(f.members)), wall.Minutes()
	return idleResult{
		reqPerAgentMin: float64(f.requests()-reqs0) / n / minutes,
		cpuPct:         100 * (cpuTime(b, f.pid) - cpu0).Seconds() / wall.Seconds(),
		agentCPUms:     float64((selfCPU(b) - self0).Milliseconds()) / n / minutes,
	}
}

type restartResult struct {
	down        time.Duration   // from SIGTERM to the new server's address file
	after       []time.Duration // per agent, from SIGTERM to its stream open again
	all         time.Duration   // the largest of after
	firstSecond int             // agents back within the first second
	perSecond   []int           // agents back in [i, i+1) s
	cpuPct      float64         // the new devserver's CPU until all were back, % of one core
	// firstTryInFirstSecond counts the agents whose first open after
	// SIGTERM began within a second of it; failures counts the failed opens
	// after SIGTERM by error.
	firstTryInFirstSecond int
	failures              map[string]int
}

// restart stops the devserver (SIGTERM: every stream ends), starts it again
// on the same data dir and port, and waits until every agent's watch stream
// is open again.
func (f *fleet) restart(b testing.TB) restartResult {
	b.Helper()
	addr := f.dev.Addr
	gone := time.Now() // SIGTERM: the server ends every stream at once, then exits
	f.dev.Stop(b)
	f.dev.Start(b)
	up := time.Now()
	if f.dev.Addr != addr {
		b.Fatalf("the devserver came back on %s, not on %s: the agents cannot follow", f.dev.Addr, addr)
	}
	f.pid = devserverPID(b, f.dev.Dir)
	cpu0 := cpuTime(b, f.pid)
	f.await(b, 3*time.Minute, "watch stream open again after the restart", func(m *fleetMember) bool {
		return m.cp.connectedAt.Load() > gone.UnixNano()
	})
	res := restartResult{down: up.Sub(gone), failures: map[string]int{}}
	for _, m := range f.members {
		opens := m.cp.opensSince(gone)
		if len(opens) > 0 && opens[0].at.Sub(gone) < time.Second {
			res.firstTryInFirstSecond++
		}
		for _, o := range opens {
			if o.err != "" {
				res.failures[o.err]++
			}
		}
		d := time.Duration(m.cp.connectedAt.Load() - gone.UnixNano())
		res.after = append(res.after, d)
		res.all = max(res.all, d)
		if d < time.Second {
			res.firstSecond++
		}
		sec := int(d / time.Second)
		for len(res.perSecond) <= sec {
			res.perSecond = append(res.perSecond, 0)
		}
		res.perSecond[sec]++
	}
	res.cpuPct = 100 * (cpuTime(b, f.pid) - cpu0).Seconds() / time.Since(up).Seconds()
	return res
}

// reconnectHistogram renders the reconnect times as ten buckets over their
// spread (for docs/fleet-reconnects.txt, which docs/BENCHMARKS.md includes).
func reconnectHistogram(n int, r restartResult) string {
	const buckets, width = 10, 50
	counts := make([]int, buckets)
	span := max(r.all, time.Millisecond)
	for _, d := range r.after {
		counts[min(buckets-1, int(int64(d)*buckets/int64(span)))]++
	}
	peak := slices.Max(counts)
	var sb strings.Builder
	fmt.Fprintf(&sb, "Watch-stream reconnects of %d agents after a devserver restart (SIGTERM, then\n", n)
	fmt.Fprintf(&sb, "start on the same port; %.2f s from SIGTERM to the new server up): time from SIGTERM\n", r.down.Seconds())
	fmt.Fprintf(&sb, "to each agent's stream open again; all back after %.2f s. ", r.all.Seconds())
	failed := 0
	for _, c := range r.failures {
		failed += c
	}
	fmt.Fprintf(&sb, "%d%% of the agents\ntried within the first second; %d opens failed while the server was down.\n\n",
		r.firstTryInFirstSecond*100/max(n, 1), failed)
	for i, c := range counts {
		from, to := span*time.Duration(i)/buckets, span*time.Duration(i+1)/buckets
		bar := strings.Repeat("#", int(math.Round(float64(c)*width/float64(max(peak, 1)))))
		fmt.Fprintf(&sb, "%6.2f-%6.2f s %5d %s\n", from.Seconds(), to.Seconds(), c, bar)
	}
	return sb.String()
}

// devserverPID finds the running `secrets-devserver serve --data dir` in
// /proc (testutil.Devserver does not expose its process).
func devserverPID(b testing.TB, dir string) int {
	b.Helper()
	procs, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		b.Fatal(err)
	}
	for _, p := range procs {
		raw, err := os.ReadFile(p)
		if err != nil {
			continue // the process is gone
		}
		args := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
		if len(args) < 2 || filepath.Base(args[0]) != "secrets-devserver" || args[1] != "serve" {
			continue
		}
		if i := slices.Index(args, "--data"); i >= 0 && i+1 < len(args) && args[i+1] == dir {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			return pid
		}
	}
	b.Fatalf("no secrets-devserver serving %s in /proc", dir)
	return 0
}

// selfCPU returns the user+system CPU time of this process (the agents).
func selfCPU(b testing.TB) time.Duration {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// raiseOpenFiles raises this process's soft RLIMIT_NOFILE to its hard limit
// (Go does this at start too, but say so here) and skips when even that is
// below need: each agent holds two connections, and its files briefly.
func raiseOpenFiles(b testing.TB, need uint64) {
	b.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		b.Fatal(err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			b.Fatalf("raise RLIMIT_NOFILE: %v", err)
		}
	}
	if lim.Cur < need {
		b.Skipf("skipping: RLIMIT_NOFILE is %d, the fleet needs about %d open files", lim.Cur, need)
	}
}

func envInt(b testing.TB, name string, def int) int {
	b.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}

func envDuration(b testing.TB, name string, def time.Duration) time.Duration {
	b.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		b.Fatalf("%s=%q: want a positive duration", name, v)
	}
	return d
}
