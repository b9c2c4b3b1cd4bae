package agent

import (
	"context"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/secrets-agent/secrets-agent/config"
	"github.com/secrets-agent/secrets-agent/control"
	"github.com/secrets-agent/secrets-agent/controlplane"
	"github.com/secrets-agent/secrets-agent/secrets"
)

// Tests of the agent against a control plane shaped as Ona's: spec secrets
// without a scope, with a credentialProxy, with human-readable names; event
// streams with many resource types and no keepalive lines.

func TestSecretWithoutScopeAppliesAtTheLowestPrecedence(t *testing.T) {
	r := newRig(t, nil)
	r.cp.put("none", "GitHub token (personal)", "", "file", "/x/gh", "from-nowhere")
	r.cp.put("unspec", "gh", controlplane.ScopeUnspecified, "file", "/x/shared", "unspecified")
	r.cp.put("runner", "runner default", controlplane.ScopeRunner, "file", "/x/shared", "runner")
	rep := r.pass(t)
	if !rep.OK() {
		t.Fatalf("pass not ok: %s %+v", rep.Error, rep.Status.Secrets)
	}
	if got, _ := r.file.read(t, "/x/gh"); got != "from-nowhere" {
		t.Errorf("a secret with no scope, alone on its mount: file holds %q, want it applied", got)
	}
	if got, _ := r.file.read(t, "/x/shared"); got != "runner" {
		t.Errorf("shared mount holds %q, want the runner's secret over the unspecified one", got)
	}
	row := r.row(t, "none")
	if row.Scope != "unspecified" || row.Name != "GitHub token (personal)" || row.Outcome != "created" {
		t.Errorf("status row %+v, want scope unspecified, the name as given, created", row)
	}
	if sh := r.row(t, "runner").Shadows; len(sh) != 1 || sh[0].ID != "unspec" || sh[0].Scope != "unspecified" {
		t.Errorf("runner's row shadows %+v, want the unspecified secret", sh)
	}
}

func TestCredentialProxySecretIsNeverFetchedNorWritten(t *testing.T) {
	r := newRig(t, nil)
	r.cp.put("proxied", "Anthropic API key", controlplane.ScopeUser, "env", "API_KEY", "real-value")
	r.cp.put("org", "org default", controlplane.ScopeOrganization, "env", "API_KEY", "org-value")
	r.cp.put("plain", "other", controlplane.ScopeUser, "env", "OTHER", "fine")
	r.cp.set(func(f *fakePlane) {
		for i := range f.spec {
			if f.spec[i].ID == "proxied" {
				f.spec[i].CredentialProxy = &controlplane.CredentialProxy{Header: "x-api-key", TargetHosts: []string{"api.example.com"}}
			}
		}
	})
	rep := r.pass(t)
	if _, ok := r.env.read(t, "API_KEY"); ok {
		t.Error("API_KEY was written: a credential-proxy secret (or what it shadows) reached the environment")
	}
	if got, _ := r.env.read(t, "OTHER"); got != "fine" {
		t.Errorf("OTHER = %q, want the other secret applied", got)
	}
	if n := r.cp.count(func(f *fakePlane) int { return f.valueCalls["proxied"] + f.valueCalls["org"] }); n != 0 {
		t.Errorf("%d value fetches for the proxied secret and its shadow, want none", n)
	}
	row := r.row(t, "proxied")
	if row.Outcome != "skipped" || !strings.Contains(row.Note, "credential proxy") || row.Error != "" {
		t.Errorf("row %+v, want skipped with a note naming the credential proxy, no error", row)
	}
	if !rep.OK() || rep.Status.State != control.Ready {
		t.Errorf("state %s (%s), want ready: a credential-proxy secret is no failure", rep.Status.State, rep.Error)
	}
	if strings.Contains(r.logs.String(), "real-value") {
		t.Error("the proxied secret's value is in the logs")
	}
}

