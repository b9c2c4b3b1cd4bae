package test

// Benchmarks for `make bench` (scripts/bench.sh documents the framework).
// Each reports its figures with b.ReportMetric and, where a figure needs a
// word of context, a "note:" log line that the report prints beside its
// table. None of them fails on a number: they measure, they do not judge.

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/secrets-agent/secrets-agent/agent"
	"github.com/secrets-agent/secrets-agent/controlplane"
	"github.com/secrets-agent/secrets-agent/controlplane/devserver"
	"github.com/secrets-agent/secrets-agent/injectors/builtin"
	"github.com/secrets-agent/secrets-agent/internal/faultproxy"
	"github.com/secrets-agent/secrets-agent/internal/testutil"
)

// benchEnv is a devserver with one environment (org acme, project web, user
// alice), its admin client, and an agent config for it below dir.
type benchEnv struct {
	dev   *testutil.Devserver
	admin *devserver.AdminClient
	dir   string
	cfg   testutil.AgentConfig
}

func newBenchEnv(b *testing.B) *benchEnv {
	b.Helper()
	e := &benchEnv{dev: testutil.StartDevserver(b), dir: b.TempDir()}
	admin, err := devserver.DialDir(e.dev.Dir)
	if err != nil {
		b.Fatalf("dial devserver: %v", err)
	}
	e.admin = admin
	env, err := admin.CreateEnvironment(context.Background(), "acme", "web", "alice")
	if err != nil {
		b.Fatalf("create environment: %v", err)
	}
	tokenFile := filepath.Join(e.dir, "token")
	if err := os.WriteFile(tokenFile, []byte(env.Token), 0o600); err != nil {
		b.Fatal(err)
	}
	e.cfg = testutil.AgentConfig{
		URL: e.dev.URL, EnvironmentID: env.EnvironmentID, TokenFile: tokenFile,
		Home:     filepath.Join(e.dir, "home"),
		StateDir: filepath.Join(e.dir, "state"),
		EnvDir:   filepath.Join(e.dir, "envdir"),
		Socket:   filepath.Join(e.dir, "agent.sock"),
		LogLevel: "info", // debug logging would be part of what we measure
	}
	return e
}

// secretSet is how many secrets of each mount kind seed creates.
type secretSet struct{ env, files, registries int }

func (s secretSet) String() string {
	return fmt.Sprintf("%d secrets (%d env, %d files, %d registries)", s.env+s.files+s.registries, s.env, s.files, s.registries)
}

// seeded is what seed created: every secret's id, and the file secrets'
// paths (in creation order) with their ids.
type seeded struct {
	ids       []string
	filePaths []string
	fileIDs   []string
}

