package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/secrets-agent/secrets-agent/controlplane"
	"github.com/secrets-agent/secrets-agent/injectors"
	"github.com/secrets-agent/secrets-agent/internal/atomicfile"
	"github.com/secrets-agent/secrets-agent/secrets"
)

// fakePlane is a control plane in memory. It is a fake because the faults
// these tests need (one value's fetch failing, a spec fetch failing on
// demand, a stream that breaks at a chosen moment, a call held mid-flight)
// cannot be made on demand with the real server.
type fakePlane struct {
	mu          sync.Mutex
	spec        []controlplane.EnvironmentSpecSecret
	values      map[string][]byte
	specErr     error
	valueErr    map[string]error
	watchErr    error
	gate        chan struct{} // when set, GetEnvironment waits for it to close
	blocked     int           // GetEnvironment calls waiting on gate
	specCalls   int
	valueCalls  map[string]int
	watchCalls  int
	tokenReads  int
	tokenErr    error // what ReloadToken returns
	streams     []*fakeStream
	streamReady chan *fakeStream
}

func newFakePlane() *fakePlane {
	return &fakePlane{values: map[string][]byte{}, valueErr: map[string]error{}, valueCalls: map[string]int{},
		streamReady: make(chan *fakeStream, 16)}
}

// put adds or replaces a secret; its session is bumped with its value.
func (f *fakePlane) put(id, name, scope, kind, target, value string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w := controlplane.EnvironmentSpecSecret{ID: id, Name: name, Scope: scope, Session: fmt.Sprintf("%s-%d", id, time.Now().UnixNano())}
	t := target
	switch kind {
	case "env":
		w.EnvironmentVariable = &t
	case "file":
		w.FilePath = &t
	case "registry":
		w.ContainerRegistryBasicAuthHost = &t
	case "git":
		w.GitCredentialHost = &t
	case "api":
		w.APIOnly = true
	}
	f.values[id] = []byte(value)
	for i := range f.spec {
		if f.spec[i].ID == id {
			f.spec[i] = w
			return
		}
	}
	f.spec = append(f.spec, w)
}

func (f *fakePlane) remove(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.spec {
		if f.spec[i].ID == id {
			f.spec = append(f.spec[:i], f.spec[i+1:]...)
			return
		}
	}
}

func (f *fakePlane) set(fn func(f *fakePlane)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *fakePlane) count(fn func(f *fakePlane) int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return fn(f)
}

func (f *fakePlane) totalValueCalls() int {
	return f.count(func(f *fakePlane) int {
		n := 0
		for _, c := range f.valueCalls {
			n += c
		}
		return n
	})
}

func (f *fakePlane) GetEnvironment(ctx context.Context, envID string) (*controlplane.Environment, error) {
	f.mu.Lock()
	gate := f.gate
	if gate != nil {
		f.blocked++
	}
	f.mu.Unlock()
	if gate != nil {
		<-gate
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.specCalls++
	if f.specErr != nil {
		return nil, f.specErr
	}
	env := &controlplane.Environment{ID: envID}
	env.Spec.Secrets = append(env.Spec.Secrets, f.spec...)
	return env, nil
}

func (f *fakePlane) GetSecretValue(ctx context.Context, id string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.valueCalls[id]++
	if err := f.valueErr[id]; err != nil {
		return nil, err
	}
	v, ok := f.values[id]
	if !ok {
		return nil, &controlplane.Error{Procedure: controlplane.ProcGetSecretValue, Code: controlplane.CodeNotFound}
	}
	return append([]byte(nil), v...), nil
}

func (f *fakePlane) WatchEvents(ctx context.Context, envID string) (controlplane.Events, error) {
	f.mu.Lock()
	f.watchCalls++
	err := f.watchErr
	f.mu.Unlock()
	if err != nil {
		return nil, err
	}
	s := &fakeStream{events: make(chan controlplane.Event), closed: make(chan struct{}), broken: make(chan error, 1)}
	f.mu.Lock()
	f.streams = append(f.streams, s)
	f.mu.Unlock()
	f.streamReady <- s
	return s, nil
}

func (f *fakePlane) ReloadToken() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tokenReads++
	return f.tokenErr
}

var errUnavailable = &controlplane.Error{Procedure: controlplane.ProcGetEnvironment, Code: controlplane.CodeUnavailable, Message: "connection refused"}

// fakeStream is one WatchEvents stream: send delivers an event (returning
// once Next has taken it), fail breaks the stream.
type fakeStream struct {
	events    chan controlplane.Event
	closed    chan struct{}
	broken    chan error
	closeOnce sync.Once
}

func (s *fakeStream) Next() (controlplane.Event, error) {
	select {
	case ev := <-s.events:
		return ev, nil
	case err := <-s.broken:
		return controlplane.Event{}, err
	case <-s.closed:
		return controlplane.Event{}, &controlplane.Error{Code: controlplane.CodeCanceled}
	}
}

