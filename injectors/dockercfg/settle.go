package dockercfg

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Users edit config.json in place: `cat new > config.json`, an editor that
// truncates and writes, Python's json.dump(open(p, "w")). Between the
// truncation and the last write the file is empty or half written, and a
// rename over it at that moment sends the rest of the user's write into a
// file nobody will read again. So Apply reads config.json only once it has
// settled (readSettled), and after each rename it looks at the file it
// replaced for a write that landed there late (lateWrite), to merge again.
const (
	// settlePoll is how often a file in flux is looked at again.
	settlePoll = 25 * time.Millisecond
	// settleQuiet is how long an empty or invalid file must stay the same,
	// with no writer known, before it is taken as it is.
	settleQuiet = 150 * time.Millisecond
	// settleMax bounds the wait for one file to settle.
	settleMax = time.Second
	// settleBudget bounds all the waiting of one Apply, however many
	// attempts it makes.
	settleBudget = 2 * time.Second
)

// waitUntil is when a wait that starts now must end: settleMax from now,
// or until (the Apply's budget) if that is sooner.
func waitUntil(until time.Time) time.Time {
	if d := time.Now().Add(settleMax); d.Before(until) {
		return d
	}
	return until
}

// errInFlux is why a pass leaves a config.json alone that stays in flux.
var errInFlux = errors.New("is being written by another program (empty or not valid JSON and open for writing); left alone this pass, merged once the write ends")

// inFlux reports whether data cannot be what a writer means to leave behind:
// empty (or all whitespace) or not valid JSON.
func inFlux(data []byte) bool { return len(bytes.TrimSpace(data)) == 0 || !json.Valid(data) }

// readSettled is readConfig once config.json has settled. The steps:
//
//	(a) Read it. Missing, or valid JSON that no process holds open for
//	    writing (writers): settled, return it.
//	(b) Otherwise it is in flux. Read it again every settlePoll. It has
//	    settled when no writer holds it and it stayed the same (content,
//	    size, mtime, inode) for settleQuiet: an empty file is then an empty
//	    config and invalid JSON fails the pass, as before.
//	(c) After settleMax (or at until): valid JSON is taken although a writer holds the
//	    file open (what is there is whole); empty or invalid is errInFlux,
//	    and the pass writes nothing. The writer's close is a change the
//	    agent's drift watch sees, which brings the next pass.
//
// A cancelled ctx ends the wait with its error.
func readSettled(ctx context.Context, root *os.Root, until time.Time) (configRead, error) {
	deadline := waitUntil(until)
	var last configRead
	var since time.Time
	for {
		// (a)
		r, err := readConfig(root)
		if err != nil || r.info == nil {
			return r, err
		}
		writing, _ := writersAt(root)
		if !writing && !inFlux(r.data) {
			return r, nil
		}
		// (b)
		now := time.Now()
		if since.IsZero() || !sameState(r, last) {
			last, since = r, now
		} else if !writing && now.Sub(since) >= settleQuiet {
			return r, nil
		}
		// (c)
		if now.After(deadline) {
			if !inFlux(r.data) {
				return r, nil
			}
			return configRead{}, errInFlux
		}
		if err := sleep(ctx, settlePoll); err != nil {
			return configRead{}, err
		}
	}
}

// sameState reports whether two readings of config.json found the same file
// in the same state.
func sameState(a, b configRead) bool {
	if a.info == nil || b.info == nil {
		return a.info == nil && b.info == nil
	}
	return os.SameFile(a.info, b.info) && a.info.Size() == b.info.Size() &&
		a.info.ModTime().Equal(b.info.ModTime()) && bytes.Equal(a.data, b.data)
}

// holdConfig opens config.json for reading and checks that it is still the
// file r read (same inode, size and mtime), so that after a rename over it
// the caller can look at the file it replaced (lateWrite). It returns nil
// when config.json is missing or is no longer that file.
func holdConfig(root *os.Root, r configRead) *os.File {
	if r.info == nil {
		return nil
	}
	f, err := root.OpenFile(configName, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() || !os.SameFile(fi, r.info) || fi.Size() != r.info.Size() || !fi.ModTime().Equal(r.info.ModTime()) {
		f.Close()
		return nil
	}
	return f
}

// lateWrite looks at held, the config.json a rename just replaced, for a
// write that landed in it after it was read as read: a writer that had it
// open across the rename. Such a write is in no file anyone will read again,
// so the caller merges it again. It waits, up to settleMax (or until), for the writers
// of held to close it (where the kernel cannot say, it waits settleQuiet
// once), then returns held's content when that differs from read, or nil.
func lateWrite(ctx context.Context, held *os.File, read []byte, until time.Time) (*configRead, error) {
	deadline := waitUntil(until)
	for {
		writing, known := writers(held)
		if !writing {
			if !known {
				if err := sleep(ctx, settleQuiet); err != nil {
					return nil, err
				}
			}
			fi, err := held.Stat()
			if err != nil {
				return nil, fmt.Errorf("stat the replaced config: %w", err)
			}
			data, err := io.ReadAll(io.LimitReader(io.NewSectionReader(held, 0, maxConfigSize+1), maxConfigSize+1))
			if err != nil {
				return nil, fmt.Errorf("read the replaced config: %w", err)
			}
			if bytes.Equal(data, read) {
				return nil, nil
			}
			return &configRead{data: data, info: fi}, nil
		}
		if time.Now().After(deadline) {
			return nil, errors.New("another program still writes into the config.json this pass replaced; its write may be lost")
		}
		if err := sleep(ctx, settlePoll); err != nil {
			return nil, err
		}
	}
}

// writersAt is writers for config.json below root; a missing or unopenable
// file has no writers known.
func writersAt(root *os.Root) (writing, known bool) {
	f, err := root.OpenFile(configName, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return false, false
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return false, false
	}
	return writers(f)
}

// writers reports whether any process has f's file open for writing. It
// asks the kernel for a read lease (F_SETLEASE F_RDLCK), which is refused
// with EAGAIN while the file is open for writing anywhere, and gives it up
// at once. known is false where no lease can be had: without CAP_LEASE on a
// file of another user, or on a file system without leases. f must be open
// read-only.
func writers(f *os.File) (writing, known bool) {
	sc, err := f.SyscallConn()
	if err != nil {
		return false, false
	}
	var lerr error
	if err := sc.Control(func(fd uintptr) {
		if _, lerr = unix.FcntlInt(fd, unix.F_SETLEASE, unix.F_RDLCK); lerr == nil {
			_, _ = unix.FcntlInt(fd, unix.F_SETLEASE, unix.F_UNLCK)
		}
	}); err != nil {
		return false, false
	}
	switch {
	case lerr == nil:
		return false, true
	case errors.Is(lerr, syscall.EAGAIN):
		return true, true
	}
	return false, false
}

// sleep waits d or until ctx is done, and then returns ctx's error.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