// seed creates set's secrets through the admin API, eight at a time, spread
// over the three scopes with distinct names so that all of them apply: env
// values of 32 bytes, files of 512 bytes below the home, registry values
// base64(user:password).
func (e *benchEnv) seed(b *testing.B, set secretSet) seeded {
	b.Helper()
	type job struct {
		req  devserver.CreateSecretRequest
		file string
	}
	owners := []devserver.SecretScope{{OrganizationID: "acme"}, {ProjectID: "web"}, {UserID: "alice"}}
	var jobs []job
	for i := 0; i < set.env; i++ {
		jobs = append(jobs, job{req: devserver.CreateSecretRequest{Name: fmt.Sprintf("BENCH_ENV_%04d", i),
			SecretMount: devserver.SecretMount{EnvironmentVariable: true}, Value: benchValue("env", i, 32)}})
	}
	for i := 0; i < set.files; i++ {
		p := filepath.Join(e.cfg.Home, "bench", fmt.Sprintf("d%02d", i%10), fmt.Sprintf("f%04d", i))
		jobs = append(jobs, job{file: p, req: devserver.CreateSecretRequest{Name: fmt.Sprintf("BENCH_FILE_%04d", i),
			SecretMount: devserver.SecretMount{FilePath: p}, Value: benchValue("file", i, 512)}})
	}
	for i := 0; i < set.registries; i++ {
		jobs = append(jobs, job{req: devserver.CreateSecretRequest{Name: fmt.Sprintf("BENCH_REG_%04d", i),
			SecretMount: devserver.SecretMount{ContainerRegistryBasicAuthHost: fmt.Sprintf("reg%03d.bench.test", i)},
			Value:       base64.StdEncoding.EncodeToString([]byte("bot:" + benchValue("pw", i, 24)))}})
	}
	for i := range jobs {
		jobs[i].req.Scope = owners[i%len(owners)]
	}

	var out seeded
	out.ids = make([]string, len(jobs))
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	next := make(chan int)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				s, err := e.admin.CreateSecret(context.Background(), jobs[i].req)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = fmt.Errorf("create %s: %w", jobs[i].req.Name, err)
				}
				out.ids[i] = s.ID
				mu.Unlock()
			}
		}()
	}
	for i := range jobs {
		next <- i
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		b.Fatal(firstErr)
	}
	for i, j := range jobs {
		if j.file != "" {
			out.filePaths = append(out.filePaths, j.file)
			out.fileIDs = append(out.fileIDs, out.ids[i])
		}
	}
	return out
}

// benchValue is a printable value of n bytes, distinct per kind and i.
func benchValue(kind string, i, n int) string {
	s := fmt.Sprintf("%s-%d-", kind, i)
	return s + strings.Repeat("x", max(0, n-len(s)))
}

// BenchmarkColdApply1000 measures a cold apply of 1,000 secrets (700 env,
// 250 files, 50 registries) from a devserver on loopback to disk: each
// iteration builds a new in-process agent (agent.New with the real client
// and injectors) over an emptied home, env dir and state dir, and times
// agent.New plus one Sync. It reports the median over the iterations.
func BenchmarkColdApply1000(b *testing.B) {
	benchColdApply(b, secretSet{env: 700, files: 250, registries: 50})
}

// BenchmarkColdApply10000 is BenchmarkColdApply1000 with 10,000 secrets
// (7,000 env, 2,500 files, 500 registries).
func BenchmarkColdApply10000(b *testing.B) {
	benchColdApply(b, propagationSet(10000))
}

// benchColdApply times cold applies of set (see BenchmarkColdApply1000).
func benchColdApply(b *testing.B, set secretSet) {
	e := newBenchEnv(b)
	s := e.seed(b, set)
	b.Logf("note: %s, spread over the organization, project and user scopes; env values 32 bytes, files 512 bytes", set)
	cfgPath := testutil.WriteAgentConfig(b, e.dir, e.cfg)

	var took []time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		for _, d := range []string{e.cfg.Home, e.cfg.StateDir, e.cfg.EnvDir} {
			if err := os.RemoveAll(d); err != nil {
				b.Fatal(err)
			}
		}
		if err := os.MkdirAll(e.cfg.Home, 0o755); err != nil {
			b.Fatal(err)
		}
		cfg, err := builtin.Load(cfgPath)
		if err != nil {
			b.Fatalf("load config: %v", err)
		}
		b.StartTimer()

		start := time.Now()
		a, err := agent.New(cfg, nil, agent.WithBuilders(builtin.Builders))
		if err != nil {
			b.Fatalf("agent.New: %v", err)
		}
		rep := a.Sync(context.Background())
		took = append(took, time.Since(start))

		b.StopTimer()
		if !rep.OK() {
			b.Fatalf("cold apply did not apply everything: error %q, state %s", rep.Error, rep.Status.State)
		}
		if got := len(rep.Status.Secrets); got != len(s.ids) {
			b.Fatalf("status lists %d secrets, want %d", got, len(s.ids))
		}
		b.StartTimer()
	}
	b.StopTimer()
	for _, p := range s.filePaths {
		if _, err := os.Stat(p); err != nil {
			b.Fatalf("file secret not on disk after the apply: %v", err)
		}
	}
	b.ReportMetric(millis(percentile(took, 50)), "median-ms")
	b.ReportMetric(millis(percentile(took, 0)), "min-ms")
	b.ReportMetric(millis(percentile(took, 100)), "max-ms")
	b.ReportMetric(float64(len(took)), "applies")
	spec, values := fetchTimes(b, e.cfg, s.ids)
	b.ReportMetric(spec, "spec-fetch-ms")
	b.ReportMetric(values, "value-fetches-ms")
	b.Logf("note: spec-fetch-ms and value-fetches-ms time the same control-plane calls alone, outside the agent: one GetEnvironment, then one GetSecretValue per secret in turn, as a cold pass makes them; the rest of median-ms is the agent's own work and the disk")
	b.ReportMetric(0, "ns/op")
}

