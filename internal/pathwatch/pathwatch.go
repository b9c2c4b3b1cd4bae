// Package pathwatch reports changes to a set of files, whether or not
// their directories exist yet (fsnotify watches directories that exist).
package pathwatch

import (
	"errors"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/fsnotify/fsnotify"
	"go.uber.org/zap"

	"github.com/secrets-agent/secrets-agent/internal/dirs"
)

// Watcher reports changes to a set of files: created, written, removed,
// renamed over or chmod'ed, by anyone (our own writes included: a repair pass
// that finds nothing to do writes nothing, so they cost one cheap pass).
//
// It watches the directory of each file, or, while that directory does not
// exist, its nearest existing ancestor, so a watch survives the directory
// being removed and created again:
//
//	(1) Set computes, for every file, the nearest existing ancestor of its
//	    directory, adds a watch on each such directory and drops watches on
//	    directories no longer needed.
//	(2) An event on a watched file is reported for that file. An event on a
//	    directory on the way to watched files (created, removed, renamed) is
//	    reported for every file below it, and the watches are computed again
//	    (1): a directory that appeared gets its own watch, one that vanished
//	    falls back to its parent.
//	(3) Events on anything else in a watched directory are ignored.
//	(4) When the kernel dropped events (its queue overflowed), every
//	    watched file is reported.
type Watcher struct {
	w       *fsnotify.Watcher
	log     *zap.Logger
	onEvent func(path string)
	done    chan struct{}

	mu    sync.Mutex
	files map[string]bool
	dirs  map[string]bool
}

// New starts a watcher that calls onEvent with the path of every watched
// file that changes, from its own goroutine, until Close.
func New(log *zap.Logger, onEvent func(path string)) (*Watcher, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	p := &Watcher{w: w, log: log, onEvent: onEvent, done: make(chan struct{}),
		files: map[string]bool{}, dirs: map[string]bool{}}
	go p.loop()
	return p, nil
}

// Set makes paths (absolute) the files watched; it replaces the previous set.
func (p *Watcher) Set(paths []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.files = map[string]bool{}
	for _, f := range paths {
		if f != "" {
			p.files[filepath.Clean(f)] = true
		}
	}
	p.syncLocked()
}

// syncLocked is step (1); the caller holds mu. It returns the directories it
// began to watch. A directory made while it added a watch on its parent
// raised no event there (the watch came too late): so after adding watches
// it looks again, until nothing nearer exists (a few rounds at most).
func (p *Watcher) syncLocked() (added []string) {
	for range maxRounds {
		n := len(added)
		added = append(added, p.syncOnce()...)
		if len(added) == n {
			break
		}
	}
	return added
}

// maxRounds bounds syncLocked against a directory made and removed without end.
const maxRounds = 8

// syncOnce is one round of syncLocked.
func (p *Watcher) syncOnce() (added []string) {
	want := map[string]bool{}
	for f := range p.files {
		want[dirs.NearestDir(filepath.Dir(f))] = true
	}
	for d := range p.dirs {
		if !want[d] {
			_ = p.w.Remove(d) // may already be gone with its directory
			delete(p.dirs, d)
		}
	}
	for d := range want {
		if p.dirs[d] {
			continue
		}
		if err := p.w.Add(d); err != nil {
			p.log.Debug("watch directory", zap.String("dir", d), zap.Error(err))
			continue
		}
		p.dirs[d] = true
		added = append(added, d)
	}
	return added
}

// affected is step (2) and (3): the watched files an event on name concerns,
// and whether name is a directory on their way.
func (p *Watcher) affected(name string) (files []string, dir bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.files[name] {
		return []string{name}, false
	}
	prefix := name + string(filepath.Separator)
	for f := range p.files {
		if strings.HasPrefix(f, prefix) {
			files = append(files, f)
		}
	}
	return files, len(files) > 0
}

func (p *Watcher) loop() {
	defer close(p.done)
	for {
		select {
		case ev, ok := <-p.w.Events:
			if !ok {
				return
			}
			name := filepath.Clean(ev.Name)
			files, dir := p.affected(name)
			if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
				// A watched directory that went away leaves a watch on
				// nothing (or on where it was moved to): drop it, so
				// that the directory made again at its path is watched.
				p.mu.Lock()
				if p.dirs[name] {
					_ = p.w.Remove(name)
					delete(p.dirs, name)
				}
				p.mu.Unlock()
			}
			if dir {
				// A directory on the way came or went: watch what exists
				// now. What happened in a directory before its watch was
				// added went unseen, so report the files below it too.
				p.mu.Lock()
				added := p.syncLocked()
				p.mu.Unlock()
				for _, d := range added {
					more, _ := p.affected(d)
					files = append(files, more...)
				}
			}
			for _, f := range files {
				p.onEvent(f)
			}
		case err, ok := <-p.w.Errors:
			if !ok {
				return
			}
			p.log.Warn("file watch", zap.Error(err))
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				// Events were dropped: any file may have changed.
				p.mu.Lock()
				files := slices.Collect(maps.Keys(p.files))
				p.mu.Unlock()
				for _, f := range files {
					p.onEvent(f)
				}
			}
		}
	}
}

// Close stops watching and waits for the event loop to end.
func (p *Watcher) Close() {
	_ = p.w.Close()
	<-p.done
}
