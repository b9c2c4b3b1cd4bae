package agent

import (
	"context"

	"github.com/secrets-agent/secrets-agent/injectors"
	"github.com/secrets-agent/secrets-agent/secrets"
)

// Purge removes every output the agent's injectors made, as a pass would if
// the control plane held no secret: each built injector is handed an empty
// set and removes exactly what its manifest says it wrote, restoring any file
// that was there before. It asks the control plane nothing. Run must not be
// running (on this agent or another with the same state dir): it would put
// the outputs back. `install.sh --uninstall --purge` uses it, through
// `secrets-agent purge`, so that no value is left on disk.
func (a *Agent) Purge(ctx context.Context) map[string]injectors.Result {
	a.passMu.Lock()
	defer a.passMu.Unlock()
	results := map[string]injectors.Result{}
	for _, sl := range a.slots {
		if sl.inj != nil {
			sl.synced = false // a whole Apply: remove every output the manifest names
			results[sl.name] = a.apply(ctx, sl, []secrets.Secret{}, nil, false)
		}
	}
	return results
}
