package pathwatch

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap"
)

// TestWatchSurvivesItsDirectoryComingAndGoing: a file whose directory does
// not exist yet is reported once the directory and the file appear, and
// again after the directory is removed and made anew.
func TestWatchSurvivesItsDirectoryComingAndGoing(t *testing.T) {
	base := t.TempDir()
	file := filepath.Join(base, "a", "b", "f")
	events := make(chan string, 64)
	w, err := New(zap.NewNop(), func(p string) { events <- p })
	if err != nil {
		t.Skipf("needs inotify: %v", err)
	}
	defer w.Close()
	w.Set([]string{file, ""})
	expect := func(what string) {
		t.Helper()
		deadline := time.After(5 * time.Second)
		for {
			select {
			case p := <-events:
				if p == file {
					return
				}
			case <-deadline:
				t.Fatalf("no event for %s after %s", file, what)
			}
		}
	}
	for round := range 2 {
		if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		expect("it was created")
		if round == 0 {
			if err := os.RemoveAll(filepath.Join(base, "a")); err != nil {
				t.Fatal(err)
			}
			expect("its directory was removed")
		}
	}
}
