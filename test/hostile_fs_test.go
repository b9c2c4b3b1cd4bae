package test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/secrets-agent/secrets-agent/control"
	"github.com/secrets-agent/secrets-agent/controlplane"
	"github.com/secrets-agent/secrets-agent/internal/testutil"
)

// fsRig is one real agent against the real devserver for one row of the
// hostile filesystem table: an env secret, two file secrets and a registry
// secret, applied to a home (and env dir) owned by the environment's user —
// "nobody" when the test runs as root, so that what the table plants there
// is planted as a second, unprivileged user would.
type fsRig struct {
	dev      *testutil.Devserver
	cfg      testutil.AgentConfig
	dir      string
	uid, gid int // the environment's user
	agent    *testutil.Agent
}

// The secrets every row applies; a row breaks one of them (or none).
const (
	fsEnvName  = "GOOD_ENV"
	fsEnvValue = "env-value"
	fsFile     = "good/file.txt" // below home
	fsVictim   = "victim/file.txt"
	fsRegistry = "registry.hostile.test"
)

func newFSRig(t *testing.T, dev *testutil.Devserver, name string) *fsRig {
	t.Helper()
	r := &fsRig{dev: dev, dir: t.TempDir(), uid: os.Getuid(), gid: os.Getgid()}
	user := strings.ToLower(strings.NewReplacer("/", "-", "_", "-", " ", "-").Replace(name))
	envID, token := dev.CreateEnv(t, "acme", "web", user)
	tokenFile := filepath.Join(r.dir, "token")
	must(t, os.WriteFile(tokenFile, []byte(token), 0o600))
	r.cfg = testutil.AgentConfig{
		URL: dev.URL, EnvironmentID: envID, TokenFile: tokenFile,
		Home:     filepath.Join(r.dir, "home"),
		EnvDir:   filepath.Join(r.dir, "envdir"),
		StateDir: filepath.Join(r.dir, "state"),
		Socket:   filepath.Join(r.dir, "agent.sock"),
	}
	must(t, os.MkdirAll(r.cfg.Home, 0o700))
	if os.Geteuid() == 0 {
		r.uid, r.gid = testutil.Nobody(t)
		r.cfg.User = "nobody"
		must(t, os.Chown(r.cfg.Home, r.uid, r.gid))
	}
	dev.CreateSecret(t, "user", user, fsEnvName, env(), []byte(fsEnvValue))
	dev.CreateSecret(t, "user", user, "GOOD_FILE", file(r.home(fsFile)), []byte("good-file"))
	dev.CreateSecret(t, "user", user, "VICTIM_FILE", file(r.home(fsVictim)), []byte("victim-file"))
	dev.CreateSecret(t, "user", user, "REGISTRY", registry(fsRegistry),
		[]byte(base64.StdEncoding.EncodeToString([]byte("bot:pw"))))
	return r
}

func (r *fsRig) home(rel string) string { return filepath.Join(r.cfg.Home, rel) }

// fifo makes a FIFO at p owned by the environment's user, as that user's
// `mkfifo` would.
func (r *fsRig) fifo(t *testing.T, p string) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(p), 0o700))
	must(t, syscall.Mkfifo(p, 0o600))
	must(t, os.Lchown(p, r.uid, r.gid))
}

// fifoOver replaces p by a FIFO the way a user who owns its directory can:
// mkfifo beside it, then rename over it.
func (r *fsRig) fifoOver(t *testing.T, p string) {
	t.Helper()
	tmp := p + ".fifo"
	r.fifo(t, tmp)
	must(t, os.Rename(tmp, p))
}

func (r *fsRig) start(t *testing.T) {
	t.Helper()
	r.agent = testutil.StartAgent(t, testutil.WriteAgentConfig(t, r.dir, r.cfg))
}

