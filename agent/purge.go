package agent

import (
	"context"
	"fmt"

	"github.com/secrets-agent/secrets-agent/injectors"
	"github.com/secrets-agent/secrets-agent/internal/dirlock"
	"github.com/secrets-agent/secrets-agent/secrets"
)

// Purge removes every output the agent's injectors made, as a pass would if
// the control plane held no secret: each built injector is handed an empty
// set and removes exactly what its manifest says it wrote, restoring any file
// that was there before. It asks the control plane nothing. It holds the
// state dir's lock (see Run) while it works, so while an agent runs on the
// same state dir (it would put the outputs back) it removes nothing and
// returns an error naming that agent's pid (a *dirlock.HeldError).
// `install.sh --uninstall --purge` uses it, through `secrets-agent purge`,
// so that no value is left on disk.
func (a *Agent) Purge(ctx context.Context) (map[string]injectors.Result, error) {
	if dir := a.config().StateDir; dir != "" {
		lock, err := dirlock.Acquire(dir)
		if err != nil {
			return nil, fmt.Errorf("state dir: %w", err)
		}
		defer lock.Release()
	}
	a.passMu.Lock()
	defer a.passMu.Unlock()
	results := map[string]injectors.Result{}
	for _, sl := range a.slots {
		if sl.inj != nil {
			sl.synced = false // a whole Apply: remove every output the manifest names
			results[sl.name] = a.apply(ctx, sl, []secrets.Secret{}, nil, false)
		}
	}
	return results, nil
}