func (s *fakeStream) Close() error {
	s.closeOnce.Do(func() { close(s.closed) })
	return nil
}

func (s *fakeStream) send(t *testing.T, ev controlplane.Event) {
	t.Helper()
	select {
	case s.events <- ev:
	case <-time.After(10 * time.Second):
		t.Fatal("stream event not taken within 10s")
	}
}

func (s *fakeStream) fail(err error) { s.broken <- err }

var envEvent = controlplane.Event{Operation: controlplane.OpUpdate, ResourceType: controlplane.ResEnvironment, ResourceID: "env-1"}
var keepalive = controlplane.Event{Operation: "RESOURCE_OPERATION_UNSPECIFIED"}

// fileInjector is a minimal injector for one mount kind: each secret becomes
// the file dir/<base of its target>, written through atomicfile; it removes
// what it wrote for secrets no longer desired. It stands in for the real
// injectors (tested in their own packages) so that these tests exercise the
// agent's decisions and count writes exactly.
type fileInjector struct {
	name  string
	kind  secrets.MountKind
	dir   string
	mu    sync.Mutex
	owned map[string]bool
	calls int
	// inline makes a registry injector serve no login, as dockercfg in
	// inline mode; otherwise it serves them as in helper mode.
	inline bool
	// fail names the files (base names) whose write fails.
	fail map[string]bool
}

func newFileInjector(t *testing.T, name string, kind secrets.MountKind) *fileInjector {
	return &fileInjector{name: name, kind: kind, dir: t.TempDir(), owned: map[string]bool{}}
}

// Credential serves registry logins as dockercfg does in helper mode
// (injectors.CredentialServer), none when inline.
func (i *fileInjector) Credential(s secrets.Secret) (string, string, bool) {
	if i.kind != secrets.MountRegistry || i.inline {
		return "", "", false
	}
	u, p, err := secrets.RegistryAuth(s.Value)
	return u, p, err == nil
}

func (i *fileInjector) Name() string            { return i.name }
func (i *fileInjector) Kind() secrets.MountKind { return i.kind }

func (i *fileInjector) path(s secrets.Secret) string {
	return filepath.Join(i.dir, filepath.Base(s.Mount.Target))
}

func (i *fileInjector) Apply(ctx context.Context, desired []secrets.Secret) injectors.Result {
	return i.apply(desired, nil)
}

// apply is Apply, or with only (file names) what ApplyOnly does: write and
// remove only the files named in only.
func (i *fileInjector) apply(desired []secrets.Secret, only map[string]bool) injectors.Result {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.calls++
	var r injectors.Result
	root, err := os.OpenRoot(i.dir)
	if err != nil {
		r.Err = err
		return r
	}
	defer root.Close()
	want := map[string]bool{}
	for _, s := range desired {
		name := filepath.Base(s.Mount.Target)
		want[name] = true
		if only != nil && !only[name] {
			r.Paths = append(r.Paths, i.path(s))
			continue
		}
		o := injectors.Outcome{Secret: s.Ref(), Target: i.path(s)}
		if i.fail[name] { // as a write that fails: the file stays as it was
			o.Action, o.Err = injectors.Failed, errors.New("write refused by the test")
			r.Outcomes = append(r.Outcomes, o)
			r.Paths = append(r.Paths, i.path(s))
			continue
		}
		out, err := atomicfile.Write(root, name, s.Value, atomicfile.Options{Mode: 0o600, UID: -1, GID: -1})
		switch {
		case err != nil:
			o.Action, o.Err = injectors.Failed, err
		case out == atomicfile.Unchanged:
			o.Action = injectors.Unchanged
		case i.owned[name]:
			o.Action = injectors.Updated
			r.Writes++
		default:
			o.Action = injectors.Created
			r.Writes++
		}
		i.owned[name] = true
		r.Outcomes = append(r.Outcomes, o)
		r.Paths = append(r.Paths, i.path(s))
	}
	for name := range i.owned {
		if !want[name] && (only == nil || only[name]) {
			_ = root.Remove(name)
			delete(i.owned, name)
			r.Writes++
			r.Outcomes = append(r.Outcomes, injectors.Outcome{Target: filepath.Join(i.dir, name), Action: injectors.Removed})
		}
	}
	return r
}

func (i *fileInjector) read(t *testing.T, target string) (string, bool) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(i.dir, filepath.Base(target)))
	if err != nil {
		return "", false
	}
	return string(b), true
}

// eventually fails the test unless cond becomes true within 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 10s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var _ io.Closer = (*fakeStream)(nil)

// lockedBuffer is a bytes.Buffer safe for the logger's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  *bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
