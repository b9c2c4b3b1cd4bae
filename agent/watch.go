package agent

import (
	"path/filepath"

	"go.uber.org/zap"
)

// watchFiles tells the path watcher (when Run has one) to watch every
// managed output, the config file and the token file. A pass calls it
// before it reports anything applied, so that no change after that goes
// unseen; it never waits for a pass in flight (it takes watchMu, not
// passMu). A managed path it had not watched before is marked dirty for a
// repair pass to look at once: a change between its write and its watch was
// not seen, and no later pass looks at an output that did not change
// (changes.go).
func (a *Agent) watchFiles() {
	a.watchMu.Lock()
	defer a.watchMu.Unlock()
	a.mu.Lock()
	set, cfg, slots := a.watching, a.cfg, a.slots
	a.mu.Unlock()
	if set == nil {
		return
	}
	var paths []string
	for _, sl := range slots {
		paths = append(paths, sl.paths...)
	}
	watched := make(map[string]bool, len(paths))
	var fresh []string
	for _, p := range paths {
		watched[p] = true
		if !a.watched[p] {
			fresh = append(fresh, p)
		}
	}
	own := [2]string{a.opts.configPath, cfg.ControlPlane.TokenFile}
	if len(fresh) == 0 && len(watched) == len(a.watched) && own == a.watchedOwn {
		return // the same set: the watcher follows its directories itself
	}
	a.watched, a.watchedOwn = watched, own
	set(append(paths, own[:]...))
	if len(fresh) > 0 {
		a.mu.Lock()
		for _, p := range fresh {
			a.dirty[filepath.Clean(p)] = true
		}
		a.mu.Unlock()
		a.kickRepair()
	}
}

// onFileEvent sorts a file event: the config file reloads, the token file is
// re-read and a pass follows, anything else is drift to repair.
func (a *Agent) onFileEvent(path string) {
	cfg := a.config()
	switch path {
	case filepath.Clean(a.opts.configPath):
		a.log.Info("config file changed; reloading", zap.String("config", path))
		a.RequestReload()
	case filepath.Clean(cfg.ControlPlane.TokenFile):
		if a.waitingFor() != nil {
			a.log.Info("token file changed; connecting", zap.String("token_file", path))
			a.RequestReload() // builds the client (waiting.go)
			return
		}
		a.log.Info("token file changed; re-reading it", zap.String("token_file", path))
		if err := a.reloadToken(a.controlPlane()); err != nil {
			a.log.Warn("re-read token file", zap.Error(err))
		}
		a.kick()
	default:
		a.log.Debug("managed file changed", zap.String("path", path))
		a.mu.Lock()
		a.dirty[path] = true
		a.mu.Unlock()
		a.kickRepair()
	}
}