// fetchTimes makes, with the real control-plane client, the calls a cold
// pass makes (one GetEnvironment, then GetSecretValue for each id in turn)
// and returns how long each part took, in milliseconds.
func fetchTimes(b *testing.B, c testutil.AgentConfig, ids []string) (spec, values float64) {
	b.Helper()
	cp, err := controlplane.New(controlplane.Options{BaseURL: c.URL, TokenFile: c.TokenFile})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	start := time.Now()
	if _, err := cp.GetEnvironment(ctx, c.EnvironmentID); err != nil {
		b.Fatalf("get environment: %v", err)
	}
	mid := time.Now()
	for _, id := range ids {
		if _, err := cp.GetSecretValue(ctx, id); err != nil {
			b.Fatalf("get secret value: %v", err)
		}
	}
	end := time.Now()
	return millis(mid.Sub(start)), millis(end.Sub(mid))
}

// BenchmarkPropagationStream measures how long an updated file secret
// takes to reach its file with the watch stream on, with 100, 1,000 and
// 10,000 secrets applied (70 % env, 25 % files, 5 % registries): what a
// pass costs when one secret of many changed.
func BenchmarkPropagationStream(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		b.Run(fmt.Sprintf("secrets=%d", n), func(b *testing.B) {
			for _, t := range propagationTargets[n] {
				b.Logf("target: %s", t)
			}
			benchPropagation(b, propagationSet(n), true, "30s", 0)
		})
	}
}

// propagationTargets are the issues' targets by secrets applied: issue 4
// set those at 100, issue 16 those at 1,000 and 10,000.
var propagationTargets = map[int][]string{
	100:   {"p50-ms < 50", "p99-ms < 250"},
	1000:  {"p50-ms < 10", "p99-ms < 25"},
	10000: {"p99-ms < 100"},
}

// BenchmarkPropagationPoll measures the same with the stream off and a poll
// interval of 1 s: the latency is then about half the interval.
func BenchmarkPropagationPoll(b *testing.B) {
	benchPropagation(b, propagationSet(100), false, "1s", 1200*time.Millisecond)
}

// propagationSet is n secrets split as a platform's usually are: 70 % env,
// 25 % files, 5 % registries.
func propagationSet(n int) secretSet {
	return secretSet{env: n * 70 / 100, files: n * 25 / 100, registries: n - n*70/100 - n*25/100}
}

// propagationUpdates is how many updates each propagation benchmark times.
const propagationUpdates = 200

