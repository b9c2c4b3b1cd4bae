package agent

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/secrets-agent/secrets-agent/config"
	"github.com/secrets-agent/secrets-agent/control"
	"github.com/secrets-agent/secrets-agent/controlplane"
	"github.com/secrets-agent/secrets-agent/internal/sdnotify"
)

// This file connects the agent to the packages it drives: the control-plane
// client, the config loader and the systemd notifier.

// loadConfig is how Reload reads the config file by default: config.Load
// with no injector section (WithConfigFile).
func loadConfig(path string) (*config.Config, error) { return config.Load(path, nil) }

// newControlPlane builds the real client from cfg.
func newControlPlane(cfg *config.Config) (ControlPlane, error) {
	cp := cfg.ControlPlane
	c, err := controlplane.New(controlplane.Options{
		BaseURL:      cp.URL,
		TokenFile:    cp.TokenFile,
		UserAgent:    "secrets-agent",
		KeepAlive:    offIfZero(cp.KeepAlive),
		PingInterval: offIfZero(cp.PingInterval),
		PingTimeout:  time.Duration(cp.PingTimeout),
	})
	if err != nil {
		return nil, err
	}
	return clientAdapter{c}, nil
}

// offIfZero maps a config duration where 0 means off to the client's
// convention, where 0 means the default and a negative value off.
func offIfZero(d config.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return time.Duration(d)
}

// clientAdapter makes *controlplane.Client a ControlPlane: only WatchEvents
// differs, returning the interface instead of *controlplane.Stream.
type clientAdapter struct{ *controlplane.Client }

func (c clientAdapter) WatchEvents(ctx context.Context, envID string) (controlplane.Events, error) {
	s, err := c.Client.WatchEvents(ctx, envID)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// sdNotifier is what the loop tells the service manager.
type sdNotifier interface {
	Ready(status string)
	Status(status string)
	Reloading()
	Stopping()
	// WatchdogInterval is 0 when the watchdog is disabled.
	WatchdogInterval() time.Duration
	Watchdog()
}

// defaultNotifier returns the systemd notifier.
func defaultNotifier(log *zap.Logger) sdNotifier { return sdnotify.New(log) }

// nopNotifier tells nobody anything.
type nopNotifier struct{}

func (nopNotifier) Ready(string)                    {}
func (nopNotifier) Status(string)                   {}
func (nopNotifier) Reloading()                      {}
func (nopNotifier) Stopping()                       {}
func (nopNotifier) WatchdogInterval() time.Duration { return 0 }
func (nopNotifier) Watchdog()                       {}

// serveStatusSocket serves a on the status socket.
func serveStatusSocket(ctx context.Context, a control.Backend, cfg *config.Config, log *zap.Logger) (func(), error) {
	stop, err := control.Serve(ctx, a, cfg, log)
	if err != nil {
		return nil, fmt.Errorf("status socket %s: %w", cfg.Socket, err)
	}
	return stop, nil
}
