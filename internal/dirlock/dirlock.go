// Package dirlock makes a directory one process's at a time: the agent's
// state dir, so that a second `run`, or a `purge` while the agent runs,
// fails at once instead of rewriting the manifests the running agent is
// using (a purge would be undone by the agent's next pass).
//
// The lock is flock(2) on a file named lockName in the directory, taken
// without waiting and held through an open file (close-on-exec, so no child
// inherits it) until Release or the process's end: a crash never leaves a
// stale lock. The holder writes its pid into the file, so that the error
// another process gets names it. The lock file is opened through an
// os.Root at the directory, without following a symlink and without
// blocking, and must be a regular file.
package dirlock

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/secrets-agent/secrets-agent/internal/dirs"
	"github.com/secrets-agent/secrets-agent/internal/safeopen"
)

// lockName is the lock file's name in the locked directory.
const lockName = "lock"

// HeldError is the error for a directory another process holds.
type HeldError struct {
	Dir string
	PID int // 0 when the holder's pid could not be read
}

func (e *HeldError) Error() string {
	holder := "another process"
	if e.PID > 0 {
		holder = "another process (pid " + strconv.Itoa(e.PID) + ")"
	}
	return fmt.Sprintf("%s is in use by %s: stop it first, or give this one its own state_dir", e.Dir, holder)
}

// Lock is a held directory lock.
type Lock struct{ f *os.File }

// Acquire locks dir, creating it (mode 0700, owned by the process) when it
// is missing. It never waits: a dir another process holds is a *HeldError.
func Acquire(dir string) (*Lock, error) {
	root, err := dirs.Open(dir, 0o700, -1, -1)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	defer root.Close()
	f, err := root.OpenFile(lockName, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		if err == nil {
			err = fmt.Errorf("%w (it is %s)", safeopen.ErrNotRegular, safeopen.Describe(fi.Mode()))
		}
		return nil, fmt.Errorf("lock %s: %s: %w", dir, lockName, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			b, _ := io.ReadAll(io.LimitReader(f, 32))
			pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
			return nil, &HeldError{Dir: dir, PID: pid}
		}
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0) // for the error others get; the lock holds without it
	}
	return &Lock{f: f}, nil
}

// Release gives the lock up. It is safe to call on a nil *Lock and more
// than once.
func (l *Lock) Release() {
	if l == nil || l.f == nil {
		return
	}
	_ = l.f.Close() // closing the last descriptor releases the flock
	l.f = nil
}
