package dockercfg

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/secrets-agent/secrets-agent/internal/testutil"
	"github.com/secrets-agent/secrets-agent/secrets"
)

// waitSize waits until the file at p has size n.
func waitSize(t *testing.T, p string, n int64) {
	t.Helper()
	testutil.Eventually(t, 5*time.Second, "config.json truncated by the writer", func() bool {
		fi, err := os.Stat(p)
		return err == nil && fi.Size() == n
	})
}

// TestInPlaceEditInFlightIsWaitedFor: a real shell truncates config.json,
// pauses and then writes the user's new content through the same open file.
// Apply, run during the pause, waits for the write to end and merges into
// it: the user's key and the agent's auth are both there.
func TestInPlaceEditInFlightIsWaitedFor(t *testing.T) {
	sh := testutil.NeedTool(t, "sh")
	for _, pause := range []string{"0.1", "0.4"} {
		t.Run(pause, func(t *testing.T) {
			f := newFixture(t, Inline)
			f.write(t, `{"auths": {}, "old": 1}`)
			cmd := exec.Command(sh, "-c", `exec 3>"$1"; sleep "$2"; printf '{"auths": {}, "mine": "kept"}' >&3`, "_", f.path(), pause)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			waitSize(t, f.path(), 0)
			f.apply(t, registrySecret("s", "r.example.com", "u", "p"))
			if err := cmd.Wait(); err != nil {
				t.Fatal(err)
			}
			doc := f.doc(t)
			if doc["mine"] != "kept" {
				t.Errorf("the user's write is lost: %s", f.read(t))
			}
			if authOf(t, doc, "r.example.com") != b64("u:p") {
				t.Errorf("the agent's auth is missing: %s", f.read(t))
			}
		})
	}
}

// TestEmptyConfigNobodyWritesIsAnEmptyConfig: an empty file that stays empty
// with no writer is merged into after the quiet time, as docker reads it.
func TestEmptyConfigNobodyWritesIsAnEmptyConfig(t *testing.T) {
	f := newFixture(t, Inline)
	f.write(t, "")
	start := time.Now()
	f.apply(t, registrySecret("s", "r.example.com", "u", "p"))
	if authOf(t, f.doc(t), "r.example.com") != b64("u:p") {
		t.Errorf("no auth: %s", f.read(t))
	}
	if took := time.Since(start); took > settleMax {
		t.Errorf("took %v; an empty file with no writer settles after %v", took, settleQuiet)
	}
}

// TestEmptyConfigHeldOpenTooLongFailsThePassAndWritesNothing: a writer that
// keeps the file truncated and open past the bound leaves it in flux: the
// pass fails naming that, and writes nothing over the writer.
func TestEmptyConfigHeldOpenTooLongFailsThePassAndWritesNothing(t *testing.T) {
	sh := testutil.NeedTool(t, "sh")
	f := newFixture(t, Inline)
	f.write(t, `{"auths": {}}`)
	cmd := exec.Command(sh, "-c", `exec 3>"$1"; sleep 3`, "_", f.path())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	waitSize(t, f.path(), 0)
	before, _ := os.Stat(f.path())
	res := f.in.Apply(context.Background(), []secrets.Secret{registrySecret("s", "r.example.com", "u", "p")})
	if res.Err == nil || !strings.Contains(res.Err.Error(), "being written by another program") {
		t.Errorf("Apply err = %v, want one saying config.json is being written", res.Err)
	}
	after, _ := os.Stat(f.path())
	if !os.SameFile(before, after) {
		t.Error("config.json was replaced while its writer held it")
	}
}

// TestLateWriteIntoTheReplacedFileIsFound: a writer that had config.json
// open across a rename writes into the replaced file; lateWrite waits for it
// to close and returns what it wrote.
func TestLateWriteIntoTheReplacedFileIsFound(t *testing.T) {
	sh := testutil.NeedTool(t, "sh")
	f := newFixture(t, Inline)
	f.write(t, `{"a": 1}`)
	root, err := os.OpenRoot(f.cfgDir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	r, err := readConfig(root)
	if err != nil {
		t.Fatal(err)
	}
	held := holdConfig(root, r)
	if held == nil {
		t.Fatal("holdConfig: nil for an unchanged file")
	}
	defer held.Close()
	// Opened for appending before the rename; writes after it.
	cmd := exec.Command(sh, "-c", `exec 3>>"$1"; : >"$2"; sleep 0.2; printf ' ' >&3`, "_", f.path(), filepath.Join(f.cfgDir, "opened"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, "the writer has the file open", func() bool {
		_, err := os.Stat(filepath.Join(f.cfgDir, "opened"))
		return err == nil
	})
	if err := os.WriteFile(filepath.Join(f.cfgDir, "new"), []byte(`{"b": 2}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(f.cfgDir, "new"), f.path()); err != nil {
		t.Fatal(err)
	}
	late, err := lateWrite(context.Background(), held, r.data, time.Now().Add(settleMax))
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if late == nil || string(late.data) != `{"a": 1} ` {
		t.Fatalf("lateWrite = %+v, want the write into the replaced file", late)
	}
	// Nobody wrote: nothing late.
	r2, _ := readConfig(root)
	held2 := holdConfig(root, r2)
	defer held2.Close()
	if late, err := lateWrite(context.Background(), held2, r2.data, time.Now().Add(settleMax)); late != nil || err != nil {
		t.Errorf("lateWrite with no writer = %+v, %v; want nil", late, err)
	}
}