// benchPropagation runs the real agent binary against a real devserver with
// set applied and, propagationUpdates times: (1) waits a random time below
// spread, (2) updates one file secret through the admin API to a new
// value, (3) takes the time the call returned, (4) waits (inotify on the
// file's directory, re-reading the file on every event) until the file
// holds the new bytes, (5) records the difference. A file that already
// holds them when the call returns counts as 0 ms: the change was faster
// than the call's answer. Step (1) matters for polling: an update sent
// right after the previous one landed would always meet a freshly re-armed
// poll timer and wait a whole interval.
func benchPropagation(b *testing.B, set secretSet, watch bool, poll string, spread time.Duration) {
	e := newBenchEnv(b)
	s := e.seed(b, set)
	e.cfg.Watch, e.cfg.PollInterval = &watch, poll
	ag := testutil.StartAgent(b, testutil.WriteAgentConfig(b, e.dir, e.cfg))
	waitApplied(b, s)
	b.Logf("note: real secrets-agent binary, %s applied, watch %v, poll_interval %s; %d updates of one 512-byte file secret, each timed from UpdateSecretValue returning to the new bytes readable at the path",
		set, watch, poll, propagationUpdates)
	if !watch {
		b.Logf("note: with polling only, latency is bounded by poll_interval (1 s, ±20%% jitter): about half of it on average; each update waits a random 0–%v first, so that it lands at a random moment of the poll cycle", spread)
	}

	target, id := s.filePaths[0], s.fileIDs[0]
	w, err := fsnotify.NewWatcher()
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	if err := w.Add(filepath.Dir(target)); err != nil {
		b.Fatal(err)
	}

	var lat []time.Duration
	b.ResetTimer()
	for range b.N {
		for i := range propagationUpdates {
			if spread > 0 {
				time.Sleep(rand.N(spread))
			}
			want := []byte(benchValue("rotated", b.N*1000+i, 512))
			if _, err := e.admin.UpdateSecretValue(context.Background(), id, want); err != nil {
				b.Fatalf("update %d: %v", i, err)
			}
			sent := time.Now()
			if err := waitFor(w, target, want, 30*time.Second); err != nil {
				if exited, xerr := ag.Exited(); exited {
					b.Fatalf("update %d: %v (agent exited: %v)", i, err, xerr)
				}
				b.Fatalf("update %d: %v", i, err)
			}
			lat = append(lat, time.Since(sent))
		}
	}
	b.StopTimer()
	b.ReportMetric(millis(percentile(lat, 50)), "p50-ms")
	b.ReportMetric(millis(percentile(lat, 99)), "p99-ms")
	b.ReportMetric(millis(percentile(lat, 100)), "max-ms")
	b.ReportMetric(float64(len(lat)), "updates")
	b.ReportMetric(float64(strings.Count(ag.Log(), "making a new plan")), "new-plans")
	b.ReportMetric(0, "ns/op")
}

// waitFor returns once path holds want, re-reading it now and on every
// event w reports; it fails after timeout.
func waitFor(w *fsnotify.Watcher, path string, want []byte, timeout time.Duration) error {
	return waitUntil(w, path, func(got []byte) bool { return bytes.Equal(got, want) }, timeout)
}

// waitForContains returns once path holds want somewhere; see waitFor.
func waitForContains(w *fsnotify.Watcher, path string, want []byte, timeout time.Duration) error {
	return waitUntil(w, path, func(got []byte) bool { return bytes.Contains(got, want) }, timeout)
}

// waitUntil returns once path's content satisfies ok, re-reading it now and
// on every event w reports; it fails after timeout.
func waitUntil(w *fsnotify.Watcher, path string, ok func([]byte) bool, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		if got, err := os.ReadFile(path); err == nil && ok(got) {
			return nil
		}
		select {
		case <-w.Events:
		case err := <-w.Errors:
			return fmt.Errorf("watch %s: %w", path, err)
		case <-deadline.C:
			return fmt.Errorf("%s did not get the new value within %v", path, timeout)
		case <-time.After(100 * time.Millisecond): // in case an event was missed
		}
	}
}

// waitApplied waits until every file secret of s is on disk.
func waitApplied(b *testing.B, s seeded) {
	b.Helper()
	testutil.Eventually(b, 60*time.Second, "every file secret is applied", func() bool {
		for _, p := range s.filePaths {
			if _, err := os.Stat(p); err != nil {
				return false
			}
		}
		return true
	})
}

