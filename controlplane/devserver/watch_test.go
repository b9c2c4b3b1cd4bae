package devserver

import "testing"

func TestSlowWatcherGetsOneCoalescedNoticeAndBlocksNoOne(t *testing.T) {
	h := newHub()
	slow, cancelSlow := h.subscribe("env1")
	defer cancelSlow()
	fast, cancelFast := h.subscribe("env1")
	defer cancelFast()
	other, cancelOther := h.subscribe("env2")
	defer cancelOther()

	// The slow watcher never drains; notify must return every time.
	for range 100 {
		h.notify([]string{"env1"})
		<-fast
	}
	if len(slow) != 1 {
		t.Fatalf("slow watcher holds %d notices, want 1 (coalesced)", len(slow))
	}
	if len(other) != 0 {
		t.Fatalf("env2's watcher got %d notices for env1's changes", len(other))
	}
}

func TestUnsubscribeForgetsTheEnvironment(t *testing.T) {
	h := newHub()
	_, c1 := h.subscribe("env1")
	_, c2 := h.subscribe("env1")
	c1()
	if h.count() != 1 {
		t.Fatalf("count = %d, want 1", h.count())
	}
	c2()
	if h.count() != 0 || len(h.subs) != 0 {
		t.Fatalf("after both left: count %d, %d environments kept", h.count(), len(h.subs))
	}
	h.notify([]string{"env1"}) // no one listens: nothing happens
}