func TestHumanReadableNamesApplyAndShowSanitised(t *testing.T) {
	r := newRig(t, nil)
	r.cp.put("s1", "gh", controlplane.ScopeUser, "env", "GH_TOKEN", "v1")
	r.cp.put("s2", "deploy\x1b[31m key\n(prod)", controlplane.ScopeUser, "file", "/x/deploy", "v2")
	if rep := r.pass(t); !rep.OK() {
		t.Fatalf("pass not ok: %s %+v", rep.Error, rep.Status.Secrets)
	}
	if got := r.row(t, "s2").Name; got != secrets.Label("deploy\x1b[31m key\n(prod)") || strings.ContainsAny(got, "\x1b\n") {
		t.Errorf("status name %q, want the label with control characters replaced", got)
	}
	if strings.Contains(r.logs.String(), "\x1b") || strings.Contains(r.logs.String(), `\u001b`) {
		t.Error("a control character of a name reached the logs")
	}
}

func TestEventsThatCannotChangeTheSecretsCauseNoGetEnvironment(t *testing.T) {
	cfg := testConfig()
	cfg.ControlPlane.Watch = true
	r := newRig(t, cfg, withTiming(fastTiming))
	r.cp.put("s1", "key", controlplane.ScopeUser, "file", "/x/key", "v1")
	r.run(t)
	s := r.waitStream(t)
	specCalls := func() int { return r.cp.count(func(f *fakePlane) int { return f.specCalls }) }
	eventually(t, "the connect's pass", func() bool { return specCalls() >= 1 })
	time.Sleep(100 * time.Millisecond) // the first pass and the connect's kick settle
	before := specCalls()
	for _, ev := range []controlplane.Event{
		{Operation: controlplane.OpCreate, ResourceType: "RESOURCE_TYPE_TASK", ResourceID: "t1"},
		{Operation: controlplane.OpUpdate, ResourceType: "RESOURCE_TYPE_TASK_EXECUTION", ResourceID: "te1"},
		{Operation: controlplane.OpUpdate, ResourceType: "RESOURCE_TYPE_SERVICE", ResourceID: "svc1"},
		{Operation: controlplane.OpUpdate, ResourceType: controlplane.ResEnvironment, ResourceID: "env-2"},
		{Operation: "RESOURCE_OPERATION_UPDATE_STATUS", ResourceType: controlplane.ResEnvironment, ResourceID: "env-1"},
		{Operation: "RESOURCE_OPERATION_FROM_THE_FUTURE", ResourceType: controlplane.ResEnvironment, ResourceID: "env-1"},
		{Operation: controlplane.OpUpdate, ResourceType: "RESOURCE_TYPE_FROM_THE_FUTURE", ResourceID: "x"},
		{}, // a blank line
		keepalive,
	} {
		s.send(t, ev)
	}
	time.Sleep(200 * time.Millisecond) // room for a wrong pass to show
	if n := specCalls() - before; n != 0 {
		t.Fatalf("%d GetEnvironment calls after events that cannot change the secrets, want 0", n)
	}
	if !strings.Contains(r.logs.String(), "RESOURCE_TYPE_TASK") {
		t.Error("an ignored event is not logged at debug")
	}
	r.cp.put("s1", "key", controlplane.ScopeUser, "file", "/x/key", "v2")
	s.send(t, controlplane.Event{Operation: controlplane.OpUpdate, ResourceType: controlplane.ResSecret, ResourceID: "s1"})
	eventually(t, "a secret event applied", func() bool { got, _ := r.file.read(t, "/x/key"); return got == "v2" })
}