// idleWindow is how long BenchmarkIdle watches the idle agent.
const idleWindow = 60 * time.Second

// BenchmarkIdle runs the real agent with 100 secrets applied, the watch
// stream on and the default poll interval (30 s), through a fault proxy that
// injects nothing and counts requests. After the first apply (and 2 s to
// settle) it measures over idleWindow: CPU (utime+stime from /proc/PID/stat)
// as a percentage of one core, peak RSS (VmHWM, which includes the first
// apply) and requests the proxy saw, which excludes the stream opened
// before the window and counts any reconnect of it.
func BenchmarkIdle(b *testing.B) {
	benchIdle(b, secretSet{env: 70, files: 25, registries: 5})
}

// BenchmarkIdleLarge is BenchmarkIdle with 1,000 and 10,000 secrets
// applied: what a large environment costs while nothing changes.
func BenchmarkIdleLarge(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("secrets=%d", n), func(b *testing.B) { benchIdle(b, propagationSet(n)) })
	}
}

// benchIdle measures the idle agent with set applied (see BenchmarkIdle).
func benchIdle(b *testing.B, set secretSet) {
	e := newBenchEnv(b)
	s := e.seed(b, set)
	proxy, err := faultproxy.Start(e.dev.URL)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { proxy.Close() })
	e.cfg.URL = proxy.URL()
	ag := testutil.StartAgent(b, testutil.WriteAgentConfig(b, e.dir, e.cfg))
	waitApplied(b, s)
	time.Sleep(2 * time.Second)
	b.Logf("note: real secrets-agent binary, %s applied, watch on, poll_interval 30s (default, ±20%% jitter), measured over %v of idling; requests counted by a pass-through proxy, the long-lived stream excluded (it is one request, silent while nothing changes); CPU time is counted in 10 ms ticks, so over %v one tick is %.4f%% of a core",
		set, idleWindow, idleWindow, 100*0.01/idleWindow.Seconds())

	var cpu, hwm float64
	var reqs int64
	b.ResetTimer()
	for range b.N {
		cpu0 := cpuTime(b, ag.Pid()).Seconds()
		req0 := proxy.Requests()
		time.Sleep(idleWindow)
		cpu = cpuTime(b, ag.Pid()).Seconds() - cpu0
		reqs = proxy.Requests() - req0
		hwm = vmHWM(b, ag.Pid())
	}
	b.StopTimer()
	if exited, err := ag.Exited(); exited {
		b.Fatalf("the agent exited while idle: %v", err)
	}
	b.ReportMetric(100*cpu/idleWindow.Seconds(), "cpu-%")
	b.ReportMetric(cpu, "cpu-s")
	b.ReportMetric(hwm, "rss-MB")
	b.ReportMetric(float64(reqs)/idleWindow.Minutes(), "req/min")
	b.ReportMetric(0, "ns/op")
}

// envUpdates is how many updates BenchmarkPropagationEnv times.
const envUpdates = 200

// BenchmarkPropagationEnv measures, with 1,000 secrets applied (700 env),
// how long an updated env secret takes to reach a live shell: the real
// agent binary against a real devserver, and a bash that sourced the
// shell hook. For each of envUpdates updates of one env secret it times,
// from UpdateSecretValue returning, (1) until env.sh holds the new value
// (inotify on the env dir) and (2) until the shell, given a line (its next
// prompt), has run the hook's sync and holds the new value: (2) is (1)
// plus the hook's re-source. The env dir is on a tmpfs, as the default
// (/run/secrets-agent) is in a real deployment, and then on the disk the
// test's temp dir is on.
func BenchmarkPropagationEnv(b *testing.B) {
	b.Run("envdir=tmpfs", func(b *testing.B) {
		var st syscall.Statfs_t
		if err := syscall.Statfs("/dev/shm", &st); err != nil || st.Type != 0x01021994 { // TMPFS_MAGIC
			b.Skip("no tmpfs at /dev/shm")
		}
		dir, err := os.MkdirTemp("/dev/shm", "secrets-agent-bench-")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(dir) })
		benchPropagationEnv(b, dir)
	})
	b.Run("envdir=disk", func(b *testing.B) { benchPropagationEnv(b, "") })
}

