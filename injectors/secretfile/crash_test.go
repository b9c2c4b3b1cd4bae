package secretfile

import (
	"os"
	"testing"

	"github.com/secrets-agent/secrets-agent/injectors"
	"github.com/secrets-agent/secrets-agent/internal/atomicfile"
)

// TestFileWrittenBeforeACrashIsNotKeptAside: an agent killed during its
// first Apply, after writing a secret's file and before the final manifest
// save, leaves that file behind. The next agent must know it as its own (the
// manifest was saved before the write): no keeping it aside, and when the
// secret goes away the file goes with it instead of an old value coming back.
//
// The crash is played by running Apply's steps up to the write (prepare,
// saveIntent, the atomic write) and then dropping the injector; the real
// SIGKILL version is test/crash_test.go.
func TestFileWrittenBeforeACrashIsNotKeptAside(t *testing.T) {
	f := newFixture(t)
	target := f.path("app/token")
	s := sec("a", target, "v1")

	// The killed agent: steps (2a) and (2b), never (2c) or (5).
	p := f.in.newPass(nil)
	j, o := p.prepare(s)
	if j == nil {
		t.Fatalf("prepare: %v", o.Err)
	}
	f.in.saveIntent([]*job{j}, nil, 0)
	if _, err := atomicfile.Write(j.root, j.rel, s.Value, atomicfile.Options{Mode: 0o600, UID: -1, GID: -1}); err != nil {
		t.Fatal(err)
	}
	p.close()

	f.restart()
	res := f.apply(s)
	o = wantAction(t, res, target, injectors.Created)
	if o.Note != "" {
		t.Errorf("note %q, want none", o.Note)
	}
	wantGone(t, target+OrigSuffix)
	wantFile(t, target, "v1", 0o600)

	wantAction(t, f.apply(), target, injectors.Removed)
	wantGone(t, target)
	wantGone(t, target+OrigSuffix)
}

// TestMoveAsideInterruptedByACrashIsCompleted: an agent killed after it
// recorded that it keeps the user's file aside but before it moved it leaves
// the user's file at the path. The next agent must move it aside before
// writing, and put it back when the secret goes away: the user's file is
// never lost.
//
// The crash is played by recording the entry and saving the manifest, as
// prepare does just before keepAside, and then dropping the injector.
func TestMoveAsideInterruptedByACrashIsCompleted(t *testing.T) {
	f := newFixture(t)
	target := f.path(".npmrc")
	if err := os.WriteFile(target, []byte("mine"), 0o640); err != nil {
		t.Fatal(err)
	}
	s := sec("a", target, "secret")
	f.in.man.Files[target] = &entry{Secret: s.Ref(), Mode: 0o600, KeptAside: true}
	f.in.saveNow(nil)

	f.restart()
	o := wantAction(t, f.apply(s), target, injectors.Created)
	if o.Err != nil {
		t.Fatal(o.Err)
	}
	wantFile(t, target+OrigSuffix, "mine", 0o640)
	wantFile(t, target, "secret", 0o600)

	wantAction(t, f.apply(), target, injectors.Restored)
	wantFile(t, target, "mine", 0o640)
	wantGone(t, target+OrigSuffix)
}
