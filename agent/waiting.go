package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/secrets-agent/secrets-agent/config"
	"github.com/secrets-agent/secrets-agent/control"
	"github.com/secrets-agent/secrets-agent/controlplane"
)

// This file is how the agent starts before the platform has given it what it
// needs to reach the control plane: an empty controlplane.environment_id (the
// config install.sh writes) or a token file that is missing or empty (/run is
// empty after every reboot until the platform writes it). Exiting would make
// systemd's Restart= a restart loop, so the agent waits instead:
//
//   - New (and a reload) builds, in place of the client, a waitingPlane
//     that fails every call with the reason, and records the reason.
//   - A full pass fails at once with the reason, asking the control plane
//     nothing and changing nothing on disk: status is degraded with
//     "not configured: ..." or "waiting for token: ...", and systemd gets
//     READY after ready_timeout, as with any start that cannot apply. No
//     retry is scheduled: waiting costs nothing.
//   - The watch stream is not held while waiting.
//   - A change of the config file or the token file (Run watches both),
//     SIGHUP or RequestReload reloads; the reload builds the real client
//     once the reason is gone, and the stream and a pass follow.

// connect builds the control plane for cfg, or, when cfg cannot reach it
// yet, a waitingPlane and the reason to wait. err is any other failure.
func (a *Agent) connect(cfg *config.Config) (cp ControlPlane, waiting error, err error) {
	if cfg.ControlPlane.EnvironmentID == "" {
		waiting = fmt.Errorf("not configured: controlplane.environment_id is empty; set it in the config file or %sCONTROLPLANE_ENVIRONMENT_ID",
			config.EnvPrefix)
		return waitingPlane{waiting}, waiting, nil
	}
	cp, err = a.buildControlPlane(cfg)
	if errors.Is(err, controlplane.ErrNoToken) {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			waiting = fmt.Errorf("waiting for token: %s: %w", pe.Path, pe.Err)
		} else {
			waiting = fmt.Errorf("waiting for token: token file %s is empty", cfg.ControlPlane.TokenFile)
		}
		return waitingPlane{waiting}, waiting, nil
	}
	return cp, nil, err
}

// setWaiting records why the agent waits (nil: it does not) and logs a change.
func (a *Agent) setWaiting(why error) {
	a.mu.Lock()
	was := a.waiting
	a.waiting = why
	a.mu.Unlock()
	switch {
	case why != nil && (was == nil || was.Error() != why.Error()):
		a.log.Warn("cannot reach the control plane yet; waiting for a change of the config or token file",
			zap.Error(why))
	case why == nil && was != nil:
		a.log.Info("configured: connecting to the control plane")
		WarnWideToken(a.log, a.config().ControlPlane.TokenFile)
	}
}

// warnedTokens holds "path mode" for each token file WarnWideToken warned
// about.
var warnedTokens sync.Map

// WarnWideToken logs one warning, naming the file and its mode, when the
// token file at path is readable or writable by group or others: the agent
// uses it all the same (refusing would stop every environment whose image
// got the mode wrong), but whoever can read it can read every secret of the
// environment. A missing or unreadable file is left to the agent to report.
// `run` calls it at start, and the agent when a token it waited for appears;
// a file and mode already warned about in this process are not warned about
// again.
func WarnWideToken(log *zap.Logger, path string) {
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm()&0o077 == 0 {
		return
	}
	key := fmt.Sprintf("%s %04o", path, fi.Mode().Perm())
	if _, done := warnedTokens.LoadOrStore(key, true); done {
		return
	}
	log.Warn("token file is open to other users: every secret of the environment is readable with it; chmod 600 it",
		zap.String("file", path), zap.String("mode", fmt.Sprintf("%04o", fi.Mode().Perm())))
}

// waitingFor returns why the agent waits, or nil.
func (a *Agent) waitingFor() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.waiting
}

// waitPass is the report of a full pass while the agent waits.
// The caller holds passMu.
func (a *Agent) waitPass(why error) control.PassReport {
	rep := control.PassReport{Started: time.Now()}
	a.log.Debug("pass skipped", zap.Error(why))
	rep.Error = why.Error()
	rep.Status = a.recordFailure(why)
	rep.Duration = time.Since(rep.Started)
	return rep
}

// waitingPlane stands in for the control-plane client while the agent waits:
// every call fails with why.
type waitingPlane struct{ why error }

func (w waitingPlane) GetEnvironment(context.Context, string) (*controlplane.Environment, error) {
	return nil, w.why
}

func (w waitingPlane) GetSecretValue(context.Context, string) ([]byte, error) { return nil, w.why }

func (w waitingPlane) WatchEvents(context.Context, string) (controlplane.Events, error) {
	return nil, w.why
}

func (w waitingPlane) ReloadToken() error { return w.why }

// reconnect is what a reload does without a config file: it builds the client for cfg
// again and reports whether it changed (the stream must then restart).
func (a *Agent) reconnect(cfg *config.Config, old ControlPlane) (changed bool) {
	a.passMu.Lock()
	defer a.passMu.Unlock()
	cp, waiting, err := a.connect(cfg)
	if err != nil {
		a.log.Error("connect to the control plane", zap.Error(err))
		return false
	}
	a.mu.Lock()
	a.cp = cp
	a.mu.Unlock()
	a.setWaiting(waiting)
	return cp != old
}