// TestSilentStreamIsHeldFiveMinutesWithoutReconnecting runs in a synctest
// bubble: five minutes of fake time with a stream that sends nothing, as a
// control plane that sends no keepalives does when nothing changes.
func TestSilentStreamIsHeldFiveMinutesWithoutReconnecting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig()
		cfg.ControlPlane.Watch = true
		cfg.ControlPlane.PollInterval = config.Duration(30 * time.Second)
		r := newRig(t, cfg, WithoutFileWatch(), WithoutStatusSocket())
		r.cp.put("s1", "key", controlplane.ScopeUser, "file", "/x/key", "v1")
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.a.Run(ctx) }()
		synctest.Wait()
		<-r.cp.streamReady
		time.Sleep(5 * time.Minute)
		synctest.Wait()
		if n := r.cp.count(func(f *fakePlane) int { return f.watchCalls }); n != 1 {
			t.Errorf("%d WatchEvents calls in 5 minutes of silence, want the one stream held", n)
		}
		if !r.a.Status().WatchConnected {
			t.Error("status says the stream is down")
		}
		if st := r.a.Status(); st.State != control.Ready {
			t.Errorf("state %s (%s), want ready", st.State, st.LastError)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

func TestSuccessfulPassWakesTheStreamReconnect(t *testing.T) {
	cfg := testConfig()
	cfg.ControlPlane.Watch = true
	// Reconnect waits of up to an hour: only the wake can bring the stream
	// back within the test.
	r := newRig(t, cfg, withTiming(timing{retryBase: 10 * time.Millisecond, retryCap: time.Hour,
		streamBase: time.Hour, fastCap: time.Hour, flap: time.Millisecond}))
	r.cp.put("s1", "key", controlplane.ScopeUser, "file", "/x/key", "v1")
	r.cp.set(func(f *fakePlane) { f.watchErr = errUnavailable })
	r.run(t)
	eventually(t, "a failed stream open", func() bool { return r.cp.count(func(f *fakePlane) int { return f.watchCalls }) >= 1 })
	time.Sleep(50 * time.Millisecond) // the stream is in its (hour-long) wait
	r.cp.set(func(f *fakePlane) { f.watchErr = nil })
	r.a.kick() // a pass reaches the control plane
	s := r.waitStream(t)
	r.cp.put("s1", "key", controlplane.ScopeUser, "file", "/x/key", "v2")
	s.send(t, envEvent)
	eventually(t, "change via the woken stream", func() bool { got, _ := r.file.read(t, "/x/key"); return got == "v2" })
}

func TestBackoffStaysUnderTheFastCapForTheFirstAttempts(t *testing.T) {
	tm := timing{}.withDefaults()
	for n := 1; n <= 200; n++ {
		for range 50 {
			d := tm.backoff(tm.streamBase, n)
			limit := tm.retryCap
			switch {
			case n <= tm.fastTries:
				limit = min(tm.fastCap, tm.streamBase<<(n-1))
			case n == tm.fastTries+1:
				limit = 2 * tm.fastCap
			}
			if d < 0 || d > limit {
				t.Fatalf("attempt %d waits %v, want within [0, %v]", n, d, limit)
			}
		}
	}
}

func TestStreamThatDropsAtOnceIsReopenedAtMostOncePerFlapPeriod(t *testing.T) {
	cfg := testConfig()
	cfg.ControlPlane.Watch = true
	const flap = 300 * time.Millisecond
	r := newRig(t, cfg, withTiming(timing{retryBase: 10 * time.Millisecond, retryCap: 50 * time.Millisecond,
		streamBase: time.Millisecond, flap: flap}))
	r.run(t)
	var opened []time.Time
	for range 3 {
		s := r.waitStream(t)
		opened = append(opened, time.Now())
		s.fail(&controlplane.Error{Procedure: controlplane.ProcWatchEvents, Code: controlplane.CodeUnavailable, Message: "accepted, then dropped"})
	}
	for i := 1; i < len(opened); i++ {
		if gap := opened[i].Sub(opened[i-1]); gap < flap-50*time.Millisecond {
			t.Errorf("stream %d opened %v after the one before, which dropped at once; want at least about %v", i+1, gap, flap)
		}
	}
}
