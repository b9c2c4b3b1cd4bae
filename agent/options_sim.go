package agent

// Options for running many agents in one process (the fleet benchmark in
// test/): each agent's Run otherwise takes an inotify instance (bounded per
// user by fs.inotify.max_user_instances, often 128) and a Unix socket of its
// own, neither of which a simulated agent needs.

// WithoutFileWatch makes Run watch no files: no inotify instance, so no
// drift repair and no reload when the config or token file changes
// (RequestReload still reloads, and the control plane is followed as
// always: watch stream, poll floor, retries).
func WithoutFileWatch() Option { return func(o *options) { o.noFileWatch = true } }

// WithoutStatusSocket makes Run serve no status socket; the agent's Backend
// methods (Status, Sync, Applied, ...) still answer in-process.
func WithoutStatusSocket() Option { return func(o *options) { o.noSocket = true } }