// status runs `secrets-agent status --json` and fails the test unless the
// agent answers.
func (r *fsRig) status(t *testing.T) control.Status {
	t.Helper()
	st, err := r.tryStatus(t)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// tryStatus is status, returning why there is none (the agent not
// listening yet, say).
func (r *fsRig) tryStatus(t *testing.T) (control.Status, error) {
	t.Helper()
	var st control.Status
	out, stderr, code := testutil.RunAgent(t, nil, "status", "--json", "--socket", r.cfg.Socket)
	if code == 2 {
		return st, fmt.Errorf("status: agent unreachable (exit 2): %s", stderr)
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return st, fmt.Errorf("status --json printed %q: %v", out, err)
	}
	return st, nil
}

// applied reports whether every secret but those in broken holds its value.
func (r *fsRig) applied(t *testing.T, broken map[string]bool) error {
	t.Helper()
	check := func(name string, ok func() error) error {
		if broken[name] {
			return nil
		}
		if err := ok(); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		return nil
	}
	fileHolds := func(p, want string) func() error {
		return func() error {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if string(b) != want {
				return fmt.Errorf("%s holds %d bytes, not the secret", p, len(b))
			}
			return nil
		}
	}
	return firstErr(
		check(fsEnvName, func() error {
			b, err := os.ReadFile(filepath.Join(r.cfg.EnvDir, "env"))
			if err != nil {
				return err
			}
			if !strings.Contains(string(b), fsEnvValue) {
				return fmt.Errorf("dotenv fragment lacks %s", fsEnvName)
			}
			return nil
		}),
		check("GOOD_FILE", fileHolds(r.home(fsFile), "good-file")),
		check("VICTIM_FILE", fileHolds(r.home(fsVictim), "victim-file")),
		check("REGISTRY", func() error {
			b, err := os.ReadFile(r.home(".docker/config.json"))
			if err != nil {
				return err
			}
			if !strings.Contains(string(b), fsRegistry) {
				return fmt.Errorf("docker config lacks %s", fsRegistry)
			}
			return nil
		}),
	)
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// named reports whether status names the problem: a row of a broken secret
// (or an injector, or the last error) whose error holds want.
func named(st control.Status, broken map[string]bool, want string) bool {
	if strings.Contains(st.LastError, want) && st.State == control.Degraded {
		return true
	}
	for _, s := range st.Secrets {
		if broken[s.Name] && s.Outcome == "failed" && strings.Contains(s.Error, want) {
			return true
		}
	}
	for _, in := range st.Injectors {
		if strings.Contains(in.Error, want) {
			return true
		}
	}
	return false
}

// stopWithin sends SIGTERM and fails the test unless the agent exits within
// limit.
func stopWithin(t *testing.T, a *testutil.Agent, limit time.Duration) {
	t.Helper()
	sent := time.Now()
	a.Signal(t, syscall.SIGTERM)
	for {
		if exited, _ := a.Exited(); exited {
			t.Logf("exited %v after SIGTERM", time.Since(sent).Round(time.Millisecond))
			return
		}
		if time.Since(sent) > limit {
			t.Fatalf("agent still running %v after SIGTERM", limit)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestHostileFilesystemNeverHangsTheAgent plants real FIFOs, as the
// environment's (second, unprivileged) user can, wherever the agent opens a
// path that user can create or replace — before the agent starts or while
// it runs — and checks for each: the agent still answers status, every
// unrelated secret is applied, the problem is named in `status --json`, and
// SIGTERM stops the agent within a second.
func TestHostileFilesystemNeverHangsTheAgent(t *testing.T) {
	dev := testutil.StartDevserver(t)
	cases := []struct {
		name string
		// before plants its FIFO before the agent starts; during, after the
		// first apply (drift repair or a reload then meets it).
		before, during func(t *testing.T, r *fsRig)
		broken         []string // secrets the FIFO breaks; all others must apply
		want           string   // what status --json says about them
	}{
		{name: "fifo over env.sh", during: func(t *testing.T, r *fsRig) { r.fifoOver(t, filepath.Join(r.cfg.EnvDir, "env.sh")) },
			broken: []string{fsEnvName}, want: "FIFO"},
		{name: "fifo over env.fish", during: func(t *testing.T, r *fsRig) { r.fifoOver(t, filepath.Join(r.cfg.EnvDir, "env.fish")) },
			broken: []string{fsEnvName}, want: "FIFO"},
		{name: "fifo over dotenv", during: func(t *testing.T, r *fsRig) { r.fifoOver(t, filepath.Join(r.cfg.EnvDir, "env")) },
			broken: []string{fsEnvName}, want: "FIFO"},
		{name: "fifo as env.sh at start", before: func(t *testing.T, r *fsRig) {
			must(t, os.MkdirAll(r.cfg.EnvDir, 0o700))
			must(t, os.Chown(r.cfg.EnvDir, r.uid, r.gid))
			r.fifo(t, filepath.Join(r.cfg.EnvDir, "env.sh"))
		}, broken: []string{fsEnvName}, want: "FIFO"},
		{name: "fifo as the env dir", before: func(t *testing.T, r *fsRig) { r.fifo(t, r.cfg.EnvDir) },
			broken: []string{fsEnvName}, want: "FIFO"},
		{name: "fifo as parent of a file secret", before: func(t *testing.T, r *fsRig) { r.fifo(t, r.home("victim")) },
			broken: []string{"VICTIM_FILE"}, want: "victim"},
		{name: "fifo as parent of a file secret while running", during: func(t *testing.T, r *fsRig) {
			// Move the directory away and a FIFO in; drift repair may make
			// the directory again in between: then move that away too.
			r.fifo(t, r.home("victim.fifo"))
			for i := 0; ; i++ {
				must(t, os.Rename(r.home("victim"), r.home(fmt.Sprintf("victim.old%d", i))))
				if err := os.Rename(r.home("victim.fifo"), r.home("victim")); err == nil {
					return
				} else if i == 20 {
					t.Fatal(err)
				}
			}
		}, broken: []string{"VICTIM_FILE"}, want: "victim"},
		{name: "fifo as a file secret's target", before: func(t *testing.T, r *fsRig) { r.fifo(t, r.home(fsVictim)) },
			broken: []string{"VICTIM_FILE"}, want: "FIFO"},
		{name: "fifo over a file secret while running", during: func(t *testing.T, r *fsRig) { r.fifoOver(t, r.home(fsVictim)) },
			broken: []string{"VICTIM_FILE"}, want: "FIFO"},
		{name: "fifo as docker config.json", before: func(t *testing.T, r *fsRig) { r.fifo(t, r.home(".docker/config.json")) },
			broken: []string{"REGISTRY"}, want: "FIFO"},
		{name: "fifo over docker config.json while running", during: func(t *testing.T, r *fsRig) { r.fifoOver(t, r.home(".docker/config.json")) },
			broken: []string{"REGISTRY"}, want: "FIFO"},
		{name: "fifo as the docker config dir", before: func(t *testing.T, r *fsRig) { r.fifo(t, r.home(".docker")) },
			broken: []string{"REGISTRY"}, want: "FIFO"},
		{name: "fifo over the token file while running", during: func(t *testing.T, r *fsRig) {
			r.fifoOver(t, r.cfg.TokenFile)
			r.agent.Signal(t, syscall.SIGHUP) // and a reload reads it again
		}, want: "FIFO"},
		{name: "fifo over the config file while running", during: func(t *testing.T, r *fsRig) {
			// A rejected reload is in the log; the old config stays in force.
			r.fifoOver(t, r.agent.Config)
			r.agent.Signal(t, syscall.SIGHUP)
			testutil.Eventually(t, 10*time.Second, "the reload rejected, naming the FIFO", func() bool {
				return strings.Contains(r.agent.Log(), "config reload rejected") && strings.Contains(r.agent.Log(), "FIFO")
			})
		}},
		{name: "fifo as the secretfile manifest", before: func(t *testing.T, r *fsRig) { r.fifo(t, filepath.Join(r.cfg.StateDir, "secretfile.json")) },
			broken: []string{"GOOD_FILE", "VICTIM_FILE"}, want: "FIFO"},
		{name: "fifo as the envprofile manifest", before: func(t *testing.T, r *fsRig) { r.fifo(t, filepath.Join(r.cfg.StateDir, "envprofile.json")) },
			broken: []string{fsEnvName}, want: "FIFO"},
		{name: "fifo as the dockercfg manifest", before: func(t *testing.T, r *fsRig) { r.fifo(t, filepath.Join(r.cfg.StateDir, "dockercfg.json")) },
			broken: []string{"REGISTRY"}, want: "FIFO"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newFSRig(t, dev, c.name)
			broken := map[string]bool{}
			for _, b := range c.broken {
				broken[b] = true
			}
			if c.before != nil {
				c.before(t, r)
			}
			r.start(t)
			if c.during != nil {
				testutil.Eventually(t, 20*time.Second, "every secret applied before the FIFO", func() bool {
					return r.applied(t, nil) == nil
				})
				c.during(t, r)
			}
			var st control.Status
			testutil.Eventually(t, 20*time.Second, "unrelated secrets applied and the problem named", func() bool {
				var err error
				if st, err = r.tryStatus(t); err != nil {
					return false
				}
				if err := r.applied(t, broken); err != nil {
					return false
				}
				return c.want == "" || named(st, broken, c.want)
			})
			t.Logf("status: %s: %s", st.State, st.LastError)
			// A pass or a repair after the FIFO must not hang either: ask
			// for one and see status answer after it.
			if _, stderr, code := testutil.RunAgent(t, nil, "sync", "--socket", r.cfg.Socket); code == 2 {
				t.Fatalf("sync: agent unreachable: %s", stderr)
			}
			r.status(t)
			stopWithin(t, r.agent, time.Second)
		})
	}
}

// TestStopIsPromptWithNothingInFlight: SIGTERM to an idle agent that holds
// a watch stream ends it at once, not after a grace period.
func TestStopIsPromptWithNothingInFlight(t *testing.T) {
	dev := testutil.StartDevserver(t)
	r := newFSRig(t, dev, "idle")
	r.start(t)
	testutil.Eventually(t, 20*time.Second, "applied", func() bool { return r.applied(t, nil) == nil })
	testutil.Eventually(t, 10*time.Second, "watch stream up", func() bool { return r.status(t).WatchConnected })
	stopWithin(t, r.agent, 500*time.Millisecond)
}

// countingProxy relays to the devserver and counts GetEnvironment calls;
// when spam is set it answers WatchEvents itself with a stream of events
// for an unchanged environment, one a millisecond, as a chatty or hostile
// stream would; when hang is set GetEnvironment never answers.
type countingProxy struct {
	srv   *httptest.Server
	specs atomic.Int64
	spam  atomic.Bool
	hang  atomic.Bool // GetEnvironment answers only when the caller hangs up
	envID string
}

func startCountingProxy(t *testing.T, devURL, envID string) *countingProxy {
	t.Helper()
	u, err := url.Parse(devURL)
	if err != nil {
		t.Fatal(err)
	}
	p := &countingProxy{envID: envID}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.FlushInterval = -1
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, controlplane.ProcGetEnvironment):
			p.specs.Add(1)
			if p.hang.Load() {
				// Read the request to its end, so that the server notices
				// the client hanging up and ends r's context.
				_, _ = io.Copy(io.Discard, r.Body)
				<-r.Context().Done()
				return
			}
		case strings.HasSuffix(r.URL.Path, controlplane.ProcWatchEvents) && p.spam.Load():
			p.flood(w, r)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

// startProxied starts a devserver, an fsRig's agent talking to it through a
// countingProxy (spamming the watch stream from the start when spam is
// set), and waits until every secret is applied.
func startProxied(t *testing.T, name string, spam bool) (*fsRig, *countingProxy) {
	t.Helper()
	dev := testutil.StartDevserver(t)
	r := newFSRig(t, dev, name)
	p := startCountingProxy(t, dev.URL, r.cfg.EnvironmentID)
	if spam {
		p.spam.Store(true)
		t.Cleanup(func() { p.spam.Store(false) })
	}
	r.cfg.URL = p.srv.URL
	r.start(t)
	testutil.Eventually(t, 20*time.Second, "applied", func() bool { return r.applied(t, nil) == nil })
	return r, p
}

func (p *countingProxy) flood(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", controlplane.ContentTypeJSONL)
	w.WriteHeader(http.StatusOK)
	line := fmt.Sprintf(`{"operation":"RESOURCE_OPERATION_UPDATE","resourceType":"RESOURCE_TYPE_ENVIRONMENT","resourceId":%q}`+"\n", p.envID)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for p.spam.Load() {
		if _, err := io.WriteString(w, line); err != nil {
			return
		}
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
		}
	}
}

// TestConcurrentSyncsAreCoalesced: 300 concurrent `sync` requests on
// the real status socket cost a few GetEnvironment calls, not 300, and
// every one of them gets the report of a pass.
func TestConcurrentSyncsAreCoalesced(t *testing.T) {
	r, p := startProxied(t, "coalesce", false)
	testutil.Eventually(t, 10*time.Second, "watch stream up", func() bool { return r.status(t).WatchConnected })
	time.Sleep(200 * time.Millisecond) // the connect's pass

	before := p.specs.Load()
	c := control.NewClient(r.cfg.Socket)
	const n = 300
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range n {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if rep, err := c.Sync(ctx); err != nil || rep.Error != "" {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	calls := p.specs.Load() - before
	t.Logf("%d concurrent syncs: %d GetEnvironment calls", n, calls)
	if failed.Load() > 0 {
		t.Errorf("%d of %d syncs failed", failed.Load(), n)
	}
	// Each sync needs a pass that started after it asked: the first pass
	// serves the first arrivals, every later one the syncs that came while
	// the one before ran. With 300 requests racing in over the socket that
	// is a few passes; one per request is the bug.
	if calls > 10 {
		t.Errorf("%d concurrent syncs made %d GetEnvironment calls, want a few", n, calls)
	}

}

// TestChattyStreamIsCoalesced: a watch stream that sends an event every
// millisecond for an environment that does not change costs a handful of
// passes, not one per event, and a real update still lands.
func TestChattyStreamIsCoalesced(t *testing.T) {
	r, p := startProxied(t, "chatty", true)
	before := p.specs.Load()
	time.Sleep(3 * time.Second)
	calls := p.specs.Load() - before
	t.Logf("3 s of an event a millisecond: %d GetEnvironment calls", calls)
	// The gap between passes for nothing doubles from 50 ms to 2 s: about
	// 5 passes in the first 3 s, then one every 2 s.
	if calls > 15 {
		t.Errorf("a spammed stream made %d GetEnvironment calls in 3 s, want a handful", calls)
	}
	r.dev.CreateSecret(t, "user", "chatty", "LATE_FILE", file(r.home("late")), []byte("late"))
	testutil.Eventually(t, 10*time.Second, "an update during the spam applied", func() bool {
		b, err := os.ReadFile(r.home("late"))
		return err == nil && string(b) == "late"
	})
}

// TestFIFOAsTokenOrConfigNeverHangsTheStart: a FIFO as the token file or as
// the config file at start makes the agent say so (or, for the token, wait
// for a usable one while answering status), never block in open(2).
func TestFIFOAsTokenOrConfigNeverHangsTheStart(t *testing.T) {
	dev := testutil.StartDevserver(t)
	t.Run("config", func(t *testing.T) {
		dir := t.TempDir()
		cfg := filepath.Join(dir, "config.yaml")
		must(t, syscall.Mkfifo(cfg, 0o600))
		_, stderr, code := testutil.RunAgent(t, nil, "run", "--config", cfg)
		if code == 0 || !strings.Contains(stderr, "FIFO") {
			t.Fatalf("run --config FIFO: exit %d, stderr %q; want a failure naming the FIFO", code, stderr)
		}
	})
	t.Run("token", func(t *testing.T) {
		r := newFSRig(t, dev, "fifo-token")
		must(t, os.Remove(r.cfg.TokenFile))
		r.fifo(t, r.cfg.TokenFile)
		r.start(t)
		testutil.Eventually(t, 10*time.Second, "the agent exits naming the FIFO, or answers status", func() bool {
			if exited, _ := r.agent.Exited(); exited {
				return true
			}
			_, err := r.tryStatus(t)
			return err == nil
		})
		if exited, _ := r.agent.Exited(); exited {
			if !strings.Contains(r.agent.Log(), "FIFO") {
				t.Fatalf("the agent exited without naming the FIFO:\n%s", r.agent.Log())
			}
			return
		}
		stopWithin(t, r.agent, time.Second)
	})
}

// TestSIGTERMDuringAStuckPassExitsWithinASecond: a pass stuck on a control
// plane that never answers keeps neither status nor SIGTERM waiting, and
// what was applied stays.
func TestSIGTERMDuringAStuckPassExitsWithinASecond(t *testing.T) {
	r, p := startProxied(t, "stuck", false)
	p.hang.Store(true)
	t.Cleanup(func() { p.hang.Store(false) })
	before := p.specs.Load()
	go testutil.RunAgent(t, nil, "sync", "--socket", r.cfg.Socket)
	testutil.Eventually(t, 10*time.Second, "a pass stuck in GetEnvironment", func() bool { return p.specs.Load() > before })
	if st := r.status(t); st.FirstApplied.IsZero() {
		t.Errorf("status during the stuck pass: %+v", st)
	}
	stopWithin(t, r.agent, time.Second)
	if err := r.applied(t, nil); err != nil {
		t.Errorf("after the stop: %v", err)
	}
}

// TestSyncLoopIsSpacedOut: a local user sending `sync` requests back to back
// for 3 s, over the real status socket, costs a handful of GetEnvironment
// calls, not one per request: passes only syncs ask for, finding nothing
// new, are spaced out as a chatty stream's are. A real update still lands.
func TestSyncLoopIsSpacedOut(t *testing.T) {
	r, p := startProxied(t, "syncloop", false)
	c := control.NewClient(r.cfg.Socket)
	before := p.specs.Load()
	syncs := 0
	for start := time.Now(); time.Since(start) < 3*time.Second; syncs++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if _, err := c.Sync(ctx); err != nil {
			t.Fatalf("sync %d: %v", syncs, err)
		}
		cancel()
	}
	calls := p.specs.Load() - before
	t.Logf("%d back-to-back syncs in 3 s: %d GetEnvironment calls", syncs, calls)
	// The gap doubles from 50 ms to 2 s after two free passes: about 8
	// passes in the first 3 s (the stream's connect may add one).
	if calls > 15 {
		t.Errorf("a sync loop made %d GetEnvironment calls in 3 s, want a handful", calls)
	}
	r.dev.CreateSecret(t, "user", "syncloop", "LATE_FILE", file(r.home("late")), []byte("late"))
	testutil.Eventually(t, 10*time.Second, "an update during the loop applied", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = c.Sync(ctx)
		b, err := os.ReadFile(r.home("late"))
		return err == nil && string(b) == "late"
	})
}