// benchPropagationEnv is BenchmarkPropagationEnv with the env dir in
// envDir ("": the default, under the test's temp dir).
func benchPropagationEnv(b *testing.B, envDir string) {
	bash := testutil.NeedTool(b, "bash")
	set := propagationSet(1000)
	e := newBenchEnv(b)
	if envDir != "" {
		e.cfg.EnvDir = envDir
	}
	s := e.seed(b, set)
	watch := true
	e.cfg.Watch, e.cfg.PollInterval = &watch, "30s"
	ag := testutil.StartAgent(b, testutil.WriteAgentConfig(b, e.dir, e.cfg))
	waitApplied(b, s)
	fragment := filepath.Join(e.cfg.EnvDir, "env.sh")
	const name = "BENCH_ENV_0000"
	testutil.Eventually(b, 60*time.Second, "env.sh holds the env secrets", func() bool {
		got, err := os.ReadFile(fragment)
		return err == nil && bytes.Contains(got, []byte(benchValue("env", 0, 32)))
	})
	sh := startPromptShell(b, bash, e.cfg.EnvDir, name)
	if envDir != "" {
		b.Logf("target: fragment-p50-ms < 10")
		b.Logf("target: fragment-p99-ms < 25")
	} else {
		b.Logf("note: the env dir is on the disk the test's temp dir is on (ext4 here), which fsyncs each file: a real deployment keeps it in /run, a tmpfs (the other sub-benchmark)")
	}
	b.Logf("note: real secrets-agent binary, %s applied, watch true; %d updates of the 32-byte env secret %s; fragment: from UpdateSecretValue returning to env.sh holding the new value; prompt: to a bash that sourced the hook holding it after its next prompt's sync",
		set, envUpdates, name)

	w, err := fsnotify.NewWatcher()
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	if err := w.Add(e.cfg.EnvDir); err != nil {
		b.Fatal(err)
	}
	var frag, prompt []time.Duration
	b.ResetTimer()
	for range b.N {
		for i := range envUpdates {
			want := benchValue("rotated", b.N*1000+i, 32)
			if _, err := e.admin.UpdateSecretValue(context.Background(), s.ids[0], []byte(want)); err != nil {
				b.Fatalf("update %d: %v", i, err)
			}
			sent := time.Now()
			if err := waitForContains(w, fragment, []byte(want), 30*time.Second); err != nil {
				if exited, xerr := ag.Exited(); exited {
					b.Fatalf("update %d: %v (agent exited: %v)", i, err, xerr)
				}
				b.Fatalf("update %d: %v", i, err)
			}
			frag = append(frag, time.Since(sent))
			if got := sh.prompt(b); got != want {
				b.Fatalf("update %d: the shell holds %s=%q after its prompt, want %q", i, name, got, want)
			}
			prompt = append(prompt, time.Since(sent))
		}
	}
	b.StopTimer()
	b.ReportMetric(millis(percentile(frag, 50)), "fragment-p50-ms")
	b.ReportMetric(millis(percentile(frag, 99)), "fragment-p99-ms")
	b.ReportMetric(millis(percentile(prompt, 50)), "prompt-p50-ms")
	b.ReportMetric(millis(percentile(prompt, 99)), "prompt-p99-ms")
	b.ReportMetric(float64(len(frag)), "updates")
	b.ReportMetric(float64(strings.Count(ag.Log(), "making a new plan")), "new-plans")
	b.ReportMetric(0, "ns/op")
}
