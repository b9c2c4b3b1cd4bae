package devserver

import "sync"

// hub fans change notices out to the watch streams of each environment.
//
// Each stream subscribes with a channel of capacity 1. Notify does a
// non-blocking send to every subscriber of the environments a change touches:
// when the channel already holds a notice the stream has not written yet, the
// new one is dropped, because the pending notice says the same thing ("this
// environment changed, re-read it"). So a slow stream gets one coalesced
// notice and never holds up Notify or the other streams, and Notify costs one
// map lookup per affected environment, however many streams there are.
type hub struct {
	mu   sync.Mutex
	subs map[string]map[chan struct{}]struct{} // environment id -> subscribers
}

func newHub() *hub {
	return &hub{subs: make(map[string]map[chan struct{}]struct{})}
}

// subscribe returns a channel that receives a notice after each change to
// env, and the function that ends the subscription.
func (h *hub) subscribe(env string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	set := h.subs[env]
	if set == nil {
		set = make(map[chan struct{}]struct{})
		h.subs[env] = set
	}
	set[ch] = struct{}{}
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		// The set holding ch is still h.subs[env]: a set is dropped only
		// when empty, and ch keeps it non-empty until now.
		cur := h.subs[env]
		delete(cur, ch)
		if len(cur) == 0 {
			delete(h.subs, env)
		}
		h.mu.Unlock()
	}
}

// notify tells every stream of each of envs that it changed. It never blocks.
func (h *hub) notify(envs []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, env := range envs {
		for ch := range h.subs[env] {
			select {
			case ch <- struct{}{}:
			default: // a notice is already pending: coalesced
			}
		}
	}
}

// count returns the number of subscribed streams, for tests and logs.
func (h *hub) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, set := range h.subs {
		n += len(set)
	}
	return n
}
