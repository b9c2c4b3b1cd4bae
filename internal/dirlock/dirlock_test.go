package dirlock

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestSecondAcquireFailsNamingTheHolderUntilReleased(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state") // created by Acquire
	l, err := Acquire(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Acquire(dir)
	var held *HeldError
	if !errors.As(err, &held) || held.PID != os.Getpid() || !strings.Contains(err.Error(), dir) {
		t.Fatalf("second Acquire = %v, want a HeldError naming %s and pid %d", err, dir, os.Getpid())
	}
	l.Release()
	l.Release()
	l2, err := Acquire(dir)
	if err != nil {
		t.Fatalf("Acquire after Release: %v", err)
	}
	l2.Release()
}

func TestLockFileThatIsNotARegularFileIsRefusedWithoutBlocking(t *testing.T) {
	for name, plant := range map[string]func(p string) error{
		"FIFO":    func(p string) error { return syscall.Mkfifo(p, 0o600) },
		"symlink": func(p string) error { return os.Symlink("/etc/passwd", p) },
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := plant(filepath.Join(dir, lockName)); err != nil {
				t.Fatal(err)
			}
			if l, err := Acquire(dir); err == nil {
				l.Release()
				t.Fatalf("Acquire with a %s as the lock file succeeded", name)
			}
		})
	}
}
